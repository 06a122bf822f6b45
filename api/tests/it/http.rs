//! `POST /graphql` as GraphQL clients and browsers use it: introspection, the GraphQL-over-HTTP status codes and
//! media types, content types, CORS, and the shape and size of error bodies.

use axum::http::HeaderValue;
use serde_json::{Value, json};

use crate::{Setup, TestApp, code, reason};

/// graphql-js 16's `getIntrospectionQuery()` with its default options, as GraphiQL, Apollo and graphql-codegen
/// send it.
const INTROSPECTION: &str = include_str!("../fixtures/introspection.graphql");

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// A raw `POST /graphql`: its status, content type and body (JSON, or `Null` when it is not JSON).
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    bytes: usize,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        Self {
            status,
            content_type,
            bytes: text.len(),
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}

/// POSTs `body` as JSON with `accept` (none when `None`).
async fn post_json(app: &TestApp, body: &Value, accept: Option<&str>) -> Answer {
    let mut request = app.http.post(app.url("/graphql")).json(body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    Answer::of(request.send().await.unwrap()).await
}

async fn query(app: &TestApp, query: &str, accept: Option<&str>) -> Answer {
    post_json(app, &json!({ "query": query }), accept).await
}

/// `{ me { x { x … } } }`: `levels` levels of fields (fields that do not exist: no real query nests this deep).
fn nested(levels: usize) -> String {
    format!(
        "{{ me {{ {}id{} }} }}",
        "x { ".repeat(levels - 2),
        " }".repeat(levels - 2)
    )
}

#[tokio::test]
async fn the_standard_introspection_query_is_answered() {
    let app = TestApp::start().await;
    for accept in [None, Some(GRAPHQL_RESPONSE)] {
        let answer = post_json(
            &app,
            &json!({ "query": INTROSPECTION, "operationName": "IntrospectionQuery" }),
            accept,
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let body = answer.body;
        assert!(body["errors"].is_null(), "{body}");
        let schema = &body["data"]["__schema"];
        assert_eq!(schema["queryType"]["name"], "Query");
        assert_eq!(schema["mutationType"]["name"], "Mutation");
        assert_eq!(schema["subscriptionType"]["name"], "Subscription");
        let types = schema["types"].as_array().unwrap();
        let query = types.iter().find(|t| t["name"] == "Query").unwrap();
        let me = query["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "me")
            .unwrap();
        // `User!`: the type reference is followed through its wrapper
        assert_eq!(me["type"]["kind"], "NON_NULL");
        assert_eq!(me["type"]["ofType"]["name"], "User");
        assert!(types.iter().any(|t| t["name"] == "RegisterInput"));
        assert!(
            schema["directives"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["name"] == "skip")
        );
    }
}

#[tokio::test]
async fn real_queries_stay_bounded_by_depth_and_introspection_by_complexity() {
    let app = TestApp::start().await;
    // 13 levels: refused for its depth, before its fields are even looked at
    let answer = query(&app, &nested(13), None).await;
    assert_eq!(code(&answer.body), "VALIDATION", "{}", answer.body);
    assert_eq!(reason(&answer.body), "invalid_query");
    assert_eq!(
        answer.body["errors"][0]["message"],
        "Query is nested too deep."
    );
    // 12 levels are within the limit: refused for its unknown field only
    let answer = query(&app, &nested(12), None).await;
    assert_eq!(code(&answer.body), "VALIDATION", "{}", answer.body);
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Unknown field"), "{message}");
    // fragments count as their fields, as before
    let answer = query(
        &app,
        &format!(
            "{{ ...Deep }} fragment Deep on Query {{ me {{ {}id{} }} }}",
            "x { ".repeat(11),
            " }".repeat(11)
        ),
        None,
    )
    .await;
    assert_eq!(
        answer.body["errors"][0]["message"], "Query is nested too deep.",
        "{}",
        answer.body
    );

    // introspection nests at most two lists: a third multiplies the answer by the schema again
    let lists = "{ __schema { types { fields { type { ofType { fields { type { ofType { fields { name } } } } } } } } } }";
    let answer = query(&app, lists, None).await;
    assert_eq!(code(&answer.body), "VALIDATION", "{}", answer.body);
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("introspection depth"),
        "{}",
        answer.body
    );
    let two = "{ __schema { types { fields { type { ofType { fields { name } } } } } } }";
    let answer = query(&app, two, None).await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);

    // the complexity limit (1000 fields) still bounds introspection
    let wide = (0..600)
        .map(|i| format!("t{i}: queryType {{ name }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let answer = query(&app, &format!("{{ __schema {{ {wide} }} }}"), None).await;
    assert_eq!(code(&answer.body), "VALIDATION", "{}", answer.body);
    assert_eq!(answer.body["errors"][0]["message"], "Query is too complex.");
}

#[tokio::test]
async fn requests_that_fail_before_execution_are_400_for_graphql_response_clients() {
    let app = TestApp::start().await;
    let deep = nested(13);
    let complex = format!(
        "{{ {} }}",
        (0..1001)
            .map(|i| format!("m{i}: me {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let refused = [
        ("syntax", "{ me { id "),
        ("validation", "{ nothingHere }"),
        ("depth", deep.as_str()),
        ("complexity", complex.as_str()),
    ];
    for (what, text) in refused {
        let answer = query(&app, text, Some(GRAPHQL_RESPONSE)).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        assert_eq!(answer.content_type, GRAPHQL_RESPONSE, "{what}");
        assert_eq!(code(&answer.body), "VALIDATION", "{what}: {}", answer.body);
        // no field ran: no data entry at all
        assert!(answer.body.get("data").is_none(), "{what}: {}", answer.body);
        // the spec's legacy behaviour for application/json clients (and those that name no type): 200
        for accept in [Some("application/json"), None, Some("*/*")] {
            let answer = query(&app, text, accept).await;
            assert_eq!(answer.status, 200, "{what}, {accept:?}: {}", answer.body);
            assert_eq!(answer.content_type, "application/json", "{what}");
            assert_eq!(code(&answer.body), "VALIDATION");
        }
    }
    // both named: the GraphQL-over-HTTP type wins, unless refused with q=0
    let answer = query(
        &app,
        "{ nothingHere }",
        Some("application/json;q=0.9, application/graphql-response+json"),
    )
    .await;
    assert_eq!(answer.status, 400);
    let answer = query(
        &app,
        "{ nothingHere }",
        Some("application/graphql-response+json;q=0, application/json"),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json");

    // a body that is not JSON: 400 either way, in both error shapes
    for accept in [Some(GRAPHQL_RESPONSE), None] {
        let response = app
            .http
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .header("accept", accept.unwrap_or("application/json"))
            .body("{\"query\": ")
            .send()
            .await
            .unwrap();
        let answer = Answer::of(response).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(
            answer.content_type,
            accept.unwrap_or("application/json"),
            "{}",
            answer.body
        );
        assert_eq!(
            answer.body["error"]["code"], "VALIDATION",
            "{}",
            answer.body
        );
        assert_eq!(answer.body["error"]["reason"], "invalid_input");
        assert_eq!(code(&answer.body), "VALIDATION");
        assert_eq!(reason(&answer.body), "invalid_input");
        assert!(answer.body.get("data").is_none());
    }

    // field errors keep 200: the field ran (and failed), its error has a path
    let answer = query(&app, "{ me { id } }", Some(GRAPHQL_RESPONSE)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, GRAPHQL_RESPONSE);
    assert_eq!(code(&answer.body), "UNAUTHENTICATED");
    assert_eq!(answer.body["errors"][0]["path"], json!(["me"]));
    assert!(answer.body.get("data").is_some());
    // and a success is a 200 in the type asked for
    let answer = query(&app, "{ __typename }", Some(GRAPHQL_RESPONSE)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, GRAPHQL_RESPONSE);
    assert_eq!(answer.body["data"]["__typename"], "Query");
}

#[tokio::test]
async fn only_json_posts_are_executed() {
    let app = TestApp::start().await;
    let register = json!({
        "query": "mutation { register(input: { email: \"ada@example.org\", username: \"ada\", password: \"correct horse\" }) { userId } }"
    })
    .to_string();
    let posts = [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=xyz"),
        Some("application/json; charset=latin1"),
        None,
    ];
    for content_type in posts {
        let mut request = app.http.post(app.url("/graphql")).body(register.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = Answer::of(request.send().await.unwrap()).await;
        assert_eq!(answer.status, 415, "{content_type:?}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "VALIDATION");
        assert_eq!(reason(&answer.body), "invalid_input");
    }
    // none of them registered ada: the same registration as JSON is the first
    let (_, position) = app
        .register("ada@example.org", "ada", "correct horse")
        .await;
    let token = app.login("ada", "correct horse").await;
    let body = app
        .gql(
            "query($p: Int) { me(minPosition: $p) { username } }",
            json!({ "p": position }),
            Some(&token),
        )
        .await;
    assert_eq!(body["data"]["me"]["username"], "ada", "{body}");
    // JSON with a charset is JSON
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({ "query": "{ __typename }" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn browsers_may_call_from_the_listed_origins_only() {
    let mut setup = Setup::default();
    setup.http.cors_origins = vec![HeaderValue::from_static("https://app.example.org")];
    let app = TestApp::with(setup).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let response = preflight("https://app.example.org").await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.org"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    let response = preflight("https://evil.example.com").await.unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );

    let post = |origin: &'static str, content_type: &'static str| {
        app.http
            .post(app.url("/graphql"))
            .header("origin", origin)
            .header("content-type", content_type)
            .body(json!({ "query": "{ __typename }" }).to_string())
            .send()
    };
    let response = post("https://app.example.org", "application/json")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    // refusals too, so the page can read why
    let response = post("https://app.example.org", "text/plain").await.unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let response = post("https://evil.example.com", "application/json")
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // without ACADEMY_CORS_ORIGINS: no CORS at all
    let plain = TestApp::start().await;
    let response = plain
        .http
        .post(plain.url("/graphql"))
        .header("origin", "https://app.example.org")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let response = plain
        .http
        .request(reqwest::Method::OPTIONS, plain.url("/graphql"))
        .header("origin", "https://app.example.org")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn request_errors_have_no_locations() {
    let app = TestApp::start().await;
    // a bad Authorization header fails the request
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("authorization", "Basic abc")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    let answer = Answer::of(response).await;
    assert_eq!(answer.status, 401);
    assert_eq!(code(&answer.body), "UNAUTHENTICATED");
    assert_eq!(answer.body["error"]["reason"], "invalid_token");
    assert!(
        answer.body["errors"][0].get("locations").is_none(),
        "{}",
        answer.body
    );
    // a NUL character, refused before parsing
    let answer = post_json(
        &app,
        &json!({ "query": "query($u: String) { __typename }", "variables": { "u": "a\u{0}b" } }),
        None,
    )
    .await;
    assert_eq!(code(&answer.body), "VALIDATION", "{}", answer.body);
    assert!(
        answer.body["errors"][0].get("locations").is_none(),
        "{}",
        answer.body
    );
    // the limits
    let answer = query(&app, &nested(13), None).await;
    assert!(
        answer.body["errors"][0].get("locations").is_none(),
        "{}",
        answer.body
    );
    // a syntax error keeps its real position
    let answer = query(&app, "{ me { id ", None).await;
    let location = &answer.body["errors"][0]["locations"][0];
    assert_eq!(location["line"], 1, "{}", answer.body);
    assert!(location["column"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn error_bodies_stay_small() {
    let app = TestApp::start().await;
    // a 350 KB one-line query with a syntax error at its end: the message quotes a few characters of it
    let long = format!("{{ {} !!! }}", "__typename ".repeat(35_000));
    let answer = query(&app, &long, None).await;
    assert_eq!(code(&answer.body), "VALIDATION", "{}", answer.body);
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.chars().count() <= 201, "{message}");
    assert!(message.contains("syntax error at line 1"), "{message}");
    assert!(answer.bytes < 2_000, "{} bytes", answer.bytes);
    // an unknown field of 300 KB is not echoed whole either
    let answer = query(&app, &format!("{{ {} }}", "x".repeat(300_000)), None).await;
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.chars().count() <= 201, "{message}");
    assert!(answer.bytes < 2_000, "{} bytes", answer.bytes);

    // 900 KB of duplicate directives: 50 errors and one saying how many more there were
    let directives = "@include(if: true) ".repeat(47_000);
    let answer = query(&app, &format!("{{ me {directives} {{ id }} }}"), None).await;
    let errors = answer.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 51, "{}", answer.body);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("Duplicate directive")
    );
    let last = &errors[50];
    let left_out = last["extensions"]["leftOut"].as_u64().unwrap();
    assert!(left_out > 40_000, "{last}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains(&left_out.to_string())
    );
    assert_eq!(last["extensions"]["code"], "VALIDATION");
    assert!(answer.bytes < 20_000, "{} bytes", answer.bytes);
}

#[tokio::test]
async fn unknown_directives_are_refused_on_typename_like_on_any_field() {
    let app = TestApp::start().await;
    for text in [
        "{ __typename @foo }",
        "{ me @foo { id } }",
        "{ __typename @include(if: true) @include(if: true) }",
        "{ __typename @include }",
        "{ __typename @include(if: true, unless: false) }",
        "{ __typename @deprecated }",
        "{ __typename(x: 1) }",
        "{ ...F } fragment F on Query { __typename @foo }",
    ] {
        let answer = query(&app, text, Some(GRAPHQL_RESPONSE)).await;
        assert_eq!(answer.status, 400, "{text}: {}", answer.body);
        assert_eq!(code(&answer.body), "VALIDATION", "{text}: {}", answer.body);
        assert_eq!(reason(&answer.body), "invalid_query", "{text}");
    }
    let answer = query(&app, "{ __typename @foo }", None).await;
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Unknown directive \"foo\""), "{message}");
    // known directives still work there
    let answer = query(
        &app,
        "{ a: __typename @include(if: true) b: __typename @skip(if: true) }",
        None,
    )
    .await;
    assert_eq!(
        answer.body,
        json!({ "data": { "a": "Query" } }),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn a_read_that_cannot_wait_long_enough_is_not_ready_503_with_retry_after() {
    let app = TestApp::with(Setup {
        read_timeout: std::time::Duration::from_millis(300),
        ..Setup::default()
    })
    .await;
    let (_, token) = app.user("ada").await;
    // a transaction holding an id keeps every projection behind it (the price of the commit-safe order)
    let mut holder = app.db.pool.begin().await.unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *holder)
        .await
        .unwrap();
    let (_, position) = app
        .register("bob@example.org", "bob", "correct horse")
        .await;
    for accept in ["application/json", GRAPHQL_RESPONSE] {
        let response = app
            .http
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .header("accept", accept)
            .json(&json!({
                "query": "query($p: Int) { myStats(level: JUNIOR, minPosition: $p) { answered } }",
                "variables": { "p": position },
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{accept}");
        assert_eq!(response.headers()["retry-after"], "1", "{accept}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "NOT_READY", "{body}");
        assert_eq!(reason(&body), "read_model_behind");
        assert_eq!(body["errors"][0]["extensions"]["retryAfter"], 1);
    }
    holder.rollback().await.unwrap();
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_like_a_sized_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut setup = Setup::default();
    setup.http.body_limit = 4096;
    let app = TestApp::with(setup).await;
    let mut connection = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let head = "POST /graphql HTTP/1.1\r\nHost: academy\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    connection.write_all(head.as_bytes()).await.unwrap();
    // no length up front: 10 chunks of 1 KiB, over the 4 KiB limit
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
    for _ in 0..10 {
        if connection.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = connection.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = connection.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}
