//! The command line: `academy [serve]`, `migrate`, `projections status|rebuild`, `events stream|tail`, `scrape`,
//! `bench`.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use domain::StreamId;
use eventlog::{Checkpoint, Direction, EventLog, RecordedEvent};
use indicatif::{ProgressBar, ProgressStyle};
use projections::{Runner, RunnerConfig};

use crate::bench::BenchArgs;
use crate::config::Config;
use crate::database::Database;

#[derive(Debug, Parser)]
#[command(
    name = "academy",
    version,
    about = "Academy: an event-sourced backend for a developer-career platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default): API, projections, and the embedded PostgreSQL unless DATABASE_URL is set.
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Inspect or rebuild read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Read the event log.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Print the GraphQL schema (SDL), as committed in api/schema.graphql.
    Schema,
    /// The question trainer's bank.
    Questions {
        #[command(subcommand)]
        command: QuestionsCommand,
    },
    /// Manage accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Scrape carsensor.net: one run with --once, else runs on ACADEMY_CARSENSOR_SCHEDULE until Ctrl-C.
    Scrape {
        /// One run, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Measure append, replay and listing-upsert throughput next to baselines, on a throwaway cluster.
    Bench(BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Every projection's version, status, checkpoint, lag, owner and last error.
    Status {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a projection from the start of the log beside the live tables, then swap it in.
    Rebuild {
        /// The projection's name (see `academy projections status`).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuestionsCommand {
    /// Import questions from CSV or JSON (by extension, or --format); re-importing a file is harmless. Rows that
    /// cannot be imported are listed with their line numbers, and the command then fails.
    Import {
        /// The file; omit with --starter.
        #[arg(required_unless_present = "starter")]
        file: Option<std::path::PathBuf>,
        #[arg(long, value_enum)]
        format: Option<crate::questions::Format>,
        /// Import the starter bank shipped with Academy (64 questions across the three levels).
        #[arg(long, conflicts_with = "file")]
        starter: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an admin account, or make the existing account with this email an admin when the password given is
    /// its password (the password is never changed).
    CreateAdmin {
        /// Email of the admin (default: ACADEMY_ADMIN_EMAIL).
        #[arg(long)]
        email: Option<String>,
        /// Username of a new account (default: ACADEMY_ADMIN_USERNAME, else "admin").
        #[arg(long)]
        username: Option<String>,
        /// Read the password from the first line of standard input (else ACADEMY_ADMIN_PASSWORD is used).
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The events of one stream.
    Stream {
        /// Stream id, `<category>-<id>`.
        id: String,
        /// First version to show (last, with --backward).
        #[arg(long)]
        from: Option<i64>,
        /// Newest first.
        #[arg(long)]
        backward: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Follow the log live, in commit-safe order, until Ctrl-C.
    Tail {
        /// Start at the beginning of the log instead of now.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => crate::serve::serve(&config).await,
        Command::Bench(args) => crate::bench::run(&config, args).await,
        Command::Scrape { once } => crate::scrape::scrape(&config, once).await,
        Command::Schema => {
            print!("{}", api::graphql::sdl());
            Ok(())
        }
        Command::Questions {
            command:
                QuestionsCommand::Import {
                    file,
                    format,
                    starter,
                },
        } => {
            let (bytes, format) = match (file, starter) {
                (Some(path), _) => {
                    let format = format.or_else(|| crate::questions::Format::of(&path)).with_context(|| {
                        format!("{}: say --format csv or --format json (the extension does not tell)", path.display())
                    })?;
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    (bytes, format)
                }
                (None, _) => (
                    crate::questions::STARTER_BANK.as_bytes().to_vec(),
                    crate::questions::Format::Csv,
                ),
            };
            with_database(&config, |log| import_questions(log, bytes, format)).await
        }
        Command::Users {
            command:
                UsersCommand::CreateAdmin {
                    email,
                    username,
                    password_stdin,
                },
        } => {
            let email = email
                .or_else(|| config.admin_email.clone())
                .context("give the admin's email with --email or ACADEMY_ADMIN_EMAIL")?;
            let username = username.unwrap_or_else(|| config.admin_username.clone());
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                config.admin_password.clone().context(
                    "give the password on standard input with --password-stdin, or in ACADEMY_ADMIN_PASSWORD",
                )?
            };
            with_database(&config, |log| create_admin(log, email, username, password)).await
        }
        Command::Migrate => {
            let database = Database::open(&config).await?;
            let applied = migrations::MIGRATOR.iter().count();
            database.close().await;
            println!("database is migrated ({applied} migrations known)");
            Ok(())
        }
        Command::Projections { command } => {
            with_database(&config, |log| projections_command(log, command)).await
        }
        Command::Events { command } => {
            with_database(&config, |log| events_command(log, command)).await
        }
    }
}

/// Says which committed events an open transaction holds back from every projection, and who holds them.
fn print_hold(hold: &eventlog::Hold) {
    let seconds = hold.age(chrono::Utc::now()).num_seconds();
    println!(
        "{} committed event(s) from position {} held back for {seconds} s by an open transaction",
        hold.events, hold.first_position
    );
    if let Some(blocker) = &hold.blocker {
        println!(
            "  backend pid {} ({}), transaction since {}, state {}: {}",
            blocker.pid,
            blocker.application_name.as_deref().unwrap_or("-"),
            blocker
                .transaction_start
                .map_or_else(|| "?".to_owned(), |at| at.to_rfc3339()),
            blocker.state.as_deref().unwrap_or("?"),
            blocker.query.as_deref().unwrap_or("")
        );
    }
}

/// Opens the database, runs `f`, and closes it again (stopping the embedded cluster if we started it) whatever
/// `f` returned.
async fn with_database<F, Fut>(config: &Config, f: F) -> anyhow::Result<()>
where
    F: FnOnce(EventLog) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let database = Database::open(config).await?;
    let result = f(EventLog::new(database.pool.clone())).await;
    database.close().await;
    result
}

async fn import_questions(
    log: EventLog,
    bytes: Vec<u8>,
    format: crate::questions::Format,
) -> anyhow::Result<()> {
    let (rows, mut bad) = crate::questions::read(&bytes, format);
    let bar = crate::questions::progress_bar(rows.len() as u64);
    let trainer = commands::trainer::Trainer::new(commands::CommandExecutor::new(log));
    let mut report = crate::questions::import(&trainer, rows, &bar).await;
    bar.finish_and_clear();
    bad.append(&mut report.bad);
    bad.sort_by_key(|b| b.line);
    println!(
        "{} added, {} edited, {} unchanged, {} not imported",
        report.added,
        report.edited,
        report.unchanged,
        bad.len()
    );
    for row in &bad {
        println!("line {}: {}", row.line, row.reason);
    }
    if !bad.is_empty() {
        bail!("{} rows were not imported (listed above)", bad.len());
    }
    Ok(())
}

async fn create_admin(
    log: EventLog,
    email: String,
    username: String,
    password: String,
) -> anyhow::Result<()> {
    let identity = commands::identity::Identity::new(
        commands::CommandExecutor::new(log),
        &commands::identity::IdentityConfig::default(),
    )?;
    let request = commands::Request::new(
        commands::Actor::System { name: "bootstrap" },
        commands::Source::Cli,
        chrono::Utc::now(),
    );
    let (id, created) = identity
        .ensure_admin(&request, &email, &username, &password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if created {
        println!("created admin {username} <{email}> with id {id}");
    } else {
        println!("the account of {email} (id {id}) is an admin");
    }
    Ok(())
}

async fn projections_command(log: EventLog, command: ProjectionsCommand) -> anyhow::Result<()> {
    let known = projections::all();
    match command {
        ProjectionsCommand::Status { json } => {
            let rows = projections::status::status(&log, &known).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            if let Some(hold) = log.hold().await? {
                print_hold(&hold);
            }
            println!(
                "{:<20} {:<6} {:>7} {:<12} {:>12} {:>12} {:>10} {:<24} error",
                "name", "slot", "version", "status", "applied", "checkpoint", "lag", "owner"
            );
            for row in rows {
                let version = match row.code_version {
                    Some(code) if code != row.version && row.status != "not started" => {
                        format!("{}→{}", row.version, code)
                    }
                    _ => row.version.to_string(),
                };
                let error = match (&row.error, row.error_position) {
                    (Some(error), Some(position)) => format!("at position {position}: {error}"),
                    (Some(error), None) => error.clone(),
                    _ => String::new(),
                };
                println!(
                    "{:<20} {:<6} {:>7} {:<12} {:>12} {:>12} {:>10} {:<24} {}",
                    row.name,
                    row.slot,
                    version,
                    row.status,
                    row.events_applied,
                    row.checkpoint_position,
                    row.lag,
                    row.holder.unwrap_or_else(|| "-".to_owned()),
                    error
                );
            }
            Ok(())
        }
        ProjectionsCommand::Rebuild { name } => {
            let Some(projection) = known.iter().find(|p| p.name() == name).cloned() else {
                let names: Vec<&str> = known.iter().map(|p| p.name()).collect();
                bail!(
                    "unknown projection {name:?}; known projections: {}",
                    names.join(", ")
                );
            };
            rebuild_with_progress(log, projection).await
        }
    }
}

async fn rebuild_with_progress(
    log: EventLog,
    projection: Arc<dyn projections::Projection>,
) -> anyhow::Result<()> {
    let name = projection.name();
    let total = log
        .count_after(Checkpoint::START, projection.event_types().as_deref())
        .await? as u64;
    let config = RunnerConfig {
        holder: format!("academy projections rebuild (pid {})", std::process::id()),
        ..RunnerConfig::default()
    };
    let runner = Runner::new(log, projection, config)?;
    let progress = runner.progress();
    let bar = ProgressBar::new(total).with_message(format!("rebuilding {name}"));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut rebuild = std::pin::pin!(runner.rebuild());
    let result = loop {
        tokio::select! {
            result = &mut rebuild => break result,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let applied = progress.borrow().events_applied.max(0) as u64;
                if applied > bar.length().unwrap_or(0) {
                    bar.set_length(applied);
                }
                bar.set_position(applied);
            }
        }
    };
    let applied = progress.borrow().events_applied;
    bar.finish_and_clear();
    result.with_context(|| format!("rebuilding {name}"))?;
    println!(
        "rebuilt {name}: {applied} events in {:.1} s, swapped in",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn events_command(log: EventLog, command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Stream {
            id,
            from,
            backward,
            limit,
            json,
        } => {
            let stream = StreamId::parse(&id)?;
            let (direction, from) = if backward {
                (Direction::Backward, from.unwrap_or(i64::MAX))
            } else {
                (Direction::Forward, from.unwrap_or(1))
            };
            let events = log
                .read_stream(stream.as_str(), from, direction, limit.max(0))
                .await?;
            if events.is_empty() {
                match direction {
                    Direction::Forward => {
                        eprintln!("no events in stream {stream} from version {from}")
                    }
                    Direction::Backward => eprintln!("no events in stream {stream}"),
                }
            }
            let mut out = std::io::stdout().lock();
            for event in &events {
                print_event(&mut out, event, json)?;
            }
            Ok(())
        }
        EventsCommand::Tail {
            from_start,
            limit,
            json,
        } => {
            if limit == Some(0) {
                return Ok(());
            }
            let from = if from_start {
                Checkpoint::START
            } else {
                log.horizon().await?
            };
            let mut subscription = log.subscribe(from, None);
            let mut shown = 0;
            loop {
                let batch = tokio::select! {
                    batch = subscription.next_batch() => batch?,
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                };
                let mut out = std::io::stdout().lock();
                for event in &batch {
                    print_event(&mut out, event, json)?;
                    shown += 1;
                    if limit.is_some_and(|limit| shown >= limit) {
                        return Ok(());
                    }
                }
                out.flush()?;
            }
        }
    }
}

fn print_event(out: &mut impl Write, event: &RecordedEvent, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(event)?)?;
    } else {
        writeln!(
            out,
            "{:>10}  {}@{}  {}  {}  {}",
            event.position,
            event.stream_id,
            event.version,
            event.event_type,
            event
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event.data
        )?;
    }
    Ok(())
}
