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
//!   (syntax, unknown fields, limits) get `VALIDATION`. A response lists at most [`MAX_ERRORS`] errors of at most
//!   [`MAX_ERROR_MESSAGE_CHARS`] characters each.
//! - `POST /graphql` takes `application/json` only (415 otherwise, before anything runs) and answers as the
//!   GraphQL-over-HTTP spec says for the `Accept` header: with `application/graphql-response+json`, a request
//!   refused before execution is a 400; otherwise (the spec's legacy `application/json`) every GraphQL response
//!   is a 200.
//! - Lists are cursor connections.

mod accounts;
pub(crate) mod cars;
mod interviews;
mod notifications;
mod operations;
mod tracks;
mod trainer;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::connection::CursorType;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    NextSubscribe,
};
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::registry::{__DirectiveLocation, Registry};
use async_graphql::{
    Context, Data, Guard, MergedObject, MergedSubscription, Positioned, Response as GqlResponse,
    Schema, SchemaBuilder, ServerError, ServerResult, TypeDirective, Variables,
};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, Stream, StreamExt};
use projections::Projections;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::watch;
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
    /// How deep fields may nest (`{ a { b } }` is 2 deep; fragments count as their fields, `__typename` not at
    /// all). Introspection (`__schema`, `__type`) counts as one level whatever it selects, so the standard
    /// introspection query of GraphiQL and code generators passes; its own bounds are the complexity, the
    /// engine's recursion limit (32 nested selection sets) and at most [`MAX_INTROSPECTION_LISTS`] nested lists.
    pub depth: usize,
    /// How many fields a query may select, fragments inlined, introspection included.
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
    // the depth is limited by `QueryShape` rather than `limit_depth`, which would count introspection too
    .limit_complexity(limits.complexity)
    .extension(ErrorCodes)
    .extension(QueryShape {
        depth: limits.depth,
    })
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

/// A list's page size, 1 to 100, from the argument `name` (`first`, `history`, `limit`), which an error names.
pub(crate) fn page_size(name: &str, size: i32) -> Result<i64, ApiError> {
    if (1..=100).contains(&size) {
        Ok(i64::from(size))
    } else {
        Err(ApiError::validation(format!(
            "{name} must be between 1 and 100"
        )))
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

/// Most errors one response lists; the rest are summed up in one last error.
pub const MAX_ERRORS: usize = 50;

/// Longest error message, in characters; longer ones are cut (a message may quote the query or a value).
pub const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// Gives every error the engine raises without a code (syntax, unknown field, wrong argument type, depth or
/// complexity limit) the code `VALIDATION`, and keeps error lists short: at most [`MAX_ERRORS`] errors, each
/// message at most [`MAX_ERROR_MESSAGE_CHARS`] characters.
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
        tidy_errors(&mut response.errors);
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
                tidy_errors(&mut response.errors);
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
                    Some(token) => services
                        .tokens
                        .authenticate(token)
                        .await
                        .map_err(request_error)?,
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
            return Err(request_error(error));
        }
        next.run(ctx, request).await
    }
}

/// Most lists an introspection query may nest on one path (`fields`, `inputFields`, `interfaces`,
/// `possibleTypes`), as graphql-js's `MaxIntrospectionDepthRule` counts them: the standard introspection query nests
/// one, and each more multiplies the answer by the size of the schema.
pub const MAX_INTROSPECTION_LISTS: usize = 2;

/// The introspection fields that list parts of the schema, counted against [`MAX_INTROSPECTION_LISTS`].
const INTROSPECTION_LISTS: [&str; 4] = ["fields", "inputFields", "interfaces", "possibleTypes"];

/// Checks a parsed document before the engine validates it:
/// - the depth limit of [`QueryLimits`]: like async-graphql's `limit_depth` (same count, same message) except that
///   an introspection field (`__schema`, `__type`) counts as one level whatever it selects, since the standard
///   introspection query of GraphiQL, Apollo or graphql-codegen nests 14 deep;
/// - introspection nests at most [`MAX_INTROSPECTION_LISTS`] lists;
/// - `__typename` takes no arguments, no selection, and only known directives valid on a field, once each (the
///   engine's validation skips `__typename`).
///
/// It also shortens syntax errors, whose messages would otherwise quote the whole offending line of the query.
struct QueryShape {
    depth: usize,
}

