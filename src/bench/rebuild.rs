//! `academy bench --rebuild NAME`: how fast a projection rebuilds from a log of about a million of its own
//! events.
//!
//! Each projection is measured over a log of the events it reads, shaped as the product writes them (valid data
//! its `apply` decodes), written set-based straight into `events` beforehand (what is measured is the rebuild,
//! not the appends). The log is append-only, so `all` appends each projection's events after the previous
//! one's: each reads only its own types (`log_stats`, which reads every event, comes first).
//! The time is `Runner::rebuild()`: reading the log from the start into the build schema, and the swap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use domain::DomainEvent;
use domain::cars::{
    CarDetails, CarEvent, DetailsPatch, ListingId, Prices, RunTally, ScrapeRunEvent, car_stream,
    scrape_run_stream,
};
use domain::identity::{AccountEvent, Email, Role, Username};
use eventlog::{EventLog, NewEvent};
use projections::{Projection, Runner, RunnerConfig};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::thousands as n;

/// Below this no projection may rebuild (events/s).
const FLOOR: f64 = 50_000.0;

/// The rebuild figures, one per projection measured.
#[derive(Debug, Serialize)]
pub struct RebuildFigures {
    pub rebuilds: Vec<RebuildFigure>,
}

#[derive(Debug, Serialize)]
pub struct RebuildFigure {
    pub projection: String,
    /// Events the rebuild applied (`None`: not measured, see `skipped`).
    pub events: Option<i64>,
    pub seconds: Option<f64>,
    pub events_per_s: Option<f64>,
    /// What the issue asks of this projection.
    pub target_per_s: f64,
    /// Why it was not measured.
    pub skipped: Option<String>,
}

impl RebuildFigures {
    pub(super) fn print(&self) {
        for r in &self.rebuilds {
            match (r.events, r.events_per_s) {
                (Some(events), Some(per_s)) => println!(
                    "  rebuild of {:<13} over {:>9} events: {:>9} events/s in {:>6.1} s (target >= {}) {}",
                    r.projection,
                    n(events as f64),
                    n(per_s),
                    r.seconds.unwrap_or_default(),
                    n(r.target_per_s),
                    if per_s >= r.target_per_s {
                        "met"
                    } else {
                        "MISSED"
                    }
                ),
                _ => println!(
                    "  rebuild of {:<13} not measured: {}",
                    r.projection,
                    r.skipped.as_deref().unwrap_or("")
                ),
            }
        }
    }
}

/// What the issue asks of `name`'s rebuild.
fn target(name: &str) -> f64 {
    match name {
        projections::log_stats::NAME => 300_000.0,
        projections::cars::NAME => 100_000.0,
        _ => FLOOR,
    }
}

