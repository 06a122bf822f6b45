//! `notifications`: what each user is told, and whether they read it, for every product. It hosts the notices
//! products contribute ([`Notices`]): each product reads the events of its streams and says who is told what
//! (a [`Notice`] of one of its [`NotificationKind`]s), keeping whatever tables it needs to word them; the host
//! stores one row per user and applies the marks of "read" from users' inboxes. This module knows no product.
//!
//! A notification's id comes from the event and the user (stable across rebuilds), so marks of "read" in users'
//! inboxes still apply after a replay.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Timestamp;
use domain::inbox::InboxEvent;
use domain::notices::NotificationKind;
use eventlog::RecordedEvent;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::host::{Contribution, Contributions};
use crate::{Product, Projection, ProjectionError, ReadModel, stream_uuid};

pub const NAME: &str = "notifications";

/// Namespace of notification ids.
const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x1e6d_52a9_c3f0_4b7e_9a18_6d2c_f05b_7e93);

/// The id of the notification `event` gives `user`.
pub fn notification_id(event: Uuid, user: Uuid) -> Uuid {
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(event.as_bytes());
    name[16..].copy_from_slice(user.as_bytes());
    Uuid::new_v5(&NOTIFICATION_NAMESPACE, &name)
}

/// What a product contributes to the `notifications` read model: who is told what by the events of its streams
/// (its [`Contribution`] reads those that notify someone, and those it needs to word them).
#[async_trait]
pub trait Notices: Contribution {
    /// Who is told what by one event of its streams; keeps its own tables up to date.
    async fn notices(
        &self,
        conn: &mut PgConnection,
        recorded: &RecordedEvent,
    ) -> Result<Vec<Notice>, ProjectionError>;
}

/// Who is told what, by one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub users: Vec<Uuid>,
    pub kind: NotificationKind,
    /// Which part of the event's stream it is about (a track's assignment index), when one.
    pub item: Option<u32>,
    pub title: String,
    pub body: String,
    /// When it happened: the event's time.
    pub at: Timestamp,
}

/// The host: the `notifications` table, and every product's own tables beside it.
pub struct Notifications {
    products: Contributions<dyn Notices>,
}

impl Notifications {
    /// The host of what `products` contribute.
    pub fn new(products: &[Product]) -> Self {
        let products = products.iter().filter_map(|p| p.notices.clone()).collect();
        Self {
            products: Contributions::new(products),
        }
    }
}

impl ReadModel for Notifications {
    fn name(&self) -> &'static str {
        NAME
    }

    // 3: the host of products' notices; rows name the stream they are about
    fn version(&self) -> i32 {
        3
    }

    fn event_types(&self) -> Option<Vec<String>> {
        Some(self.products.event_types(InboxEvent::TYPES))
    }
}

#[async_trait]
impl Projection for Notifications {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table notifications (
                 id         uuid primary key,
                 user_id    uuid not null,
                 -- domain::notices::NotificationKind::as_str
                 kind       text not null,
                 -- the stream of the event it comes from: what it is about
                 stream_id  text not null,
                 -- which part of it (a track's 0-based assignment index), when one
                 item       integer,
                 title      text not null,
                 body       text not null,
                 created_at timestamptz not null,
                 -- log position of the event it comes from; with id, the order of a user's list and its cursor
                 position   bigint not null,
                 read_at    timestamptz
             );
             create index notifications_user on notifications (user_id, position, id);
             create index notifications_unread on notifications (user_id) where read_at is null;",
        )
        .execute(&mut *conn)
        .await?;
        self.products.setup(conn).await
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for recorded in events {
            if recorded.stream_category == "inbox" {
                apply_inbox(conn, recorded).await?;
                continue;
            }
            let product = self.products.of(NAME, recorded)?;
            for notice in product.notices(conn, recorded).await? {
                insert(conn, recorded, notice).await?;
            }
        }
        Ok(())
    }
}

