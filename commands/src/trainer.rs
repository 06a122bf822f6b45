//! The question trainer's use cases: answering (graded by the [`checker`](crate::checker) now, the grade recorded
//! with the answer), contesting a verdict, and the admins' question bank: adding, editing, retiring, importing.

use domain::trainer::{
    Grade, KeyPoint, Level, MAX_ANSWER_CHARS, Question, QuestionCommand, QuestionContent,
    QuestionError, QuestionEvent, QuestionState, Trainee, TraineeCommand, TraineeError,
    imported_question_id, question_stream, trainee_stream,
};
use domain::{Decider, StreamId, Timestamp};
use uuid::Uuid;

use crate::{
    CommandError, CommandExecutor, Decision, Loaded, NewEvent, Request, checker, new_events,
};

/// The trainer service.
#[derive(Debug, Clone)]
pub struct Trainer {
    executor: CommandExecutor,
}

/// A question as an admin writes it.
#[derive(Debug, Clone)]
pub struct QuestionDraft {
    pub level: Level,
    pub topic: String,
    pub text: String,
    pub reference_answer: String,
    pub key_points: Vec<KeyPoint>,
}

impl QuestionDraft {
    fn parse(self) -> Result<QuestionContent, CommandError<QuestionError>> {
        QuestionContent::parse(
            self.level,
            &self.topic,
            &self.text,
            &self.reference_answer,
            self.key_points,
        )
        .map_err(CommandError::Rejected)
    }
}

/// A graded answer.
#[derive(Debug, Clone)]
pub struct Answered {
    pub answer_id: Uuid,
    pub grade: Grade,
    pub reference_answer: String,
    pub position: Option<i64>,
}

/// What a question-bank command did.
#[derive(Debug, Clone)]
pub struct BankChanged {
    pub question_id: Uuid,
    pub position: Option<i64>,
    /// The events appended (empty when nothing changed or the command id was a repeat).
    pub events: Vec<QuestionEvent>,
}

impl Trainer {
    pub fn new(executor: CommandExecutor) -> Self {
        Self { executor }
    }

    /// Answers a question. A retry (same key) answers with the first grade, even if the question changed since;
    /// so does a concurrent twin that lost the race.
    pub async fn answer_question(
        &self,
        request: &Request,
        question: Uuid,
        answer: String,
    ) -> Result<Answered, CommandError<TraineeError>> {
        let user = request.user()?;
        // checked before grading, so an oversized answer costs no grading (the `Trainee` decider checks it too)
        if answer.chars().count() > MAX_ANSWER_CHARS {
            return Err(CommandError::Rejected(TraineeError::AnswerLength));
        }
        let answer_id = request.command_id("answerQuestion", &[&question.to_string(), &answer]);
        let decision = AnswerDecision {
            trainee: trainee_stream(user),
            question_stream: question_stream(question),
            question,
            answer_id,
            answer,
            at: request.at,
        };
        let metadata = request.metadata_with_id(answer_id);
        let decided = self.executor.decide(&decision, &metadata).await?;
        let position = decided.position();
        let (grade, reference_answer) = match decided.output {
            Some(graded) => graded,
            None => self.first_grade(user, question, answer_id).await?,
        };
        Ok(Answered {
            answer_id,
            grade,
            reference_answer,
            position,
        })
    }

    /// The grade an earlier execution of the same answer recorded, with the question's reference answer.
    async fn first_grade(
        &self,
        user: Uuid,
        question: Uuid,
        answer_id: Uuid,
    ) -> Result<(Grade, String), CommandError<TraineeError>> {
        let (trainee, _) = self.executor.load::<Trainee>(&trainee_stream(user)).await?;
        let (question, _) = self
            .executor
            .load::<Question>(&question_stream(question))
            .await?;
        let grade = trainee
            .answers
            .get(&answer_id)
            .map(|first| first.grade.clone());
        match (grade, question) {
            (Some(grade), Some(question)) => Ok((grade, question.content.reference_answer)),
            _ => Err(CommandError::Rejected(TraineeError::QuestionNotFound)),
        }
    }

    /// Says the verdict on one of the user's answers was wrong; recorded for admins.
    pub async fn contest_verdict(
        &self,
        request: &Request,
        answer_id: Uuid,
        reason: String,
    ) -> Result<Option<i64>, CommandError<TraineeError>> {
        let user = request.user()?;
        let metadata = request.metadata("contestVerdict", &[&answer_id.to_string()]);
        let command = TraineeCommand::Contest {
            answer_id,
            reason,
            at: request.at,
        };
        let executed = self
            .executor
            .execute::<Trainee>(&trainee_stream(user), &command, &metadata)
            .await?;
        Ok(executed.position())
    }

