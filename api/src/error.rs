//! The one error type of the API and its table of codes.
//!
//! Every failure a client sees carries one of [`Code`]'s stable values: in GraphQL as `extensions.code`, over
//! REST as `error.code` with the matching HTTP status; and a stable snake_case reason (`extensions.reason`,
//! `error.reason`) that says which rule it broke: a domain rule's ([`domain::refusal::Rule`]), or one of the
//! API's own ([`ApiReason`]). Clients decide on the code and the reason, never on the message, which is for
//! humans. Internal details (database errors, undecodable events) go to the server log under an incident id;
//! the client gets only that id.

use std::fmt;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use commands::CommandError;
use commands::identity::IdentityError;
use domain::refusal::{Refusal, RefusalKind};
use serde::Serialize;
use uuid::Uuid;

/// The error table: code, HTTP status, meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// 401: no valid credentials (missing, malformed, tampered or expired token; wrong password).
    Unauthenticated,
    /// 403: authenticated, but the role does not allow it.
    Forbidden,
    /// 404: the thing asked for does not exist.
    NotFound,
    /// 422 (400 for malformed requests, 415 for a `POST /graphql` that is not JSON): the input breaks a format or
    /// a business rule. In a GraphQL response the status is 200, or 400 for a request refused before execution
    /// when the client accepts `application/graphql-response+json`.
    Validation,
    /// 409: the input clashes with current state (taken email, concurrent change).
    Conflict,
    /// 429: too many attempts; `retryAfter` says when to try again.
    RateLimited,
    /// 503: what the request waits for (a `minPosition`) was not reached in time; `retryAfter` says when to try
    /// again. Also HTTP 503 in a GraphQL response.
    NotReady,
    /// 500 (503 when a read model is not there yet): our fault; the server log has the details.
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::Validation => "VALIDATION",
            Code::Conflict => "CONFLICT",
            Code::RateLimited => "RATE_LIMITED",
            Code::NotReady => "NOT_READY",
            Code::Internal => "INTERNAL",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Conflict => StatusCode::CONFLICT,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<RefusalKind> for Code {
    fn from(kind: RefusalKind) -> Self {
        match kind {
            RefusalKind::Validation => Code::Validation,
            RefusalKind::Forbidden => Code::Forbidden,
            RefusalKind::NotFound => Code::NotFound,
            RefusalKind::Conflict => Code::Conflict,
        }
    }
}

/// Declares [`ApiReason`] with its reason, code and meaning per variant, and [`ApiReason::ALL`].
macro_rules! api_reasons {
    ($($reason:ident = $name:literal, $code:ident, $when:literal;)*) => {
        /// The reasons of errors the API raises itself, outside any domain rule.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ApiReason {
            $(#[doc = $when] $reason,)*
        }

        impl ApiReason {
            /// Every reason, in the table's order.
            pub const ALL: &'static [ApiReason] = &[$(ApiReason::$reason,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ApiReason::$reason => $name,)*
                }
            }

            pub const fn code(self) -> Code {
                match self {
                    $(ApiReason::$reason => Code::$code,)*
                }
            }

            /// When the API raises it, in one line.
            pub const fn when(self) -> &'static str {
                match self {
                    $(ApiReason::$reason => $when,)*
                }
            }
        }
    };
}

api_reasons! {
    SignInRequired = "sign_in_required", Unauthenticated,
        "no token, and the operation is for signed-in users";
    InvalidToken = "invalid_token", Unauthenticated,
        "a malformed Authorization header, or a token that is tampered with, expired or retired by a password \
         change";
    WrongCredentials = "wrong_credentials", Unauthenticated,
        "logging in with an unknown username or email, or a wrong password";
    AdminOnly = "admin_only", Forbidden, "signed in, but only admins may do this";
    WrongPassword = "wrong_password", Validation, "changing the password with a wrong current one";
    InvalidInput = "invalid_input", Validation,
        "a request, header or argument the API checks itself is malformed or out of range (page size, \
         cursor, filter bounds, a body that is not JSON: 400; a POST /graphql not sent as application/json: 415)";
    InvalidQuery = "invalid_query", Validation,
        "GraphQL the engine refuses: syntax, unknown field, wrong type, depth or complexity limit";
    UnknownPosition = "unknown_position", Validation, "a minPosition beyond the end of the log";
    BodyTooLarge = "body_too_large", Validation, "a request body over the size limit (413)";
    NoSuchRoute = "no_such_route", NotFound, "an HTTP path the server does not have (404)";
    NotFound = "not_found", NotFound,
        "something the API looks up in a read model is not there yet (your account, before its registration is \
         read)";
    ConcurrentChange = "concurrent_change", Conflict,
        "the data changed concurrently too many times while the command was decided; retry";
    Conflict = "conflict", Conflict,
        "another clash the API finds itself (only the start-up admin bootstrap, never a client request)";
    TooManyAttempts = "too_many_attempts", RateLimited,
        "too many login or registration attempts; retry after retryAfter seconds";
    Internal = "internal", Internal, "our fault; the message has an incident id for the server log (500)";
    ReadModelBehind = "read_model_behind", NotReady,
        "the data asked for is not up to date within the read timeout; retry after retryAfter seconds (503)";
    RequestTimeout = "request_timeout", Internal, "the request took longer than the request timeout (408)";
}

