//! Subscriptions over a real WebSocket, speaking graphql-transport-ws as the stock `graphql-ws` client does.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::TestApp;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(app: &TestApp, payload: Value) -> (Socket, Value) {
    let mut request = format!("ws://{}/graphql/ws", app.address)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": payload }),
    )
    .await;
    let answer = receive(&mut socket).await;
    (socket, answer)
}

pub(crate) async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next protocol message (pings are answered; a close frame is returned as `{"close": code}`).
pub(crate) async fn receive(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "ping" {
                    send(socket, json!({ "type": "pong" })).await;
                    continue;
                }
                return value;
            }
            Message::Close(frame) => {
                return json!({ "close": frame.map(|f| u16::from(f.code)) });
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn an_admin_follows_the_log_live_over_a_websocket() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let (mut socket, ack) =
        connect(&app, json!({ "authorization": format!("Bearer {admin}") })).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    send(
        &mut socket,
        json!({
            "id": "1",
            "type": "subscribe",
            "payload": {
                "query": "subscription { logEvents(types: [\"AccountRegistered\"]) { position streamId type data actorRole source } }"
            }
        }),
    )
    .await;
    // the subscription starts from now: register until its first event arrives (the socket's subscription may
    // start a moment after the subscribe message is sent)
    let mut next = None;
    for i in 0..50 {
        app.register(
            &format!("live{i}@example.org"),
            &format!("live{i}"),
            "long enough",
        )
        .await;
        // "now" is the commit-safe horizon: while a transaction older than the admin's registration was still
        // open (a projection's batch), that registration (source "cli") is after it and arrives first
        while let Ok(message) =
            tokio::time::timeout(Duration::from_millis(200), receive(&mut socket)).await
        {
            if message["payload"]["data"]["logEvents"]["source"] != "cli" {
                next = Some(message);
                break;
            }
        }
        if next.is_some() {
            break;
        }
    }
    let next = next.expect("an event arrived over the socket");
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "1");
    let event = &next["payload"]["data"]["logEvents"];
    assert_eq!(event["type"], "AccountRegistered");
    assert!(event["streamId"].as_str().unwrap().starts_with("account-"));
    assert_eq!(event["source"], "graphql");
    assert_eq!(event["actorRole"], "ANONYMOUS");
    assert_eq!(
        event["data"]["password_hash"], "[redacted]",
        "no hashes leave the server"
    );
    assert!(event["data"]["email"].as_str().unwrap().starts_with("live"));

    send(&mut socket, json!({ "id": "1", "type": "complete" })).await;
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn subscriptions_refuse_anonymous_sockets_and_bad_tokens() {
    let app = TestApp::start().await;
    let (mut socket, ack) = connect(&app, json!({})).await;
    assert_eq!(ack["type"], "connection_ack");
    send(
        &mut socket,
        json!({ "id": "a", "type": "subscribe", "payload": { "query": "subscription { logEvents { position } }" } }),
    )
    .await;
    // the guard's refusal is a field error: one `next` carrying it, then `complete`
    let refused = receive(&mut socket).await;
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    assert_eq!(receive(&mut socket).await["type"], "complete");

    let (_, user) = app.user("plain").await;
    let (mut socket, _) = connect(&app, json!({ "authorization": format!("Bearer {user}") })).await;
    send(
        &mut socket,
        json!({ "id": "b", "type": "subscribe", "payload": { "query": "subscription { logEvents { position } }" } }),
    )
    .await;
    let refused = receive(&mut socket).await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );

    let (_, closed) = connect(&app, json!({ "authorization": "Bearer not-a-token" })).await;
    assert!(
        closed["close"].is_u64(),
        "a bad token closes the connection: {closed}"
    );
}

#[tokio::test]
async fn an_open_socket_loses_admin_rights_when_the_role_is_revoked() {
    let app = TestApp::start().await;
    let (_, root) = app.admin().await;
    let (helper_id, _) = app.user("helper").await;
    let granted = app
        .gql(
            "mutation($u: UUID!) { grantAdmin(userId: $u) { position } }",
            json!({ "u": helper_id }),
            Some(&root),
        )
        .await;
    assert!(granted["errors"].is_null(), "{granted}");
    let helper = app.login("helper", "correct horse battery").await;
    let (mut socket, ack) =
        connect(&app, json!({ "authorization": format!("Bearer {helper}") })).await;
    assert_eq!(ack["type"], "connection_ack");
    let projections = json!({ "query": "{ projections { name } }" });
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": projections }),
    )
    .await;
    let allowed = receive(&mut socket).await;
    assert!(allowed["payload"]["errors"].is_null(), "{allowed}");
    assert_eq!(receive(&mut socket).await["type"], "complete");

    app.gql(
        "mutation($u: UUID!) { revokeAdmin(userId: $u) { position } }",
        json!({ "u": helper_id }),
        Some(&root),
    )
    .await;
    send(
        &mut socket,
        json!({ "id": "2", "type": "subscribe", "payload": projections }),
    )
    .await;
    let refused = receive(&mut socket).await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
}

#[tokio::test]
async fn logins_over_a_websocket_share_the_address_budget() {
    let mut setup = crate::Setup::default();
    setup.app.identity.logins_per_address = std::num::NonZeroU32::new(2).unwrap();
    let app = TestApp::with(setup).await;
    app.register("ada@example.org", "ada", "correct horse")
        .await;
    app.login("ada", "correct horse").await;
    app.login("ada", "correct horse").await;
    let (mut socket, _) = connect(&app, json!({})).await;
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "mutation { login(username: \"ada\", password: \"correct horse\") { accessToken } }"
        } }),
    )
    .await;
    let refused = receive(&mut socket).await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{refused}"
    );
}

#[tokio::test]
async fn a_stopping_server_completes_open_subscriptions_and_closes_with_going_away() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let (mut socket, ack) =
        connect(&app, json!({ "authorization": format!("Bearer {admin}") })).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    for (id, query) in [
        ("1", "subscription { logEvents { position } }"),
        ("2", "subscription { notifications { id } }"),
    ] {
        send(
            &mut socket,
            json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
        )
        .await;
    }
    // both are running: a new event reaches the log subscription
    app.register("ada@example.org", "ada", "correct horse")
        .await;
    let first = receive(&mut socket).await;
    assert_eq!(
        (first["type"].as_str(), first["id"].as_str()),
        (Some("next"), Some("1")),
        "{first}"
    );
    app.stop();
    let mut completed = vec![];
    loop {
        let message = receive(&mut socket).await;
        if let Some(code) = message.get("close") {
            assert_eq!(code, 1001, "closed as going away");
            break;
        }
        match message["type"].as_str() {
            Some("complete") => completed.push(message["id"].as_str().unwrap().to_owned()),
            // the log subscription may still pass on events committed before the stop, never an error
            Some("next") => assert!(message["payload"]["errors"].is_null(), "{message}"),
            _ => panic!("unexpected {message}"),
        }
    }
    completed.sort();
    assert_eq!(completed, ["1", "2"]);
}
