//! The authorization matrix: every root field the SDL marks `@admin` is refused to anonymous callers
//! (UNAUTHENTICATED) and to plain users (FORBIDDEN), and admins get past the guard. The fields are found by
//! reading the schema, and every root field must be classified, so a new field cannot slip in unguarded.

use std::collections::HashMap;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
use futures_util::StreamExt;

use crate::{TestApp, code, reason};

/// Root fields that are not admin-only, and who may use them. Adding a root field without `@admin` means
/// adding it here: a deliberate decision, reviewed with the change.
const NOT_ADMIN: &[(&str, &str, Access)] = &[
    ("Query", "me", Access::SignedIn),
    ("Mutation", "register", Access::Public),
    ("Mutation", "login", Access::Public),
    ("Mutation", "changePassword", Access::SignedIn),
    ("Query", "randomQuestion", Access::SignedIn),
    ("Query", "myStats", Access::SignedIn),
    ("Mutation", "answerQuestion", Access::SignedIn),
    ("Mutation", "contestVerdict", Access::SignedIn),
    ("Query", "cars", Access::SignedIn),
    ("Query", "car", Access::SignedIn),
    ("Query", "carMakes", Access::SignedIn),
    ("Query", "tracks", Access::Public),
    ("Query", "track", Access::Public),
    ("Query", "myTracks", Access::SignedIn),
    ("Query", "mySubmissions", Access::SignedIn),
    ("Query", "reviewsToDo", Access::SignedIn),
    ("Query", "reviewsReceived", Access::SignedIn),
    ("Query", "diary", Access::SignedIn),
    ("Mutation", "enroll", Access::SignedIn),
    ("Mutation", "leaveTrack", Access::SignedIn),
    ("Mutation", "submitSolution", Access::SignedIn),
    ("Mutation", "submitReview", Access::SignedIn),
    ("Mutation", "writeDiaryEntry", Access::SignedIn),
    ("Query", "notifications", Access::SignedIn),
    ("Query", "unreadNotificationCount", Access::SignedIn),
    ("Mutation", "markNotificationsRead", Access::SignedIn),
    ("Subscription", "notifications", Access::SignedIn),
    ("Query", "board", Access::SignedIn),
    ("Query", "mySlots", Access::SignedIn),
    ("Query", "slot", Access::SignedIn),
    ("Query", "myPoints", Access::SignedIn),
    ("Mutation", "publishSlot", Access::SignedIn),
    ("Mutation", "bookSlot", Access::SignedIn),
    ("Mutation", "cancelSlot", Access::SignedIn),
    ("Mutation", "giveFeedback", Access::SignedIn),
    ("Mutation", "acceptFeedback", Access::SignedIn),
    ("Mutation", "disputeFeedback", Access::SignedIn),
    ("Mutation", "reportNoShow", Access::SignedIn),
    ("Mutation", "contestNoShow", Access::SignedIn),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    Public,
    SignedIn,
}

struct Field {
    root: &'static str,
    name: String,
    operation: String,
    admin: bool,
}

/// Every root field of the schema, with an operation that calls it with placeholder arguments.
fn root_fields() -> Vec<Field> {
    let document = parse_schema(api::graphql::sdl()).expect("the SDL parses");
    let types: HashMap<String, &TypeKind> = document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(t) => Some((t.node.name.node.to_string(), &t.node.kind)),
            _ => None,
        })
        .collect();
    let mut fields = Vec::new();
    for (root, keyword) in [
        ("Query", "query"),
        ("Mutation", "mutation"),
        ("Subscription", "subscription"),
    ] {
        let Some(TypeKind::Object(object)) = types.get(root) else {
            continue;
        };
        for field in &object.fields {
            let field = &field.node;
            let arguments: Vec<String> = field
                .arguments
                .iter()
                .filter(|a| !a.node.ty.node.nullable && a.node.default_value.is_none())
                .map(|a| format!("{}: {}", a.node.name.node, literal(&a.node.ty.node, &types)))
                .collect();
            let arguments = if arguments.is_empty() {
                String::new()
            } else {
                format!("({})", arguments.join(", "))
            };
            let selection = if is_composite(&field.ty.node, &types) {
                " { __typename }"
            } else {
                ""
            };
            fields.push(Field {
                root,
                name: field.name.node.to_string(),
                operation: format!("{keyword} {{ {}{arguments}{selection} }}", field.name.node),
                admin: field.directives.iter().any(|d| d.node.name.node == "admin"),
            });
        }
    }
    fields
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

fn is_composite(ty: &Type, types: &HashMap<String, &TypeKind>) -> bool {
    matches!(
        types.get(named(ty)),
        Some(TypeKind::Object(_) | TypeKind::Interface(_) | TypeKind::Union(_))
    )
}