impl ApiReason {
    /// The reason of an error the API raises with a code and no more specific reason.
    pub const fn of(code: Code) -> Self {
        match code {
            Code::Unauthenticated => ApiReason::SignInRequired,
            Code::Forbidden => ApiReason::AdminOnly,
            Code::NotFound => ApiReason::NotFound,
            Code::Validation => ApiReason::InvalidInput,
            Code::Conflict => ApiReason::Conflict,
            Code::RateLimited => ApiReason::TooManyAttempts,
            Code::NotReady => ApiReason::ReadModelBehind,
            Code::Internal => ApiReason::Internal,
        }
    }
}

/// A failure as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// Which rule was broken: a domain rule's reason or an [`ApiReason`]. Every constructor sets it.
    pub reason: Option<&'static str>,
    /// For `RATE_LIMITED`: seconds until the next attempt may succeed.
    pub retry_after: Option<u64>,
    /// Overrides the code's usual HTTP status (400 for an unparsable body, 503 for a read model still behind).
    pub status: Option<StatusCode>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reason: Some(ApiReason::of(code).as_str()),
            retry_after: None,
            status: None,
        }
    }

    /// A domain rule's refusal: its code from the rule's kind, its reason, its message.
    pub fn refusal(rule: impl Refusal) -> Self {
        Self {
            reason: Some(rule.reason()),
            ..Self::new(rule.kind().into(), rule.to_string())
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(Code::Validation, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Code::Conflict, message)
    }

    /// `NOT_READY`: what the request waits for is not there yet; try again in `retry_after` seconds.
    pub fn not_ready(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(Code::NotReady, message).with_reason(ApiReason::ReadModelBehind)
        }
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                Code::RateLimited,
                format!("too many attempts; try again in {retry_after} s"),
            )
        }
    }

    /// Logs `error` with a fresh incident id and returns an error naming only that id.
    pub fn internal(error: impl fmt::Display) -> Self {
        let incident = Uuid::new_v4();
        tracing::error!(%incident, error = %error, "internal error");
        Self::new(
            Code::Internal,
            format!("internal error (incident {incident}); the server log has the details"),
        )
    }

    /// The same error with one of the API's own reasons (the code stays).
    pub fn with_reason(mut self, reason: ApiReason) -> Self {
        self.reason = Some(reason.as_str());
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn http_status(&self) -> StatusCode {
        self.status.unwrap_or(self.code.status())
    }
}

// `ApiError` deliberately implements neither `Display` nor `std::error::Error`: async-graphql converts every
// `Display` type into its error without a code, and `?` would silently take that path instead of this one.
impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let mut extensions = async_graphql::ErrorExtensionValues::default();
        extensions.set("code", error.code.as_str());
        if let Some(reason) = error.reason {
            extensions.set("reason", reason);
        }
        if let Some(seconds) = error.retry_after {
            extensions.set("retryAfter", seconds);
        }
        async_graphql::Error {
            message: error.message,
            source: None,
            extensions: Some(extensions),
        }
    }
}

/// One shape for errors outside GraphQL's own responses: REST clients read `error`, GraphQL clients `errors`.
#[derive(Serialize)]
struct Body<'a> {
    error: BodyError<'a>,
    errors: [GraphQlError<'a>; 1],
}

