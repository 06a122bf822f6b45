//! Schema-driven fuzzing: every root field of the committed SDL (`api/schema.graphql`), queries and mutations,
//! called through the real router as anonymous, a plain user and an admin, once with minimal valid arguments
//! and then once per malformed argument (a wrong type, an empty string, a NUL character, a huge or negative Int,
//! a malformed UUID, a far-future or far-past DateTime, an unknown enum value, an empty list), also inside input
//! objects. Refusals (`VALIDATION`, `NOT_FOUND`, `FORBIDDEN`, …) are fine; a 5xx, an `INTERNAL` error or a body
//! that is not JSON is not.
//!
//! Subscriptions are left out: they run over the WebSocket (`subscriptions.rs`), and their arguments
//! (`after: Int`, `types: [String!]`) reach the same log reads the queries' `minPosition` does.
//!
//! The minimal calls must pass the engine's validation (no `invalid_query`), so the generator cannot drift into
//! fuzzing only the parser.

use std::collections::HashMap;
use std::time::Instant;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{BaseType, FieldDefinition, Type, TypeKind};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use crate::TestApp;

const SDL: &str = include_str!("../../schema.graphql");

/// Findings the fuzz reaches that cannot be fixed in the API's resolvers: (root field, argument label, why).
/// A case leaves the list as soon as its cause is fixed (the test insists each entry still matches a call).
const KNOWN: &[(&str, &str, &str)] = &[];

/// What the SDL says, by type name.
struct Schema {
    types: HashMap<String, TypeKind>,
    query: Vec<FieldDefinition>,
    mutation: Vec<FieldDefinition>,
}

impl Schema {
    fn parse() -> Self {
        let document = parse_schema(SDL).expect("api/schema.graphql parses");
        let mut types = HashMap::new();
        for definition in document.definitions {
            if let async_graphql::parser::types::TypeSystemDefinition::Type(ty) = definition {
                types.insert(ty.node.name.node.to_string(), ty.node.kind);
            }
        }
        let root = |name: &str| match types.get(name) {
            Some(TypeKind::Object(object)) => object
                .fields
                .iter()
                .map(|f| f.node.clone())
                .collect::<Vec<_>>(),
            _ => panic!("no {name} type in the SDL"),
        };
        let query = root("Query");
        let mutation = root("Mutation");
        Self {
            types,
            query,
            mutation,
        }
    }

    fn named(ty: &Type) -> &str {
        match &ty.base {
            BaseType::Named(name) => name.as_str(),
            BaseType::List(inner) => Self::named(inner),
        }
    }

    /// A minimal valid value of a type (nullable or not).
    fn valid(&self, ty: &Type) -> Value {
        match &ty.base {
            BaseType::List(inner) => json!([self.valid(inner)]),
            BaseType::Named(name) => self.valid_named(name.as_str()),
        }
    }

