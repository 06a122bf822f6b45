//! The one error type of the API and its table of codes.
//!
//! Every failure a client sees carries one of [`Code`]'s stable values: in GraphQL as `extensions.code`, over
//! REST as `error.code` with the matching HTTP status. Messages are for humans. Internal details (database
//! errors, undecodable events) go to the server log under an incident id; the client gets only that id.

use std::fmt;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use commands::CommandError;
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
    /// 422 (400 for malformed requests): the input breaks a format or a business rule.
    Validation,
    /// 409: the input clashes with current state (taken email, concurrent change).
    Conflict,
    /// 429: too many attempts; `retryAfter` says when to try again.
    RateLimited,
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
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
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
            retry_after: None,
            status: None,
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
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct BodyError<'a> {
    code: Code,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: BodyError {
                code: self.code,
                message: &self.message,
                retry_after: self.retry_after,
            },
            errors: [GraphQlError {
                message: &self.message,
                extensions: GraphQlExtensions {
                    code: self.code,
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
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (Code::NotFound, "no such route".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => {
            (Code::Validation, "the request body is too large".to_owned())
        }
        StatusCode::REQUEST_TIMEOUT => (
            Code::Internal,
            "the request took too long and was stopped".to_owned(),
        ),
        status if status.is_server_error() => (Code::Internal, "the server failed".to_owned()),
        status => (
            Code::Validation,
            status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_lowercase(),
        ),
    };
    let mut explained = ApiError::new(code, message)
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

/// Which code a domain rule's refusal maps to.
pub trait Classify: std::error::Error {
    fn code(&self) -> Code;

    /// For a throttled attempt: seconds until the next may succeed.
    fn retry_after(&self) -> Option<u64> {
        None
    }
}

impl Classify for commands::identity::IdentityError {
    fn code(&self) -> Code {
        use commands::identity::IdentityError::*;
        match self {
            Credential(_) | WrongCurrentPassword => Code::Validation,
            Account(e) => e.code(),
            Claim(e) => e.code(),
            WrongCredentials => Code::Unauthenticated,
            NotYourAccount(_) => Code::Conflict,
            Throttled { .. } => Code::RateLimited,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            commands::identity::IdentityError::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl Classify for domain::identity::AccountError {
    fn code(&self) -> Code {
        use domain::identity::AccountError::*;
        match self {
            AlreadyRegistered => Code::Conflict,
            NotRegistered => Code::NotFound,
            CannotRevokeOwnAdmin => Code::Validation,
        }
    }
}

impl Classify for domain::identity::ClaimError {
    fn code(&self) -> Code {
        Code::Conflict
    }
}

impl Classify for domain::trainer::QuestionError {
    fn code(&self) -> Code {
        use domain::trainer::QuestionError::*;
        match self {
            Level(_) | Topic | Text | ReferenceAnswer | KeyPoints => Code::Validation,
            AlreadyExists | Retired => Code::Conflict,
            NotFound => Code::NotFound,
        }
    }
}

impl Classify for domain::trainer::TraineeError {
    fn code(&self) -> Code {
        use domain::trainer::TraineeError::*;
        match self {
            AnswerLength | ReasonLength => Code::Validation,
            AlreadyCorrect | QuestionRetired => Code::Conflict,
            AnswerNotFound | QuestionNotFound => Code::NotFound,
        }
    }
}

impl Classify for domain::tracks::TrackError {
    fn code(&self) -> Code {
        use domain::tracks::TrackError::*;
        match self {
            Title | Description | Participants | Assignments | Criteria(_) | Scores(_)
            | Comment | DeadlineNotLater => Code::Validation,
            NotFound | NoSuchAssignment(_) | NotAllocated => Code::NotFound,
            Repository(_) => Code::Validation,
            AlreadyExists | AlreadyStarted | EnrollmentClosed | Full | AssignmentClosed(_)
            | AlreadyReviewed | PastDeadline(_) => Code::Conflict,
            NotEnrolled | NotYourReview => Code::Forbidden,
            AssignmentNotOpen(_) | AssignmentLocked(_) | NotYetDue => Code::Conflict,
        }
    }
}

impl Classify for domain::tracks::DiaryError {
    fn code(&self) -> Code {
        use domain::tracks::DiaryError::*;
        match self {
            Length => Code::Validation,
            NoSuchTrack => Code::NotFound,
            NotEnrolled => Code::Forbidden,
            NotOpened(_) => Code::Conflict,
        }
    }
}

impl Classify for domain::interviews::InterviewError {
    fn code(&self) -> Code {
        use domain::interviews::InterviewError::*;
        match self {
            Duration | Topic | Link(_) | StartNotAhead | Feedback | Reason | NulCharacter => {
                Code::Validation
            }
            NotFound => Code::NotFound,
            NotAParty | NotInterviewer | NotInterviewee | OwnSlot | NotAccused => Code::Forbidden,
            NoNoShowReport => Code::NotFound,
            NoShowAlreadyReported | NoShowSettled | NotContested => Code::Conflict,
            AlreadyExists
            | AlreadyBooked
            | NotOpen
            | TooLate
            | PublisherCannotPay
            | Overlap
            | OwnerBusy
            | InsufficientPoints(_)
            | CutoffPassed
            | NotCancellable
            | NotEnded
            | FeedbackAlreadyGiven
            | FeedbackWindowClosed
            | NoFeedback
            | NoShowWindow
            | NotYetDue
            | Changed => Code::Conflict,
        }
    }
}

impl Classify for domain::inbox::InboxError {
    fn code(&self) -> Code {
        Code::Validation
    }
}

impl Classify for domain::identity::CredentialError {
    fn code(&self) -> Code {
        Code::Validation
    }
}

impl<E: Classify + 'static> From<CommandError<E>> for ApiError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Denied(denied) => denied.into(),
            CommandError::Rejected(rule) => ApiError {
                retry_after: rule.retry_after(),
                ..ApiError::new(rule.code(), rule.to_string())
            },
            CommandError::Conflict { .. } => ApiError::conflict(
                "the data changed concurrently too many times; retry the request",
            ),
            CommandError::Internal(error) => ApiError::internal(error),
        }
    }
}

impl From<commands::Denied> for ApiError {
    fn from(denied: commands::Denied) -> Self {
        match denied {
            commands::Denied::SignInRequired => ApiError::unauthenticated(denied.to_string()),
            commands::Denied::AdminOnly => ApiError::forbidden(denied.to_string()),
        }
    }
}

impl From<domain::identity::CredentialError> for ApiError {
    fn from(error: domain::identity::CredentialError) -> Self {
        ApiError::validation(error.to_string())
    }
}

impl From<projections::WaitError> for ApiError {
    fn from(error: projections::WaitError) -> Self {
        use projections::WaitError;
        match error {
            WaitError::UnknownPosition(position) => ApiError::validation(format!(
                "position {position} is not in the log; pass a position a mutation returned"
            )),
            WaitError::Timeout { .. } | WaitError::Failed { .. } => {
                tracing::warn!(error = %error, "read-your-writes wait failed");
                ApiError::new(
                    Code::Internal,
                    "the data you asked for is not up to date yet; retry shortly",
                )
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
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