    /// Adds a question to the bank (admins). Its id derives from the command id.
    pub async fn add_question(&self, request: &Request, draft: QuestionDraft) -> QuestionResult {
        let by = request.admin()?;
        let content = draft.parse()?;
        let command_id = request.command_id("addQuestion", &[&content.text]);
        let question = Uuid::new_v5(&Uuid::NAMESPACE_OID, command_id.as_bytes());
        let command = QuestionCommand::Add {
            content,
            by,
            at: request.at,
        };
        let metadata = request.metadata_with_id(command_id);
        self.run(question, &command, &metadata).await
    }

    /// Replaces a question's content (admins); the previous version stays in the log.
    pub async fn edit_question(
        &self,
        request: &Request,
        question: Uuid,
        draft: QuestionDraft,
    ) -> QuestionResult {
        let by = request.admin()?;
        let content = draft.parse()?;
        let metadata = request.metadata("editQuestion", &[&question.to_string(), &content.text]);
        let command = QuestionCommand::Edit {
            content,
            by,
            at: request.at,
        };
        self.run(question, &command, &metadata).await
    }

    /// Takes a question out of practice (admins).
    pub async fn retire_question(&self, request: &Request, question: Uuid) -> QuestionResult {
        let command = QuestionCommand::Retire {
            by: request.admin()?,
            at: request.at,
        };
        let metadata = request.metadata("retireQuestion", &[&question.to_string()]);
        self.run(question, &command, &metadata).await
    }

    /// Imports a question by its external id: added, or edited when its content changed (the command line).
    pub async fn import_question(
        &self,
        request: &Request,
        external_id: &str,
        content: QuestionContent,
    ) -> QuestionResult {
        let command = QuestionCommand::Import {
            external_id: external_id.to_owned(),
            content,
            // the command line acts for no particular account
            by: request.actor.user().unwrap_or_else(Uuid::nil),
            at: request.at,
        };
        let question = imported_question_id(external_id);
        let metadata = request.metadata("importQuestion", &[external_id]);
        self.run(question, &command, &metadata).await
    }

    async fn run(
        &self,
        question: Uuid,
        command: &QuestionCommand,
        metadata: &crate::Metadata,
    ) -> QuestionResult {
        let executed = self
            .executor
            .execute::<Question>(&question_stream(question), command, metadata)
            .await?;
        Ok(BankChanged {
            question_id: question,
            position: executed.position(),
            events: executed.events,
        })
    }
}

pub type QuestionResult = Result<BankChanged, CommandError<QuestionError>>;

/// An answer, graded on the question as it stands and recorded in the trainee's stream.
struct AnswerDecision {
    trainee: StreamId,
    question_stream: StreamId,
    question: Uuid,
    answer_id: Uuid,
    answer: String,
    at: Timestamp,
}

impl Decision for AnswerDecision {
    type Error = TraineeError;
    /// The grade and the question's reference answer.
    type Output = (Grade, String);

    fn label(&self) -> &'static str {
        "Trainee"
    }

    fn reads(&self, _: &Loaded) -> Vec<StreamId> {
        vec![self.trainee.clone(), self.question_stream.clone()]
    }

    fn decide(
        &self,
        loaded: &Loaded,
    ) -> Result<(Vec<(StreamId, Vec<NewEvent>)>, (Grade, String)), TraineeError> {
        let trainee = loaded.state::<Trainee>(&self.trainee);
        let question: Option<QuestionState> = loaded.state::<Question>(&self.question_stream);
        let question = question.ok_or(TraineeError::QuestionNotFound)?;
        let content = question.content;
        // a retry answers with the first grade, even if the question was retired or edited since
        let grade = match trainee.answers.get(&self.answer_id) {
            Some(first) => first.grade.clone(),
            None => checker::grade(&self.answer, &content.reference_answer, &content.key_points),
        };
        let command = TraineeCommand::Answer {
            answer_id: self.answer_id,
            question_id: self.question,
            question_retired: question.retired,
            level: content.level,
            topic: content.topic.clone(),
            answer: self.answer.clone(),
            grade: grade.clone(),
            at: self.at,
        };
        let events = Trainee::decide(&command, &trainee)?;
        let writes = vec![(self.trainee.clone(), new_events(&events))];
        Ok((writes, (grade, content.reference_answer)))
    }
}
