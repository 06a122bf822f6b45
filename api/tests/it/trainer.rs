//! The question trainer through the API: the bank, practising, statistics and the CSV export.

use serde_json::{Value, json};

use crate::{TestApp, code, reason};

const ADD: &str =
    "mutation($input: QuestionInput!) { addQuestion(input: $input) { questionId position } }";
const ANSWER: &str = "mutation($q: UUID!, $a: String!, $id: UUID) { answerQuestion(questionId: $q, answer: $a, commandId: $id) { answerId verdict score matchedKeyPoints missingKeyPoints negatedKeyPoints referenceAnswer position } }";

fn ownership() -> Value {
    json!({
        "level": "JUNIOR",
        "topic": "Rust",
        "text": "What does ownership mean in Rust?",
        "referenceAnswer": "Every value has a single owner and is dropped when the owner goes out of scope; assignment moves it.",
        "keyPoints": [
            { "concept": "single owner", "synonyms": ["one owner"] },
            { "concept": "dropped at end of scope", "synonyms": ["out of scope"] },
            { "concept": "move", "synonyms": ["moved"] }
        ]
    })
}

fn http() -> Value {
    json!({
        "level": "JUNIOR",
        "topic": "http",
        "text": "What is the difference between GET and POST?",
        "referenceAnswer": "GET reads a resource and is idempotent; POST sends data in the body.",
        "keyPoints": [
            { "concept": "get reads", "synonyms": ["read"] },
            { "concept": "idempotent" },
            { "concept": "body" }
        ]
    })
}