/// Rebuilds `name` (a projection, or `all`) over `events` events of its own.
pub(super) async fn measure(
    pool: &PgPool,
    name: &str,
    events: usize,
    cars: Option<usize>,
    config: RunnerConfig,
) -> anyhow::Result<RebuildFigures> {
    let all = projections::all();
    let chosen: Vec<Arc<dyn Projection>> = if name == "all" {
        all
    } else {
        let found = all
            .into_iter()
            .filter(|p| p.name() == name)
            .collect::<Vec<_>>();
        anyhow::ensure!(
            !found.is_empty(),
            "no projection is called {name:?} (try: all, {})",
            projections::all()
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        found
    };
    let mut rebuilds = Vec::new();
    // the logs written so far, by generator: projections that read the same events share one log
    let mut filled = std::collections::HashSet::new();
    for projection in chosen {
        let name = projection.name();
        let Some(generator) = generator(name, events, cars) else {
            rebuilds.push(RebuildFigure {
                projection: name.to_owned(),
                events: None,
                seconds: None,
                events_per_s: None,
                target_per_s: target(name),
                skipped: Some("no generator of its events in the benchmark yet".to_owned()),
            });
            continue;
        };
        if filled.insert(log_of(name)) {
            generator.fill(pool, events).await?;
            sqlx::raw_sql("vacuum analyze events").execute(pool).await?;
        }
        let count: i64 = EventLog::new(pool.clone())
            .count_after(
                eventlog::Checkpoint::START,
                projection.event_types().as_deref(),
            )
            .await?;
        let runner = Runner::new(EventLog::new(pool.clone()), projection, config.clone())?;
        let started = Instant::now();
        runner
            .rebuild()
            .await
            .with_context(|| format!("rebuilding {name}"))?;
        let took = started.elapsed().as_secs_f64();
        let applied = runner.progress().borrow().events_applied;
        anyhow::ensure!(
            applied == count,
            "the rebuild of {name} applied {applied} of {count} events"
        );
        rebuilds.push(RebuildFigure {
            projection: name.to_owned(),
            events: Some(count),
            seconds: Some(took),
            events_per_s: Some(count as f64 / took),
            target_per_s: target(name),
            skipped: None,
        });
    }
    Ok(RebuildFigures { rebuilds })
}

/// How a projection's log is made.
enum Generator {
    /// Any events: set-based SQL.
    Anything,
    /// Domain events from Rust, in chunks.
    Domain(Box<dyn Iterator<Item = Generated> + Send>),
}

/// One event of a generated log.
struct Generated {
    stream: String,
    category: &'static str,
    source: &'static str,
    event: NewEvent,
}

/// Which generated log `name` reads.
fn log_of(name: &str) -> &str {
    match name {
        projections::deadlines::NAME | projections::notifications::NAME => {
            projections::tracks::NAME
        }
        other => other,
    }
}

/// The log `name` is measured over: `events` events (of a catalogue of `cars` listings, for `cars`).
fn generator(name: &str, events: usize, cars: Option<usize>) -> Option<Generator> {
    match name {
        projections::log_stats::NAME => Some(Generator::Anything),
        projections::cars::NAME => Some(Generator::Domain(Box::new(CarsLog::new(
            cars.unwrap_or(events / 10),
        )))),
        projections::accounts::NAME => Some(Generator::Domain(Box::new(accounts_log(events)))),
        projections::trainer::NAME => Some(Generator::Domain(Box::new(trainer_log()))),
        // the hosts read the tracks' events too (notices, timers)
        projections::tracks::NAME
        | projections::deadlines::NAME
        | projections::notifications::NAME => Some(Generator::Domain(Box::new(tracks_log()))),
        _ => None,
    }
}

impl Generator {
    async fn fill(self, pool: &PgPool, target: usize) -> anyhow::Result<()> {
        match self {
            Generator::Anything => fill_anything(pool, target).await,
            Generator::Domain(events) => fill_domain(pool, events.take(target)).await,
        }
    }
}

/// `target` events of four types no read model but `log_stats` reads, in streams of ten.
pub(super) async fn fill_anything(pool: &PgPool, target: usize) -> anyhow::Result<()> {
    let chunk = 50_000;
    let mut from = 0;
    while from < target as i64 {
        let to = (from + chunk).min(target as i64) - 1;
        sqlx::query(
            "insert into events (stream_id, stream_category, version, event_id, event_type, data, metadata,
                                 actor_id, actor_role, source, command_id, correlation_id)
             select 'bench-' || (g / 10), 'bench', g % 10 + 1, gen_random_uuid(),
                    (array['BenchStarted', 'BenchStepped', 'BenchPaused', 'BenchFinished'])[g % 4 + 1],
                    jsonb_build_object('n', g, 'title', 'Rust from zero to production', 'seat', g % 50),
                    jsonb_build_object('source', 'cli', 'actor_role', 'user'),
                    'user-' || (g % 997), 'user', 'cli', gen_random_uuid(), gen_random_uuid()
               from generate_series($1::bigint, $2::bigint) g",
        )
        .bind(from)
        .bind(to)
        .execute(pool)
        .await?;
        from = to + 1;
    }
    Ok(())
}

