//! `accounts`: the users of Academy as admins list them and as `me` shows them. No password hashes: logging in
//! reads the account's own stream, so it never waits for this read model.

use std::collections::HashMap;

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

    /// Set-based: loads the users the batch names, folds its events into them in log order, and writes the
    /// changed rows in one upsert. A registration of an id already known fails the event, as the primary key
    /// did; a change to an account that was never registered changes nothing.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::with_capacity(events.len());
        for recorded in events {
            let id = stream_uuid(&recorded.stream_id, "account-")?;
            decoded.push((id, recorded.position, recorded.decode::<AccountEvent>()?));
        }
        let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let loaded: Vec<User> = sqlx::query_as(
            "select id, email, username, role, registered_at, password_changed_at, registered_position
               from users where id = any($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        // the rows as the batch leaves them, and whether it changed them
        let mut users: HashMap<Uuid, (User, bool)> =
            loaded.into_iter().map(|u| (u.id, (u, false))).collect();
        for (id, position, event) in decoded {
            match event {
                AccountEvent::AccountRegistered {
                    email,
                    username,
                    role,
                    at,
                    ..
                } => {
                    let at = DateTime::<Utc>::from(at);
                    if users.contains_key(&id) {
                        return Err(format!("account {id} is registered already").into());
                    }
                    let user = User {
                        id,
                        email: email.as_str().to_owned(),
                        username: username.as_str().to_owned(),
                        role: role.as_str().to_owned(),
                        registered_at: at,
                        password_changed_at: at,
                        registered_position: position,
                    };
                    users.insert(id, (user, true));
                }
                AccountEvent::PasswordChanged { at, .. } => {
                    if let Some((user, changed)) = users.get_mut(&id) {
                        user.password_changed_at = DateTime::<Utc>::from(at);
                        *changed = true;
                    }
                }
                AccountEvent::AdminGranted { .. } => set_role(&mut users, id, Role::Admin),
                AccountEvent::AdminRevoked { .. } => set_role(&mut users, id, Role::User),
            }
        }
        let mut changed: Vec<&User> = users
            .values()
            .filter(|(_, changed)| *changed)
            .map(|(user, _)| user)
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        changed.sort_unstable_by_key(|u| u.registered_position);
        sqlx::query(
            "insert into users as u (id, email, username, role, registered_at, password_changed_at,
                                     registered_position)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                                  $6::timestamptz[], $7::bigint[])
             on conflict (id) do update
                set role = excluded.role, password_changed_at = excluded.password_changed_at",
        )
        .bind(changed.iter().map(|u| u.id).collect::<Vec<_>>())
        .bind(changed.iter().map(|u| u.email.as_str()).collect::<Vec<_>>())
        .bind(
            changed
                .iter()
                .map(|u| u.username.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(changed.iter().map(|u| u.role.as_str()).collect::<Vec<_>>())
        .bind(changed.iter().map(|u| u.registered_at).collect::<Vec<_>>())
        .bind(
            changed
                .iter()
                .map(|u| u.password_changed_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            changed
                .iter()
                .map(|u| u.registered_position)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// The fold's role change of `id`, when that account is registered.
fn set_role(users: &mut HashMap<Uuid, (User, bool)>, id: Uuid, role: Role) {
    if let Some((user, changed)) = users.get_mut(&id) {
        user.role = role.as_str().to_owned();
        *changed = true;
    }
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

/// The statement of [`list`]: the filters present, after the cursor on `registered_position` (its unique index
/// gives the order).
pub fn list_statement(
    filter: &UserFilter,
    after: Option<i64>,
    limit: i64,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut q = sqlx::QueryBuilder::new(
        "select id, email, username, role, registered_at, password_changed_at, registered_position
           from accounts.users where registered_position > ",
    );
    q.push_bind(after.unwrap_or(0));
    if let Some(role) = &filter.role {
        q.push(" and role = ").push_bind(role.clone());
    }
    if let Some(search) = &filter.search {
        q.push(" and (strpos(username, lower(")
            .push_bind(search.clone())
            .push(")) > 0 or strpos(email, lower(")
            .push_bind(search.clone())
            .push(")) > 0)");
    }
    q.push(" order by registered_position limit ")
        .push_bind(limit);
    q
}

/// Up to `limit` users registered after the one at `after` (a `registered_position`), in registration order.
#[tracing::instrument(skip_all)]
pub async fn list(
    pool: &PgPool,
    filter: &UserFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<User>, sqlx::Error> {
    list_statement(filter, after, limit)
        .build_query_as()
        .fetch_all(pool)
        .await
}