impl ExtensionFactory for QueryShape {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryShape { depth: self.depth })
    }
}

#[async_trait::async_trait]
impl Extension for QueryShape {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next
            .run(ctx, query, variables)
            .await
            .map_err(|error| shorten_syntax_error(error, query))?;
        let mut shape = Shape {
            document: &document,
            fragments: HashMap::new(),
        };
        let mut depth = 0;
        for (_, operation) in document.operations.iter() {
            depth = depth.max(shape.measure(&operation.node.selection_set)?.depth);
        }
        if depth > self.depth {
            return Err(ServerError::new("Query is nested too deep.", None));
        }
        check_typenames(&document, &ctx.schema_env.registry)?;
        Ok(document)
    }
}

/// What [`QueryShape`] counts in a selection set.
#[derive(Debug, Clone, Copy, Default)]
struct Measure {
    /// Levels of fields, an introspection field counting as one.
    depth: usize,
    /// Most [`INTROSPECTION_LISTS`] nested on one path.
    lists: usize,
}

struct Shape<'a> {
    document: &'a ExecutableDocument,
    /// Each fragment's measure once known (so a fragment spread many times is measured once); `None` while it is
    /// being measured: a spread then is a cycle, which the engine refuses.
    fragments: HashMap<&'a str, Option<Measure>>,
}

impl<'a> Shape<'a> {
    fn measure(&mut self, set: &'a Positioned<SelectionSet>) -> ServerResult<Measure> {
        let mut measure = Measure::default();
        for selection in &set.node.items {
            let inner = match &selection.node {
                Selection::Field(field) => self.field(field)?,
                Selection::InlineFragment(fragment) => {
                    self.measure(&fragment.node.selection_set)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())?
                }
            };
            measure.depth = measure.depth.max(inner.depth);
            measure.lists = measure.lists.max(inner.lists);
        }
        Ok(measure)
    }

    fn field(&mut self, field: &'a Positioned<Field>) -> ServerResult<Measure> {
        let name = field.node.name.node.as_str();
        let inner = self.measure(&field.node.selection_set)?;
        match name {
            // not a level for the engine's depth count either
            "__typename" => Ok(Measure::default()),
            "__schema" | "__type" => {
                if inner.lists > MAX_INTROSPECTION_LISTS {
                    return Err(ServerError::new(
                        format!(
                            "Maximum introspection depth exceeded: at most {MAX_INTROSPECTION_LISTS} of fields, \
                             inputFields, interfaces and possibleTypes may nest"
                        ),
                        Some(field.pos),
                    ));
                }
                Ok(Measure { depth: 1, lists: 0 })
            }
            _ => Ok(Measure {
                depth: inner.depth + 1,
                lists: inner.lists + usize::from(INTROSPECTION_LISTS.contains(&name)),
            }),
        }
    }

    fn fragment(&mut self, name: &'a str) -> ServerResult<Measure> {
        match self.fragments.get(name) {
            Some(Some(measure)) => return Ok(*measure),
            Some(None) => return Ok(Measure::default()),
            None => {}
        }
        // an unknown fragment is the engine's validation error
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(Measure::default());
        };
        self.fragments.insert(name, None);
        let measure = self.measure(&fragment.node.selection_set)?;
        self.fragments.insert(name, Some(measure));
        Ok(measure)
    }
}

/// Validates every `__typename` of the document as the engine validates other fields (its validation skips them).
fn check_typenames(document: &ExecutableDocument, registry: &Registry) -> ServerResult<()> {
    fn walk(set: &Positioned<SelectionSet>, registry: &Registry) -> ServerResult<()> {
        for selection in &set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    if field.node.name.node == "__typename" {
                        check_typename(field, registry)?;
                    }
                    walk(&field.node.selection_set, registry)?;
                }
                Selection::InlineFragment(fragment) => {
                    walk(&fragment.node.selection_set, registry)?
                }
                Selection::FragmentSpread(_) => {}
            }
        }
        Ok(())
    }
    for (_, operation) in document.operations.iter() {
        walk(&operation.node.selection_set, registry)?;
    }
    for fragment in document.fragments.values() {
        walk(&fragment.node.selection_set, registry)?;
    }
    Ok(())
}