/// A literal of the type (an argument's, or an input field's).
fn literal(ty: &Type, types: &HashMap<String, &TypeKind>) -> String {
    if let BaseType::List(inner) = &ty.base {
        return format!("[{}]", literal(inner, types));
    }
    match named(ty) {
        "UUID" => "\"00000000-0000-0000-0000-0000000000aa\"".to_owned(),
        "String" | "ID" => "\"placeholder\"".to_owned(),
        "Int" => "1".to_owned(),
        "Float" => "1.0".to_owned(),
        "Boolean" => "true".to_owned(),
        "DateTime" => "\"2030-01-01T00:00:00Z\"".to_owned(),
        other => match types.get(other) {
            Some(TypeKind::Enum(e)) => e.values[0].node.value.node.to_string(),
            Some(TypeKind::InputObject(input)) => {
                let fields: Vec<String> = input
                    .fields
                    .iter()
                    .filter(|f| !f.node.ty.node.nullable && f.node.default_value.is_none())
                    .map(|f| format!("{}: {}", f.node.name.node, literal(&f.node.ty.node, types)))
                    .collect();
                format!("{{ {} }}", fields.join(", "))
            }
            _ => panic!("teach the authorization matrix a placeholder for the type {other}"),
        },
    }
}

/// The error code the first response of `operation` carries, as `token`'s holder (`None` when it succeeds or
/// fails for a reason other than authorization).
async fn outcome(app: &TestApp, field: &Field, viewer: api::auth::Viewer) -> Option<String> {
    let request = async_graphql::Request::new(field.operation.clone())
        .data(viewer)
        .data(api::graphql::RequestInfo::default());
    let response = if field.root == "Subscription" {
        let mut stream = app.state.schema.execute_stream(request);
        match tokio::time::timeout(std::time::Duration::from_millis(500), stream.next()).await {
            Ok(Some(response)) => response,
            // the subscription is open and waiting for events: the guard let it through
            Ok(None) | Err(_) => return None,
        }
    } else {
        app.state.schema.execute(request).await
    };
    let body = serde_json::to_value(&response).unwrap();
    if body["errors"].is_null() {
        return None;
    }
    Some(code(&body).to_owned())
}

#[tokio::test]
async fn every_admin_field_is_refused_to_anonymous_callers_and_plain_users() {
    let app = TestApp::start().await;
    let (user_id, _) = app.user("plain").await;
    let (admin_id, _) = app.admin().await;
    let user = api::auth::Viewer::User {
        id: user_id.parse().unwrap(),
        role: domain::identity::Role::User,
    };
    let admin = api::auth::Viewer::User {
        id: admin_id.parse().unwrap(),
        role: domain::identity::Role::Admin,
    };

    let fields = root_fields();
    let admin_fields: Vec<&Field> = fields.iter().filter(|f| f.admin).collect();
    assert!(
        admin_fields.len() >= 6,
        "the schema's admin fields were not found: {:?}",
        admin_fields.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    for field in &admin_fields {
        assert_eq!(
            outcome(&app, field, api::auth::Viewer::Anonymous)
                .await
                .as_deref(),
            Some("UNAUTHENTICATED"),
            "{}.{} must refuse anonymous callers: {}",
            field.root,
            field.name,
            field.operation
        );
        assert_eq!(
            outcome(&app, field, user).await.as_deref(),
            Some("FORBIDDEN"),
            "{}.{} must refuse plain users",
            field.root,
            field.name
        );
        let as_admin = outcome(&app, field, admin).await;
        assert!(
            !matches!(as_admin.as_deref(), Some("UNAUTHENTICATED" | "FORBIDDEN")),
            "{}.{} must let admins through, got {as_admin:?}",
            field.root,
            field.name
        );
    }
}

#[tokio::test]
async fn every_root_field_is_either_admin_only_or_classified_here() {
    let app = TestApp::start().await;
    for field in root_fields().iter().filter(|f| !f.admin) {
        let Some((_, _, access)) = NOT_ADMIN
            .iter()
            .find(|(root, name, _)| *root == field.root && *name == field.name)
        else {
            panic!(
                "{}.{} is neither @admin nor listed in NOT_ADMIN: decide who may use it",
                field.root, field.name
            );
        };
        if *access == Access::SignedIn {
            assert_eq!(
                outcome(&app, field, api::auth::Viewer::Anonymous)
                    .await
                    .as_deref(),
                Some("UNAUTHENTICATED"),
                "{}.{} is for signed-in users only",
                field.root,
                field.name
            );
        }
    }
}

#[tokio::test]
async fn admin_fields_are_refused_over_http_too() {
    let app = TestApp::start().await;
    let (_, token) = app.user("plain").await;
    let (status, body) = app
        .post(
            "{ projections { name } }",
            serde_json::json!({}),
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(code(&body), "FORBIDDEN");
    assert_eq!(reason(&body), "admin_only");
    assert!(body["data"].is_null());
    let body = app
        .gql("{ users { nodes { id } } }", serde_json::json!({}), None)
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(reason(&body), "sign_in_required");
}
