//! The question trainer: a bank of interview questions by level, and users answering them.
//!
//! - [`Question`] (`question-<uuid>`): added, edited (each edit is an event carrying the whole new content, so
//!   the log keeps every version), retired. Bulk imports use [`QuestionCommand::Import`], keyed by an external
//!   id, so importing a file again adds what is new, edits what changed and leaves the rest alone.
//! - [`Trainee`] (`trainee-<user uuid>`): one user's answers, each with the verdict computed when it was given
//!   (recorded, never recomputed on replay), and contested verdicts.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Decider, StreamId, Timestamp};

/// Namespace of question ids derived from external ids (fixed: changing it would duplicate imported questions).
const QUESTION_NAMESPACE: Uuid = Uuid::from_u128(0x9d41_6b2a_73c5_4e08_8f1d_c25a_07e3_b96f);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Junior,
    Middle,
    Senior,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Junior, Level::Middle, Level::Senior];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Junior => "junior",
            Level::Middle => "middle",
            Level::Senior => "senior",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, QuestionError> {
        match raw.trim().to_lowercase().as_str() {
            "junior" => Ok(Level::Junior),
            "middle" => Ok(Level::Middle),
            "senior" => Ok(Level::Senior),
            _ => Err(QuestionError::Level(raw.to_owned())),
        }
    }
}

/// A concept a good answer mentions, with other ways of saying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPoint {
    pub concept: String,
    #[serde(default)]
    pub synonyms: Vec<String>,
}

/// What a question says, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionContent {
    pub level: Level,
    pub topic: String,
    pub text: String,
    pub reference_answer: String,
    pub key_points: Vec<KeyPoint>,
}

impl QuestionContent {
    /// Trims every text, drops empty synonyms, and checks that nothing required is missing.
    pub fn parse(
        level: Level,
        topic: &str,
        text: &str,
        reference_answer: &str,
        key_points: Vec<KeyPoint>,
    ) -> Result<Self, QuestionError> {
        let topic = topic.trim().to_lowercase();
        if topic.is_empty() || topic.chars().count() > 64 {
            return Err(QuestionError::Topic);
        }
        let text = text.trim().to_owned();
        if text.is_empty() || text.chars().count() > 2000 {
            return Err(QuestionError::Text);
        }
        let reference_answer = reference_answer.trim().to_owned();
        if reference_answer.is_empty() || reference_answer.chars().count() > 10_000 {
            return Err(QuestionError::ReferenceAnswer);
        }
        let key_points: Vec<KeyPoint> = key_points
            .into_iter()
            .map(|point| KeyPoint {
                concept: point.concept.trim().to_owned(),
                synonyms: point
                    .synonyms
                    .iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| has_word(s))
                    .collect(),
            })
            .collect();
        if key_points.is_empty()
            || key_points.len() > 20
            || key_points.iter().any(|p| !has_word(&p.concept))
        {
            return Err(QuestionError::KeyPoints);
        }
        Ok(Self {
            level,
            topic,
            text,
            reference_answer,
            key_points,
        })
    }
}