fn check_typename(field: &Positioned<Field>, registry: &Registry) -> ServerResult<()> {
    if let Some((argument, _)) = field.node.arguments.first() {
        return Err(ServerError::new(
            format!(
                "Unknown argument \"{}\" on field \"__typename\".",
                argument.node
            ),
            Some(argument.pos),
        ));
    }
    if !field.node.selection_set.node.items.is_empty() {
        return Err(ServerError::new(
            "Field \"__typename\" of type \"String!\" must not have a selection.",
            Some(field.node.selection_set.pos),
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for directive in &field.node.directives {
        let name = directive.node.name.node.as_str();
        let refuse = |message: String| Err(ServerError::new(message, Some(directive.pos)));
        let Some(known) = registry.directives.get(name) else {
            return refuse(format!("Unknown directive \"{name}\""));
        };
        if !known.locations.contains(&__DirectiveLocation::FIELD) {
            return refuse(format!("Directive \"{name}\" may not be used on \"FIELD\""));
        }
        if !known.is_repeatable && seen.contains(&name) {
            return refuse(format!("Duplicate directive \"{name}\""));
        }
        seen.push(name);
        for (argument, _) in &directive.node.arguments {
            if !known.args.contains_key(argument.node.as_str()) {
                return refuse(format!(
                    "Unknown argument \"{}\" on directive \"{name}\".",
                    argument.node
                ));
            }
        }
        for (argument, definition) in &known.args {
            let required = definition.ty.ends_with('!') && definition.default_value.is_none();
            if required
                && !directive
                    .node
                    .arguments
                    .iter()
                    .any(|(n, _)| n.node.as_str() == argument.as_str())
            {
                return refuse(format!(
                    "Directive \"@{name}\" argument \"{argument}\" of type \"{}\" is required but not \
                     provided",
                    definition.ty
                ));
            }
        }
    }
    Ok(())
}

/// A syntax error's message without the whole offending line (pest quotes it, and a query may be one line of
/// hundreds of kilobytes): where, what was expected, and a few characters around the spot.
fn shorten_syntax_error(mut error: ServerError, query: &str) -> ServerError {
    if !error.message.contains('\n') {
        return error;
    }
    let expected = error
        .message
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("= "))
        .unwrap_or("unexpected input")
        .to_owned();
    error.message = match error.locations.first() {
        Some(at) => format!(
            "syntax error at line {}, column {}: {expected}, near {:?}",
            at.line,
            at.column,
            excerpt(query, *at)
        ),
        None => format!("syntax error: {expected}"),
    };
    error
}

/// Up to 20 characters either side of `at` in `query`.
fn excerpt(query: &str, at: async_graphql::Pos) -> String {
    const AROUND: usize = 20;
    let line = query
        .lines()
        .nth(at.line.saturating_sub(1))
        .unwrap_or_default();
    let start = at.column.saturating_sub(1).saturating_sub(AROUND);
    line.chars().skip(start).take(2 * AROUND).collect()
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

/// Gives every error a code, keeps at most [`MAX_ERRORS`] of them (one more error says how many were left out,
/// with the code and reason of the first of those), and cuts long messages.
fn tidy_errors(errors: &mut Vec<ServerError>) {
    if errors.len() > MAX_ERRORS {
        let mut left_out = errors.split_off(MAX_ERRORS);
        let count = left_out.len();
        let first = &mut left_out[0];
        ensure_code(first);
        let mut summary = ServerError::new(
            format!(
                "{count} more errors were left out (a response lists at most {MAX_ERRORS}); fix these and \
                 ask again"
            ),
            None,
        );
        let mut extensions = async_graphql::ErrorExtensionValues::default();
        for key in ["code", "reason"] {
            if let Some(value) = first.extensions.as_ref().and_then(|e| e.get(key)) {
                extensions.set(key, value.clone());
            }
        }
        extensions.set("leftOut", count);
        summary.extensions = Some(extensions);
        errors.push(summary);
    }
    for error in errors.iter_mut() {
        ensure_code(error);
        cap_message(&mut error.message);
    }
}

/// Cuts `message` to [`MAX_ERROR_MESSAGE_CHARS`] characters, marking the cut.
fn cap_message(message: &mut String) {
    if let Some((end, _)) = message.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
        message.truncate(end);
        message.push('…');
    }
}

/// An error of the whole request (not of a field): no `locations`, no `path`.
fn request_error(error: ApiError) -> ServerError {
    let error = async_graphql::Error::from(error);
    let mut server_error = ServerError::new(error.message, None);
    server_error.extensions = error.extensions;
    server_error
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

/// The media type of GraphQL-over-HTTP responses.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// How `POST /graphql` answers, by the request's `Accept` header (the GraphQL-over-HTTP spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    /// `Accept` names `application/graphql-response+json`: a request that fails before any field runs (syntax,
    /// validation, limits) is a 400.
    GraphqlResponse,
    /// Anything else (`application/json`, `*/*`, no header): the spec's legacy behaviour, `application/json` and
    /// 200 for every GraphQL response.
    Json,
}

impl Media {
    fn accepted(headers: &HeaderMap) -> Self {
        let names_graphql_response = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| {
                let mut parts = item.split(';');
                let media = parts.next().unwrap_or_default().trim();
                let refused = parts.any(|parameter| {
                    parameter.split_once('=').is_some_and(|(name, q)| {
                        name.trim().eq_ignore_ascii_case("q")
                            && q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                    })
                });
                media.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON) && !refused
            });
        if names_graphql_response {
            Media::GraphqlResponse
        } else {
            Media::Json
        }
    }

    fn content_type(self) -> HeaderValue {
        match self {
            Media::GraphqlResponse => HeaderValue::from_static(GRAPHQL_RESPONSE_JSON),
            Media::Json => HeaderValue::from_static("application/json"),
        }
    }
}

