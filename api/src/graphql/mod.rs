//! The GraphQL API: one schema merged from one module per feature, served over HTTP (`POST /graphql`, GraphiQL
//! on `GET /graphql`) and WebSocket (`/graphql/ws`, graphql-transport-ws and the older graphql-ws protocol).
//!
//! Conventions every feature follows:
//! - Authorization by guards: [`SignedIn`] and [`AdminOnly`]. An admin-only root field also carries the
//!   `@admin` directive in the SDL, so the authorization test finds every one of them by itself.
//! - Every mutation takes an optional `commandId` (a retried mutation returns the first result) and returns the
//!   log `position` it wrote (null when it wrote nothing).
//! - Queries reading a read model take `minPosition` and also honour the `X-Academy-Min-Position` header: they
//!   wait (bounded) until the projections they read have applied that position.
//! - Errors carry `extensions.code` from [`crate::error::Code`]; errors raised by the GraphQL engine itself
//!   (syntax, unknown fields, limits) get `VALIDATION`.
//! - Lists are cursor connections.

mod accounts;
pub(crate) mod cars;
mod interviews;
mod notifications;
mod operations;
mod tracks;
mod trainer;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::connection::CursorType;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest, NextSubscribe,
};
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::{
    Context, Data, Guard, MergedObject, MergedSubscription, Response as GqlResponse, Schema,
    SchemaBuilder, ServerError, TypeDirective,
};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use projections::Projections;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{Tokens, Viewer};
use crate::error::{ApiError, Code};
use crate::{AppState, ClientAddress};
use commands::Clock;

pub use accounts::{AccountsMutation, AccountsQuery};
pub use cars::CarsQuery;
pub use interviews::{InterviewsMutation, InterviewsQuery};
pub use notifications::{NotificationsMutation, NotificationsQuery, NotificationsSubscription};
pub use operations::{OperationsQuery, OperationsSubscription};
pub use tracks::{TracksMutation, TracksQuery};
pub use trainer::{TrainerMutation, TrainerQuery};

pub type AppSchema = Schema<Query, Mutation, Subscription>;

#[derive(MergedObject, Default)]
pub struct Query(
    AccountsQuery,
    TrainerQuery,
    TracksQuery,
    NotificationsQuery,
    CarsQuery,
    InterviewsQuery,
    OperationsQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    AccountsMutation,
    TrainerMutation,
    TracksMutation,
    NotificationsMutation,
    InterviewsMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(OperationsSubscription, NotificationsSubscription);

/// Marks an admin-only field in the SDL. Always paired with `guard = "AdminOnly"`.
#[TypeDirective(location = "FieldDefinition")]
pub fn admin() {}

/// The header carrying a minimum log position for read-your-writes.
pub const MIN_POSITION_HEADER: &str = "x-academy-min-position";

/// Limits against abusive queries.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub depth: usize,
    pub complexity: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            depth: 12,
            complexity: 1000,
        }
    }
}

/// What resolvers share.
pub struct Services {
    pub pool: PgPool,
    pub projections: Arc<Projections>,
    /// Checks the bearer tokens of requests and issues them at login.
    pub tokens: Arc<Tokens>,
    /// How long a query waits for the projections it reads to reach a requested position.
    pub read_timeout: Duration,
    /// The time commands are issued at (a manual clock in tests; token lifetimes use the real time).
    pub clock: Arc<dyn Clock>,
    /// Every product's use cases: the only way resolvers change state.
    pub app: commands::App,
}

impl Services {
    /// What resolvers share: the read models (`pool`, `projections`), the application layer, and tokens checked
    /// and issued with `auth` over its identity service. The one wiring of the server and the tests.
    pub fn new(
        pool: PgPool,
        projections: Arc<Projections>,
        app: commands::App,
        auth: crate::auth::AuthConfig,
        read_timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            pool,
            projections,
            tokens: Arc::new(Tokens::new(app.identity.clone(), auth)),
            read_timeout,
            clock,
            app,
        }
    }
}

/// Per-request facts besides the viewer.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo {
    /// From the `X-Academy-Min-Position` header.
    pub min_position: Option<i64>,
    pub client: Option<IpAddr>,
}

/// The schema without its services: enough to print the SDL.
pub fn schema_builder(limits: QueryLimits) -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(limits.depth)
    .limit_complexity(limits.complexity)
    .extension(ErrorCodes)
    .extension(SessionAuth)
    .extension(NoNulCharacters)
}

/// The schema, served.
pub fn build_schema(services: Arc<Services>, limits: QueryLimits) -> AppSchema {
    schema_builder(limits).data(services).finish()
}

/// The SDL, as committed in `api/schema.graphql`.
pub fn sdl() -> String {
    schema_builder(QueryLimits::default()).finish().sdl()
}