#[derive(Serialize)]
struct GraphQlError<'a> {
    message: &'a str,
    extensions: GraphQlExtensions,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GraphQlExtensions {
    code: Code,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct BodyError<'a> {
    code: Code,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: BodyError {
                code: self.code,
                message: &self.message,
                reason: self.reason,
                retry_after: self.retry_after,
            },
            errors: [GraphQlError {
                message: &self.message,
                extensions: GraphQlExtensions {
                    code: self.code,
                    reason: self.reason,
                    retry_after: self.retry_after,
                },
            }],
        };
        let mut response = (self.http_status(), Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.code == Code::Unauthenticated {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Gives an error response that is not JSON (a timeout, an oversized body, an unknown route or method: from the
/// layers and the router rather than a handler) the error shape and a code.
pub async fn explain_bare_errors(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("application/graphql"));
    let bare = (status.is_client_error() || status.is_server_error()) && !json;
    if !bare {
        return response;
    }
    let (reason, message) = match status {
        StatusCode::NOT_FOUND => (ApiReason::NoSuchRoute, "no such route".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ApiReason::BodyTooLarge,
            "the request body is too large".to_owned(),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            ApiReason::RequestTimeout,
            "the request took too long and was stopped".to_owned(),
        ),
        status if status.is_server_error() => (ApiReason::Internal, "the server failed".to_owned()),
        status => (
            ApiReason::InvalidInput,
            status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_lowercase(),
        ),
    };
    let mut explained = ApiError::new(reason.code(), message)
        .with_reason(reason)
        .with_status(status)
        .into_response();
    // keep what the layers set (the request id, Allow on 405)
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            explained.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    explained
}

impl<E: Refusal + 'static> From<CommandError<E>> for ApiError {
    fn from(error: CommandError<E>) -> Self {
        ApiError::command(error, ApiError::refusal)
    }
}

impl ApiError {
    /// A use case's failure, its refusals mapped by `refusal`.
    pub fn command<E: std::error::Error + 'static>(
        error: CommandError<E>,
        refusal: impl FnOnce(E) -> ApiError,
    ) -> Self {
        match error {
            CommandError::Denied(denied) => denied.into(),
            CommandError::Rejected(rule) => refusal(rule),
            CommandError::Conflict { .. } => ApiError::conflict(
                "the data changed concurrently too many times; retry the request",
            )
            .with_reason(ApiReason::ConcurrentChange),
            CommandError::Internal(error) => ApiError::internal(error),
        }
    }

    /// An identity use case's failure: a domain rule by its own reason, the rest by the API's table.
    pub fn identity(error: CommandError<IdentityError>) -> Self {
        ApiError::command(error, |rule| {
            let message = rule.to_string();
            match rule {
                IdentityError::Credential(rule) => ApiError::refusal(rule),
                IdentityError::Account(rule) => ApiError::refusal(rule),
                IdentityError::Claim(rule) => ApiError::refusal(rule),
                IdentityError::WrongCredentials => {
                    ApiError::unauthenticated(message).with_reason(ApiReason::WrongCredentials)
                }
                IdentityError::WrongCurrentPassword => {
                    ApiError::validation(message).with_reason(ApiReason::WrongPassword)
                }
                IdentityError::NotYourAccount(_) => {
                    ApiError::conflict(message).with_reason(ApiReason::Conflict)
                }
                IdentityError::Throttled { retry_after } => ApiError::rate_limited(retry_after),
            }
        })
    }
}

impl From<commands::Denied> for ApiError {
    fn from(denied: commands::Denied) -> Self {
        match denied {
            commands::Denied::SignInRequired => {
                ApiError::unauthenticated(denied.to_string()).with_reason(ApiReason::SignInRequired)
            }
            commands::Denied::AdminOnly => {
                ApiError::forbidden(denied.to_string()).with_reason(ApiReason::AdminOnly)
            }
        }
    }
}

impl From<domain::identity::CredentialError> for ApiError {
    fn from(error: domain::identity::CredentialError) -> Self {
        ApiError::refusal(error)
    }
}

/// When a client whose read-your-writes wait ran out should try again.
const READ_RETRY_AFTER_SECONDS: u64 = 1;

impl From<projections::WaitError> for ApiError {
    fn from(error: projections::WaitError) -> Self {
        use projections::WaitError;
        match error {
            WaitError::UnknownPosition(position) => ApiError::validation(format!(
                "position {position} is not in the log; pass a position a mutation returned"
            ))
            .with_reason(ApiReason::UnknownPosition),
            WaitError::Timeout { .. } | WaitError::Failed { .. } => {
                tracing::warn!(error = %error, "read-your-writes wait failed");
                ApiError::not_ready(
                    "the data you asked for is not up to date yet; retry shortly",
                    READ_RETRY_AFTER_SECONDS,
                )
            }
            WaitError::UnknownProjection(_) | WaitError::Database(_) => ApiError::internal(error),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::internal(error)
    }
}
