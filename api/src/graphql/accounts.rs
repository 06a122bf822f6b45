//! Accounts in GraphQL: register, login, change password, the admin role, `me`, and the admins' user list.

use async_graphql::connection::{Connection, CursorType, Edge, OpaqueCursor};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use commands::Written;
use commands::identity::Registration;
use domain::identity::Role;
use projections::accounts::{self, UserFilter};
use uuid::Uuid;

use super::{AdminOnly, SignedIn, admin, read_after, request_info, services, viewer};
use crate::error::ApiError;

/// A user's role.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Role", remote = "domain::identity::Role")]
pub enum RoleValue {
    User,
    Admin,
}

/// A user as the `accounts` read model has them.
#[derive(SimpleObject, Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub role: RoleValue,
    pub registered_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
}

impl From<accounts::User> for User {
    fn from(user: accounts::User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            username: user.username,
            role: Role::parse(&user.role).map_or(RoleValue::User, RoleValue::from),
            registered_at: user.registered_at,
            password_changed_at: user.password_changed_at,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct RegisterInput {
    pub email: String,
    /// 3 to 32 characters: a-z, digits, '_', '-', '.'; stored lowercase.
    pub username: String,
    /// 8 to 256 characters.
    pub password: String,
}

#[derive(SimpleObject, Debug)]
pub struct RegisterPayload {
    pub user_id: Uuid,
    pub email: String,
    pub username: String,
    pub role: RoleValue,
    /// The log position written: pass it as `minPosition` to read this registration.
    pub position: Option<i64>,
}

#[derive(SimpleObject, Debug)]
pub struct LoginPayload {
    pub access_token: String,
    /// Always "bearer".
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
    pub user_id: Uuid,
    pub role: RoleValue,
}

/// The result of a mutation that has nothing else to say.
#[derive(SimpleObject, Debug)]
pub struct MutationResult {
    /// The log position written (null when the command changed nothing).
    pub position: Option<i64>,
}

impl From<Written> for MutationResult {
    fn from(written: Written) -> Self {
        Self {
            position: written.position(),
        }
    }
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The signed-in user.
    #[graphql(guard = "SignedIn")]
    async fn me(
        &self,
        ctx: &Context<'_>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<User> {
        let id = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[accounts::NAME]).await?;
        let user = accounts::find(&services(ctx).pool, id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::not_found(
                    "your account is not in the read model yet; pass the registration's position as minPosition",
                )
            })?;
        Ok(user.into())
    }

    /// Every user, in registration order.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most 100.", default = 20)] first: i32,
        after: Option<String>,
        role: Option<RoleValue>,
        #[graphql(desc = "Part of the username or email.")] search: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<i64>, User>> {
        if !(1..=100).contains(&first) {
            return Err(ApiError::validation("first must be between 1 and 100").into());
        }
        let after = after
            .map(|cursor| {
                OpaqueCursor::<i64>::decode_cursor(&cursor)
                    .map(|c| c.0)
                    .map_err(|_| ApiError::validation("after is not a cursor of this list"))
            })
            .transpose()?;
        read_after(ctx, min_position, &[accounts::NAME]).await?;
        let filter = UserFilter {
            role: role.map(|r| Role::from(r).as_str().to_owned()),
            search: search.filter(|s| !s.trim().is_empty()),
        };
        let mut rows = accounts::list(&services(ctx).pool, &filter, after, i64::from(first) + 1)
            .await
            .map_err(ApiError::from)?;
        let has_next = rows.len() > first as usize;
        rows.truncate(first as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(
            rows.into_iter()
                .map(|row| Edge::new(OpaqueCursor(row.registered_position), User::from(row))),
        );
        Ok(connection)
    }

    /// One user.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn user(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Option<User>> {
        read_after(ctx, min_position, &[accounts::NAME]).await?;
        let user = accounts::find(&services(ctx).pool, id)
            .await
            .map_err(ApiError::from)?;
        Ok(user.map(User::from))
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Creates an account with the `user` role. Email and username must be free.
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<RegisterPayload> {
        let registration = Registration {
            email: input.email,
            username: input.username,
            password: input.password,
            role: Role::User,
        };
        let registered = services(ctx)
            .app
            .register(
                &identity_request(ctx, command_id),
                registration,
                request_info(ctx).client,
            )
            .await
            .map_err(ApiError::identity)?;
        Ok(RegisterPayload {
            user_id: registered.id,
            email: registered.email.as_str().to_owned(),
            username: registered.username.as_str().to_owned(),
            role: registered.role.into(),
            position: registered.written.position(),
        })
    }

    /// Exchanges a username (or email) and password for an access token. Writes nothing, so it takes no
    /// `commandId` and returns no position. Attempts are throttled per account and per client address.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Username or email.")] username: String,
        password: String,
    ) -> async_graphql::Result<LoginPayload> {
        let client = request_info(ctx).client;
        let token = services(ctx)
            .tokens
            .login(&username, &password, client, Utc::now())
            .await?;
        Ok(LoginPayload {
            access_token: token.access_token,
            token_type: "bearer".to_owned(),
            expires_at: token.expires_at,
            user_id: token.user_id,
            role: token.role.into(),
        })
    }

    /// Changes the signed-in user's password. Tokens issued before the change stop working.
    #[graphql(guard = "SignedIn")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let written = services(ctx)
            .app
            .identity
            .change_password(
                &identity_request(ctx, command_id),
                &current_password,
                &new_password,
            )
            .await
            .map_err(ApiError::identity)?;
        Ok(written.into())
    }

    /// Gives a user the admin role.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn grant_admin(
        &self,
        ctx: &Context<'_>,
        user_id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        set_admin(ctx, user_id, true, command_id).await
    }

    /// Takes the admin role from a user (not from yourself).
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn revoke_admin(
        &self,
        ctx: &Context<'_>,
        user_id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        set_admin(ctx, user_id, false, command_id).await
    }
}

async fn set_admin(
    ctx: &Context<'_>,
    user_id: Uuid,
    grant: bool,
    given: Option<Uuid>,
) -> async_graphql::Result<MutationResult> {
    let written = services(ctx)
        .app
        .identity
        .set_admin(&identity_request(ctx, given), user_id, grant)
        .await
        .map_err(ApiError::identity)?;
    Ok(written.into())
}

/// A request to the identity service: token lifetimes and password changes run on the real time, not the
/// commands' clock.
fn identity_request(ctx: &Context<'_>, key: Option<Uuid>) -> commands::Request {
    commands::Request::new(viewer(ctx).actor(), commands::Source::Graphql, Utc::now()).key(key)
}
