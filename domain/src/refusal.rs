//! Why a command is refused, as a stable code clients can decide on.
//!
//! Every domain error is a [`Refusal`]: it names the [`Rule`] it broke. A rule has a snake_case `reason` that
//! never changes (clients match on it, never on message text), a [`RefusalKind`] (which the API turns into its
//! `extensions.code`), and a one-line `when` for the documentation.
//!
//! This file is the table. `rules!` below lists every rule once; then one exhaustive `match` per error enum
//! says which rule each variant breaks. A new variant does not compile until it has its rule, and a new rule is
//! in [`Rule::ALL`] (and so in the README's table and the API's reason test) by construction. Two variants share
//! a rule only when they truly mean the same thing (a topic's length in the trainer and in interviews).
//!
//! Not here: [`crate::DecodeError`] and [`crate::StreamIdError`], failures of stored data and of an operator's
//! input to the CLI, never a command's refusal.

use crate::cars::{CarError, ScrapeRunError};
use crate::identity::{AccountError, ClaimError, CredentialError};
use crate::inbox::InboxError;
use crate::interviews::{CalendarError, InterviewError, LedgerError, MeetingLinkError};
use crate::tracks::{DiaryError, RepoUrlError, TrackError};
use crate::trainer::{QuestionError, TraineeError};

/// What kind of refusal a rule's is; the API maps each to one of its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefusalKind {
    /// The input breaks a format or a range.
    Validation,
    /// The actor may not do this (not their slot, not enrolled).
    Forbidden,
    /// What the command is about does not exist.
    NotFound,
    /// The current state does not allow it (taken, started, closed, too late).
    Conflict,
}

/// A domain error that says which rule it broke.
pub trait Refusal: std::error::Error {
    /// The rule this error broke.
    fn rule(&self) -> Rule;

    fn kind(&self) -> RefusalKind {
        self.rule().kind()
    }

    /// The rule's stable snake_case code.
    fn reason(&self) -> &'static str {
        self.rule().reason()
    }
}

/// Declares [`Rule`] with its reason, kind and meaning per variant, and [`Rule::ALL`].
macro_rules! rules {
    ($($rule:ident = $reason:literal, $kind:ident, $when:literal;)*) => {
        /// Every rule a domain command can break.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $(#[doc = $when] $rule,)*
        }

        impl Rule {
            /// Every rule, in the table's order.
            pub const ALL: &'static [Rule] = &[$(Rule::$rule,)*];

            /// The stable snake_case code clients decide on.
            pub const fn reason(self) -> &'static str {
                match self {
                    $(Rule::$rule => $reason,)*
                }
            }

            pub const fn kind(self) -> RefusalKind {
                match self {
                    $(Rule::$rule => RefusalKind::$kind,)*
                }
            }

            /// When the rule is broken, in one line.
            pub const fn when(self) -> &'static str {
                match self {
                    $(Rule::$rule => $when,)*
                }
            }
        }
    };
}