/// Writes `events` in chunks of one multi-row insert each, numbering each stream's versions.
async fn fill_domain(pool: &PgPool, events: impl Iterator<Item = Generated>) -> anyhow::Result<()> {
    const CHUNK: usize = 20_000;
    let mut versions: HashMap<String, i64> = HashMap::new();
    let mut events = events.peekable();
    while events.peek().is_some() {
        let mut streams = Vec::with_capacity(CHUNK);
        let mut categories = Vec::with_capacity(CHUNK);
        let mut numbers = Vec::with_capacity(CHUNK);
        let mut ids = Vec::with_capacity(CHUNK);
        let mut types = Vec::with_capacity(CHUNK);
        let mut data = Vec::with_capacity(CHUNK);
        let mut metadata = Vec::with_capacity(CHUNK);
        let mut sources = Vec::with_capacity(CHUNK);
        let mut commands = Vec::with_capacity(CHUNK);
        for generated in events.by_ref().take(CHUNK) {
            let version = versions.entry(generated.stream.clone()).or_default();
            *version += 1;
            let command = Uuid::now_v7();
            numbers.push(*version);
            streams.push(generated.stream);
            categories.push(generated.category);
            ids.push(generated.event.event_id);
            types.push(generated.event.event_type);
            data.push(generated.event.data.to_string());
            metadata.push(
                serde_json::json!({
                    "actor_id": "system", "actor_role": "admin", "source": generated.source,
                    "command_id": command, "correlation_id": command, "causation_id": null
                })
                .to_string(),
            );
            sources.push(generated.source);
            commands.push(command);
        }
        sqlx::query(
            "insert into events (stream_id, stream_category, version, event_id, event_type, data, metadata,
                                 actor_id, actor_role, source, command_id, correlation_id)
             select s, c, v, i, t, d::jsonb, m::jsonb, 'system', 'admin', src, cmd, cmd
               from unnest($1::text[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                           $8::text[], $9::uuid[]) e (s, c, v, i, t, d, m, src, cmd)",
        )
        .bind(&streams)
        .bind(&categories)
        .bind(&numbers)
        .bind(&ids)
        .bind(&types)
        .bind(&data)
        .bind(&metadata)
        .bind(&sources)
        .bind(&commands)
        .execute(pool)
        .await
        .context("filling the log")?;
    }
    Ok(())
}

fn generated<E: DomainEvent>(stream: String, category: &'static str, event: &E) -> Generated {
    Generated {
        stream,
        category,
        source: "worker",
        event: NewEvent::from_domain(event),
    }
}

/// A second-resolution clock for generated events.
fn at(seconds: i64) -> domain::Timestamp {
    domain::Timestamp::from_unix_seconds(1_760_000_000 + seconds).expect("a valid time")
}

/// A cheap deterministic hash of two numbers: which listing changes in which run.
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

/// What the scraper writes, run after run, over a catalogue of `cars` listings shown 30 to a page: the first run
/// lists every car; each later run reprices about 1 % of the cars it sees, changes the details of 0.3 %, and
/// delists (or, when delisted, relists) 0.05 %; each page is recorded after the changes of the cars it showed,
/// one page in a run fails, and each run is completed. About 4,700 events a run after the first.
struct CarsLog {
    cars: usize,
    ids: Vec<ListingId>,
    totals: Vec<i64>,
    delisted: Vec<bool>,
    run: u64,
    run_id: Uuid,
    page: usize,
    clock: i64,
    pending: std::collections::VecDeque<Generated>,
}

const PER_PAGE: usize = 30;

impl CarsLog {
    fn new(cars: usize) -> Self {
        let cars = cars.max(PER_PAGE);
        Self {
            cars,
            ids: (0..cars)
                .map(|i| {
                    ListingId::parse(&format!("AU{:010}", 6_000_000_000 + i))
                        .expect("a valid listing id")
                })
                .collect(),
            totals: (0..cars)
                .map(|i| 1_000_000 + (i as i64 % 400) * 10_000)
                .collect(),
            delisted: vec![false; cars],
            run: 0,
            run_id: Uuid::now_v7(),
            page: 0,
            clock: 0,
            pending: Default::default(),
        }
    }

    fn pages(&self) -> usize {
        self.cars.div_ceil(PER_PAGE)
    }

    fn tick(&mut self) -> domain::Timestamp {
        self.clock += 1;
        at(self.clock)
    }

    fn car(&mut self, i: usize, event: CarEvent) {
        self.pending.push_back(generated(
            car_stream(&self.ids[i]).to_string(),
            "car",
            &event,
        ));
    }

    fn scrape(&mut self, event: ScrapeRunEvent) {
        self.pending.push_back(generated(
            scrape_run_stream(self.run_id).to_string(),
            "scraperun",
            &event,
        ));
    }

    fn details(i: usize) -> CarDetails {
        super::upserts::bench_details(i)
    }