pub(crate) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Arc<Services>>()
}

pub(crate) fn viewer(ctx: &Context<'_>) -> Viewer {
    ctx.data_opt::<Viewer>()
        .copied()
        .unwrap_or(Viewer::Anonymous)
}

/// The application request of a mutation: the viewer acting over GraphQL now, with the client's `commandId`.
pub(crate) fn request(ctx: &Context<'_>, key: Option<Uuid>) -> commands::Request {
    commands::Request::new(viewer(ctx).actor(), commands::Source::Graphql, now(ctx)).key(key)
}

pub(crate) fn request_info(ctx: &Context<'_>) -> RequestInfo {
    ctx.data_opt::<RequestInfo>().copied().unwrap_or_default()
}

/// Waits until `projections` have applied the larger of `argument` and the request header's position.
pub(crate) async fn read_after(
    ctx: &Context<'_>,
    argument: Option<i64>,
    projections: &[&str],
) -> Result<(), ApiError> {
    let wanted = argument.max(request_info(ctx).min_position);
    let Some(position) = wanted else {
        return Ok(());
    };
    if position < 0 {
        return Err(ApiError::validation("minPosition cannot be negative"));
    }
    if position == 0 {
        return Ok(());
    }
    let services = services(ctx);
    services
        .projections
        .wait_for_some(projections, position, services.read_timeout)
        .await?;
    Ok(())
}

/// A list's page size (`first`), 1 to 100.
pub(crate) fn page_size(first: i32) -> Result<i64, ApiError> {
    if (1..=100).contains(&first) {
        Ok(i64::from(first))
    } else {
        Err(ApiError::validation("first must be between 1 and 100"))
    }
}

/// A list's `after` cursor, decoded.
pub(crate) fn cursor<T: CursorType>(after: Option<String>) -> Result<Option<T>, ApiError> {
    after
        .map(|c| {
            T::decode_cursor(&c)
                .map_err(|_| ApiError::validation("after is not a cursor of this list"))
        })
        .transpose()
}

/// The time commands are issued at, from the services' clock.
pub(crate) fn now(ctx: &Context<'_>) -> chrono::DateTime<chrono::Utc> {
    services(ctx).clock.now()
}

/// Signed-in users only.
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        viewer(ctx).require_user()?;
        Ok(())
    }
}

/// Admins only.
pub struct AdminOnly;

impl Guard for AdminOnly {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        viewer(ctx).require_admin()?;
        Ok(())
    }
}

/// Gives every error the engine raises without a code (syntax, unknown field, wrong argument type, depth or
/// complexity limit) the code `VALIDATION`.
struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> GqlResponse {
        let mut response = next.run(ctx).await;
        response.errors.iter_mut().for_each(ensure_code);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, GqlResponse>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, GqlResponse> {
        next.run(ctx, stream)
            .map(|mut response| {
                response.errors.iter_mut().for_each(ensure_code);
                response
            })
            .boxed()
    }
}

/// Over a WebSocket, authenticates every operation anew with the connection's token, so a revoked role, a
/// password change or an expired token takes effect on open connections too (for operations started after it).
struct SessionAuth;

/// The token a WebSocket connection was initialised with.
#[derive(Debug, Clone)]
pub struct SessionToken(pub Option<String>);

impl ExtensionFactory for SessionAuth {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SessionAuth)
    }
}

#[async_trait::async_trait]
impl Extension for SessionAuth {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> async_graphql::ServerResult<async_graphql::Request> {
        let request = match (
            ctx.data_opt::<SessionToken>(),
            ctx.data_opt::<Arc<Services>>(),
        ) {
            (Some(SessionToken(token)), Some(services)) => {
                let viewer = match token {
                    None => Viewer::Anonymous,
                    Some(token) => services.tokens.authenticate(token).await.map_err(|e| {
                        async_graphql::Error::from(e)
                            .into_server_error(async_graphql::Pos::default())
                    })?,
                };
                request.data(viewer)
            }
            _ => request,
        };
        next.run(ctx, request).await
    }
}

/// Refuses requests whose strings (variables or literals) contain a NUL character: PostgreSQL cannot store one
/// in text or JSON, so it would otherwise fail deep in a write as an internal error.
struct NoNulCharacters;

impl ExtensionFactory for NoNulCharacters {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NoNulCharacters)
    }
}

#[async_trait::async_trait]
impl Extension for NoNulCharacters {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> async_graphql::ServerResult<async_graphql::Request> {
        let literal =
            request.query.contains('\0') || request.query.to_lowercase().contains("\\u0000");
        if literal || request.variables.values().any(has_nul) {
            let error = ApiError::refusal(domain::interviews::InterviewError::NulCharacter);
            return Err(
                async_graphql::Error::from(error).into_server_error(async_graphql::Pos::default())
            );
        }
        next.run(ctx, request).await
    }
}