rules! {
    // identity
    MalformedEmail = "malformed_email", Validation,
        "an email address that does not look like name@example.org (or is over 254 characters)";
    MalformedUsername = "malformed_username", Validation,
        "a username that is not 3 to 32 of a-z, digits, _ - . starting with a letter or digit";
    PasswordLength = "password_length", Validation, "a password shorter than 8 or longer than 256 characters";
    EmailTaken = "email_taken", Conflict, "registering with an email another account has";
    UsernameTaken = "username_taken", Conflict, "registering with a username another account has";
    AccountExists = "account_exists", Conflict, "registering an account id that is already registered";
    AccountNotFound = "account_not_found", NotFound, "acting on an account that does not exist";
    CannotRevokeOwnAdmin = "cannot_revoke_own_admin", Validation,
        "an admin revoking their own admin role";
    // the question trainer
    UnknownLevel = "unknown_level", Validation, "a level other than junior, middle or senior";
    TopicLength = "topic_length", Validation,
        "a question's or an interview's topic that is empty or over 64 characters";
    QuestionTextLength = "question_text_length", Validation,
        "a question's text that is empty or over 2000 characters";
    ReferenceAnswerLength = "reference_answer_length", Validation,
        "a reference answer that is empty or over 10000 characters";
    InvalidKeyPoints = "invalid_key_points", Validation,
        "not 1 to 20 key points, or a key point without a concept of letters or digits";
    QuestionExists = "question_exists", Conflict, "adding a question whose id holds another question";
    QuestionNotFound = "question_not_found", NotFound, "acting on a question that does not exist";
    QuestionRetired = "question_retired", Conflict, "editing or answering a retired question";
    AnswerLength = "answer_length", Validation, "an answer that is empty or over 5000 characters";
    ReasonLength = "reason_length", Validation,
        "the reason of a contested verdict, a dispute or a contested no-show that is empty or over 1000 \
         characters";
    AnswerNotFound = "answer_not_found", NotFound, "contesting an answer that is not one of yours";
    AnswerAlreadyCorrect = "answer_already_correct", Conflict,
        "contesting the verdict of an answer judged correct";
    // cohort tracks
    TrackTitleLength = "track_title_length", Validation,
        "a track's title that is empty or over 200 characters";
    TrackDescriptionLength = "track_description_length", Validation,
        "a track's description over 10000 characters";
    ParticipantLimits = "participant_limits", Validation,
        "a minimum of participants outside 1 to 1000, or a maximum below the minimum";
    InvalidAssignments = "invalid_assignments", Validation,
        "not 1 to 50 assignments, or one with a bad title, description or number of hours";
    InvalidCriteria = "invalid_criteria", Validation,
        "review criteria that are missing, unnamed, named twice or with a bad score range";
    TrackExists = "track_exists", Conflict, "creating a track whose id holds another track";
    TrackNotFound = "track_not_found", NotFound, "acting on a track that does not exist";
    TrackStarted = "track_started", Conflict,
        "leaving a track, or revising its criteria, after it started";
    EnrollmentClosed = "enrollment_closed", Conflict,
        "enrolling after the first assignment's deadline";
    TrackFull = "track_full", Conflict, "enrolling in a track that has its maximum of participants";
    NotEnrolled = "not_enrolled", Forbidden,
        "acting in a track (leaving, submitting, writing a diary entry) without being enrolled";
    AssignmentNotFound = "assignment_not_found", NotFound,
        "an assignment number the track does not have";
    AssignmentNotOpened = "assignment_not_opened", Conflict,
        "acting on (or writing a diary entry under) an assignment that has not opened yet";
    AssignmentLocked = "assignment_locked", Conflict,
        "submitting to the open assignment before giving the reviews you were allocated";
    SubmissionAfterDeadline = "submission_after_deadline", Conflict,
        "submitting a solution once the assignment's deadline has come";
    AssignmentClosed = "assignment_closed", Conflict, "extending the deadline of a closed assignment";
    NotYetDue = "not_yet_due", Conflict,
        "a timed step (a reminder, a close, an interview's end or settlement) asked for before its time";
    DeadlineTooFar = "deadline_too_far", Validation, "a new deadline more than a year ahead";
    DeadlineNotLater = "deadline_not_later", Validation,
        "a new deadline that is not later than the current one, or not in the future";
    NotYourReview = "not_your_review", Forbidden, "reviewing a solution you were not allocated";
    SolutionNotAllocated = "solution_not_allocated", NotFound,
        "reviewing a solution id that is not among those allocated to you";
    AlreadyReviewed = "already_reviewed", Conflict, "reviewing a solution again, differently";
    InvalidScores = "invalid_scores", Validation,
        "review scores for an unknown criterion, missing or twice for one, or out of its range";
    ReviewCommentLength = "review_comment_length", Validation,
        "a review's comment over 5000 characters";
    DiaryEntryLength = "diary_entry_length", Validation,
        "a diary entry that is empty or over 10000 characters";
    RepositoryNotAUrl = "repository_not_a_url", Validation, "a repository link that is not a URL";
    RepositoryScheme = "repository_scheme", Validation, "a repository link that is not http or https";
    RepositoryHost = "repository_host", Validation,
        "a repository link to a host that is not a git host we accept";
    RepositoryCredentials = "repository_credentials", Validation,
        "a repository link with a user name, password or port";
    RepositoryPath = "repository_path", Validation,
        "a repository link that does not name an owner and a repository";
    // notifications
    MarkReadCount = "mark_read_count", Validation,
        "marking no notification, or more than 500 at a time, as read";
    NotificationNotFound = "notification_not_found", NotFound,
        "marking read a notification that does not exist or is not yours";
    // mock interviews
    InterviewDuration = "interview_duration", Validation,
        "an interview shorter than 15 or longer than 240 minutes";
    InvalidMeetingLink = "invalid_meeting_link", Validation,
        "a meeting link that is not an https Google Meet, Zoom or Jitsi meeting";
    StartNotAhead = "start_not_ahead", Validation, "a slot starting in the past or more than a year ahead";
    NulCharacter = "nul_character", Validation, "text containing a NUL character (U+0000)";
    SlotNotFound = "slot_not_found", NotFound, "acting on a slot that does not exist";
    SlotExists = "slot_exists", Conflict, "publishing a slot whose id holds another slot";
    OwnSlot = "own_slot", Forbidden, "booking your own slot";
    SlotAlreadyBooked = "slot_already_booked", Conflict, "booking a slot someone else booked";
    SlotNotOpen = "slot_not_open", Conflict, "booking a withdrawn slot";
    InterviewStarted = "interview_started", Conflict, "booking a slot whose start has passed";
    PublisherCannotPay = "publisher_cannot_pay", Conflict,
        "booking an interviewee's slot when they no longer have the points it costs them";
    InterviewOverlap = "interview_overlap", Conflict,
        "publishing or booking over an interview you already have";
    PublisherBusy = "publisher_busy", Conflict,
        "booking a slot whose publisher has another interview at that time";
    InsufficientPoints = "insufficient_points", Conflict,
        "taking the interviewee's role without the points it costs";
    NotAParty = "not_a_party", Forbidden, "acting on an interview you are not a side of";
    NotInterviewer = "not_interviewer", Forbidden, "giving feedback when you are not the interviewer";
    NotInterviewee = "not_interviewee", Forbidden, "answering feedback when you are not the interviewee";
    CancelCutoffPassed = "cancel_cutoff_passed", Conflict,
        "cancelling a booked interview after the cut-off before its start";
    NotCancellable = "not_cancellable", Conflict,
        "cancelling an interview that has ended, been settled or withdrawn";
    InterviewNotEnded = "interview_not_ended", Conflict, "giving feedback before the interview's end";
    InvalidFeedback = "invalid_feedback", Validation,
        "feedback whose score is not 1 to 5 or whose text is empty or over 5000 characters";
    FeedbackAlreadyGiven = "feedback_already_given", Conflict, "giving different feedback a second time";
    FeedbackWindowClosed = "feedback_window_closed", Conflict,
        "giving feedback after the feedback window (or once the interview was settled otherwise)";
    NoFeedback = "no_feedback", Conflict, "accepting or disputing feedback that was not given";
    NoShowWindow = "no_show_window", Conflict,
        "reporting a no-show before the start, over 24 h after the end, or after feedback";
    NoShowAlreadyReported = "no_show_already_reported", Conflict,
        "reporting a no-show when the other side already reported one (contest it instead)";
    NoShowNotReported = "no_show_not_reported", NotFound,
        "contesting or resolving a no-show nobody reported";
    NotAccused = "not_accused", Forbidden, "contesting a no-show report that does not name you absent";
    NoShowContestClosed = "no_show_contest_closed", Conflict,
        "contesting a no-show report after its 24 h, or once it settled";
    NoShowNotContested = "no_show_not_contested", Conflict,
        "resolving a no-show report nobody contested";
    // car listings (commands only the scraper sends)
    InvalidListingId = "invalid_listing_id", Validation, "a listing id that is not AU followed by digits";
    ListingMismatch = "listing_mismatch", Validation,
        "observing a listing in the stream of another listing";
    CarNotListed = "car_not_listed", NotFound, "delisting a car that was never listed";
    ScrapeRunNotStarted = "scrape_run_not_started", NotFound,
        "recording into a scraper run that has not started";
    ScrapeRunCompleted = "scrape_run_completed", Conflict, "recording into a scraper run that has completed";
}