/// Whether a key point's text has something to match (a letter or digit).
fn has_word(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuestionError {
    #[error("level must be junior, middle or senior; got {0:?}")]
    Level(String),
    #[error("a topic has 1 to 64 characters")]
    Topic,
    #[error("a question's text has 1 to 2000 characters")]
    Text,
    #[error("a reference answer has 1 to 10000 characters")]
    ReferenceAnswer,
    #[error("a question needs 1 to 20 key points, each with a concept of letters or digits")]
    KeyPoints,
    #[error("this question already exists")]
    AlreadyExists,
    #[error("no such question")]
    NotFound,
    #[error("this question is retired")]
    Retired,
}

/// The stream of a question.
pub fn question_stream(id: Uuid) -> StreamId {
    StreamId::new("question", id).expect("'question' is a valid category")
}

/// The id an imported question gets from its external id: the same on every import.
pub fn imported_question_id(external_id: &str) -> Uuid {
    Uuid::new_v5(&QUESTION_NAMESPACE, external_id.as_bytes())
}

// ---------------------------------------------------------------------------------------------------------------
// Question

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuestionCommand {
    Add {
        content: QuestionContent,
        by: Uuid,
        at: Timestamp,
    },
    Edit {
        content: QuestionContent,
        by: Uuid,
        at: Timestamp,
    },
    Retire {
        by: Uuid,
        at: Timestamp,
    },
    /// Adds the question, or edits it when its content changed; a retired question is left alone.
    Import {
        external_id: String,
        content: QuestionContent,
        by: Uuid,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum QuestionEvent {
    QuestionAdded {
        external_id: Option<String>,
        content: QuestionContent,
        by: Uuid,
        at: Timestamp,
    },
    QuestionEdited {
        content: QuestionContent,
        by: Uuid,
        at: Timestamp,
    },
    QuestionRetired {
        by: Uuid,
        at: Timestamp,
    },
}

impl QuestionEvent {}

crate::tagged_events!(QuestionEvent {
    QuestionAdded,
    QuestionEdited,
    QuestionRetired
});

/// A question as its stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionState {
    pub content: QuestionContent,
    pub retired: bool,
}

pub struct Question;

impl Decider for Question {
    type Command = QuestionCommand;
    type Event = QuestionEvent;
    type State = Option<QuestionState>;
    type Error = QuestionError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(
        command: &QuestionCommand,
        state: &Self::State,
    ) -> Result<Vec<QuestionEvent>, QuestionError> {
        let state = state.as_ref();
        match command {
            QuestionCommand::Add { content, by, at } => add(state, content, *by, *at),
            QuestionCommand::Edit { content, by, at } => edit(state, content, *by, *at),
            QuestionCommand::Retire { by, at } => retire(state, *by, *at),
            QuestionCommand::Import {
                external_id,
                content,
                by,
                at,
            } => import(state, external_id, content, *by, *at),
        }
    }

    fn evolve(state: Self::State, event: &QuestionEvent) -> Self::State {
        match (event, state) {
            (QuestionEvent::QuestionAdded { content, .. }, _) => Some(QuestionState {
                content: content.clone(),
                retired: false,
            }),
            (QuestionEvent::QuestionEdited { content, .. }, Some(current)) => Some(QuestionState {
                content: content.clone(),
                ..current
            }),
            (QuestionEvent::QuestionRetired { .. }, Some(current)) => Some(QuestionState {
                retired: true,
                ..current
            }),
            (_, None) => None,
        }
    }
}

// Question commands, one function each, in the order of `QuestionCommand`.

/// A question is added once; adding the same content again changes nothing.
fn add(
    state: Option<&QuestionState>,
    content: &QuestionContent,
    by: Uuid,
    at: Timestamp,
) -> Result<Vec<QuestionEvent>, QuestionError> {
    match state {
        None => Ok(vec![QuestionEvent::QuestionAdded {
            external_id: None,
            content: content.clone(),
            by,
            at,
        }]),
        Some(current) if current.content == *content => Ok(vec![]),
        Some(_) => Err(QuestionError::AlreadyExists),
    }
}

/// Only a question that exists and is not retired is edited.
fn edit(
    state: Option<&QuestionState>,
    content: &QuestionContent,
    by: Uuid,
    at: Timestamp,
) -> Result<Vec<QuestionEvent>, QuestionError> {
    match state {
        None => Err(QuestionError::NotFound),
        Some(current) if current.retired => Err(QuestionError::Retired),
        Some(current) if current.content == *content => Ok(vec![]),
        Some(_) => Ok(vec![QuestionEvent::QuestionEdited {
            content: content.clone(),
            by,
            at,
        }]),
    }
}

/// A question that exists is retired once.
fn retire(
    state: Option<&QuestionState>,
    by: Uuid,
    at: Timestamp,
) -> Result<Vec<QuestionEvent>, QuestionError> {
    match state {
        None => Err(QuestionError::NotFound),
        Some(current) if current.retired => Ok(vec![]),
        Some(_) => Ok(vec![QuestionEvent::QuestionRetired { by, at }]),
    }
}

/// An imported question is added, or edited when its content changed; a retired one is left alone.
fn import(
    state: Option<&QuestionState>,
    external_id: &str,
    content: &QuestionContent,
    by: Uuid,
    at: Timestamp,
) -> Result<Vec<QuestionEvent>, QuestionError> {
    match state {
        None => Ok(vec![QuestionEvent::QuestionAdded {
            external_id: Some(external_id.to_owned()),
            content: content.clone(),
            by,
            at,
        }]),
        Some(current) if current.retired => Ok(vec![]),
        Some(current) if current.content == *content => Ok(vec![]),
        Some(_) => Ok(vec![QuestionEvent::QuestionEdited {
            content: content.clone(),
            by,
            at,
        }]),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Trainee

/// The checker's judgement of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Correct,
    Partial,
    Incorrect,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Partial => "partial",
            Verdict::Incorrect => "incorrect",
        }
    }
}

/// A graded answer, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    pub verdict: Verdict,
    /// 0 to 1, two decimals.
    pub score: f64,
    /// Key points (their concepts) the answer covers.
    pub matched: Vec<String>,
    /// Key points it does not cover (including negated ones).
    pub missing: Vec<String>,
    /// Key points the answer mentions only to deny them.
    #[serde(default)]
    pub negated: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TraineeCommand {
    Answer {
        answer_id: Uuid,
        question_id: Uuid,
        /// Whether the question was retired when the answer came (read from its stream by the caller).
        question_retired: bool,
        level: Level,
        topic: String,
        answer: String,
        grade: Grade,
        at: Timestamp,
    },
    Contest {
        answer_id: Uuid,
        reason: String,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TraineeEvent {
    QuestionAnswered {
        answer_id: Uuid,
        question_id: Uuid,
        level: Level,
        topic: String,
        answer: String,
        grade: Grade,
        at: Timestamp,
    },
    /// The user says the verdict was wrong ("I was right"). The verdict stays as recorded; admins review.
    VerdictContested {
        answer_id: Uuid,
        reason: String,
        at: Timestamp,
    },
}

impl TraineeEvent {}

crate::tagged_events!(TraineeEvent {
    QuestionAnswered,
    VerdictContested
});

/// The answers a trainee gave, by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraineeState {
    pub answers: std::collections::HashMap<Uuid, AnswerRecord>,
}

/// One answer's grade, as recorded, and whether it was contested.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRecord {
    pub question_id: Uuid,
    pub grade: Grade,
    pub contested: bool,
}

/// The longest answer, in characters.
pub const MAX_ANSWER_CHARS: usize = 5000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraineeError {
    #[error("no such question")]
    QuestionNotFound,
    #[error("an answer has 1 to {MAX_ANSWER_CHARS} characters")]
    AnswerLength,
    #[error("a reason has 1 to 1000 characters")]
    ReasonLength,
    #[error("no such answer of yours")]
    AnswerNotFound,
    #[error("this answer was already judged correct")]
    AlreadyCorrect,
    #[error("this question is retired")]
    QuestionRetired,
}

/// The stream of a user's answers.
pub fn trainee_stream(user: Uuid) -> StreamId {
    StreamId::new("trainee", user).expect("'trainee' is a valid category")
}

pub struct Trainee;

impl Decider for Trainee {
    type Command = TraineeCommand;
    type Event = TraineeEvent;
    type State = TraineeState;
    type Error = TraineeError;

    fn initial_state() -> TraineeState {
        TraineeState::default()
    }

    fn decide(
        command: &TraineeCommand,
        state: &TraineeState,
    ) -> Result<Vec<TraineeEvent>, TraineeError> {
        match command {
            TraineeCommand::Answer { answer_id, .. } if state.answers.contains_key(answer_id) => {
                Ok(vec![])
            }
            TraineeCommand::Answer {
                question_retired: true,
                ..
            } => Err(TraineeError::QuestionRetired),
            TraineeCommand::Answer {
                answer_id,
                question_id,
                level,
                topic,
                answer,
                grade,
                at,
                ..
            } => {
                let answer = answer.trim();
                if answer.is_empty() || answer.chars().count() > MAX_ANSWER_CHARS {
                    return Err(TraineeError::AnswerLength);
                }
                Ok(vec![TraineeEvent::QuestionAnswered {
                    answer_id: *answer_id,
                    question_id: *question_id,
                    level: *level,
                    topic: topic.clone(),
                    answer: answer.to_owned(),
                    grade: grade.clone(),
                    at: *at,
                }])
            }
            TraineeCommand::Contest {
                answer_id,
                reason,
                at,
            } => {
                let reason = reason.trim();
                if reason.is_empty() || reason.chars().count() > 1000 {
                    return Err(TraineeError::ReasonLength);
                }
                match state.answers.get(answer_id) {
                    None => Err(TraineeError::AnswerNotFound),
                    Some(record) if record.contested => Ok(vec![]),
                    Some(record) if record.grade.verdict == Verdict::Correct => {
                        Err(TraineeError::AlreadyCorrect)
                    }
                    Some(_) => Ok(vec![TraineeEvent::VerdictContested {
                        answer_id: *answer_id,
                        reason: reason.to_owned(),
                        at: *at,
                    }]),
                }
            }
        }
    }

    fn evolve(mut state: TraineeState, event: &TraineeEvent) -> TraineeState {
        match event {
            TraineeEvent::QuestionAnswered {
                answer_id,
                question_id,
                grade,
                ..
            } => {
                state.answers.insert(
                    *answer_id,
                    AnswerRecord {
                        question_id: *question_id,
                        grade: grade.clone(),
                        contested: false,
                    },
                );
            }
            TraineeEvent::VerdictContested { answer_id, .. } => {
                if let Some(record) = state.answers.get_mut(answer_id) {
                    record.contested = true;
                }
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, given};

    fn content(text: &str) -> QuestionContent {
        QuestionContent::parse(
            Level::Junior,
            "Rust",
            text,
            "Ownership moves values.",
            vec![KeyPoint {
                concept: "ownership".into(),
                synonyms: vec!["owner".into(), " ".into()],
            }],
        )
        .unwrap()
    }

    fn admin() -> Uuid {
        Uuid::from_u128(1)
    }

    fn added(text: &str) -> QuestionEvent {
        QuestionEvent::QuestionAdded {
            external_id: None,
            content: content(text),
            by: admin(),
            at: at(10),
        }
    }

    #[test]
    fn content_is_trimmed_and_validated() {
        let parsed = content("  What is ownership? ");
        assert_eq!(parsed.text, "What is ownership?");
        assert_eq!(parsed.topic, "rust");
        assert_eq!(parsed.key_points[0].synonyms, ["owner"]);
        assert_eq!(
            QuestionContent::parse(Level::Junior, "rust", "q", "a", vec![]),
            Err(QuestionError::KeyPoints)
        );
        assert_eq!(
            QuestionContent::parse(Level::Junior, " ", "q", "a", vec![]),
            Err(QuestionError::Topic)
        );
        let punctuation = KeyPoint {
            concept: "?!".into(),
            synonyms: vec![],
        };
        assert_eq!(
            QuestionContent::parse(Level::Junior, "rust", "q", "a", vec![punctuation]),
            Err(QuestionError::KeyPoints)
        );
        assert_eq!(Level::parse(" Senior "), Ok(Level::Senior));
        assert!(Level::parse("lead").is_err());
    }

    #[test]
    fn an_admin_adds_a_question() {
        given::<Question>([])
            .when(QuestionCommand::Add {
                content: content("What is ownership?"),
                by: admin(),
                at: at(10),
            })
            .then([added("What is ownership?")]);
    }

    #[test]
    fn an_edit_is_an_event_with_the_whole_new_content() {
        given::<Question>([added("What is ownership?")])
            .when(QuestionCommand::Edit {
                content: content("What is ownership in Rust?"),
                by: admin(),
                at: at(20),
            })
            .then([QuestionEvent::QuestionEdited {
                content: content("What is ownership in Rust?"),
                by: admin(),
                at: at(20),
            }]);
    }

    #[test]
    fn an_edit_that_changes_nothing_records_nothing() {
        given::<Question>([added("What is ownership?")])
            .when(QuestionCommand::Edit {
                content: content("What is ownership?"),
                by: admin(),
                at: at(20),
            })
            .then([]);
    }

    #[test]
    fn a_retired_question_cannot_be_edited() {
        given::<Question>([
            added("What is ownership?"),
            QuestionEvent::QuestionRetired {
                by: admin(),
                at: at(30),
            },
        ])
        .when(QuestionCommand::Edit {
            content: content("Other?"),
            by: admin(),
            at: at(40),
        })
        .then_err(QuestionError::Retired);
    }

    #[test]
    fn a_retired_question_cannot_be_edited_even_to_the_same_content() {
        given::<Question>([
            added("Q?"),
            QuestionEvent::QuestionRetired {
                by: admin(),
                at: at(30),
            },
        ])
        .when(QuestionCommand::Edit {
            content: content("Q?"),
            by: admin(),
            at: at(40),
        })
        .then_err(QuestionError::Retired);
    }

    #[test]
    fn retiring_twice_records_one_retirement() {
        let retired = QuestionEvent::QuestionRetired {
            by: admin(),
            at: at(30),
        };
        given::<Question>([added("Q?")])
            .when(QuestionCommand::Retire {
                by: admin(),
                at: at(30),
            })
            .then([retired.clone()]);
        given::<Question>([added("Q?"), retired])
            .when(QuestionCommand::Retire {
                by: admin(),
                at: at(31),
            })
            .then([]);
    }

    #[test]
    fn an_import_adds_new_questions_edits_changed_ones_and_skips_the_rest() {
        let import = |text: &str| QuestionCommand::Import {
            external_id: "q-1".into(),
            content: content(text),
            by: admin(),
            at: at(50),
        };
        let imported = QuestionEvent::QuestionAdded {
            external_id: Some("q-1".into()),
            content: content("Q?"),
            by: admin(),
            at: at(50),
        };
        given::<Question>([])
            .when(import("Q?"))
            .then([imported.clone()]);
        given::<Question>([imported.clone()])
            .when(import("Q?"))
            .then([]);
        given::<Question>([imported.clone()])
            .when(import("Q2?"))
            .then([QuestionEvent::QuestionEdited {
                content: content("Q2?"),
                by: admin(),
                at: at(50),
            }]);
        given::<Question>([
            imported,
            QuestionEvent::QuestionRetired {
                by: admin(),
                at: at(60),
            },
        ])
        .when(import("Q2?"))
        .then([]);
        assert_eq!(imported_question_id("q-1"), imported_question_id("q-1"));
    }

    #[test]
    fn editing_or_retiring_a_missing_question_is_not_found() {
        given::<Question>([])
            .when(QuestionCommand::Retire {
                by: admin(),
                at: at(1),
            })
            .then_err(QuestionError::NotFound);
    }

    fn grade(verdict: Verdict) -> Grade {
        Grade {
            verdict,
            score: 0.5,
            matched: vec![],
            missing: vec!["ownership".into()],
            negated: vec![],
        }
    }

    fn answered(id: u128, verdict: Verdict) -> TraineeEvent {
        TraineeEvent::QuestionAnswered {
            answer_id: Uuid::from_u128(id),
            question_id: Uuid::from_u128(100),
            level: Level::Junior,
            topic: "rust".into(),
            answer: "values move".into(),
            grade: grade(verdict),
            at: at(5),
        }
    }

    #[test]
    fn an_answer_is_recorded_with_the_verdict_given_at_answer_time() {
        given::<Trainee>([])
            .when(TraineeCommand::Answer {
                answer_id: Uuid::from_u128(1),
                question_id: Uuid::from_u128(100),
                question_retired: false,
                level: Level::Junior,
                topic: "rust".into(),
                answer: "  values move ".into(),
                grade: grade(Verdict::Partial),
                at: at(5),
            })
            .then([answered(1, Verdict::Partial)]);
    }

    #[test]
    fn the_same_answer_id_is_recorded_once() {
        given::<Trainee>([answered(1, Verdict::Partial)])
            .when(TraineeCommand::Answer {
                answer_id: Uuid::from_u128(1),
                question_id: Uuid::from_u128(100),
                question_retired: false,
                level: Level::Junior,
                topic: "rust".into(),
                answer: "other".into(),
                grade: grade(Verdict::Correct),
                at: at(6),
            })
            .then([]);
    }

    #[test]
    fn a_retired_question_cannot_be_answered_but_an_earlier_answer_still_stands() {
        let answer = |id: u128| TraineeCommand::Answer {
            answer_id: Uuid::from_u128(id),
            question_id: Uuid::from_u128(100),
            question_retired: true,
            level: Level::Junior,
            topic: "rust".into(),
            answer: "values move".into(),
            grade: grade(Verdict::Partial),
            at: at(7),
        };
        given::<Trainee>([])
            .when(answer(2))
            .then_err(TraineeError::QuestionRetired);
        given::<Trainee>([answered(1, Verdict::Partial)])
            .when(answer(1))
            .then([]);
    }

    #[test]
    fn an_empty_answer_is_refused() {
        given::<Trainee>([])
            .when(TraineeCommand::Answer {
                answer_id: Uuid::from_u128(1),
                question_id: Uuid::from_u128(100),
                question_retired: false,
                level: Level::Junior,
                topic: "rust".into(),
                answer: "   ".into(),
                grade: grade(Verdict::Incorrect),
                at: at(6),
            })
            .then_err(TraineeError::AnswerLength);
    }

    #[test]
    fn a_user_contests_a_verdict_once() {
        let contest = || TraineeCommand::Contest {
            answer_id: Uuid::from_u128(1),
            reason: "I was right".into(),
            at: at(9),
        };
        let contested = TraineeEvent::VerdictContested {
            answer_id: Uuid::from_u128(1),
            reason: "I was right".into(),
            at: at(9),
        };
        given::<Trainee>([answered(1, Verdict::Incorrect)])
            .when(contest())
            .then([contested.clone()]);
        given::<Trainee>([answered(1, Verdict::Incorrect), contested])
            .when(contest())
            .then([]);
        given::<Trainee>([])
            .when(contest())
            .then_err(TraineeError::AnswerNotFound);
        given::<Trainee>([answered(1, Verdict::Correct)])
            .when(contest())
            .then_err(TraineeError::AlreadyCorrect);
    }
}
