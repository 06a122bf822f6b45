//! The `academy` binary as users run it: real processes, real PostgreSQL clusters, real HTTP.

mod cli;
mod identity;
mod scrape;
mod serve;
mod supervision;
mod timeouts;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_academy");

/// A folder the embedded cluster can live in, also when the tests run as root (the server's user must enter it).
pub fn data_folder() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("academy-it-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `academy` with a clean environment: no inherited DATABASE_URL or ACADEMY_* settings, and no scheduled
/// scraper (a test server must never reach the real carsensor.net; `scrape --once` tests point it at a fake).
pub fn academy(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key == "DATABASE_URL" || key.starts_with("ACADEMY_") {
            command.env_remove(key);
        }
    }
    command
        .env("ACADEMY_DATA_DIR", data_dir.join("pg"))
        .env("ACADEMY_LISTEN", "127.0.0.1:0")
        .env("ACADEMY_CARSENSOR_ENABLED", "false")
        .env("RUST_LOG", "warn")
        .current_dir(data_dir);
    command
}

pub fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

/// A running `academy serve`.
pub struct Server {
    pub child: Child,
    pub address: String,
    /// The embedded cluster's folder, to stop a cluster a failed test would otherwise leave running.
    pg_dir: Option<std::path::PathBuf>,
}

impl Server {
    pub fn start(command: Command) -> Server {
        Self::start_logging_to(command, Stdio::inherit())
    }

    /// [`Server::start`], with the server's log (its standard error) going to `log`.
    pub fn start_logging_to(mut command: Command, log: impl Into<Stdio>) -> Server {
        let pg_dir = command
            .get_envs()
            .find(|(key, _)| *key == "ACADEMY_DATA_DIR")
            .and_then(|(_, value)| value.map(std::path::PathBuf::from));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("academy listening on ") {
                    let _ = tx.send(address.to_owned());
                }
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server announced its address");
        Server {
            child,
            address,
            pg_dir,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.address))
            .await
            .unwrap()
    }

    /// Waits until /readyz reports every projection running and caught up.
    pub async fn wait_projections_live(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let body: serde_json::Value = self.get("/readyz").await.json().await.unwrap();
            let live = body["projections"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["status"] == "running" && p["caught_up"] == true);
            if live {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "projections never caught up: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // a clean stop decided itself whether to stop the cluster
                self.pg_dir = None;
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // a durable cluster outlives a killed academy; don't leave one behind a failed test
        if let Some(pid) = self.pg_dir.as_deref().and_then(postmaster_pid)
            && alive(pid)
        {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
    }
}

pub fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// The postmaster's pid from a data folder, when one runs there.
pub fn postmaster_pid(pg_dir: &Path) -> Option<u32> {
    let contents = std::fs::read_to_string(pg_dir.join("postmaster.pid")).ok()?;
    contents.lines().next()?.trim().parse().ok()
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}