impl Refusal for CredentialError {
    fn rule(&self) -> Rule {
        match self {
            CredentialError::Email => Rule::MalformedEmail,
            CredentialError::Username => Rule::MalformedUsername,
            CredentialError::Password => Rule::PasswordLength,
        }
    }
}

impl Refusal for AccountError {
    fn rule(&self) -> Rule {
        match self {
            AccountError::AlreadyRegistered => Rule::AccountExists,
            AccountError::NotRegistered => Rule::AccountNotFound,
            AccountError::CannotRevokeOwnAdmin => Rule::CannotRevokeOwnAdmin,
        }
    }
}

impl Refusal for ClaimError {
    fn rule(&self) -> Rule {
        match self {
            // a claim's value is an email or a username, and only an email has an '@'
            ClaimError::Taken(value) if value.contains('@') => Rule::EmailTaken,
            ClaimError::Taken(_) => Rule::UsernameTaken,
        }
    }
}

impl Refusal for QuestionError {
    fn rule(&self) -> Rule {
        match self {
            QuestionError::Level(_) => Rule::UnknownLevel,
            QuestionError::Topic => Rule::TopicLength,
            QuestionError::Text => Rule::QuestionTextLength,
            QuestionError::ReferenceAnswer => Rule::ReferenceAnswerLength,
            QuestionError::KeyPoints => Rule::InvalidKeyPoints,
            QuestionError::AlreadyExists => Rule::QuestionExists,
            QuestionError::NotFound => Rule::QuestionNotFound,
            QuestionError::Retired => Rule::QuestionRetired,
        }
    }
}

