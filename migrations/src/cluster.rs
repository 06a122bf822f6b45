//! A PostgreSQL cluster run from the system's server binaries, so that `academy` and every test need nothing but
//! PostgreSQL installed.
//!
//! The cluster listens only on a unix socket in a private folder (no TCP port, so clusters never collide), is
//! created with `initdb` on first use, and reused when a previous run left it running. When the process runs as
//! root, `initdb` and `postgres` run as an unprivileged system user (PostgreSQL refuses root), and the data folder
//! is handed to that user.
//!
//! The `postgres` process is spawned from a dedicated thread that lives as long as the [`Cluster`] handle. Several
//! processes may use one cluster (the server and CLI commands); whoever is last stops it ([`Cluster::stop`]), the
//! others leave it running ([`Cluster::leave_running`]), so a process never pulls the database from under
//! another. A durable cluster whose starter crashed keeps running and the next process attaches to it.
//! Throwaway (test) clusters instead get `PR_SET_PDEATHSIG`, so they never outlive their test process; that
//! signal fires when the *spawning thread* exits, hence the dedicated thread.
#![allow(unsafe_code)] // getpwnam, kill and prctl have no safe wrappers in std

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

/// The port only names the socket file; with `listen_addresses=''` nothing listens on TCP, and each cluster has
/// its own socket folder, so one fixed number serves every cluster.
const PORT: u16 = 5432;
/// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Oldest PostgreSQL we support (`pg_current_xact_id` / `xid8` snapshots arrived in 13; we test on 14+).
const MIN_MAJOR: u32 = 14;
const SERVER_LOG: &str = "server.log";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found on PATH, under /usr/lib/postgresql/*/bin \
         or in ACADEMY_PG_BIN. Install them (Debian/Ubuntu: `apt-get install -y postgresql`; PostgreSQL {MIN_MAJOR} \
         or newer), point ACADEMY_PG_BIN at their folder, or set DATABASE_URL to use an existing server"
    )]
    BinariesNotFound,
    #[error(
        "the PostgreSQL server binaries in {bin_dir} are version {found}; Academy needs {MIN_MAJOR} or newer. \
         Install a newer PostgreSQL (and point ACADEMY_PG_BIN at it) or set DATABASE_URL"
    )]
    TooOld { bin_dir: PathBuf, found: u32 },
    #[error(
        "running as root, but there is no system user `{0}` to run PostgreSQL as (PostgreSQL refuses to run as \
         root). Create one (`useradd --system {0}`), set ACADEMY_PG_USER to another unprivileged user, or set \
         DATABASE_URL"
    )]
    NoSuchUser(String),
    #[error(
        "the data folder {data_dir} cannot be reached by the `{user}` user that runs PostgreSQL: {blocker} is not \
         enterable by it (mode {mode:o}). Set ACADEMY_DATA_DIR to a folder it can reach (for example \
         /var/lib/academy), or allow it through with `chmod o+x {blocker}`"
    )]
    Unreachable {
        data_dir: PathBuf,
        user: String,
        blocker: PathBuf,
        mode: u32,
    },
    #[error(
        "{0} exists and is not empty, but is not a PostgreSQL data folder (no PG_VERSION); point ACADEMY_DATA_DIR \
         at an empty or PostgreSQL folder"
    )]
    NotADataDir(PathBuf),
    #[error(
        "the data folder {data_dir} was made by PostgreSQL {found}, but the binaries in {bin_dir} are version \
         {binaries}; use matching binaries (ACADEMY_PG_BIN) or a new data folder"
    )]
    VersionMismatch {
        data_dir: PathBuf,
        found: String,
        binaries: u32,
        bin_dir: PathBuf,
    },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("PostgreSQL did not become ready within {0:?}; its log says:\n{1}")]
    NotReady(Duration, String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// How the server is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Stock settings: every commit is durable.
    Durable,
    /// For throwaway test clusters only: no fsync, no full-page writes. A crash loses the cluster, which a test
    /// does not care about.
    Throwaway,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where the cluster lives; created (with `initdb`) when missing or empty.
    pub data_dir: PathBuf,
    /// Folder holding `initdb` and `postgres`; searched for when `None`.
    pub bin_dir: Option<PathBuf>,
    /// The unprivileged user PostgreSQL runs as when we are root.
    pub run_as: String,
    pub durability: Durability,
    /// The server ends any session that stays idle inside a transaction this long
    /// (`idle_in_transaction_session_timeout`, for every session, Academy's or not): an open transaction holds
    /// back every projection, which reads the log only below the oldest transaction in flight. Zero: never.
    pub idle_in_transaction_timeout: Duration,
}

impl ClusterConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bin_dir: None,
            run_as: "postgres".to_owned(),
            durability: Durability::Durable,
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// A running cluster. Dropping the handle of a cluster this process started stops it (fast shutdown); a cluster
/// that another process started and we merely reuse is left running. [`Cluster::stop`] and
/// [`Cluster::leave_running`] say explicitly which.
#[derive(Debug)]
pub struct Cluster {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    /// `Some` when this process started the server.
    guardian: Option<Guardian>,
    /// How this process started the server, to start it again after it died ([`Cluster::restart`]).
    spawn: Option<Spawn>,
}

/// What starting the server takes, kept to restart it.
#[derive(Debug, Clone)]
struct Spawn {
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    durability: Durability,
    idle_in_transaction_timeout: Duration,
}

#[derive(Debug)]
struct Guardian {
    orders: mpsc::Sender<Order>,
    thread: Option<thread::JoinHandle<()>>,
}

/// What the guardian thread is told to do with its server.
#[derive(Debug)]
enum Order {
    Stop,
    /// Let it run on without us (other processes still use it).
    LeaveRunning,
}

impl Cluster {
    /// Creates the cluster if needed and starts it, or attaches to the server already running on this data
    /// folder. Blocks until the server accepts connections.
    pub fn start(config: &ClusterConfig) -> Result<Self, ClusterError> {
        let bin_dir = match &config.bin_dir {
            Some(dir) if dir.join("postgres").is_file() => dir.clone(),
            Some(_) => return Err(ClusterError::BinariesNotFound),
            None => find_bin_dir()?,
        };
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(lookup_user(&config.run_as)?)
        } else {
            None
        };

        fs::create_dir_all(&config.data_dir)
            .map_err(io_err(format!("creating {}", config.data_dir.display())))?;
        let data_dir = fs::canonicalize(&config.data_dir)
            .map_err(io_err(format!("resolving {}", config.data_dir.display())))?;
        if let Some(user) = &run_as {
            check_reachable(&data_dir, user)?;
        }

        if let Some(running) = Self::attach(&data_dir)? {
            tracing::info!(data_dir = %data_dir.display(), "reusing the PostgreSQL server already running here");
            return Ok(running);
        }

        if !data_dir.join("PG_VERSION").exists() {
            if fs::read_dir(&data_dir)
                .map_err(io_err(format!("listing {}", data_dir.display())))?
                .next()
                .is_some()
            {
                return Err(ClusterError::NotADataDir(data_dir));
            }
            initdb(&bin_dir, &data_dir, run_as.as_ref(), config.durability)?;
        }
        check_version(&bin_dir, &data_dir)?;

        let socket_dir = socket_dir_for(&data_dir);
        if socket_dir != data_dir {
            prepare_private_dir(&socket_dir, run_as.as_ref())?;
        }
        remove_stale_lock(&socket_dir.join(format!(".s.PGSQL.{PORT}.lock")))?;

        let guardian = spawn_guarded(
            &bin_dir,
            &data_dir,
            &socket_dir,
            run_as.as_ref(),
            config.durability,
            config.idle_in_transaction_timeout,
        )?;
        let cluster = Self {
            data_dir,
            socket_dir,
            port: PORT,
            guardian: Some(guardian),
            spawn: Some(Spawn {
                bin_dir,
                run_as,
                durability: config.durability,
                idle_in_transaction_timeout: config.idle_in_transaction_timeout,
            }),
        };
        cluster.wait_ready(Duration::from_secs(60))?;
        tracing::info!(data_dir = %cluster.data_dir.display(), socket = %cluster.socket_dir.display(), "PostgreSQL started");
        Ok(cluster)
    }

    /// Attaches to a live postmaster of this data folder; removes a stale `postmaster.pid` left by a crash.
    fn attach(data_dir: &Path) -> Result<Option<Self>, ClusterError> {
        let pid_file = data_dir.join("postmaster.pid");
        let Ok(contents) = fs::read_to_string(&pid_file) else {
            return Ok(None);
        };
        let lines: Vec<&str> = contents.lines().collect();
        let pid = lines.first().and_then(|l| l.trim().parse::<i32>().ok());
        if pid.is_none() && contents.trim().is_empty() && pid_file_is_fresh(&pid_file) {
            // a postmaster is starting and has not written its pid yet: let it finish, then look again
            thread::sleep(Duration::from_millis(500));
            return Self::attach(data_dir);
        }
        match pid {
            Some(pid) if is_postmaster_of(pid, data_dir) => {
                let port = lines
                    .get(3)
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(PORT);
                let socket_dir = lines
                    .get(4)
                    .map(|l| l.trim())
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| socket_dir_for(data_dir));
                let cluster = Self {
                    data_dir: data_dir.to_owned(),
                    socket_dir,
                    port,
                    guardian: None,
                    spawn: None,
                };
                cluster.wait_ready(Duration::from_secs(60))?;
                Ok(Some(cluster))
            }
            _ => {
                tracing::warn!(pid_file = %pid_file.display(), "removing a stale postmaster.pid left by a previous run");
                fs::remove_file(&pid_file)
                    .map_err(io_err(format!("removing stale {}", pid_file.display())))?;
                Ok(None)
            }
        }
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_ready() {
                return Ok(());
            }
            if self.start_failed() || Instant::now() > deadline {
                return Err(ClusterError::NotReady(timeout, log_tail(&self.data_dir)));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether the postmaster of this data folder is alive (whoever started it). Cheap (a few `/proc` reads), for
    /// polling: a postmaster killed outright is gone at once, even before its parent reaps it.
    pub fn is_running(&self) -> bool {
        if self.start_failed() {
            return false;
        }
        fs::read_to_string(self.data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|c| c.lines().next()?.trim().parse::<i32>().ok())
            .is_some_and(|pid| is_postmaster_of(pid, &self.data_dir))
    }

    /// Whether the server accepts connections: `postmaster.pid`'s 8th line turns to "ready" then, and the socket
    /// is there.
    pub fn is_ready(&self) -> bool {
        let ready = fs::read_to_string(self.data_dir.join("postmaster.pid"))
            .map(|c| c.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
            .unwrap_or(false);
        ready
            && self
                .socket_dir
                .join(format!(".s.PGSQL.{}", self.port))
                .exists()
            && self.is_running()
    }

    /// The last lines of the server's log, for messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.data_dir)
    }

    /// Whether the server this process started has exited (it died, or a [`Cluster::restart`] could not start).
    pub fn start_failed(&self) -> bool {
        self.guardian.as_ref().is_some_and(Guardian::finished)
    }

    /// Starts the server again after it died, when this process started it (PostgreSQL's crash recovery runs as
    /// it starts); does not wait for it to accept connections (poll [`Cluster::is_ready`] and
    /// [`Cluster::start_failed`]). Does nothing while the server still runs. A cluster another process started
    /// is not ours to restart: that is an error.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        let Some(spawn) = self.spawn.clone() else {
            return Err(ClusterError::Command {
                what: "restarting PostgreSQL".to_owned(),
                detail: "another process started this cluster".to_owned(),
            });
        };
        if self.is_running() {
            return Ok(());
        }
        // the old guardian ends as soon as it sees its server exited (it reaps it, so the new server does not
        // take a zombie's pid file for a live one)
        if let Some(mut old) = self.guardian.take() {
            let _ = old.orders.send(Order::Stop);
            if let Some(thread) = old.thread.take() {
                let _ = thread.join();
            }
        }
        remove_stale_lock(&self.socket_dir.join(format!(".s.PGSQL.{}.lock", self.port)))?;
        let guardian = spawn_guarded(
            &spawn.bin_dir,
            &self.data_dir,
            &self.socket_dir,
            spawn.run_as.as_ref(),
            spawn.durability,
            spawn.idle_in_transaction_timeout,
        )?;
        self.guardian = Some(guardian);
        tracing::info!(data_dir = %self.data_dir.display(), "PostgreSQL restarted; recovering");
        Ok(())
    }

    /// Whether this process started the server (and will stop it), rather than reusing another's.
    pub fn is_owned(&self) -> bool {
        self.guardian.is_some()
    }

    /// Connection options for database `database` as the `postgres` superuser over the private socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.socket_dir.to_string_lossy())
            .port(self.port)
            .username("postgres")
            .database(database)
    }

    /// A `DATABASE_URL`-style address of database `database`, for tools such as psql.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/{}?host={}",
            self.port,
            database,
            self.socket_dir.display()
        )
    }

    /// Stops the server (fast shutdown) and waits for it, whether this process started it or attached to it. For
    /// the last process using the cluster.
    pub fn stop(mut self) {
        if self.guardian.is_some() {
            self.order(Order::Stop);
        } else {
            stop_postmaster_of(&self.data_dir);
        }
    }

    /// Leaves the server running for the other processes that use it, also when this process started it.
    pub fn leave_running(mut self) {
        self.order(Order::LeaveRunning);
    }

    fn order(&mut self, order: Order) {
        if let Some(mut guardian) = self.guardian.take() {
            // a send error only means the thread already ended (the server died); joining is still right
            let _ = guardian.orders.send(order);
            if let Some(thread) = guardian.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.order(Order::Stop);
    }
}

/// Asks the postmaster serving `data_dir` (not our child) for a fast shutdown and waits until it has removed its
/// pid file.
fn stop_postmaster_of(data_dir: &Path) {
    let pid_file = data_dir.join("postmaster.pid");
    let Some(pid) = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|c| c.lines().next()?.trim().parse::<i32>().ok())
        .filter(|&pid| is_postmaster_of(pid, data_dir))
    else {
        return;
    };
    // SAFETY: a signal to the postmaster of our data folder (checked above).
    unsafe { libc::kill(pid, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while pid_file.exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if pid_file.exists() {
        tracing::warn!("PostgreSQL did not stop within 30 s; sending an immediate shutdown");
        // SAFETY: as above; SIGQUIT is PostgreSQL's immediate shutdown.
        unsafe { libc::kill(pid, libc::SIGQUIT) };
    } else {
        tracing::info!("PostgreSQL stopped");
    }
}

impl Guardian {
    fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

/// Where the socket goes: inside the data folder when the path is short enough, else a per-folder place in /tmp.
fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let in_data = data_dir.join(format!(".s.PGSQL.{PORT}"));
    if in_data.as_os_str().len() <= MAX_SOCKET_PATH {
        return data_dir.to_owned();
    }
    // a stable name per data folder (FNV-1a of its path), so a second process finds the same socket
    let hash = data_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
    std::env::temp_dir().join(format!("academy-pg-{hash:016x}"))
}

/// Creates (or checks) a socket folder outside the data folder: a real directory, owned by the server's user,
/// mode 0700. A predictable name in /tmp could otherwise be planted by another user as a symlink or an open
/// folder.
fn prepare_private_dir(dir: &Path, run_as: Option<&RunAs>) -> Result<(), ClusterError> {
    // SAFETY: geteuid cannot fail.
    let owner = run_as.map_or_else(|| unsafe { libc::geteuid() }, |u| u.uid);
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(io_err(format!("creating {}", dir.display())))?;
        }
        Err(e) => return Err(io_err(format!("inspecting {}", dir.display()))(e)),
        Ok(meta) if meta.file_type().is_dir() && (meta.uid() == owner || meta.uid() == 0) => {}
        Ok(_) => {
            return Err(ClusterError::Command {
                what: format!("using {} for the server's socket", dir.display()),
                detail: "it exists but is not a folder owned by the server's user; remove it"
                    .to_owned(),
            });
        }
    }
    if let Some(user) = run_as {
        chown(dir, user)?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("restricting {}", dir.display())))
}

fn find_bin_dir() -> Result<PathBuf, ClusterError> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file());
    if let Some(dir) = on_path {
        return Ok(dir);
    }
    // Debian and Ubuntu keep server binaries out of PATH, one folder per major version; take the newest
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| ClusterError::BinariesNotFound)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file()).then_some((major, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((major, bin)) if major >= MIN_MAJOR => Ok(bin),
        Some((found, bin_dir)) => Err(ClusterError::TooOld { bin_dir, found }),
        None => Err(ClusterError::BinariesNotFound),
    }
}

#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

fn lookup_user(name: &str) -> Result<RunAs, ClusterError> {
    let c_name = CString::new(name).map_err(|_| ClusterError::NoSuchUser(name.to_owned()))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy the two ids out at once and this
    // runs before any thread of ours could call getpw* concurrently on this path.
    let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if entry.is_null() {
        return Err(ClusterError::NoSuchUser(name.to_owned()));
    }
    // SAFETY: non-null pointer returned by getpwnam, read immediately.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    if uid == 0 {
        return Err(ClusterError::NoSuchUser(name.to_owned()));
    }
    Ok(RunAs {
        name: name.to_owned(),
        uid,
        gid,
    })
}

/// Every folder above the data folder must be enterable by the server's user (a checkout under /root is not).
fn check_reachable(data_dir: &Path, user: &RunAs) -> Result<(), ClusterError> {
    for dir in data_dir.ancestors().skip(1) {
        let meta = fs::metadata(dir).map_err(io_err(format!("inspecting {}", dir.display())))?;
        let mode = meta.permissions().mode();
        let can_enter = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !can_enter {
            return Err(ClusterError::Unreachable {
                data_dir: data_dir.to_owned(),
                user: user.name.clone(),
                blocker: dir.to_owned(),
                mode: mode & 0o7777,
            });
        }
    }
    Ok(())
}

fn chown(path: &Path, user: &RunAs) -> Result<(), ClusterError> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(io_err(format!(
        "handing {} to user {}",
        path.display(),
        user.name
    )))
}

fn as_user(command: &mut Command, run_as: Option<&RunAs>) {
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    // the server's user may not be able to enter our working directory
    command.current_dir("/");
}

fn initdb(
    bin_dir: &Path,
    data_dir: &Path,
    run_as: Option<&RunAs>,
    durability: Durability,
) -> Result<(), ClusterError> {
    if let Some(user) = run_as {
        chown(data_dir, user)?;
    }
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("restricting {}", data_dir.display())))?;
    let mut command = Command::new(bin_dir.join("initdb"));
    command.arg("-D").arg(data_dir).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-instructions",
    ]);
    if durability == Durability::Throwaway {
        command.arg("-N");
    }
    as_user(&mut command, run_as);
    tracing::info!(data_dir = %data_dir.display(), "creating a PostgreSQL cluster (initdb)");
    let output = command.output().map_err(io_err(format!(
        "running {}",
        bin_dir.join("initdb").display()
    )))?;
    if !output.status.success() {
        return Err(ClusterError::Command {
            what: format!("initdb -D {}", data_dir.display()),
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(())
}

fn check_version(bin_dir: &Path, data_dir: &Path) -> Result<(), ClusterError> {
    let found = fs::read_to_string(data_dir.join("PG_VERSION"))
        .map_err(io_err(format!("reading {}/PG_VERSION", data_dir.display())))?;
    let found = found.trim().to_owned();
    let output = Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .output()
        .map_err(io_err(format!(
            "running {}/postgres --version",
            bin_dir.display()
        )))?;
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let text = String::from_utf8_lossy(&output.stdout);
    let binaries = text
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| ClusterError::Command {
            what: "postgres --version".to_owned(),
            detail: format!(
                "unexpected output {text:?} {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })?;
    if binaries < MIN_MAJOR {
        return Err(ClusterError::TooOld {
            bin_dir: bin_dir.to_owned(),
            found: binaries,
        });
    }
    if found != binaries.to_string() {
        return Err(ClusterError::VersionMismatch {
            data_dir: data_dir.to_owned(),
            found,
            binaries,
            bin_dir: bin_dir.to_owned(),
        });
    }
    Ok(())
}

/// Whether `pid` is alive and is a postgres serving `data_dir` (a postmaster's working directory is its data
/// folder), not a process that inherited the pid of a crashed one.
fn is_postmaster_of(pid: i32, data_dir: &Path) -> bool {
    // the working directory is readable for our own processes and for root; for another user's process that
    // we cannot inspect, the name has to do
    let serves_here = match fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => cwd == data_dir,
        Err(_) => true,
    };
    is_postgres_pid(pid) && serves_here
}

/// Whether `pid` is a live postgres process (a zombie left by a killed server is not).
fn is_postgres_pid(pid: i32) -> bool {
    let named_postgres = fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| matches!(comm.trim(), "postgres" | "postmaster"));
    // /proc/<pid>/stat: "pid (comm) state ..."; the state follows the last ')'
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
    });
    pid > 0 && named_postgres && !zombie
}

/// A pid file modified in the last few seconds may belong to a postmaster that is still writing it.
fn pid_file_is_fresh(pid_file: &Path) -> bool {
    fs::metadata(pid_file)
        .and_then(|m| m.modified())
        .is_ok_and(|at| at.elapsed().is_ok_and(|age| age < Duration::from_secs(3)))
}

/// A socket lock file whose owner is gone would make PostgreSQL refuse to start when the pid has been reused.
fn remove_stale_lock(lock: &Path) -> Result<(), ClusterError> {
    let Ok(contents) = fs::read_to_string(lock) else {
        return Ok(());
    };
    let pid = contents
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok());
    if !pid.is_some_and(is_postgres_pid) {
        fs::remove_file(lock).map_err(io_err(format!("removing stale {}", lock.display())))?;
    }
    Ok(())
}

fn spawn_guarded(
    bin_dir: &Path,
    data_dir: &Path,
    socket_dir: &Path,
    run_as: Option<&RunAs>,
    durability: Durability,
    idle_in_transaction_timeout: Duration,
) -> Result<Guardian, ClusterError> {
    let log_path = data_dir.join(SERVER_LOG);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(format!("opening {}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(io_err("duplicating the log handle"))?;

    let mut command = Command::new(bin_dir.join("postgres"));
    command
        .arg("-D")
        .arg(data_dir)
        .arg("-k")
        .arg(socket_dir)
        .args(["-p", &PORT.to_string(), "-c", "listen_addresses="])
        // only the server's user (and root) may connect: authentication is `trust` on this private socket
        .args(["-c", "unix_socket_permissions=0700"])
        .arg("-c")
        .arg(format!(
            "idle_in_transaction_session_timeout={}",
            idle_in_transaction_timeout
                .as_millis()
                .min(i32::MAX as u128)
        ))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // our own process group: a terminal's Ctrl-C reaches academy only, which drains requests and then stops
        // the server itself
        .process_group(0);
    if durability == Durability::Throwaway {
        command.args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]);
        command.args(["-c", "max_connections=300"]);
    }
    as_user(&mut command, run_as);
    if durability == Durability::Throwaway {
        // a test cluster must not outlive its test process
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    let (stop_tx, stop_rx) = mpsc::channel::<Order>();
    let (spawned_tx, spawned_rx) = mpsc::channel::<io::Result<()>>();
    let thread = thread::Builder::new()
        .name("postgres-guardian".to_owned())
        .spawn(move || {
            let child = match command.spawn() {
                Ok(child) => {
                    let _ = spawned_tx.send(Ok(()));
                    child
                }
                Err(e) => {
                    let _ = spawned_tx.send(Err(e));
                    return;
                }
            };
            guard(child, stop_rx);
        })
        .map_err(io_err("starting the postgres guardian thread"))?;
    spawned_rx
        .recv()
        .map_err(|_| ClusterError::Command {
            what: "starting postgres".to_owned(),
            detail: "the guardian thread ended before spawning".to_owned(),
        })?
        .map_err(io_err(format!(
            "running {}",
            bin_dir.join("postgres").display()
        )))?;
    Ok(Guardian {
        orders: stop_tx,
        thread: Some(thread),
    })
}

/// Runs on the guardian thread: waits for an order (a dropped handle means stop), then shuts the server down or
/// lets it run on.
fn guard(mut child: Child, orders: mpsc::Receiver<Order>) {
    loop {
        match orders.recv_timeout(Duration::from_millis(200)) {
            Ok(Order::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(Order::LeaveRunning) => {
                tracing::info!("leaving PostgreSQL running for the other processes that use it");
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    tracing::error!(%status, "PostgreSQL exited on its own");
                    return;
                }
            }
        }
    }
    let pid = child.id() as i32;
    // SIGINT = fast shutdown: aborts open transactions, checkpoints, exits
    // SAFETY: plain signal to our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            tracing::info!("PostgreSQL stopped");
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    tracing::warn!("PostgreSQL did not stop within 30 s; sending an immediate shutdown");
    // SAFETY: as above; SIGQUIT is PostgreSQL's immediate shutdown.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let _ = child.wait();
}

/// The last lines of the server log, for error messages.
fn log_tail(data_dir: &Path) -> String {
    let Ok(mut file) = fs::File::open(data_dir.join(SERVER_LOG)) else {
        return "(no server log)".to_owned();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(4000)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text
}
