use std::sync::Arc;

use domain::DomainEvent;
use domain::identity::{AccountEvent, Email, Role, Username, account_stream};
use domain::testing::at;
use eventlog::{AppendRequest, EventLog, ExpectedVersion, Metadata, NewEvent, Source};
use projections::RunnerConfig;
use projections::accounts::{self, Accounts, UserFilter};
use uuid::Uuid;

use crate::{WAIT, log, start};

async fn write(log: &EventLog, id: Uuid, events: &[AccountEvent]) -> i64 {
    let appended = log
        .append(AppendRequest::single(
            account_stream(id),
            ExpectedVersion::Any,
            events.iter().map(NewEvent::from_domain).collect(),
            Metadata::new(Source::Cli),
        ))
        .await
        .unwrap();
    appended.position().unwrap()
}

fn registered(n: u32) -> AccountEvent {
    AccountEvent::AccountRegistered {
        email: Email::parse(&format!("u{n}@example.org")).unwrap(),
        username: Username::parse(&format!("user{n}")).unwrap(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        role: Role::User,
        at: at(1_700_000_000 + i64::from(n)),
    }
}

#[tokio::test]
async fn accounts_follow_registrations_roles_and_password_changes_and_rebuild_to_the_same_rows() {
    let (_db, log) = log().await;
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    for (n, id) in ids.iter().enumerate() {
        write(&log, *id, &[registered(n as u32)]).await;
    }
    let by = ids[0];
    write(
        &log,
        ids[1],
        &[AccountEvent::AdminGranted {
            by,
            at: at(1_800_000_000),
        }],
    )
    .await;
    write(
        &log,
        ids[2],
        &[
            AccountEvent::AdminGranted {
                by,
                at: at(1_800_000_001),
            },
            AccountEvent::AdminRevoked {
                by,
                at: at(1_800_000_002),
            },
        ],
    )
    .await;
    let last = write(
        &log,
        ids[3],
        &[AccountEvent::PasswordChanged {
            password_hash: "$argon2id$other".into(),
            at: at(1_900_000_000),
        }],
    )
    .await;
    assert!(AccountEvent::TYPES.contains(&registered(0).event_type()));

    let (projections, stop, task) = start(&log, vec![Arc::new(Accounts)]);
    projections.wait_for(last, WAIT).await.unwrap();
    let live = accounts::list(log.pool(), &UserFilter::default(), None, 100)
        .await
        .unwrap();
    let roles: Vec<&str> = live.iter().map(|u| u.role.as_str()).collect();
    assert_eq!(roles, ["user", "admin", "user", "user"]);
    assert_eq!(live[3].password_changed_at.timestamp(), 1_900_000_000);
    assert_eq!(live[0].email, "u0@example.org");
    let admins = UserFilter {
        role: Some("admin".into()),
        search: None,
    };
    assert_eq!(
        accounts::list(log.pool(), &admins, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        accounts::find(log.pool(), ids[2])
            .await
            .unwrap()
            .unwrap()
            .username,
        "user2"
    );

    projections::rebuild(log.clone(), Arc::new(Accounts), RunnerConfig::default())
        .await
        .unwrap();
    let rebuilt = accounts::list(log.pool(), &UserFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(rebuilt, live, "a rebuild from the log gives the same rows");
    stop.send(true).unwrap();
    task.await.unwrap();
    let one_event_per_batch = RunnerConfig {
        batch_size: 1,
        build_batch_size: 1,
        ..RunnerConfig::default()
    };
    projections::rebuild(log.clone(), Arc::new(Accounts), one_event_per_batch)
        .await
        .unwrap();
    let rebuilt = accounts::list(log.pool(), &UserFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(rebuilt, live, "so does one event per batch");
}