impl Refusal for TraineeError {
    fn rule(&self) -> Rule {
        match self {
            TraineeError::AnswerLength => Rule::AnswerLength,
            TraineeError::ReasonLength => Rule::ReasonLength,
            TraineeError::AnswerNotFound => Rule::AnswerNotFound,
            TraineeError::QuestionNotFound => Rule::QuestionNotFound,
            TraineeError::AlreadyCorrect => Rule::AnswerAlreadyCorrect,
            TraineeError::QuestionRetired => Rule::QuestionRetired,
        }
    }
}

impl Refusal for TrackError {
    fn rule(&self) -> Rule {
        match self {
            TrackError::Title => Rule::TrackTitleLength,
            TrackError::Description => Rule::TrackDescriptionLength,
            TrackError::Participants => Rule::ParticipantLimits,
            TrackError::Assignments => Rule::InvalidAssignments,
            TrackError::Criteria(_) => Rule::InvalidCriteria,
            TrackError::AlreadyExists => Rule::TrackExists,
            TrackError::NotFound => Rule::TrackNotFound,
            TrackError::AlreadyStarted => Rule::TrackStarted,
            TrackError::EnrollmentClosed => Rule::EnrollmentClosed,
            TrackError::Full => Rule::TrackFull,
            TrackError::NotEnrolled => Rule::NotEnrolled,
            TrackError::NoSuchAssignment(_) => Rule::AssignmentNotFound,
            TrackError::AssignmentNotOpen(_) => Rule::AssignmentNotOpened,
            TrackError::AssignmentLocked(_) => Rule::AssignmentLocked,
            TrackError::PastDeadline(_) => Rule::SubmissionAfterDeadline,
            TrackError::AssignmentClosed(_) => Rule::AssignmentClosed,
            TrackError::NotYetDue => Rule::NotYetDue,
            TrackError::DeadlineNotLater => Rule::DeadlineNotLater,
            TrackError::DeadlineTooFar => Rule::DeadlineTooFar,
            TrackError::NotYourReview => Rule::NotYourReview,
            TrackError::NotAllocated => Rule::SolutionNotAllocated,
            TrackError::Repository(error) => error.rule(),
            TrackError::AlreadyReviewed => Rule::AlreadyReviewed,
            TrackError::Scores(_) => Rule::InvalidScores,
            TrackError::Comment => Rule::ReviewCommentLength,
        }
    }
}

