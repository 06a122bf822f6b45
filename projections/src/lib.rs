//! Projections: read models built from the event log, and the runner that keeps them exactly in step with it.
//!
//! - [`Projection`]: a named, versioned read model. It creates its tables in the schema the runner gives it and
//!   applies batches of events inside the runner's transaction.
//! - [`Runner`] drives one projection: reads the log in commit-safe order, applies each batch and writes the
//!   checkpoint in the same transaction (compare-and-set, so a crash never double-applies or loses an event),
//!   then tails live. One process owns a projection at a time ([`lease`]). A failing event stops that
//!   projection with the error recorded; other projections keep going.
//! - A new projection, or one whose version changed, builds into `<name>__build` while the old tables keep
//!   serving, then swaps in one transaction ([`rebuild`] does the same on demand).
//! - [`Projections`] runs a set of runners and answers [`Projections::wait_for`], the read-your-writes wait.
//! - [`status`] reports every projection's state for operators.
//! - Read models: [`log_stats`], [`accounts`], [`trainer`], [`cars`], [`tracks`], [`deadlines`] (what the
//!   deadline worker has to do), [`notifications`], [`interviews`].

pub mod accounts;
pub mod cars;
pub mod deadlines;
mod host;
pub mod interviews;
mod lease;
pub mod log_stats;
pub mod notifications;
mod registry;
mod runner;
pub mod status;
mod store;
pub mod tracks;
pub mod trainer;

use std::error::Error as StdError;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::PgConnection;

pub use eventlog::{Blocker, Checkpoint, Hold, RecordedEvent, Subscription};
pub use host::Contribution;
pub use registry::{Projections, WaitError};
pub use runner::{Progress, RebuildError, Runner, RunnerConfig, RunnerError, Status, rebuild};

/// What a projection's `apply` or `setup` may fail with.
pub type ProjectionError = Box<dyn StdError + Send + Sync>;

/// A read model built from the log.
///
/// The runner sets `search_path` to the projection's current schema (its name when live, `<name>__build` while
/// rebuilding) in the transaction it passes, so `setup` and `apply` use unqualified table names. Queries read the
/// live tables as `<name>.<table>`.
#[async_trait]
pub trait Projection: ReadModel + Send + Sync + 'static {
    /// Creates the projection's tables in the (empty) current schema.
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError>;

    /// Applies `events` (in commit-safe order) inside the runner's transaction.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError>;
}

/// What one product contributes to the read side: its read models, and its parts of the shared hosts.
pub struct Product {
    pub name: &'static str,
    pub read_models: Vec<Arc<dyn Projection>>,
    /// What it tells users ([`notifications`]).
    pub notices: Option<Arc<dyn notifications::Notices>>,
    /// What the deadline worker fires on its streams ([`deadlines`]).
    pub timers: Option<Arc<dyn deadlines::Timers>>,
}

/// Every product: the one list the read side is built from.
pub fn products() -> Vec<Product> {
    vec![
        accounts::product(),
        trainer::product(),
        cars::product(),
        tracks::product(),
        interviews::product(),
    ]
}

/// Every read model Academy maintains: the products' own, the log's statistics, and the hosts of the products'
/// notices and timers. The one list the server, the command line and the tests run.
pub fn all() -> Vec<Arc<dyn Projection>> {
    let products = products();
    let mut all: Vec<Arc<dyn Projection>> = vec![Arc::new(log_stats::LogStats)];
    all.extend(products.iter().flat_map(|p| p.read_models.iter().cloned()));
    all.push(Arc::new(deadlines::Deadlines::new(&products)));
    all.push(Arc::new(notifications::Notifications::new(&products)));
    all
}