    fn valid_named(&self, name: &str) -> Value {
        match name {
            "String" | "ID" => json!("x"),
            "Int" => json!(1),
            "Float" => json!(1.0),
            "Boolean" => json!(true),
            "UUID" => json!(uuid::Uuid::new_v4().to_string()),
            "DateTime" => json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()),
            "JSON" => json!({}),
            other => match self.types.get(other) {
                Some(TypeKind::Enum(e)) => json!(e.values[0].node.value.node.as_str()),
                Some(TypeKind::InputObject(input)) => {
                    let mut object = Map::new();
                    for field in &input.fields {
                        let field = &field.node;
                        if !field.ty.node.nullable && field.default_value.is_none() {
                            object.insert(field.name.node.to_string(), self.valid(&field.ty.node));
                        }
                    }
                    Value::Object(object)
                }
                _ => panic!("no input type {other}"),
            },
        }
    }

    /// Malformed values of a type, each labelled: one thing wrong at a time, the rest minimal and valid.
    fn invalid(&self, ty: &Type) -> Vec<(String, Value)> {
        let name = match &ty.base {
            BaseType::List(inner) => {
                let mut variants = vec![("empty list".to_owned(), json!([]))];
                for (label, value) in self.invalid(inner) {
                    variants.push((format!("[{label}]"), json!([value])));
                }
                return variants;
            }
            BaseType::Named(name) => name.as_str(),
        };
        let plain = |list: Vec<(&str, Value)>| {
            list.into_iter()
                .map(|(l, v)| (l.to_owned(), v))
                .collect::<Vec<_>>()
        };
        match name {
            "String" | "ID" => plain(vec![
                ("wrong type", json!(1)),
                ("empty", json!("")),
                ("NUL", json!("\u{0}")),
                ("NUL inside", json!("x\u{0}y")),
            ]),
            "Int" => plain(vec![
                ("wrong type", json!("x")),
                ("huge", json!(2_147_483_647)),
                ("negative", json!(-1)),
                ("most negative", json!(-2_147_483_648_i64)),
            ]),
            "Float" => plain(vec![
                ("wrong type", json!("x")),
                ("negative", json!(-1.0)),
                ("huge", json!(1e308)),
            ]),
            "Boolean" => plain(vec![("wrong type", json!("x"))]),
            "UUID" => plain(vec![
                ("wrong type", json!(1)),
                ("malformed", json!("not-a-uuid")),
                ("empty", json!("")),
            ]),
            "DateTime" => plain(vec![
                ("wrong type", json!(1)),
                ("malformed", json!("x")),
                ("far future", json!("+262142-12-31T23:59:59Z")),
                ("far past", json!("-262143-01-01T00:00:00Z")),
            ]),
            "JSON" => Vec::new(),
            other => match self.types.get(other) {
                Some(TypeKind::Enum(_)) => plain(vec![("unknown value", json!("NOT_A_VALUE"))]),
                Some(TypeKind::InputObject(input)) => {
                    let mut variants = plain(vec![("wrong type", json!("x"))]);
                    let valid = self.valid_named(other);
                    for field in &input.fields {
                        let field = &field.node;
                        let key = field.name.node.to_string();
                        for (label, value) in self.invalid(&field.ty.node) {
                            let mut object = valid.clone();
                            object[&key] = value;
                            variants.push((format!("{key}: {label}"), object));
                        }
                    }
                    variants
                }
                _ => panic!("no input type {other}"),
            },
        }
    }

    /// The selection set of a field returning `ty` (empty for scalars and enums): scalar fields of objects, at
    /// most two levels deep; a connection's `pageInfo { hasNextPage }`.
    fn selection(&self, ty: &Type, depth: usize) -> Option<String> {
        let name = Self::named(ty);
        let Some(TypeKind::Object(object)) = self.types.get(name) else {
            return Some(String::new());
        };
        if name.ends_with("Connection") {
            return Some(" { pageInfo { hasNextPage } }".to_owned());
        }
        let mut fields = Vec::new();
        for field in &object.fields {
            let field = &field.node;
            let required = field
                .arguments
                .iter()
                .any(|a| !a.node.ty.node.nullable && a.node.default_value.is_none());
            if required {
                continue;
            }
            let inner = Self::named(&field.ty.node);
            match self.types.get(inner) {
                Some(TypeKind::Object(_)) if depth < 2 && !inner.ends_with("Connection") => {
                    if let Some(sub) = self.selection(&field.ty.node, depth + 1)
                        && !sub.is_empty()
                    {
                        fields.push(format!("{}{sub}", field.name.node));
                    }
                }
                Some(TypeKind::Object(_) | TypeKind::Interface(_) | TypeKind::Union(_)) => {}
                _ => fields.push(field.name.node.to_string()),
            }
        }
        (!fields.is_empty()).then(|| format!(" {{ {} }}", fields.join(" ")))
    }
}

/// One request of the fuzz.
struct Case {
    field: String,
    label: String,
    query: String,
    variables: Value,
}

fn cases(schema: &Schema, operation: &str, fields: &[FieldDefinition]) -> Vec<Case> {
    let mut cases = Vec::new();
    for field in fields {
        let name = field.name.node.to_string();
        let selection = schema
            .selection(&field.ty.node, 1)
            .unwrap_or_else(|| panic!("{name}: nothing to select"));
        let arguments: Vec<_> = field.arguments.iter().map(|a| &a.node).collect();
        let is_required = |a: &&async_graphql::parser::types::InputValueDefinition| {
            !a.ty.node.nullable && a.default_value.is_none()
        };
        let required: Map<String, Value> = arguments
            .iter()
            .filter(|a| is_required(a))
            .map(|a| (a.name.node.to_string(), schema.valid(&a.ty.node)))
            .collect();
        // the query declares a variable for each argument it passes
        let query_for = |passed: &[&str]| {
            let used: Vec<_> = arguments
                .iter()
                .filter(|a| passed.contains(&a.name.node.as_str()))
                .collect();
            if used.is_empty() {
                return format!("{operation} {{ {name}{selection} }}");
            }
            let declared: Vec<_> = used
                .iter()
                .map(|a| format!("${}: {}", a.name.node, a.ty.node))
                .collect();
            let passed: Vec<_> = used
                .iter()
                .map(|a| format!("{0}: ${0}", a.name.node))
                .collect();
            format!(
                "{operation}({}) {{ {name}({}){selection} }}",
                declared.join(", "),
                passed.join(", ")
            )
        };
        let required_names: Vec<&str> = required.keys().map(String::as_str).collect();
        cases.push(Case {
            field: name.clone(),
            label: "valid".to_owned(),
            query: query_for(&required_names),
            variables: Value::Object(required.clone()),
        });
        for argument in &arguments {
            let key = argument.name.node.to_string();
            let mut passed = required_names.clone();
            if !required.contains_key(&key) {
                passed.push(argument.name.node.as_str());
            }
            let query = query_for(&passed);
            let mut invalid = schema.invalid(&argument.ty.node);
            if key == "after" {
                invalid.extend(forged_cursors());
            }
            for (label, value) in invalid {
                let mut variables = required.clone();
                variables.insert(key.clone(), value);
                cases.push(Case {
                    field: name.clone(),
                    label: format!("{key}: {label}"),
                    query: query.clone(),
                    variables: Value::Object(variables),
                });
            }
        }
    }
    cases
}

