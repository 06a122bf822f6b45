//! Read-your-writes: how long after a mutation starts its own read sees it, at a steady rate of commands.
//!
//! Every projection runs live, as in `academy serve`. Trainees answer questions of the starter bank at
//! `--ryw-rate` commands per second (an open loop: a command starts every 1/rate seconds whether or not the
//! earlier ones finished); each waits, as a query with `minPosition` does, until the `trainer` read model has
//! applied its answer, then reads its statistics there and checks the answer is counted. The latency is from
//! the command's start to that read's end; the baseline beside it is the same command without the wait and
//! the read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use commands::CommandExecutor;
use commands::request::{Actor, Request};
use commands::trainer::Trainer;
use domain::identity::Role;
use eventlog::{EventLog, Source};
use projections::{Projections, RunnerConfig};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use super::thousands as n;

#[derive(Debug, Serialize)]
pub struct RywFigures {
    pub ryw_commands: usize,
    pub ryw_rate_per_s: f64,
    pub ryw_p50_ms: f64,
    pub ryw_p99_ms: f64,
    /// The command alone (no wait, no read), at the same rate.
    pub ryw_command_p50_ms: f64,
    pub ryw_command_p99_ms: f64,
}

impl RywFigures {
    pub(super) fn print(&self) {
        println!(
            "  read your writes, {} answers at {}/s: mutation -> own read p50 {:.1} ms, p99 {:.1} ms (target p99 <= 50 ms); the command alone p50 {:.1} ms, p99 {:.1} ms",
            n(self.ryw_commands as f64),
            n(self.ryw_rate_per_s),
            self.ryw_p50_ms,
            self.ryw_p99_ms,
            self.ryw_command_p50_ms,
            self.ryw_command_p99_ms,
        );
    }
}

/// Trainees answering: the more of them, the fewer commands queue on one trainee's stream.
const TRAINEES: usize = 200;
const WAIT: Duration = Duration::from_secs(10);

pub(super) async fn measure(pool: &PgPool, rate: u32, seconds: u32) -> anyhow::Result<RywFigures> {
    let log = EventLog::new(pool.clone());
    let trainer = Trainer::new(CommandExecutor::new(log.clone()));
    let (rows, bad) = crate::questions::parse(
        crate::questions::STARTER_BANK,
        crate::questions::Format::Csv,
    );
    anyhow::ensure!(bad.is_empty(), "the starter bank has bad rows: {bad:?}");
    let questions =
        crate::questions::import(&trainer, rows, &indicatif::ProgressBar::hidden()).await;
    anyhow::ensure!(
        questions.bad.is_empty(),
        "importing the starter bank failed"
    );

    let projections = Arc::new(Projections::new(
        log.clone(),
        projections::all(),
        RunnerConfig::default(),
    )?);
    let (stop, stopping) = watch::channel(false);
    let running = tokio::spawn({
        let projections = projections.clone();
        async move { projections.run(stopping).await }
    });
    let outcome = async {
        let head = projections.head().await?;
        if head > 0 {
            projections.wait_for(head, Duration::from_secs(120)).await?;
        }
        let question_ids: Vec<Uuid> = sqlx::query_scalar("select id from trainer.questions")
            .fetch_all(pool)
            .await?;
        anyhow::ensure!(!question_ids.is_empty(), "no questions to answer");
        let trainees: Vec<Uuid> = (0..TRAINEES).map(|_| Uuid::now_v7()).collect();
        let total = (rate * seconds) as usize;
        let plain = open_loop(rate, total, |i| {
            answer(
                &trainer,
                trainees[i % TRAINEES],
                question_ids[i % question_ids.len()],
            )
        })
        .await?;
        let reading = open_loop(rate, total, |i| {
            let (trainer, projections) = (&trainer, &projections);
            let (user, question) = (
                trainees[i % TRAINEES],
                question_ids[(i + 1) % question_ids.len()],
            );
            async move {
                let position = answer(trainer, user, question).await?;
                projections
                    .wait_for_some(&[projections::trainer::NAME], position, WAIT)
                    .await?;
                let stats = projections::trainer::stats(pool, user, None).await?;
                anyhow::ensure!(
                    stats.iter().any(|s| s.answered > 0),
                    "an answer was not visible after its position was applied"
                );
                Ok(position)
            }
        })
        .await?;
        anyhow::Ok((plain, reading, total))
    }
    .await;
    let _ = stop.send(true);
    let _ = running.await;
    let (mut plain, mut reading, total) = outcome?;
    let (p50, p99) = percentiles(&mut reading);
    let (command_p50, command_p99) = percentiles(&mut plain);
    Ok(RywFigures {
        ryw_commands: total,
        ryw_rate_per_s: f64::from(rate),
        ryw_p50_ms: p50,
        ryw_p99_ms: p99,
        ryw_command_p50_ms: command_p50,
        ryw_command_p99_ms: command_p99,
    })
}

/// `user` answers `question` (a fresh command each time); the log position it wrote.
async fn answer(trainer: &Trainer, user: Uuid, question: Uuid) -> anyhow::Result<i64> {
    let request = Request::new(
        Actor::User {
            id: user,
            role: Role::User,
        },
        Source::Graphql,
        chrono::Utc::now(),
    );
    let answered = trainer
        .answer_question(&request, question, "ownership and borrowing".to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("answering failed: {e}"))?;
    answered.position.context("an answer wrote nothing")
}

/// Starts `op(i)` for i in 0..total at `rate` per second, without waiting for earlier ones; their latencies.
async fn open_loop<'a, F, Fut>(rate: u32, total: usize, op: F) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<i64>> + 'a,
{
    use futures_util::StreamExt;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut took = Vec::with_capacity(total);
    let mut started = 0;
    while took.len() < total {
        tokio::select! {
            _ = ticks.tick(), if started < total => {
                let future = op(started);
                let at = Instant::now();
                in_flight.push(async move { future.await.map(|_| at.elapsed()) });
                started += 1;
            }
            Some(done) = in_flight.next() => took.push(done?),
        }
    }
    Ok(took)
}

/// p50 and p99 of `took`, in milliseconds.
fn percentiles(took: &mut [Duration]) -> (f64, f64) {
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}