async fn add(app: &TestApp, admin: &str, input: Value) -> (String, i64) {
    let body = app.gql(ADD, json!({ "input": input }), Some(admin)).await;
    let payload = &body["data"]["addQuestion"];
    assert!(payload["questionId"].is_string(), "{body}");
    (
        payload["questionId"].as_str().unwrap().to_owned(),
        payload["position"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn a_user_practises_gets_graded_and_sees_their_statistics() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let (rust, _) = add(&app, &admin, ownership()).await;
    let (_, position) = add(&app, &admin, http()).await;
    let (_, user) = app.user("learner").await;

    // a random question of the level, then, once one is answered, the other one first
    let random =
        "query($p: Int) { randomQuestion(level: JUNIOR, minPosition: $p) { id level topic text } }";
    let card = app.gql(random, json!({ "p": position }), Some(&user)).await;
    assert_eq!(card["data"]["randomQuestion"]["level"], "JUNIOR", "{card}");
    let peek = app
        .gql(
            "{ randomQuestion(level: JUNIOR) { referenceAnswer } }",
            json!({}),
            Some(&user),
        )
        .await;
    assert_eq!(
        code(&peek),
        "VALIDATION",
        "a question card has no answer on it: {peek}"
    );
    assert_eq!(reason(&peek), "invalid_query");
    let good = app
        .gql(
            ANSWER,
            json!({ "q": rust, "a": "Each value has one owner, it is dropped when it goes out of scope, and assignment moves it." }),
            Some(&user),
        )
        .await;
    let result = &good["data"]["answerQuestion"];
    assert_eq!(result["verdict"], "CORRECT", "{good}");
    assert_eq!(result["missingKeyPoints"], json!([]));
    assert!(
        result["referenceAnswer"]
            .as_str()
            .unwrap()
            .starts_with("Every value")
    );
    let position = result["position"].as_i64().unwrap();
    for _ in 0..5 {
        let card = app
            .gql(
                "query($p: Int) { randomQuestion(level: JUNIOR, minPosition: $p) { topic } }",
                json!({ "p": position }),
                Some(&user),
            )
            .await;
        assert_eq!(
            card["data"]["randomQuestion"]["topic"], "http",
            "unanswered questions come first"
        );
    }
    let negated = app
        .gql(
            ANSWER,
            json!({ "q": rust, "a": "A value does not have a single owner and is never moved." }),
            Some(&user),
        )
        .await;
    let result = &negated["data"]["answerQuestion"];
    assert_eq!(result["verdict"], "INCORRECT", "{negated}");
    assert_eq!(result["negatedKeyPoints"], json!(["single owner", "move"]));
    let position = result["position"].as_i64().unwrap();

    let stats = app
        .gql(
            "query($p: Int) { myStats(level: JUNIOR, minPosition: $p) { level answered correct correctShare streak lastActivity } }",
            json!({ "p": position }),
            Some(&user),
        )
        .await;
    let junior = &stats["data"]["myStats"][0];
    assert_eq!(junior["answered"], 2, "{stats}");
    assert_eq!(junior["correct"], 1);
    assert_eq!(junior["correctShare"], 0.5);
    assert_eq!(junior["streak"], 0, "an incorrect answer ends the streak");
    let none = app
        .gql(
            "{ myStats(level: SENIOR) { answered } }",
            json!({}),
            Some(&user),
        )
        .await;
    assert_eq!(none["data"]["myStats"], json!([]));
}

fn variables_again(question: &str) -> Value {
    json!({
        "q": question,
        "a": "values have one owner and are moved on assignment",
        "id": "0190c3a4-0000-7000-8000-0000000000dd"
    })
}

#[tokio::test]
async fn answers_are_idempotent_and_verdicts_can_be_contested_once() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let (question, _) = add(&app, &admin, ownership()).await;
    let (_, user) = app.user("learner").await;
    let variables = variables_again(&question);
    let first = app.gql(ANSWER, variables.clone(), Some(&user)).await;
    let retry = app.gql(ANSWER, variables, Some(&user)).await;
    assert_eq!(
        first["data"], retry["data"],
        "a retry answers like the first"
    );
    let empty = app
        .gql(ANSWER, json!({ "q": question, "a": "   " }), Some(&user))
        .await;
    assert_eq!(code(&empty), "VALIDATION");
    assert_eq!(reason(&empty), "answer_length");
    let (_, admin_token) = app.admin().await;
    let retired = app
        .gql(
            "mutation($id: UUID!) { retireQuestion(id: $id) { position } }",
            json!({ "id": question }),
            Some(&admin_token),
        )
        .await;
    assert!(retired["errors"].is_null(), "{retired}");
    let late_retry = app
        .gql(ANSWER, variables_again(&question), Some(&user))
        .await;
    assert_eq!(
        first["data"], late_retry["data"],
        "even after the question was retired"
    );
    assert_eq!(
        first["data"]["answerQuestion"]["verdict"], "PARTIAL",
        "{first}"
    );
    let answer = first["data"]["answerQuestion"]["answerId"].clone();

    let contest = "mutation($a: UUID!) { contestVerdict(answerId: $a, reason: \"I was right\") { position } }";
    let contested = app.gql(contest, json!({ "a": answer }), Some(&user)).await;
    assert!(
        contested["data"]["contestVerdict"]["position"].is_i64(),
        "{contested}"
    );
    let again = app.gql(contest, json!({ "a": answer }), Some(&user)).await;
    assert!(
        again["data"]["contestVerdict"]["position"].is_null(),
        "contested once: {again}"
    );
    let (_, other) = app.user("other").await;
    let foreign = app.gql(contest, json!({ "a": answer }), Some(&other)).await;
    assert_eq!(code(&foreign), "NOT_FOUND", "only your own answers");
    assert_eq!(reason(&foreign), "answer_not_found");
    let events: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'VerdictContested'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(events, 1);

    let missing = app
        .gql(
            ANSWER,
            json!({ "q": "00000000-0000-0000-0000-000000000001", "a": "x" }),
            Some(&user),
        )
        .await;
    assert_eq!(code(&missing), "NOT_FOUND");
    assert_eq!(reason(&missing), "question_not_found");
}

#[tokio::test]
async fn admins_edit_and_retire_questions_and_history_stays_in_the_log() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let (question, _) = add(&app, &admin, ownership()).await;
    let mut edited = ownership();
    edited["text"] = json!("Explain ownership in Rust.");
    let body = app
        .gql(
            "mutation($id: UUID!, $input: QuestionInput!) { editQuestion(id: $id, input: $input) { position } }",
            json!({ "id": question, "input": edited }),
            Some(&admin),
        )
        .await;
    let position = body["data"]["editQuestion"]["position"].as_i64().unwrap();
    let details = app
        .gql(
            "query($id: UUID!, $p: Int) { question(id: $id, minPosition: $p) { text revision retired keyPoints { concept synonyms } } }",
            json!({ "id": question, "p": position }),
            Some(&admin),
        )
        .await;
    assert_eq!(
        details["data"]["question"]["text"],
        "Explain ownership in Rust."
    );
    assert_eq!(details["data"]["question"]["revision"], 2);
    assert_eq!(
        details["data"]["question"]["keyPoints"][0]["synonyms"],
        json!(["one owner"])
    );

    let retired = app
        .gql(
            "mutation($id: UUID!) { retireQuestion(id: $id) { position } }",
            json!({ "id": question }),
            Some(&admin),
        )
        .await;
    let position = retired["data"]["retireQuestion"]["position"]
        .as_i64()
        .unwrap();
    let (_, user) = app.user("learner").await;
    let card = app
        .gql(
            "query($p: Int) { randomQuestion(level: JUNIOR, minPosition: $p) { id } }",
            json!({ "p": position }),
            Some(&user),
        )
        .await;
    assert!(
        card["data"]["randomQuestion"].is_null(),
        "retired questions are not drawn: {card}"
    );
    let answer = app
        .gql(
            ANSWER,
            json!({ "q": question, "a": "one owner" }),
            Some(&user),
        )
        .await;
    assert_eq!(code(&answer), "CONFLICT");
    assert_eq!(reason(&answer), "question_retired");
    let list = app
        .gql(
            "{ active: questions { nodes { id } } all: questions(includeRetired: true) { nodes { id retired } } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(list["data"]["active"]["nodes"], json!([]));
    assert_eq!(list["data"]["all"]["nodes"][0]["retired"], true);
    let history: Vec<String> =
        sqlx::query_scalar("select event_type from events where stream_id = $1 order by version")
            .bind(format!("question-{question}"))
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        history,
        ["QuestionAdded", "QuestionEdited", "QuestionRetired"]
    );

    let invalid = app
        .gql(
            ADD,
            json!({ "input": { "level": "SENIOR", "topic": "x", "text": "Q?", "referenceAnswer": "A", "keyPoints": [] } }),
            Some(&admin),
        )
        .await;
    assert_eq!(code(&invalid), "VALIDATION");
    assert_eq!(reason(&invalid), "invalid_key_points");
}