/// `after` cursors a client could forge: well-formed (base64 of JSON, as async-graphql's `OpaqueCursor` encodes
/// them) in each shape the lists use, with values out of range (a NUL, a time PostgreSQL cannot hold, extreme
/// numbers).
fn forged_cursors() -> Vec<(String, Value)> {
    use base64::Engine;
    let id = uuid::Uuid::new_v4().to_string();
    let far_past = "-262143-01-01T00:00:00Z";
    [
        json!(i64::MAX),
        json!(-1),
        json!([far_past, 1]),
        json!(["+262142-12-31T23:59:59Z", i64::MAX]),
        json!([i64::MIN, id]),
        json!([i64::MAX, id]),
        json!([id, "\u{0}"]),
        json!(["\u{0}", 1, id]),
        json!(["x", i64::MIN, id]),
    ]
    .into_iter()
    .map(|cursor| {
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cursor.to_string());
        (format!("forged cursor {cursor}"), json!(encoded))
    })
    .collect()
}

/// Why a response is a failure, if it is one (`minimal`: the call's arguments are all valid).
fn failure(status: u16, body: &Value, minimal: bool) -> Option<String> {
    if status >= 500 {
        return Some(format!("HTTP {status}"));
    }
    if !body.is_object() {
        return Some("the body is not a JSON object".to_owned());
    }
    let internal = body["errors"].as_array().is_some_and(|errors| {
        errors
            .iter()
            .any(|e| e["extensions"]["code"].as_str() == Some("INTERNAL"))
    });
    let refused = minimal
        && body["errors"].as_array().is_some_and(|errors| {
            errors
                .iter()
                .any(|e| e["extensions"]["reason"].as_str() == Some("invalid_query"))
        });
    if refused {
        return Some("the minimal call is not valid GraphQL".to_owned());
    }
    internal.then(|| "an INTERNAL error".to_owned())
}

#[tokio::test]
async fn every_root_field_survives_minimal_and_malformed_arguments() {
    let started = Instant::now();
    let app = TestApp::start().await;
    let (_, user) = app.user("fuzzer").await;
    let (_, admin) = app.admin().await;

    let schema = Schema::parse();
    let mut all = cases(&schema, "query", &schema.query);
    all.extend(cases(&schema, "mutation", &schema.mutation));
    assert!(all.iter().any(|c| c.field == "me") && all.iter().any(|c| c.field == "register"));

    let roles: [(&str, Option<&str>); 3] = [
        ("anonymous", None),
        ("user", Some(user.as_str())),
        ("admin", Some(admin.as_str())),
    ];
    let calls: Vec<_> = all
        .iter()
        .flat_map(|case| roles.iter().map(move |role| (case, *role)))
        .collect();
    let total = calls.len();
    let app = &app;
    let results: Vec<_> = futures_util::stream::iter(calls)
        .map(|(case, (role, token))| async move {
            let (status, body) = app
                .post(&case.query, case.variables.clone(), token, &[])
                .await;
            (case, role, status, body)
        })
        .buffer_unordered(8)
        .collect()
        .await;

    let mut failures = Vec::new();
    let mut known_seen = vec![false; KNOWN.len()];
    for (case, role, status, body) in results {
        let Some(why) = failure(status, &body, case.label == "valid") else {
            continue;
        };
        if let Some(i) = KNOWN
            .iter()
            .position(|(field, label, _)| *field == case.field && *label == case.label)
        {
            known_seen[i] = true;
            continue;
        }
        failures.push(format!(
            "{} as {role} ({}): {why}\n  query: {}\n  variables: {}\n  body: {body}",
            case.field, case.label, case.query, case.variables
        ));
    }
    failures.sort();
    let stale: Vec<_> = KNOWN
        .iter()
        .zip(&known_seen)
        .filter(|(_, seen)| !**seen)
        .map(|(k, _)| format!("{} ({})", k.0, k.1))
        .collect();
    eprintln!(
        "fuzz: {total} calls ({} cases x 3 roles) in {:.1?}",
        all.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} calls failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        stale.is_empty(),
        "known findings no call reaches any more (take them off KNOWN): {stale:?}"
    );
}