    /// Queues the next page of the current run (and the run's start or end around it).
    fn next_page(&mut self) {
        let url = "https://www.carsensor.net/usedcar/index.html".to_owned();
        if self.page == 0 {
            self.run_id = Uuid::now_v7();
            let at = self.tick();
            self.scrape(ScrapeRunEvent::ScrapeRunStarted {
                start_urls: vec![url.clone()],
                at,
            });
        }
        let run = self.run_id;
        let mut shown = Vec::with_capacity(PER_PAGE);
        let first = self.page * PER_PAGE;
        for i in first..(first + PER_PAGE).min(self.cars) {
            let at = self.tick();
            if self.run == 0 {
                let total = self.totals[i];
                self.car(
                    i,
                    CarEvent::CarListed {
                        listing_id: self.ids[i].clone(),
                        prices: Prices {
                            body_yen: Some(total - 110_000),
                            total_yen: Some(total),
                        },
                        details: Self::details(i),
                        run_id: run,
                        at,
                    },
                );
                shown.push(self.ids[i].clone());
                continue;
            }
            let roll = mix(self.run, i as u64) % 10_000;
            if (130..135).contains(&roll) {
                if self.delisted[i] {
                    self.delisted[i] = false;
                    self.car(i, CarEvent::CarRelisted { run_id: run, at });
                } else {
                    self.delisted[i] = true;
                    self.car(
                        i,
                        CarEvent::CarDelisted {
                            missed_runs: 3,
                            run_id: run,
                            at,
                        },
                    );
                }
            }
            if self.delisted[i] {
                continue;
            }
            if roll < 100 {
                let old = self.totals[i];
                let new = old - 10_000 - (roll as i64) * 1_000;
                self.totals[i] = new;
                self.car(
                    i,
                    CarEvent::CarPriceChanged {
                        old: Prices {
                            body_yen: Some(old - 110_000),
                            total_yen: Some(old),
                        },
                        new: Prices {
                            body_yen: Some(new - 110_000),
                            total_yen: Some(new),
                        },
                        run_id: run,
                        at,
                    },
                );
            } else if roll < 130 {
                self.car(
                    i,
                    CarEvent::CarDetailsChanged {
                        changes: DetailsPatch {
                            mileage_km: Some(Some((i as i64 * 37) % 150_000 + self.run as i64)),
                            ..DetailsPatch::default()
                        },
                        run_id: run,
                        at,
                    },
                );
            }
            shown.push(self.ids[i].clone());
        }
        let at = self.tick();
        if self.page == 7 {
            self.scrape(ScrapeRunEvent::ScrapePageFailed {
                url: format!("{url}?page={}", self.page + 1),
                error: "timed out".to_owned(),
                attempts: 3,
                at,
            });
        } else {
            self.scrape(ScrapeRunEvent::ScrapePageScraped {
                url: format!("{url}?page={}", self.page + 1),
                page: self.page as u32 + 1,
                listings: shown,
                at,
            });
        }
        self.page += 1;
        if self.page == self.pages() {
            let at = self.tick();
            self.scrape(ScrapeRunEvent::ScrapeRunCompleted {
                tally: RunTally {
                    pages: self.pages() as u32 - 1,
                    listings_seen: self.cars as u32,
                    errors: 1,
                    ..RunTally::default()
                },
                complete: false,
                at,
            });
            self.page = 0;
            self.run += 1;
        }
    }
}

impl Iterator for CarsLog {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        while self.pending.is_empty() {
            self.next_page();
        }
        self.pending.pop_front()
    }
}