/// `POST /graphql`: a JSON body (`Content-Type: application/json`, else 415 and nothing runs).
pub async fn execute(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let media = Media::accepted(&headers);
    if !is_json(&headers) {
        return error_response(
            ApiError::validation(
                "POST /graphql takes a JSON body: send it with Content-Type: application/json",
            )
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            media,
        );
    }
    let request = match serde_json::from_slice::<async_graphql::Request>(&body) {
        Ok(request) => request,
        Err(error) => {
            return error_response(
                ApiError::validation(format!("not a GraphQL request: {error}"))
                    .with_status(StatusCode::BAD_REQUEST),
                media,
            );
        }
    };
    let viewer = match viewer_of(&state.services.tokens, &headers).await {
        Ok(viewer) => viewer,
        Err(error) => return error_response(error, media),
    };
    let min_position = match min_position_header(&headers) {
        Ok(position) => position,
        Err(error) => return error_response(error, media),
    };
    let request = request.data(viewer).data(RequestInfo {
        min_position,
        client,
    });
    graphql_response(state.schema.execute(request).await, media)
}

/// Whether the request's body is declared JSON (`application/json`, in UTF-8 if a charset is named). Anything else
/// (`text/plain`, forms, multipart, no `Content-Type`) is what a browser sends cross-origin without a preflight.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|parameter| match parameter.split_once('=') {
            Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => charset
                .trim()
                .trim_matches('"')
                .eq_ignore_ascii_case("utf-8"),
            _ => true,
        })
}

/// A GraphQL response as JSON. One that failed before execution (errors, none of them on a field, and no data)
/// has no `data` entry (the GraphQL spec) and, for clients accepting `application/graphql-response+json`, HTTP 400.
fn graphql_response(mut response: GqlResponse, media: Media) -> Response {
    let before_execution = !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|error| error.path.is_empty());
    let body = GraphqlBody {
        data: (!before_execution).then_some(&response.data),
        errors: &response.errors,
        extensions: &response.extensions,
    };
    let body = match serde_json::to_vec(&body) {
        Ok(body) => body,
        Err(error) => return error_response(ApiError::internal(error), media),
    };
    let has = |code: Code| {
        response
            .errors
            .iter()
            .any(|e| error_code(e) == Some(code.as_str()))
    };
    let retry_after = response
        .errors
        .iter()
        .filter(|e| error_code(e) == Some(Code::NotReady.as_str()))
        .filter_map(|e| match e.extensions.as_ref()?.get("retryAfter")? {
            async_graphql::Value::Number(seconds) => seconds.as_u64(),
            _ => None,
        })
        .max();
    let status = if has(Code::NotReady) {
        // a read that could not wait long enough: the whole answer is worth retrying, whatever the Accept
        StatusCode::SERVICE_UNAVAILABLE
    } else if before_execution && has(Code::Internal) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if before_execution && media == Media::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut http = (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response();
    if response.is_ok()
        && let Some(value) = response.cache_control.value()
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        http.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    if let Some(seconds) = retry_after {
        http.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    http.headers_mut()
        .extend(std::mem::take(&mut response.http_headers));
    http
}

/// The `extensions.code` of a GraphQL error.
fn error_code(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code),
        _ => None,
    }
}