#[tokio::test]
async fn admins_export_users_statistics_as_csv_that_spreadsheets_open() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let (question, _) = add(&app, &admin, ownership()).await;
    let mut last = 0;
    // an email a spreadsheet would run as a formula
    app.register("=1+1@example.org", "formula", "correct horse battery")
        .await;
    let formula = app.login("formula", "correct horse battery").await;
    for token in [app.user("ada").await.1, app.user("bob").await.1, formula] {
        let body = app
            .gql(
                ANSWER,
                json!({ "q": question, "a": "one owner, dropped out of scope, moves" }),
                Some(&token),
            )
            .await;
        last = body["data"]["answerQuestion"]["position"].as_i64().unwrap();
    }
    let url = app.url("/admin/users/export?level=junior");
    let anonymous = app.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "sign_in_required");
    let (_, user) = app.user("plain").await;
    let forbidden = app.http.get(&url).bearer_auth(&user).send().await.unwrap();
    assert_eq!(forbidden.status(), 403);
    let body: Value = forbidden.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "admin_only");
    let bad_level = app
        .http
        .get(app.url("/admin/users/export?level=lead"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_level.status(), 422);
    let body: Value = bad_level.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "unknown_level");
    assert_eq!(reason(&body), "unknown_level");

    let response = app
        .http
        .get(&url)
        .bearer_auth(&admin)
        .header("x-academy-min-position", last.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("users-junior.csv")
    );
    let bytes = response.bytes().await.unwrap();
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF"),
        "UTF-8 byte-order mark first"
    );
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "user_id",
            "username",
            "email",
            "level",
            "answered",
            "correct",
            "correct_share",
            "streak",
            "last_activity"
        ]
    );
    let mut rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    rows.sort_by(|a, b| a[1].cmp(&b[1]));
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0][1..7],
        ["ada", "ada@example.org", "junior", "1", "1", "1.00"]
    );
    assert_eq!(rows[1][1], "bob");
    assert_eq!(rows[2][2], "'=1+1@example.org", "a formula is neutralised");
    assert!(
        chrono::NaiveDateTime::parse_from_str(&rows[0][8], "%Y-%m-%d %H:%M:%S").is_ok(),
        "{}",
        rows[0][8]
    );
    let semicolons = app
        .http
        .get(app.url("/admin/users/export?delimiter=semicolon"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let header = String::from_utf8_lossy(&semicolons[3..])
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        header.starts_with("user_id;username;email;level"),
        "{header}"
    );

    let stats = app
        .gql(
            "query($p: Int) { userStats(level: JUNIOR, first: 1, minPosition: $p) { nodes { username answered correctShare } pageInfo { hasNextPage } } }",
            json!({ "p": last }),
            Some(&admin),
        )
        .await;
    assert_eq!(
        stats["data"]["userStats"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{stats}"
    );
    assert_eq!(stats["data"]["userStats"]["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn malformed_questions_and_contests_are_refused_with_their_reasons() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    for (field, value, why) in [
        ("topic", json!(" "), "topic_length"),
        ("text", json!(""), "question_text_length"),
        (
            "referenceAnswer",
            json!("x".repeat(10_001)),
            "reference_answer_length",
        ),
    ] {
        let mut input = ownership();
        input[field] = value;
        let body = app.gql(ADD, json!({ "input": input }), Some(&admin)).await;
        assert_eq!(code(&body), "VALIDATION", "{field}: {body}");
        assert_eq!(reason(&body), why, "{field}");
    }
    let unknown = app
        .gql(
            "mutation($id: UUID!, $input: QuestionInput!) { editQuestion(id: $id, input: $input) { position } }",
            json!({ "id": "00000000-0000-0000-0000-0000000000ab", "input": ownership() }),
            Some(&admin),
        )
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");
    assert_eq!(reason(&unknown), "question_not_found");

    let (question, _) = add(&app, &admin, ownership()).await;
    let (_, user) = app.user("learner").await;
    // the API checks an answer's length before grading it, with the decider's reason
    let long = app
        .gql(
            ANSWER,
            json!({ "q": question, "a": "owner ".repeat(1000) }),
            Some(&user),
        )
        .await;
    assert_eq!(code(&long), "VALIDATION", "{long}");
    assert_eq!(reason(&long), "answer_length");
    let good = app
        .gql(
            ANSWER,
            json!({ "q": question, "a": "Each value has one owner, it is dropped when it goes out of scope, and assignment moves it." }),
            Some(&user),
        )
        .await;
    let answer = &good["data"]["answerQuestion"];
    assert_eq!(answer["verdict"], "CORRECT", "{good}");
    let contest = "mutation($a: UUID!, $r: String!) { contestVerdict(answerId: $a, reason: $r) { position } }";
    let blank = app
        .gql(
            contest,
            json!({ "a": answer["answerId"], "r": "  " }),
            Some(&user),
        )
        .await;
    assert_eq!(code(&blank), "VALIDATION", "{blank}");
    assert_eq!(reason(&blank), "reason_length");
    let correct = app
        .gql(
            contest,
            json!({ "a": answer["answerId"], "r": "I was right" }),
            Some(&user),
        )
        .await;
    assert_eq!(code(&correct), "CONFLICT", "{correct}");
    assert_eq!(reason(&correct), "answer_already_correct");
}