fn has_nul(value: &async_graphql::Value) -> bool {
    match value {
        async_graphql::Value::String(text) => text.contains('\0'),
        async_graphql::Value::List(items) => items.iter().any(has_nul),
        async_graphql::Value::Object(fields) => fields.values().any(has_nul),
        _ => false,
    }
}

fn ensure_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", Code::Validation.as_str());
        extensions.set("reason", crate::error::ApiReason::InvalidQuery.as_str());
    }
}

/// `GET /graphql`: GraphiQL.
pub async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Academy GraphQL")
            .finish(),
    )
}

/// `POST /graphql`.
pub async fn execute(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let request = match request {
        Ok(request) => request,
        Err(rejection) => {
            return error_response(
                ApiError::validation(format!("not a GraphQL request: {}", rejection.0))
                    .with_status(StatusCode::BAD_REQUEST),
            );
        }
    };
    let viewer = match viewer_of(&state.services.tokens, &headers).await {
        Ok(viewer) => viewer,
        Err(error) => return error_response(error),
    };
    let min_position = match min_position_header(&headers) {
        Ok(position) => position,
        Err(error) => return error_response(error),
    };
    let request = request.into_inner().data(viewer).data(RequestInfo {
        min_position,
        client,
    });
    GraphQLResponse::from(state.schema.execute(request).await).into_response()
}

/// The `X-Academy-Min-Position` header's position, if any.
pub(crate) fn min_position_header(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(MIN_POSITION_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::validation(format!(
                "{MIN_POSITION_HEADER} must be a log position (an integer)"
            ))
            .with_status(StatusCode::BAD_REQUEST)
        })
}

/// Who a request's `Authorization` header names (anonymous without one).
pub(crate) async fn viewer_of(tokens: &Tokens, headers: &HeaderMap) -> Result<Viewer, ApiError> {
    match bearer(headers)? {
        None => Ok(Viewer::Anonymous),
        Some(token) => tokens.authenticate(token).await,
    }
}

/// A request-level failure (before any field ran) in the GraphQL response shape, with its HTTP status.
fn error_response(error: ApiError) -> Response {
    let status = error.http_status();
    let response = GqlResponse::from_errors(vec![
        async_graphql::Error::from(error).into_server_error(async_graphql::Pos::default()),
    ]);
    let mut http = GraphQLResponse::from(response).into_response();
    *http.status_mut() = status;
    http
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    parse_bearer(value.to_str().unwrap_or_default()).map(Some)
}

fn parse_bearer(value: &str) -> Result<&str, ApiError> {
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(
            ApiError::unauthenticated("the Authorization header must be 'Bearer <token>'")
                .with_reason(crate::error::ApiReason::InvalidToken),
        );
    }
    Ok(token.trim())
}

/// `GET /graphql/ws`: subscriptions (and queries and mutations, as the protocol allows). The token comes in
/// `connection_init`'s payload as `{"authorization": "Bearer <token>"}` (or `{"token": "<token>"}`); without one
/// the connection is anonymous, with a bad one it is refused. Each operation is authorized anew with it.
pub async fn websocket(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let schema = state.schema.clone();
    let tokens = state.services.tokens.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let token = token_in(&payload)?;
                    if let Some(token) = &token {
                        tokens.authenticate(token).await?;
                    }
                    let mut data = Data::default();
                    data.insert(SessionToken(token));
                    data.insert(RequestInfo {
                        min_position: None,
                        client,
                    });
                    Ok(data)
                })
                .serve()
        })
}

fn token_in(payload: &serde_json::Value) -> Result<Option<String>, ApiError> {
    let field = |name: &str| payload.get(name).and_then(serde_json::Value::as_str);
    if let Some(header) = field("authorization").or_else(|| field("Authorization")) {
        return parse_bearer(header).map(|token| Some(token.to_owned()));
    }
    Ok(field("token").map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(parse_bearer("Bearer abc").unwrap(), "abc");
        assert_eq!(parse_bearer("bearer  abc ").unwrap(), "abc");
        assert!(parse_bearer("Basic abc").is_err());
        assert!(parse_bearer("Bearer").is_err());
        assert!(parse_bearer("abc").is_err());
    }

    #[test]
    fn connection_init_payloads_may_carry_a_token() {
        let payload = serde_json::json!({ "authorization": "Bearer t1" });
        assert_eq!(token_in(&payload).unwrap().as_deref(), Some("t1"));
        let payload = serde_json::json!({ "token": "t2" });
        assert_eq!(token_in(&payload).unwrap().as_deref(), Some("t2"));
        assert_eq!(token_in(&serde_json::json!({})).unwrap(), None);
        assert!(token_in(&serde_json::json!({ "authorization": "t3" })).is_err());
    }
}
