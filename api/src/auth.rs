//! Who is asking: access tokens and the [`Viewer`] they name.
//!
//! Tokens are HS256 JWTs with `sub`, `role`, `iat` and `exp`. Only HS256 is accepted. A token issued before the
//! account's last password change is refused. The role that counts is the account's current one, read from its
//! stream through the identity service's account cache ([`Identity::current_account`]: kept current by the
//! account's events, so a role or password change takes effect on the next request); the token's `role` claim
//! is for clients' display. Registering, checking passwords
//! and throttling are the identity service's ([`commands::identity`]); this module only issues and checks
//! tokens.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::identity::Identity;
use domain::identity::{AccountState, Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// The signing secret. Never printed: `Debug` shows only its length.
#[derive(Clone)]
pub struct JwtSecret(Arc<[u8]>);

impl JwtSecret {
    pub const MIN_BYTES: usize = 32;

    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_BYTES {
            return Err(format!(
                "a JWT secret needs at least {} bytes; got {}",
                Self::MIN_BYTES,
                bytes.len()
            ));
        }
        Ok(Self(bytes.into()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtSecret({} bytes)", self.0.len())
    }
}

/// Token settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub secret: JwtSecret,
    /// How long a token is valid.
    pub token_ttl: Duration,
}

impl AuthConfig {
    pub fn new(secret: JwtSecret) -> Self {
        Self {
            secret,
            token_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Anonymous,
    User { id: Uuid, role: Role },
}

impl Viewer {
    pub fn id(&self) -> Option<Uuid> {
        match self {
            Viewer::Anonymous => None,
            Viewer::User { id, .. } => Some(*id),
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Viewer::Anonymous => None,
            Viewer::User { role, .. } => Some(*role),
        }
    }

    /// The signed-in user, or UNAUTHENTICATED.
    pub fn require_user(&self) -> Result<Uuid, ApiError> {
        self.id().ok_or_else(|| {
            ApiError::unauthenticated("sign in first (Authorization: Bearer <token>)")
        })
    }

    /// The signed-in admin, or UNAUTHENTICATED / FORBIDDEN.
    pub fn require_admin(&self) -> Result<Uuid, ApiError> {
        let id = self.require_user()?;
        if self.role() == Some(Role::Admin) {
            Ok(id)
        } else {
            Err(ApiError::forbidden("only admins may do this"))
        }
    }

    /// The viewer as the actor of an application request.
    pub fn actor(&self) -> commands::Actor {
        match self {
            Viewer::Anonymous => commands::Actor::Anonymous,
            Viewer::User { id, role } => commands::Actor::User {
                id: *id,
                role: *role,
            },
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    /// The account's count of password changes when the token was issued: a later change retires the token.
    pub pwv: u32,
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    pub user_id: Uuid,
    pub role: Role,
}

/// Issues and checks access tokens.
pub struct Tokens {
    identity: Identity,
    ttl: Duration,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

/// How far the clocks of the server that issued a token and the one checking it may disagree.
const LEEWAY_SECONDS: u64 = 5;

impl Tokens {
    pub fn new(identity: Identity, config: AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            identity,
            ttl: config.token_ttl,
            encoding: EncodingKey::from_secret(config.secret.expose()),
            decoding: DecodingKey::from_secret(config.secret.expose()),
            validation,
        }
    }

    /// Checks a username-or-email and password (throttled by the identity service) and issues a token.
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Token, ApiError> {
        let (id, account) = self
            .identity
            .check_credentials(identifier, password, client)
            .await
            .map_err(ApiError::identity)?;
        self.issue(id, &account, now)
    }

    fn issue(
        &self,
        id: Uuid,
        account: &AccountState,
        now: DateTime<Utc>,
    ) -> Result<Token, ApiError> {
        let ttl = chrono::Duration::from_std(self.ttl)
            .map_err(|_| ApiError::internal("token lifetime out of range"))?;
        let expires_at = now + ttl;
        let claims = Claims {
            sub: id.to_string(),
            role: account.role.as_str().to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            pwv: account.password_changes,
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .map_err(ApiError::internal)?;
        Ok(Token {
            access_token,
            expires_at,
            user_id: id,
            role: account.role,
        })
    }

    /// Who a bearer token belongs to, with their current role.
    pub async fn authenticate(&self, token: &str) -> Result<Viewer, ApiError> {
        let refused = || {
            ApiError::unauthenticated("the token is invalid or expired; log in again")
                .with_reason(crate::error::ApiReason::InvalidToken)
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| {
                tracing::debug!(%error, "token refused");
                refused()
            })?
            .claims;
        // a token issued later than now (beyond the clocks' leeway) was not issued by this server
        if claims.iat > Utc::now().timestamp() + LEEWAY_SECONDS as i64 {
            return Err(refused());
        }
        let id = Uuid::parse_str(&claims.sub).map_err(|_| refused())?;
        let account = self
            .identity
            .current_account(id)
            .await
            .map_err(ApiError::internal)?;
        match account {
            Some(account) if claims.pwv == account.password_changes => Ok(Viewer::User {
                id,
                role: account.role,
            }),
            _ => Err(refused()),
        }
    }
}
