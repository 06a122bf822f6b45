//! Ids derived from a client's idempotency key stay what they were in earlier releases, so a client retrying
//! across an upgrade still names its first command. The expected ids were computed from the derivation as it
//! stood when times were plain Unix seconds: an instant in a command id's input is its Unix seconds.

use chrono::DateTime;
use commands::interviews::{Interviews, PublishSlot};
use commands::tracks::{NewTrack, Tracks};
use commands::{Actor, Request, Source};
use domain::Timestamp;
use domain::identity::Role as AccountRole;
use domain::interviews::{Policy, Role};
use domain::tracks::{AssignmentSpec, Criterion, TrackEvent, track_stream};
use domain::trainer::Level;
use uuid::Uuid;

use crate::executor;

const NOW: i64 = 1_800_000_000;
/// Two days after `NOW`.
const LATER: i64 = 1_800_172_800;

fn request(id: Uuid, role: AccountRole, key: Option<Uuid>) -> Request {
    let at = DateTime::from_timestamp(NOW, 0).unwrap();
    Request::new(Actor::User { id, role }, Source::Graphql, at).key(key)
}

#[tokio::test]
async fn a_slots_id_derives_from_the_key_and_the_start_in_unix_seconds() {
    let (_db, _log, executor) = executor().await;
    let interviews = Interviews::new(executor, Policy::default());
    let owner = request(
        Uuid::from_u128(1),
        AccountRole::User,
        Some(Uuid::from_u128(42)),
    );
    let published = interviews
        .publish_slot(
            &owner,
            PublishSlot {
                role: Role::Interviewer,
                start: Timestamp::from_unix_seconds(LATER).unwrap(),
                minutes: 60,
                meeting_link: "https://meet.google.com/abc-defg-hij".into(),
                topic: "Rust".into(),
                level: Level::Middle,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        published.slot_id,
        Uuid::parse_str("8575acc3-a763-542e-8b02-e94db1ad77b9").unwrap()
    );
}

#[tokio::test]
async fn an_extensions_command_id_derives_from_the_key_and_the_deadline_in_unix_seconds() {
    let (_db, log, executor) = executor().await;
    let tracks = Tracks::new(executor);
    let key = Some(Uuid::from_u128(42));
    let admin = request(Uuid::from_u128(9), AccountRole::Admin, key);
    let criterion = Criterion {
        name: "Correctness".into(),
        description: String::new(),
        min_score: 0,
        max_score: 5,
    };
    let assignment = AssignmentSpec {
        title: "A CLI".into(),
        description: String::new(),
        hours: 24,
    };
    let created = tracks
        .create_track(
            &admin,
            NewTrack {
                title: "Backend in Rust".into(),
                description: String::new(),
                min_participants: 1,
                max_participants: None,
                criteria: vec![criterion],
                assignments: vec![assignment],
            },
        )
        .await
        .unwrap();
    let track = created.track_id;
    assert_eq!(
        track,
        Uuid::parse_str("7dd295a7-8669-5518-a26d-873808f08ea9").unwrap()
    );
    let participant = request(Uuid::from_u128(1), AccountRole::User, None);
    tracks.enroll(&participant, track).await.unwrap();
    let deadline = Timestamp::from_unix_seconds(LATER).unwrap();
    tracks
        .extend_deadline(&admin, track, 0, deadline)
        .await
        .unwrap();

    let stream = log
        .read_whole_stream(track_stream(track).as_str())
        .await
        .unwrap();
    let extended = stream.last().unwrap();
    assert!(matches!(
        extended.decode().unwrap(),
        TrackEvent::DeadlineExtended { .. }
    ));
    assert_eq!(
        extended.command_id,
        Some(Uuid::parse_str("95e3bbe5-8218-5228-b784-6dbd030aebd1").unwrap())
    );
}
