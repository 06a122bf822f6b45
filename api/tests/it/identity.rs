//! Accounts through the API: registration races, tokens, throttling, idempotent retries, read-your-writes.

use std::num::NonZeroU32;

use api::auth::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::{SECRET, Setup, TestApp, code, reason};

const ME: &str = "query($p: Int) { me(minPosition: $p) { id username email role } }";

#[tokio::test]
async fn twenty_concurrent_registrations_of_one_email_make_exactly_one_account() {
    let app = TestApp::start().await;
    let attempts = (0..20).map(|i| {
        let app = &app;
        async move {
            app.gql(
                "mutation($input: RegisterInput!) { register(input: $input) { userId } }",
                json!({ "input": { "email": "Same@Example.org", "username": format!("racer{i}"), "password": "long enough" } }),
                None,
            )
            .await
        }
    });
    let bodies = futures_util::future::join_all(attempts).await;
    let won: Vec<&Value> = bodies.iter().filter(|b| b["errors"].is_null()).collect();
    assert_eq!(won.len(), 1, "exactly one registration wins: {bodies:?}");
    for lost in bodies.iter().filter(|b| !b["errors"].is_null()) {
        assert_eq!(code(lost), "CONFLICT", "{lost}");
        assert_eq!(reason(lost), "email_taken", "{lost}");
        assert!(
            lost["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("same@example.org")
        );
    }
    let claims: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'AccountRegistered'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(claims, 1);
}

#[tokio::test]
async fn a_taken_username_is_a_conflict_whatever_its_case() {
    let app = TestApp::start().await;
    app.register("ada@example.org", "Ada", "long enough").await;
    let body = app
        .gql(
            "mutation { register(input: {email: \"other@example.org\", username: \"ADA\", password: \"long enough\"}) { userId } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(code(&body), "CONFLICT");
    assert_eq!(reason(&body), "username_taken");
    // the failed attempt claimed nothing: the other email is still free
    app.register("other@example.org", "bob", "long enough")
        .await;
}

#[tokio::test]
async fn malformed_registrations_are_validation_errors() {
    let app = TestApp::start().await;
    for (email, username, password, why) in [
        ("not-an-email", "ada", "long enough", "malformed_email"),
        ("ada@example.org", "a", "long enough", "malformed_username"),
        ("ada@example.org", "ada", "short", "password_length"),
    ] {
        let body = app
            .gql(
                "mutation($input: RegisterInput!) { register(input: $input) { userId } }",
                json!({ "input": { "email": email, "username": username, "password": password } }),
                None,
            )
            .await;
        assert_eq!(
            code(&body),
            "VALIDATION",
            "{email} {username} {password}: {body}"
        );
        assert_eq!(reason(&body), why, "{body}");
    }
    // a wrongly typed variable is the engine's error, with the same code
    let body = app
        .gql(
            "mutation($input: RegisterInput!) { register(input: $input) { userId } }",
            json!({ "input": { "email": 5 } }),
            None,
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(reason(&body), "invalid_query");
}

#[tokio::test]
async fn a_login_by_username_or_email_gives_a_token_that_me_accepts() {
    let app = TestApp::start().await;
    let (id, position) = app
        .register("Ada@Example.org", "ada", "correct horse")
        .await;
    // logging in reads the log itself, so it works before any projection has caught up
    let by_email = app.login("ADA@example.org", "correct horse").await;
    let by_name = app.login("ada", "correct horse").await;
    for token in [by_email, by_name] {
        let body = app.gql(ME, json!({ "p": position }), Some(&token)).await;
        assert_eq!(body["data"]["me"]["id"], id.as_str(), "{body}");
        assert_eq!(body["data"]["me"]["email"], "ada@example.org");
        assert_eq!(body["data"]["me"]["role"], "USER");
    }
    let wrong = app
        .gql(
            "mutation { login(username: \"ada\", password: \"wrong password\") { accessToken } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(code(&wrong), "UNAUTHENTICATED");
    let unknown = app
        .gql(
            "mutation { login(username: \"nobody\", password: \"wrong password\") { accessToken } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(code(&unknown), "UNAUTHENTICATED");
    // the same reason too: nothing tells whether the account exists
    assert_eq!(reason(&wrong), "wrong_credentials");
    assert_eq!(reason(&unknown), "wrong_credentials");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
}

fn token(claims: &Claims, algorithm: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn tampered_expired_foreign_and_wrong_algorithm_tokens_are_refused() {
    let app = TestApp::start().await;
    let (id, position) = app
        .register("ada@example.org", "ada", "correct horse")
        .await;
    let good = app.login("ada", "correct horse").await;
    assert!(app.gql(ME, json!({ "p": position }), Some(&good)).await["errors"].is_null());

    let now = chrono::Utc::now().timestamp();
    let claims = |iat: i64, exp: i64, role: &str| Claims {
        sub: id.clone(),
        role: role.to_owned(),
        iat,
        exp,
        pwv: 0,
    };
    // a payload changed after signing (the role raised to admin)
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let forged = token(
        &claims(now, now + 3600, "admin"),
        Algorithm::HS256,
        b"another secret of at least 32 bytes!",
    );
    parts[1] = forged.split('.').nth(1).unwrap().to_owned();
    let tampered = parts.join(".");
    // the signature altered
    let mut bad_signature = good.clone();
    let last = bad_signature.pop().unwrap();
    bad_signature.push(if last == 'A' { 'B' } else { 'A' });
    let expired = token(
        &claims(now - 7200, now - 3600, "user"),
        Algorithm::HS256,
        SECRET,
    );
    let foreign = token(
        &claims(now, now + 3600, "user"),
        Algorithm::HS256,
        b"another secret of at least 32 bytes!",
    );
    let other_algorithm = token(&claims(now, now + 3600, "user"), Algorithm::HS512, SECRET);
    // issued in the future, beyond the clocks' leeway: no server issued it
    let from_the_future = token(
        &claims(now + 3600, now + 7200, "user"),
        Algorithm::HS256,
        SECRET,
    );
    // alg "none": header and payload, no signature
    let none = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = engine.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = engine.encode(serde_json::to_vec(&claims(now, now + 3600, "admin")).unwrap());
        format!("{header}.{payload}.")
    };
    for (what, bad) in [
        ("tampered payload", tampered.as_str()),
        ("altered signature", &bad_signature),
        ("expired", &expired),
        ("signed with another secret", &foreign),
        ("HS512", &other_algorithm),
        ("issued in the future", &from_the_future),
        ("alg none", &none),
        ("garbage", "not.a.token"),
    ] {
        let (status, body) = app.post(ME, json!({}), Some(bad), &[]).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(code(&body), "UNAUTHENTICATED", "{what}");
        assert_eq!(reason(&body), "invalid_token", "{what}");
    }
    let (status, body) = app
        .post(ME, json!({}), None, &[("authorization", "Basic YWRhOnB3")])
        .await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"));
    assert_eq!(reason(&body), "invalid_token");
}

#[tokio::test]
async fn a_password_change_retires_older_tokens_and_the_old_password() {
    let app = TestApp::start().await;
    app.register("ada@example.org", "ada", "first password")
        .await;
    let old = app.login("ada", "first password").await;
    let wrong_current = app
        .gql(
            "mutation { changePassword(currentPassword: \"nope nope\", newPassword: \"second password\") { position } }",
            json!({}),
            Some(&old),
        )
        .await;
    assert_eq!(code(&wrong_current), "VALIDATION");
    assert_eq!(reason(&wrong_current), "wrong_password");

    let changed = app
        .gql(
            "mutation { changePassword(currentPassword: \"first password\", newPassword: \"second password\") { position } }",
            json!({}),
            Some(&old),
        )
        .await;
    assert!(
        changed["data"]["changePassword"]["position"].is_i64(),
        "{changed}"
    );
    let (status, body) = app.post(ME, json!({}), Some(&old), &[]).await;
    assert_eq!(status, 401, "a token from before the change is refused");
    assert_eq!(reason(&body), "invalid_token");
    let failed = app
        .gql(
            "mutation { login(username: \"ada\", password: \"first password\") { accessToken } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(code(&failed), "UNAUTHENTICATED");
    assert_eq!(reason(&failed), "wrong_credentials");
    let new = app.login("ada", "second password").await;
    let position = changed["data"]["changePassword"]["position"].clone();
    let body = app.gql(ME, json!({ "p": position }), Some(&new)).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn login_attempts_are_throttled_per_account_and_per_address() {
    let mut setup = Setup::default();
    setup.app.identity.logins_per_account = NonZeroU32::new(3).unwrap();
    setup.app.identity.logins_per_address = NonZeroU32::new(6).unwrap();
    let app = TestApp::with(setup).await;
    app.register("ada@example.org", "ada", "correct horse")
        .await;
    let attempt = |username: &'static str, password: &'static str| {
        let app = &app;
        async move {
            app.gql(
                "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }",
                json!({ "u": username, "p": password }),
                None,
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(
            code(&attempt("ada", "wrong guess").await),
            "UNAUTHENTICATED"
        );
    }
    // the fourth attempt on this account is refused, even with the right password
    let limited = attempt("ada", "correct horse").await;
    assert_eq!(code(&limited), "RATE_LIMITED", "{limited}");
    assert_eq!(reason(&limited), "too_many_attempts");
    assert!(
        limited["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // the REST login shares the limit and says so in HTTP terms
    let response = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({ "username": "ADA", "password": "correct horse" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert_eq!(body["error"]["reason"], "too_many_attempts");
    assert_eq!(reason(&body), "too_many_attempts");

    // this address has now tried 5 times; other accounts get one more try, then the address is refused
    assert_eq!(
        code(&attempt("bob", "whatever pw").await),
        "UNAUTHENTICATED"
    );
    assert_eq!(code(&attempt("carol", "whatever pw").await), "RATE_LIMITED");
}

#[tokio::test]
async fn rest_login_shares_the_login_logic() {
    let app = TestApp::start().await;
    let (_, position) = app
        .register("ada@example.org", "ada", "correct horse")
        .await;
    let response = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({ "username": "ada@example.org", "password": "correct horse" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    let token = body["access_token"].as_str().unwrap();
    let body = app.gql(ME, json!({ "p": position }), Some(token)).await;
    assert!(body["errors"].is_null(), "{body}");

    let wrong = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({ "username": "ada", "password": "wrong one" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "wrong_credentials");
    let malformed = app
        .http
        .post(app.url("/api/login"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION");
    assert_eq!(body["error"]["reason"], "invalid_input");
    // a NUL in a field is refused, never sent to PostgreSQL
    let nul = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({ "username": "ada\u{0}", "password": "correct horse" }))
        .send()
        .await
        .unwrap();
    assert_eq!(nul.status(), 422);
    let body: Value = nul.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "nul_character");
}

#[tokio::test]
async fn a_retried_mutation_with_the_same_command_id_returns_the_first_result() {
    let app = TestApp::start().await;
    let register = "mutation($input: RegisterInput!, $id: UUID) { register(input: $input, commandId: $id) { userId position } }";
    let variables = json!({
        "input": { "email": "ada@example.org", "username": "ada", "password": "correct horse" },
        "id": "0190c3a4-0000-7000-8000-000000000001"
    });
    let first = app.gql(register, variables.clone(), None).await;
    let second = app.gql(register, variables, None).await;
    assert!(first["errors"].is_null(), "{first}");
    assert_eq!(
        first["data"], second["data"],
        "the retry answers like the first"
    );

    let (admin_id, admin) = app.admin().await;
    let user_id = first["data"]["register"]["userId"].as_str().unwrap();
    let grant =
        "mutation($u: UUID!, $id: UUID) { grantAdmin(userId: $u, commandId: $id) { position } }";
    let variables = json!({ "u": user_id, "id": "0190c3a4-0000-7000-8000-000000000002" });
    let first = app.gql(grant, variables.clone(), Some(&admin)).await;
    let second = app.gql(grant, variables, Some(&admin)).await;
    assert!(first["data"]["grantAdmin"]["position"].is_i64(), "{first}");
    assert_eq!(first["data"], second["data"]);
    let grants: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'AdminGranted'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(grants, 1);

    // revoking one's own admin role is refused, and says why
    let own = app
        .gql(
            "mutation($u: UUID!) { revokeAdmin(userId: $u) { position } }",
            json!({ "u": admin_id }),
            Some(&admin),
        )
        .await;
    assert_eq!(code(&own), "VALIDATION");
    assert_eq!(reason(&own), "cannot_revoke_own_admin");
}

#[tokio::test]
async fn a_query_with_the_position_a_mutation_returned_sees_the_change() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    for round in 0..5 {
        let (id, _) = app.user(&format!("user{round}")).await;
        let granted = app
            .gql(
                "mutation($u: UUID!) { grantAdmin(userId: $u) { position } }",
                json!({ "u": id }),
                Some(&admin),
            )
            .await;
        let position = granted["data"]["grantAdmin"]["position"].as_i64().unwrap();
        // at once, by argument
        let body = app
            .gql(
                "query($u: UUID!, $p: Int) { user(id: $u, minPosition: $p) { role } }",
                json!({ "u": id, "p": position }),
                Some(&admin),
            )
            .await;
        assert_eq!(body["data"]["user"]["role"], "ADMIN", "{body}");
        // and by header
        let revoked = app
            .gql(
                "mutation($u: UUID!) { revokeAdmin(userId: $u) { position } }",
                json!({ "u": id }),
                Some(&admin),
            )
            .await;
        let position = revoked["data"]["revokeAdmin"]["position"]
            .as_i64()
            .unwrap()
            .to_string();
        let (_, body) = app
            .post(
                "query($u: UUID!) { user(id: $u) { role } }",
                json!({ "u": id }),
                Some(&admin),
                &[("x-academy-min-position", &position)],
            )
            .await;
        assert_eq!(body["data"]["user"]["role"], "USER", "{body}");
    }
    // a position that was never written is the client's mistake
    let body = app.gql(ME, json!({ "p": 1_000_000 }), Some(&admin)).await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(reason(&body), "unknown_position");
    let (status, body) = app
        .post(
            ME,
            json!({}),
            Some(&admin),
            &[("x-academy-min-position", "soon")],
        )
        .await;
    assert_eq!((status, code(&body)), (400, "VALIDATION"));
    assert_eq!(reason(&body), "invalid_input");
}

#[tokio::test]
async fn admins_list_users_page_by_page() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let mut last = 0;
    for i in 0..5 {
        (_, last) = app
            .register(
                &format!("u{i}@example.org"),
                &format!("user{i}"),
                "long enough",
            )
            .await;
    }
    let page = "query($after: String, $p: Int) { users(first: 2, after: $after, role: USER, minPosition: $p) { nodes { username } pageInfo { hasNextPage endCursor } } }";
    let mut after = Value::Null;
    let mut names = Vec::new();
    loop {
        let body = app
            .gql(page, json!({ "after": after, "p": last }), Some(&admin))
            .await;
        let users = &body["data"]["users"];
        names.extend(
            users["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["username"].as_str().unwrap().to_owned()),
        );
        if !users["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = users["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(names, ["user0", "user1", "user2", "user3", "user4"]);
    for invalid in [
        "{ users(first: 1000) { nodes { id } } }",
        "{ users(after: \"bogus\") { nodes { id } } }",
    ] {
        let body = app.gql(invalid, json!({}), Some(&admin)).await;
        assert_eq!(code(&body), "VALIDATION", "{invalid}");
        assert_eq!(reason(&body), "invalid_input", "{invalid}");
    }
    let body = app
        .gql(
            "query($p: Int) { users(search: \"USER3\", minPosition: $p) { nodes { username } } }",
            json!({ "p": last }),
            Some(&admin),
        )
        .await;
    assert_eq!(
        body["data"]["users"]["nodes"],
        json!([{ "username": "user3" }])
    );
}

#[tokio::test]
async fn a_command_id_reused_for_other_input_or_by_someone_else_is_another_command() {
    let app = TestApp::start().await;
    let register = "mutation($input: RegisterInput!, $id: UUID) { register(input: $input, commandId: $id) { userId email } }";
    let id = "0190c3a4-0000-7000-8000-0000000000cc";
    let first = app
        .gql(register, json!({ "input": { "email": "one@example.org", "username": "one", "password": "long enough" }, "id": id }), None)
        .await;
    let second = app
        .gql(register, json!({ "input": { "email": "two@example.org", "username": "two", "password": "long enough" }, "id": id }), None)
        .await;
    assert_eq!(
        second["data"]["register"]["email"], "two@example.org",
        "{second}"
    );
    assert_ne!(
        first["data"]["register"]["userId"],
        second["data"]["register"]["userId"]
    );

    // the bootstrap's command id is out of every client's reach: registering the admin's email first does not
    // let anyone become, or block, the admin
    let (_, position) = app
        .register("root@example.org", "squatter", "squatter password")
        .await;
    let refused = app
        .state
        .services
        .app
        .identity
        .ensure_admin(
            &crate::bootstrap(),
            "root@example.org",
            "root",
            "root password 123",
        )
        .await
        .unwrap_err();
    let refused = api::error::ApiError::identity(refused);
    assert_eq!(refused.code, api::error::Code::Conflict);
    assert_eq!(refused.reason, Some("conflict"));
    let token = app.login("squatter", "squatter password").await;
    assert_eq!(
        app.gql(ME, json!({ "p": position }), Some(&token)).await["data"]["me"]["role"],
        "USER"
    );
}

#[tokio::test]
async fn registrations_are_throttled_per_address() {
    let mut setup = Setup::default();
    setup.app.identity.registrations_per_address = NonZeroU32::new(2).unwrap();
    let app = TestApp::with(setup).await;
    app.register("a@example.org", "aaa", "long enough").await;
    app.register("b@example.org", "bbb", "long enough").await;
    let body = app
        .gql(
            "mutation { register(input: {email: \"c@example.org\", username: \"ccc\", password: \"long enough\"}) { userId } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(code(&body), "RATE_LIMITED");
    assert_eq!(reason(&body), "too_many_attempts");
}

#[tokio::test]
async fn guessing_the_current_password_through_change_password_spends_the_login_budget() {
    let mut setup = Setup::default();
    setup.app.identity.logins_per_account = NonZeroU32::new(3).unwrap();
    let app = TestApp::with(setup).await;
    app.register("ada@example.org", "ada", "correct horse")
        .await;
    let token = app.login("ada", "correct horse").await;
    let guess = "mutation { changePassword(currentPassword: \"a guess 123\", newPassword: \"new password\") { position } }";
    for _ in 0..2 {
        let body = app.gql(guess, json!({}), Some(&token)).await;
        assert_eq!(code(&body), "VALIDATION");
        assert_eq!(reason(&body), "wrong_password");
    }
    assert_eq!(
        code(&app.gql(guess, json!({}), Some(&token)).await),
        "RATE_LIMITED"
    );
}

#[tokio::test]
async fn the_admin_role_of_an_account_that_does_not_exist_is_not_found() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    for mutation in ["grantAdmin", "revokeAdmin"] {
        let body = app
            .gql(
                &format!("mutation($u: UUID!) {{ {mutation}(userId: $u) {{ position }} }}"),
                json!({ "u": "00000000-0000-0000-0000-0000000000aa" }),
                Some(&admin),
            )
            .await;
        assert_eq!(code(&body), "NOT_FOUND", "{mutation}: {body}");
        assert_eq!(reason(&body), "account_not_found", "{mutation}");
    }
}