/// Applies each of `events` with the handler of its stream's category (`async fn(&mut PgConnection,
/// &RecordedEvent) -> Result<(), ProjectionError>`); an event of any other category fails the batch, naming the
/// projection. The one dispatch of every projection that reads more than one kind of stream:
///
/// ```ignore
/// by_category!(NAME, conn, events, { "question" => apply_question, "trainee" => apply_trainee })
/// ```
#[macro_export]
macro_rules! by_category {
    ($projection:expr, $conn:expr, $events:expr, { $($category:literal => $handler:path),+ $(,)? }) => {{
        for recorded in $events {
            match recorded.stream_category.as_str() {
                $($category => $handler(&mut *$conn, recorded).await?,)+
                other => return Err($crate::unexpected_stream($projection, other)),
            }
        }
        Ok(())
    }};
}

/// The failure of an event in a stream a projection does not read.
pub fn unexpected_stream(projection: &str, category: &str) -> ProjectionError {
    format!("{projection} event in a {category} stream").into()
}

/// What names a read model: its name (also its live schema's), its version, and the event types it reads.
/// Declared with [`read_model!`]; [`Projection`] adds how it builds its tables and applies events.
pub trait ReadModel {
    /// Stable name, also the live schema's name: lowercase letters, digits and `_`, starting with a letter.
    fn name(&self) -> &'static str;

    /// Bump to rebuild from the start of the log (new tables, changed meaning of rows...).
    fn version(&self) -> i32;

    /// The event types `apply` wants; `None` for every event.
    fn event_types(&self) -> Option<Vec<String>>;
}

/// Declares a read model's name, version and the event types it reads (lists of type strings, such as an event
/// enum's `TYPES`; `all` for every event):
///
/// ```ignore
/// read_model!(Tracks { name: NAME, version: 1, events: [TrackEvent::TYPES, DiaryEvent::TYPES] });
/// ```
#[macro_export]
macro_rules! read_model {
    ($model:ty { name: $name:expr, version: $version:expr, events: all }) => {
        $crate::read_model!(@impl $model, $name, $version, None);
    };
    ($model:ty { name: $name:expr, version: $version:expr, events: [$($types:expr),+ $(,)?] }) => {
        $crate::read_model!(@impl $model, $name, $version,
            Some([$($types),+].concat().into_iter().map(str::to_owned).collect()));
    };
    (@impl $model:ty, $name:expr, $version:expr, $types:expr) => {
        impl $crate::ReadModel for $model {
            fn name(&self) -> &'static str {
                $name
            }

            fn version(&self) -> i32 {
                $version
            }

            fn event_types(&self) -> Option<Vec<String>> {
                $types
            }
        }
    };
}

/// Decodes a text column holding a domain name with the enum's own `parse`: a name the domain does not know is a
/// decode error, never a default.
pub(crate) fn named<T>(
    row: &sqlx::postgres::PgRow,
    column: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, sqlx::Error> {
    let stored: &str = sqlx::Row::try_get(row, column)?;
    parse(stored).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("unknown {column} {stored:?}").into(),
    })
}

/// The id of an aggregate from its stream id (`<prefix><uuid>`), for read models keyed by it.
pub(crate) fn stream_uuid(stream: &str, prefix: &str) -> Result<uuid::Uuid, ProjectionError> {
    let id = stream
        .strip_prefix(prefix)
        .ok_or_else(|| format!("event of stream {stream} where {prefix}<uuid> was expected"))?;
    Ok(uuid::Uuid::parse_str(id)?)
}

/// The instant a read model stores as Unix seconds (a `bigint` column).
pub(crate) fn timestamp(seconds: i64) -> Result<domain::Timestamp, ProjectionError> {
    domain::Timestamp::from_unix_seconds(seconds)
        .ok_or_else(|| format!("time {seconds} is out of range").into())
}

/// The schema a projection's live tables are in.
pub fn live_schema(name: &str) -> String {
    name.to_owned()
}

/// The schema a rebuild writes into.
pub fn build_schema(name: &str) -> String {
    format!("{name}__build")
}

/// Whether `name` can be a projection (and schema) name.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 48
        && !name.contains("__")
        && !matches!(name, "public" | "information_schema")
        && !name.starts_with("pg_")
}