impl Refusal for DiaryError {
    fn rule(&self) -> Rule {
        match self {
            DiaryError::Length => Rule::DiaryEntryLength,
            DiaryError::NoSuchTrack => Rule::TrackNotFound,
            DiaryError::NotEnrolled => Rule::NotEnrolled,
            DiaryError::NotOpened(_) => Rule::AssignmentNotOpened,
        }
    }
}

impl Refusal for RepoUrlError {
    fn rule(&self) -> Rule {
        match self {
            RepoUrlError::NotAUrl(_) => Rule::RepositoryNotAUrl,
            RepoUrlError::Scheme(_) => Rule::RepositoryScheme,
            RepoUrlError::Host(_) => Rule::RepositoryHost,
            RepoUrlError::Credentials => Rule::RepositoryCredentials,
            RepoUrlError::NoRepository => Rule::RepositoryPath,
        }
    }
}

impl Refusal for InboxError {
    fn rule(&self) -> Rule {
        match self {
            InboxError::Count => Rule::MarkReadCount,
            InboxError::NotYours(_) => Rule::NotificationNotFound,
        }
    }
}

impl Refusal for InterviewError {
    fn rule(&self) -> Rule {
        match self {
            InterviewError::Duration => Rule::InterviewDuration,
            InterviewError::Topic => Rule::TopicLength,
            InterviewError::Link(_) => Rule::InvalidMeetingLink,
            InterviewError::StartNotAhead => Rule::StartNotAhead,
            InterviewError::NotFound => Rule::SlotNotFound,
            InterviewError::AlreadyExists => Rule::SlotExists,
            InterviewError::OwnSlot => Rule::OwnSlot,
            InterviewError::AlreadyBooked => Rule::SlotAlreadyBooked,
            InterviewError::NotOpen => Rule::SlotNotOpen,
            InterviewError::TooLate => Rule::InterviewStarted,
            InterviewError::PublisherCannotPay => Rule::PublisherCannotPay,
            InterviewError::NulCharacter => Rule::NulCharacter,
            InterviewError::Overlap => Rule::InterviewOverlap,
            InterviewError::OwnerBusy => Rule::PublisherBusy,
            InterviewError::InsufficientPoints(_) => Rule::InsufficientPoints,
            InterviewError::NotAParty => Rule::NotAParty,
            InterviewError::NotInterviewer => Rule::NotInterviewer,
            InterviewError::NotInterviewee => Rule::NotInterviewee,
            InterviewError::CutoffPassed => Rule::CancelCutoffPassed,
            InterviewError::NotCancellable => Rule::NotCancellable,
            InterviewError::NotEnded => Rule::InterviewNotEnded,
            InterviewError::Feedback => Rule::InvalidFeedback,
            InterviewError::FeedbackAlreadyGiven => Rule::FeedbackAlreadyGiven,
            InterviewError::FeedbackWindowClosed => Rule::FeedbackWindowClosed,
            InterviewError::NoFeedback => Rule::NoFeedback,
            InterviewError::Reason => Rule::ReasonLength,
            InterviewError::NoShowWindow => Rule::NoShowWindow,
            InterviewError::NoShowAlreadyReported => Rule::NoShowAlreadyReported,
            InterviewError::NoNoShowReport => Rule::NoShowNotReported,
            InterviewError::NotAccused => Rule::NotAccused,
            InterviewError::NoShowSettled => Rule::NoShowContestClosed,
            InterviewError::NotContested => Rule::NoShowNotContested,
            InterviewError::NotYetDue => Rule::NotYetDue,
        }
    }
}