/// Marks of "read" from a user's inbox.
async fn apply_inbox(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let user = stream_uuid(&recorded.stream_id, "inbox-")?;
    let InboxEvent::NotificationsRead { ids, at } = recorded.decode()?;
    sqlx::query(
        "update notifications set read_at = $3
          where user_id = $1 and id = any($2) and read_at is null",
    )
    .bind(user)
    .bind(ids)
    .bind(DateTime::<Utc>::from(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts one `notifications` row per user told.
async fn insert(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
    notice: Notice,
) -> Result<(), ProjectionError> {
    for user in notice.users {
        sqlx::query(
            "insert into notifications (id, user_id, kind, stream_id, item, title, body, created_at, position)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(notification_id(recorded.event_id, user))
        .bind(user)
        .bind(notice.kind.as_str())
        .bind(&recorded.stream_id)
        .bind(notice.item.map(|i| i as i32))
        .bind(&notice.title)
        .bind(&notice.body)
        .bind(DateTime::<Utc>::from(notice.at))
        .bind(recorded.position)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A time in notification texts.
pub(crate) fn when(at: Timestamp) -> String {
    DateTime::<Utc>::from(at)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotificationRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: NotificationKind,
    /// The stream of the event it comes from: what it is about.
    pub stream_id: String,
    /// Which part of it (a track's 0-based assignment index), when one.
    pub item: Option<i32>,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub position: i64,
    pub read_at: Option<DateTime<Utc>>,
}

impl FromRow<'_, PgRow> for NotificationRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            kind: crate::named(row, "kind", NotificationKind::parse)?,
            stream_id: row.try_get("stream_id")?,
            item: row.try_get("item")?,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            created_at: row.try_get("created_at")?,
            position: row.try_get("position")?,
            read_at: row.try_get("read_at")?,
        })
    }
}

const COLUMNS: &str = "n.id, n.user_id, n.kind, n.stream_id, n.item, n.title, n.body, n.created_at, n.position, n.read_at";

/// The statement of [`list`]: `notifications_user` (user, position, id) read backwards from the cursor.
pub fn list_statement(
    user: Uuid,
    unread_only: bool,
    before: Option<(i64, Uuid)>,
    limit: i64,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut q = sqlx::QueryBuilder::new(format!(
        "select {COLUMNS} from notifications.notifications n where n.user_id = "
    ));
    q.push_bind(user);
    if unread_only {
        q.push(" and n.read_at is null");
    }
    if let Some((position, id)) = before {
        q.push(" and (n.position, n.id) < (")
            .push_bind(position)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" order by n.position desc, n.id desc limit ")
        .push_bind(limit);
    q
}

/// `user`'s notifications, newest first, after the cursor `(position, id)` of the last one seen.
#[tracing::instrument(skip_all)]
pub async fn list(
    pool: &PgPool,
    user: Uuid,
    unread_only: bool,
    before: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    list_statement(user, unread_only, before, limit)
        .build_query_as()
        .fetch_all(pool)
        .await
}

/// `user`'s notifications from the events at `positions`, in that order (for the live feed, which follows the
/// log batch by batch).
#[tracing::instrument(skip_all)]
pub async fn at_positions(
    pool: &PgPool,
    user: Uuid,
    positions: &[i64],
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from notifications.notifications n
           join unnest($2::bigint[]) with ordinality as batch(position, rank) on batch.position = n.position
          where n.user_id = $1 order by batch.rank, n.id"
    )))
    .bind(user)
    .bind(positions)
    .fetch_all(pool)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn unread_count(pool: &PgPool, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from notifications.notifications where user_id = $1 and read_at is null",
    )
    .bind(user)
    .fetch_one(pool)
    .await
}

/// Which of `ids` are `user`'s notifications.
#[tracing::instrument(skip_all)]
pub async fn owned(pool: &PgPool, user: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select id from notifications.notifications where user_id = $1 and id = any($2) order by id",
    )
    .bind(user)
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Up to `limit` of `user`'s unread notifications' ids.
#[tracing::instrument(skip_all)]
pub async fn unread_ids(pool: &PgPool, user: Uuid, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select id from notifications.notifications where user_id = $1 and read_at is null
          order by position, id limit $2",
    )
    .bind(user)
    .bind(limit)
    .fetch_all(pool)
    .await
}
