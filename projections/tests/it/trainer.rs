use std::sync::Arc;

use domain::testing::at;
use domain::trainer::{
    Grade, KeyPoint, Level, QuestionContent, QuestionEvent, TraineeEvent, Verdict, question_stream,
    trainee_stream,
};
use projections::RunnerConfig;
use projections::trainer::{self, QuestionFilter, Trainer};
use uuid::Uuid;

use crate::{WAIT, log, start, write};

fn content(level: Level, text: &str) -> QuestionContent {
    QuestionContent::parse(
        level,
        "rust",
        text,
        "Because.",
        vec![KeyPoint {
            concept: "owner".into(),
            synonyms: vec![],
        }],
    )
    .unwrap()
}

fn answered(question: Uuid, level: Level, verdict: Verdict, seconds: i64) -> TraineeEvent {
    TraineeEvent::QuestionAnswered {
        answer_id: Uuid::now_v7(),
        question_id: question,
        level,
        topic: "rust".into(),
        answer: "an answer".into(),
        grade: Grade {
            verdict,
            score: 0.5,
            matched: vec![],
            missing: vec![],
            negated: vec![],
        },
        at: at(seconds),
    }
}

#[tokio::test]
async fn the_trainer_read_model_counts_streaks_and_rebuilds_to_the_same_rows() {
    let (_db, log) = log().await;
    let by = Uuid::nil();
    let questions: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    for (n, id) in questions.iter().enumerate() {
        let level = if n == 2 { Level::Senior } else { Level::Junior };
        write(
            &log,
            question_stream(*id),
            &[QuestionEvent::QuestionAdded {
                external_id: Some(format!("q{n}")),
                content: content(level, &format!("Question {n}?")),
                by,
                at: at(1_700_000_000),
            }],
        )
        .await;
    }
    write(
        &log,
        question_stream(questions[1]),
        &[
            QuestionEvent::QuestionEdited {
                content: content(Level::Middle, "Question 1, edited?"),
                by,
                at: at(1_700_000_100),
            },
            QuestionEvent::QuestionRetired {
                by,
                at: at(1_700_000_200),
            },
        ],
    )
    .await;
    // the projections run live while the answers arrive
    // the statistics list joins the accounts read model for names
    let (projections, stop, task) = start(
        &log,
        vec![Arc::new(Trainer), Arc::new(projections::accounts::Accounts)],
    );
    let user = Uuid::now_v7();
    let first = answered(questions[0], Level::Junior, Verdict::Correct, 1_700_001_000);
    let TraineeEvent::QuestionAnswered { answer_id, .. } = &first else {
        unreachable!()
    };
    let contested = TraineeEvent::VerdictContested {
        answer_id: *answer_id,
        reason: "I was right".into(),
        at: at(1_700_001_500),
    };
    let last = write(
        &log,
        trainee_stream(user),
        &[
            first.clone(),
            answered(
                questions[0],
                Level::Junior,
                Verdict::Incorrect,
                1_700_002_000,
            ),
            answered(questions[0], Level::Junior, Verdict::Correct, 1_700_003_000),
            answered(questions[0], Level::Junior, Verdict::Correct, 1_700_004_000),
            answered(questions[2], Level::Senior, Verdict::Partial, 1_700_005_000),
            contested,
        ],
    )
    .await;

    projections.wait_for(last, WAIT).await.unwrap();
    let stats = trainer::stats(log.pool(), user, None).await.unwrap();
    let summary: Vec<(&str, i32, i32, i32)> = stats
        .iter()
        .map(|s| (s.level.as_str(), s.answered, s.correct, s.streak))
        .collect();
    assert_eq!(summary, [("junior", 4, 3, 2), ("senior", 1, 0, 0)]);
    assert_eq!(stats[0].last_activity.timestamp(), 1_700_004_000);
    let edited = trainer::question(log.pool(), questions[1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (edited.level.as_str(), edited.revision, edited.retired),
        ("middle", 2, true)
    );
    let all = QuestionFilter {
        include_retired: true,
        ..QuestionFilter::default()
    };
    let live_questions = trainer::questions(log.pool(), &all, None, 100)
        .await
        .unwrap();
    let live_stats = trainer::users_stats(log.pool(), None, None, 100)
        .await
        .unwrap();
    let contested: bool =
        sqlx::query_scalar("select contested from trainer.answers where answer_id = $1")
            .bind(answer_id)
            .fetch_one(log.pool())
            .await
            .unwrap();
    assert!(contested);

    let answers = || async {
        sqlx::query_as::<_, (Uuid, Uuid, String, f64, bool, chrono::DateTime<chrono::Utc>)>(
            "select answer_id, question_id, verdict, score, contested, answered_at from trainer.answers order by answer_id",
        )
        .fetch_all(log.pool())
        .await
        .unwrap()
    };
    let live_answers = answers().await;
    assert_eq!(live_answers.len(), 5);
    projections::rebuild(log.clone(), Arc::new(Trainer), RunnerConfig::default())
        .await
        .unwrap();
    let same_rows_as_live = || async {
        assert_eq!(answers().await, live_answers);
        assert_eq!(
            trainer::questions(log.pool(), &all, None, 100)
                .await
                .unwrap(),
            live_questions
        );
        assert_eq!(
            trainer::users_stats(log.pool(), None, None, 100)
                .await
                .unwrap(),
            live_stats
        );
    };
    same_rows_as_live().await;

    // one event per batch: the same rows as the rebuild's one batch
    stop.send(true).unwrap();
    task.await.unwrap();
    let one_event_per_batch = RunnerConfig {
        batch_size: 1,
        build_batch_size: 1,
        ..RunnerConfig::default()
    };
    projections::rebuild(log.clone(), Arc::new(Trainer), one_event_per_batch)
        .await
        .unwrap();
    same_rows_as_live().await;
}