impl Refusal for CalendarError {
    fn rule(&self) -> Rule {
        match self {
            CalendarError::Overlap => Rule::InterviewOverlap,
        }
    }
}

impl Refusal for LedgerError {
    fn rule(&self) -> Rule {
        match self {
            LedgerError::InsufficientPoints(_) => Rule::InsufficientPoints,
        }
    }
}

impl Refusal for MeetingLinkError {
    fn rule(&self) -> Rule {
        Rule::InvalidMeetingLink
    }
}

impl Refusal for CarError {
    fn rule(&self) -> Rule {
        match self {
            CarError::ListingId(_) => Rule::InvalidListingId,
            CarError::ListingMismatch { .. } => Rule::ListingMismatch,
            CarError::NotListed => Rule::CarNotListed,
        }
    }
}

impl Refusal for ScrapeRunError {
    fn rule(&self) -> Rule {
        match self {
            ScrapeRunError::NotStarted => Rule::ScrapeRunNotStarted,
            ScrapeRunError::AlreadyCompleted => Rule::ScrapeRunCompleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// One value of every variant of every error enum of the table.
    fn samples() -> Vec<Box<dyn Refusal>> {
        let text = || "x".to_owned();
        let mut all: Vec<Box<dyn Refusal>> = vec![];
        all.extend(
            [
                CredentialError::Email,
                CredentialError::Username,
                CredentialError::Password,
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.extend(
            [
                AccountError::AlreadyRegistered,
                AccountError::NotRegistered,
                AccountError::CannotRevokeOwnAdmin,
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.extend(
            [
                ClaimError::Taken("ada@example.org".into()),
                ClaimError::Taken("ada".into()),
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.extend(
            [
                QuestionError::Level(text()),
                QuestionError::Topic,
                QuestionError::Text,
                QuestionError::ReferenceAnswer,
                QuestionError::KeyPoints,
                QuestionError::AlreadyExists,
                QuestionError::NotFound,
                QuestionError::Retired,
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.extend(
            [
                TraineeError::AnswerLength,
                TraineeError::ReasonLength,
                TraineeError::AnswerNotFound,
                TraineeError::QuestionNotFound,
                TraineeError::AlreadyCorrect,
                TraineeError::QuestionRetired,
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.extend(
            [
                TrackError::Title,
                TrackError::Description,
                TrackError::Participants,
                TrackError::Assignments,
                TrackError::Criteria(text()),
                TrackError::AlreadyExists,
                TrackError::NotFound,
                TrackError::AlreadyStarted,
                TrackError::EnrollmentClosed,
                TrackError::Full,
                TrackError::NotEnrolled,
                TrackError::NoSuchAssignment(1),
                TrackError::AssignmentNotOpen(1),
                TrackError::AssignmentLocked(1),
                TrackError::PastDeadline(1),
                TrackError::AssignmentClosed(1),
                TrackError::NotYetDue,
                TrackError::DeadlineNotLater,
                TrackError::DeadlineTooFar,
                TrackError::NotYourReview,
                TrackError::NotAllocated,
                TrackError::Repository(RepoUrlError::Credentials),
                TrackError::AlreadyReviewed,
                TrackError::Scores(text()),
                TrackError::Comment,
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.extend(
            [
                DiaryError::Length,
                DiaryError::NoSuchTrack,
                DiaryError::NotEnrolled,
                DiaryError::NotOpened(1),
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.extend(
            [
                RepoUrlError::NotAUrl(text()),
                RepoUrlError::Scheme(text()),
                RepoUrlError::Host(text()),
                RepoUrlError::Credentials,
                RepoUrlError::NoRepository,
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.push(Box::new(CalendarError::Overlap));
        all.push(Box::new(LedgerError::InsufficientPoints(0)));
        all.push(Box::new(InboxError::Count));
        all.push(Box::new(InboxError::NotYours(uuid::Uuid::nil())));
        all.extend(
            [
                InterviewError::Duration,
                InterviewError::Topic,
                InterviewError::Link(text()),
                InterviewError::StartNotAhead,
                InterviewError::NotFound,
                InterviewError::AlreadyExists,
                InterviewError::OwnSlot,
                InterviewError::AlreadyBooked,
                InterviewError::NotOpen,
                InterviewError::TooLate,
                InterviewError::PublisherCannotPay,
                InterviewError::NulCharacter,
                InterviewError::Overlap,
                InterviewError::OwnerBusy,
                InterviewError::InsufficientPoints(0),
                InterviewError::NotAParty,
                InterviewError::NotInterviewer,
                InterviewError::NotInterviewee,
                InterviewError::CutoffPassed,
                InterviewError::NotCancellable,
                InterviewError::NotEnded,
                InterviewError::Feedback,
                InterviewError::FeedbackAlreadyGiven,
                InterviewError::FeedbackWindowClosed,
                InterviewError::NoFeedback,
                InterviewError::Reason,
                InterviewError::NoShowWindow,
                InterviewError::NoShowAlreadyReported,
                InterviewError::NoNoShowReport,
                InterviewError::NotAccused,
                InterviewError::NoShowSettled,
                InterviewError::NotContested,
                InterviewError::NotYetDue,
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.push(Box::new(MeetingLinkError(text())));
        all.extend(
            [
                CarError::ListingId(text()),
                CarError::ListingMismatch {
                    stream: text(),
                    observed: text(),
                },
                CarError::NotListed,
            ]
            .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all.extend(
            [ScrapeRunError::NotStarted, ScrapeRunError::AlreadyCompleted]
                .map(|e| Box::new(e) as Box<dyn Refusal>),
        );
        all
    }

    #[test]
    fn every_rule_is_broken_by_some_variant_and_every_variant_names_one() {
        let used: BTreeSet<Rule> = samples().iter().map(|e| e.rule()).collect();
        let all: BTreeSet<Rule> = Rule::ALL.iter().copied().collect();
        let unused: Vec<&Rule> = all.difference(&used).collect();
        assert!(unused.is_empty(), "rules no error breaks: {unused:?}");
    }

    #[test]
    fn reasons_are_unique_snake_case_and_every_rule_says_when() {
        let mut seen = BTreeSet::new();
        for rule in Rule::ALL {
            let reason = rule.reason();
            assert!(seen.insert(reason), "{reason} names two rules");
            assert!(
                !reason.is_empty()
                    && reason.starts_with(|c: char| c.is_ascii_lowercase())
                    && !reason.ends_with('_')
                    && !reason.contains("__")
                    && reason
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{reason} is not snake_case"
            );
            assert!(
                !rule.when().is_empty() && !rule.when().contains('|'),
                "{reason}: {:?}",
                rule.when()
            );
        }
    }

    #[test]
    fn an_error_and_its_rule_agree() {
        let refusal = InterviewError::AlreadyBooked;
        assert_eq!(refusal.reason(), "slot_already_booked");
        assert_eq!(refusal.kind(), RefusalKind::Conflict);
        assert_eq!(
            ClaimError::Taken("ada@example.org".into()).reason(),
            "email_taken"
        );
        assert_eq!(ClaimError::Taken("ada".into()).reason(), "username_taken");
    }
}