/// Accounts as people register: each registers, half change their password once, one in fifty is made admin.
fn accounts_log(events: usize) -> impl Iterator<Item = Generated> {
    let users = events * 100 / 152 + 1;
    (0..users).flat_map(move |i| {
        let stream = format!(
            "account-{}",
            Uuid::from_u128(0xacc0_0000_0000_0000 + i as u128)
        );
        let mut out = vec![AccountEvent::AccountRegistered {
            email: Email::parse(&format!("user{i}@example.com")).expect("a valid email"),
            username: Username::parse(&format!("user{i}")).expect("a valid username"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
                .to_owned(),
            role: Role::User,
            at: at(i as i64),
        }];
        if i.is_multiple_of(2) {
            out.push(AccountEvent::PasswordChanged {
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$bmV3aGFzaG5ld2hhc2g"
                    .to_owned(),
                at: at(i as i64 + 60),
            });
        }
        if i.is_multiple_of(50) {
            out.push(AccountEvent::AdminGranted {
                by: Uuid::nil(),
                at: at(i as i64 + 120),
            });
        }
        out.into_iter().map(move |event| Generated {
            stream: stream.clone(),
            category: "account",
            source: "graphql",
            event: NewEvent::from_domain(&event),
        })
    })
}

/// The question bank and its trainees: 1,000 questions added (one in ten edited, one in a hundred retired), then
/// 10,000 trainees answering them round after round, one answer in fifty contested.
fn trainer_log() -> impl Iterator<Item = Generated> {
    use domain::trainer::{
        Grade, KeyPoint, Level, QuestionContent, QuestionEvent, TraineeEvent, Verdict,
    };
    const QUESTIONS: u128 = 1_000;
    const TRAINEES: u128 = 10_000;
    let question = |q: u128| Uuid::from_u128(0x0e57_0000_0000_0000 + q);
    let level = |q: u128| Level::ALL[(q % 3) as usize];
    let content = move |q: u128, revision: u32| QuestionContent {
        level: level(q),
        topic: format!("topic {}", q % 20),
        text: format!("What does the borrow checker do in case {q} (revision {revision})?"),
        reference_answer:
            "It checks that references never outlive what they point to and that a value is \
                           either shared or mutably borrowed, never both."
                .to_owned(),
        key_points: vec![
            KeyPoint {
                concept: "lifetimes".to_owned(),
                synonyms: vec!["outlive".to_owned()],
            },
            KeyPoint {
                concept: "aliasing xor mutability".to_owned(),
                synonyms: vec!["shared or mutable".to_owned()],
            },
        ],
    };
    let bank = (0..QUESTIONS).flat_map(move |q| {
        let stream = format!("question-{}", question(q));
        let by = Uuid::nil();
        let mut out = vec![QuestionEvent::QuestionAdded {
            external_id: Some(format!("bench-{q}")),
            content: content(q, 1),
            by,
            at: at(q as i64),
        }];
        if q.is_multiple_of(10) {
            out.push(QuestionEvent::QuestionEdited {
                content: content(q, 2),
                by,
                at: at(q as i64 + 1),
            });
        }
        if q.is_multiple_of(100) {
            out.push(QuestionEvent::QuestionRetired {
                by,
                at: at(q as i64 + 2),
            });
        }
        out.into_iter()
            .map(move |event| generated(stream.clone(), "question", &event))
    });
    let answers = (0..u128::MAX).flat_map(move |n| {
        let (round, trainee) = (n / TRAINEES, n % TRAINEES);
        let user = Uuid::from_u128(0x7a1e_0000_0000_0000 + trainee);
        let q = (mix(round as u64, trainee as u64) as u128) % QUESTIONS;
        let verdict = [Verdict::Correct, Verdict::Partial, Verdict::Incorrect][(n % 3) as usize];
        let answer_id = Uuid::from_u128(n + 1);
        let stream = format!("trainee-{user}");
        let at = at(1_000_000 + n as i64);
        let mut out = vec![TraineeEvent::QuestionAnswered {
            answer_id,
            question_id: question(q),
            level: level(q),
            topic: format!("topic {}", q % 20),
            answer: "References may not outlive their referent; shared or mutable, not both."
                .to_owned(),
            grade: Grade {
                verdict,
                score: [1.0, 0.5, 0.0][(n % 3) as usize],
                matched: vec!["lifetimes".to_owned()],
                missing: vec!["aliasing xor mutability".to_owned()],
                negated: vec![],
            },
            at,
        }];
        if n.is_multiple_of(50) {
            out.push(TraineeEvent::VerdictContested {
                answer_id,
                reason: "I was right".to_owned(),
                at,
            });
        }
        out.into_iter()
            .map(move |event| generated(stream.clone(), "trainee", &event))
    });
    bank.chain(answers)
}

/// Cohort tracks run to the end, one after another: 100 participants enrol, the track starts, and each of its 5
/// assignments opens, gets a solution from everyone, closes, has its reviews allocated around the ring (3 per
/// participant) and submitted, and unlocks the next assignment; then the track completes. About 2,400 events a
/// track.
fn tracks_log() -> impl Iterator<Item = Generated> {
    use domain::tracks::{
        Allocation, AssignmentSpec, Criterion, RepoUrl, ReviewMode, ReviewPair, Score, TrackEvent,
        TrackSpec,
    };
    const PARTICIPANTS: u128 = 100;
    const ASSIGNMENTS: u32 = 5;
    (0..u128::MAX).flat_map(|t| {
        let track = Uuid::from_u128(0x7ac0_0000_0000_0000_0000 + t);
        let stream = format!("track-{track}");
        let people: Vec<Uuid> = (0..PARTICIPANTS)
            .map(|p| Uuid::from_u128(0x9e09_0000_0000_0000 + t * PARTICIPANTS + p))
            .collect();
        let mut clock = t as i64 * 10_000_000;
        let mut tick = move || {
            clock += 60;
            at(clock)
        };
        let mut events = vec![TrackEvent::TrackCreated {
            spec: TrackSpec {
                title: format!("Rust from zero to production, cohort {t}"),
                description: "Ten weeks of building and reviewing a web service in Rust."
                    .to_owned(),
                min_participants: 2,
                max_participants: Some(1000),
                criteria: vec![Criterion {
                    name: "correctness".to_owned(),
                    description: "Does it do what the assignment asks?".to_owned(),
                    min_score: 0,
                    max_score: 5,
                }],
                assignments: (0..ASSIGNMENTS)
                    .map(|a| AssignmentSpec {
                        title: format!("Assignment {}", a + 1),
                        description: "Build the next piece of the service.".to_owned(),
                        hours: 72,
                    })
                    .collect(),
            },
            by: Uuid::nil(),
            at: tick(),
        }];
        for participant in &people {
            events.push(TrackEvent::LearnerEnrolled {
                participant: *participant,
                at: tick(),
            });
        }
        events.push(TrackEvent::TrackStarted {
            participants: people.clone(),
            at: tick(),
        });
        for assignment in 0..ASSIGNMENTS {
            let opened_at = tick();
            events.push(TrackEvent::AssignmentOpened {
                assignment,
                opened_at,
                deadline: at(opened_at.unix_seconds() - 1_760_000_000 + 72 * 3600),
            });
            for (p, participant) in people.iter().enumerate() {
                events.push(TrackEvent::SolutionSubmitted {
                    assignment,
                    participant: *participant,
                    repository: RepoUrl::parse(&format!(
                        "https://github.com/learner{p}/cohort{t}-assignment{assignment}"
                    ))
                    .expect("a valid repository link"),
                    replaces: false,
                    at: tick(),
                });
            }
            events.push(TrackEvent::AssignmentClosed {
                assignment,
                at: tick(),
            });
            let pairs: Vec<ReviewPair> = (0..people.len())
                .flat_map(|i| {
                    let people = &people;
                    (1..=3).map(move |k| ReviewPair {
                        reviewer: people[i],
                        author: people[(i + k) % people.len()],
                    })
                })
                .collect();
            events.push(TrackEvent::ReviewsAllocated {
                assignment,
                seed: t as u64,
                allocation: Allocation {
                    mode: ReviewMode::Ring,
                    order: people.clone(),
                    pairs: pairs.clone(),
                },
                at: tick(),
            });
            for pair in pairs {
                events.push(TrackEvent::ReviewSubmitted {
                    assignment,
                    reviewer: pair.reviewer,
                    author: pair.author,
                    scores: vec![Score {
                        criterion: "correctness".to_owned(),
                        score: 4,
                    }],
                    comment: Some(
                        "Clear and tested; the error handling could say more.".to_owned(),
                    ),
                    at: tick(),
                });
            }
            if assignment + 1 < ASSIGNMENTS {
                for participant in &people {
                    events.push(TrackEvent::AssignmentUnlocked {
                        assignment: assignment + 1,
                        participant: *participant,
                        at: tick(),
                    });
                }
            }
        }
        events.push(TrackEvent::TrackCompleted { at: tick() });
        events
            .into_iter()
            .map(move |event| generated(stream.clone(), "track", &event))
    })
}