#[derive(Serialize)]
struct GraphqlBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, async_graphql::Value>,
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

/// A failure of the HTTP request before GraphQL ran, with its HTTP status and both error shapes (`error` for REST
/// clients, `errors` for GraphQL ones), as the media type the client accepts.
fn error_response(error: ApiError, media: Media) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    response
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
    let stopping = state.stopping.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let (to_client, from_client) = socket.split();
            // what the protocol sends goes through `outgoing`, so the connection can say goodbye itself
            let (outgoing, mut queued) = tokio::sync::mpsc::channel::<Message>(64);
            let sink =
                futures_util::sink::unfold(outgoing, |outgoing, message: Message| async move {
                    outgoing.send(message).await.map_err(axum::Error::new)?;
                    Ok::<_, axum::Error>(outgoing)
                });
            let connection_stopping = stopping.clone();
            let graphql = GraphQLWebSocket::new_with_pair(sink, from_client, schema, protocol)
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
                    data.insert(Stopping(connection_stopping));
                    Ok(data)
                })
                .serve();
            let forward = forward_until_stopping(to_client, &mut queued, stopping);
            tokio::pin!(graphql, forward);
            tokio::select! {
                // the server stopped (goodbye said), or the client is gone
                () = &mut forward => {}
                // the protocol ended (the client left, or was refused): pass on what it still queued, its
                // close frame included; its end dropped the sender, so the queue runs dry
                () = &mut graphql => forward.await,
            }
        })
}

/// When the server stops, for subscriptions: they end (their clients get `complete`), and connections close
/// with 1001 (going away).
#[derive(Clone)]
pub(crate) struct Stopping(Option<watch::Receiver<bool>>);

impl Stopping {
    /// Resolves once the server stops (never, for a server without a stop signal).
    async fn wait(self) {
        match self.0 {
            Some(mut stopping) => {
                let _ = stopping.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    }
}

/// `stream`, ended when the server stops, so its client gets `complete` rather than an error.
pub(crate) fn until_stopping<S>(
    ctx: &Context<'_>,
    stream: S,
) -> impl Stream<Item = S::Item> + use<S>
where
    S: Stream,
{
    let stopping = ctx.data_opt::<Stopping>().cloned();
    stream.take_until(async move {
        match stopping {
            Some(stopping) => stopping.wait().await,
            None => std::future::pending().await,
        }
    })
}

/// Passes the protocol's messages to the client until the server stops; then passes on what the ending
/// subscriptions still say (their `complete`s) for a moment, and closes the connection with 1001.
async fn forward_until_stopping(
    mut to_client: futures_util::stream::SplitSink<WebSocket, Message>,
    queued: &mut tokio::sync::mpsc::Receiver<Message>,
    stopping: Option<watch::Receiver<bool>>,
) {
    let stop = Stopping(stopping).wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            message = queued.recv() => match message {
                Some(message) => {
                    if to_client.send(message).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            () = &mut stop => break,
        }
    }
    let last_words = async {
        while let Some(message) = queued.recv().await {
            if to_client.send(message).await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(GOODBYE_WAIT, last_words).await;
    let goodbye = CloseFrame {
        code: axum::extract::ws::close_code::AWAY,
        reason: "the server is going away".into(),
    };
    let _ = to_client.send(Message::Close(Some(goodbye))).await;
}

/// How long a stopping server passes on the last messages of its subscriptions before it closes a connection.
const GOODBYE_WAIT: Duration = Duration::from_millis(300);

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
