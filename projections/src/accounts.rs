//! `accounts`: the users of Academy as admins list them and as `me` shows them. No password hashes: logging in
//! reads the account's own stream, so it never waits for this read model.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::identity::{AccountEvent, Role};
use eventlog::RecordedEvent;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{Projection, ProjectionError, stream_uuid};

pub const NAME: &str = "accounts";

#[derive(Debug, Default)]
pub struct Accounts;

/// The accounts product's part of the read side: this read model, no notices, no timers.
pub fn product() -> crate::Product {
    crate::Product {
        name: "accounts",
        read_models: vec![std::sync::Arc::new(Accounts)],
        notices: None,
        timers: None,
    }
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub role: String,
    pub registered_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    /// The log position of the registration: the stable order of the users list and its cursor.
    pub registered_position: i64,
}

crate::read_model!(Accounts {
    name: NAME,
    version: 1,
    events: [AccountEvent::TYPES]
});

#[async_trait]
impl Projection for Accounts {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table users (
                 id                  uuid primary key,
                 -- normalised (lowercase); unique because registration claims it in the log first
                 email               text not null unique,
                 username            text not null unique,
                 role                text not null check (role in ('user', 'admin')),
                 registered_at       timestamptz not null,
                 password_changed_at timestamptz not null,
                 registered_position bigint not null unique
             );",
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for recorded in events {
            let id = stream_uuid(&recorded.stream_id, "account-")?;
            match recorded.decode::<AccountEvent>()? {
                AccountEvent::AccountRegistered {
                    email,
                    username,
                    role,
                    at,
                    ..
                } => {
                    let at = DateTime::<Utc>::from(at);
                    sqlx::query(
                        "insert into users (id, email, username, role, registered_at, password_changed_at,
                                            registered_position)
                         values ($1, $2, $3, $4, $5, $5, $6)",
                    )
                    .bind(id)
                    .bind(email.as_str())
                    .bind(username.as_str())
                    .bind(role.as_str())
                    .bind(at)
                    .bind(recorded.position)
                    .execute(&mut *conn)
                    .await?;
                }
                AccountEvent::PasswordChanged { at, .. } => {
                    sqlx::query("update users set password_changed_at = $2 where id = $1")
                        .bind(id)
                        .bind(DateTime::<Utc>::from(at))
                        .execute(&mut *conn)
                        .await?;
                }
                AccountEvent::AdminGranted { .. } => set_role(conn, id, Role::Admin).await?,
                AccountEvent::AdminRevoked { .. } => set_role(conn, id, Role::User).await?,
            }
        }
        Ok(())
    }
}

async fn set_role(conn: &mut PgConnection, id: Uuid, role: Role) -> Result<(), sqlx::Error> {
    sqlx::query("update users set role = $2 where id = $1")
        .bind(id)
        .bind(role.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// One user, by id.
#[tracing::instrument(skip_all)]
pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(
        "select id, email, username, role, registered_at, password_changed_at, registered_position
           from accounts.users where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Which users to list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub role: Option<String>,
    /// Part of the username or email (case-insensitive).
    pub search: Option<String>,
}

/// Up to `limit` users registered after the one at `after` (a `registered_position`), in registration order.
#[tracing::instrument(skip_all)]
pub async fn list(
    pool: &PgPool,
    filter: &UserFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as(
        "select id, email, username, role, registered_at, password_changed_at, registered_position
           from accounts.users
          where registered_position > $1
            and ($2::text is null or role = $2)
            and ($3::text is null or strpos(username, lower($3)) > 0 or strpos(email, lower($3)) > 0)
          order by registered_position
          limit $4",
    )
    .bind(after.unwrap_or(0))
    .bind(filter.role.as_deref())
    .bind(filter.search.as_deref())
    .bind(limit)
    .fetch_all(pool)
    .await
}
