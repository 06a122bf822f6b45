//! Snapshots: a command on a track whose stream holds 10,000 events, loading a snapshot and its tail against
//! folding every event.
//!
//! The track never starts (its minimum is its maximum, never reached), so participants can enroll and leave
//! again and again; the history is decided in memory by the real `Track` decider and appended in chunks. The
//! measured commands enroll new participants, each through the executor as the API sends it, with snapshots and
//! without, alternating.

use std::time::{Duration, Instant};

use commands::CommandExecutor;
use domain::tracks::{
    AssignmentSpec, Criterion, Track, TrackCommand, TrackEvent, TrackSpec, track_stream,
};
use domain::{Decider, Timestamp};
use eventlog::{AppendRequest, EventLog, ExpectedVersion, Metadata, Source};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::thousands as n;

#[derive(Debug, Serialize)]
pub struct SnapshotFigures {
    pub snapshot_stream_events: i64,
    pub snapshot_commands: usize,
    pub with_snapshots_ms: f64,
    pub without_snapshots_ms: f64,
}

impl SnapshotFigures {
    pub(super) fn print(&self) {
        println!(
            "  a command on a {}-event track: {:.2} ms with snapshots, {:.2} ms folding every event ({:.0} x), mean of {}",
            n(self.snapshot_stream_events as f64),
            self.with_snapshots_ms,
            self.without_snapshots_ms,
            self.without_snapshots_ms / self.with_snapshots_ms,
            n(self.snapshot_commands as f64),
        );
    }
}

pub(super) async fn measure(
    pool: &PgPool,
    events: usize,
    commands: usize,
) -> anyhow::Result<SnapshotFigures> {
    let log = EventLog::new(pool.clone());
    let track = Uuid::now_v7();
    let stream = track_stream(track);
    let at = Timestamp::from(chrono::Utc::now());
    let history = history(at, events)?;
    for chunk in history.chunks(500) {
        let version = log.stream_version(stream.as_str()).await?;
        log.append(AppendRequest::single(
            stream.clone(),
            ExpectedVersion::Exactly(version),
            commands::new_events(chunk),
            Metadata::new(Source::Cli),
        ))
        .await?;
    }
    let stream_events = log.stream_version(stream.as_str()).await?;

    let with = CommandExecutor::new(log.clone());
    let without = CommandExecutor::new(log.clone()).without_snapshots();
    // the first load stores the snapshot the measured commands start from
    with.load::<Track>(&stream).await?;
    let (mut with_took, mut without_took) = (Duration::ZERO, Duration::ZERO);
    for round in 0..commands {
        let executor = if round % 2 == 0 { &with } else { &without };
        let command = TrackCommand::Enroll {
            participant: Uuid::now_v7(),
            at,
        };
        let started = Instant::now();
        executor
            .execute::<Track>(&stream, &command, &Metadata::new(Source::Cli))
            .await
            .map_err(|e| anyhow::anyhow!("a track command failed: {e}"))?;
        let took = started.elapsed();
        if round % 2 == 0 {
            with_took += took;
        } else {
            without_took += took;
        }
    }
    let mean = |took: Duration| took.as_secs_f64() * 1e3 / (commands / 2).max(1) as f64;
    Ok(SnapshotFigures {
        snapshot_stream_events: stream_events,
        snapshot_commands: commands,
        with_snapshots_ms: mean(with_took),
        without_snapshots_ms: mean(without_took),
    })
}

/// About `events` events of a track that never starts: created, then participants enrolling and leaving.
fn history(at: Timestamp, events: usize) -> anyhow::Result<Vec<TrackEvent>> {
    let assignment = AssignmentSpec {
        title: "Ownership".into(),
        description: "Write a linked list".into(),
        hours: 24,
    };
    let criterion = Criterion {
        name: "Correctness".into(),
        description: "It works".into(),
        min_score: 0,
        max_score: 5,
    };
    let max = domain::tracks::MAX_PARTICIPANTS;
    let spec = TrackSpec::parse(
        "Benchmark cohort",
        "A track whose stream grows long",
        max,
        Some(max),
        vec![criterion],
        vec![assignment],
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut state = Track::initial_state();
    let mut history = Vec::with_capacity(events);
    let mut decide = |command: TrackCommand, history: &mut Vec<TrackEvent>| {
        let decided = Track::decide(&command, &state).map_err(|e| anyhow::anyhow!("{e}"))?;
        for event in decided {
            state = Track::evolve(state.take(), &event);
            history.push(event);
        }
        anyhow::Ok(())
    };
    let by = Uuid::now_v7();
    decide(TrackCommand::Create { spec, by, at }, &mut history)?;
    while history.len() < events {
        let participant = Uuid::now_v7();
        decide(TrackCommand::Enroll { participant, at }, &mut history)?;
        decide(TrackCommand::Leave { participant, at }, &mut history)?;
    }
    Ok(history)
}
