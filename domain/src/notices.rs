//! What users are told: the kinds of notification the `notifications` read model derives from events.
//!
//! A notification is not an event of its own (marking it read is: see [`crate::inbox`]); its kind is part of
//! the read model's contract with clients, stored by [`NotificationKind::as_str`].

use serde::{Deserialize, Serialize};

/// Why a user was notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A track you are enrolled in started: its first assignment is open.
    TrackStarted,
    /// You joined a running track.
    TrackJoined,
    /// The assignment you have no solution for yet is due soon (at 80 % of its time).
    DeadlineReminder,
    /// An assignment's deadline moved later.
    DeadlineExtended,
    /// Solutions were allocated to you for review.
    ReviewsAssigned,
    /// A peer reviewed your solution.
    ReviewReceived,
    /// You gave the reviews you owed: the open assignment is open to you.
    AssignmentUnlocked,
    /// Someone booked your slot.
    SlotBooked,
    /// The other side cancelled an interview.
    BookingCancelled,
    /// An interview starts soon.
    InterviewReminder,
    /// Your interviewer gave feedback.
    FeedbackReceived,
    /// Your feedback was accepted: you earned a point.
    PointEarned,
    /// The interviewee disputed your feedback.
    FeedbackDisputed,
    /// You were reported absent.
    NoShowReported,
    /// A no-show report on your interview is contested.
    NoShowContested,
    /// An admin decided a contested no-show.
    NoShowResolved,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 16] = [
        NotificationKind::TrackStarted,
        NotificationKind::TrackJoined,
        NotificationKind::DeadlineReminder,
        NotificationKind::DeadlineExtended,
        NotificationKind::ReviewsAssigned,
        NotificationKind::ReviewReceived,
        NotificationKind::AssignmentUnlocked,
        NotificationKind::SlotBooked,
        NotificationKind::BookingCancelled,
        NotificationKind::InterviewReminder,
        NotificationKind::FeedbackReceived,
        NotificationKind::PointEarned,
        NotificationKind::FeedbackDisputed,
        NotificationKind::NoShowReported,
        NotificationKind::NoShowContested,
        NotificationKind::NoShowResolved,
    ];

    /// The stable name of the kind (the `notifications` read model stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::TrackStarted => "track_started",
            NotificationKind::TrackJoined => "track_joined",
            NotificationKind::DeadlineReminder => "deadline_reminder",
            NotificationKind::DeadlineExtended => "deadline_extended",
            NotificationKind::ReviewsAssigned => "reviews_assigned",
            NotificationKind::ReviewReceived => "review_received",
            NotificationKind::AssignmentUnlocked => "assignment_unlocked",
            NotificationKind::SlotBooked => "slot_booked",
            NotificationKind::BookingCancelled => "booking_cancelled",
            NotificationKind::InterviewReminder => "interview_reminder",
            NotificationKind::FeedbackReceived => "feedback_received",
            NotificationKind::PointEarned => "point_earned",
            NotificationKind::FeedbackDisputed => "feedback_disputed",
            NotificationKind::NoShowReported => "no_show_reported",
            NotificationKind::NoShowContested => "no_show_contested",
            NotificationKind::NoShowResolved => "no_show_resolved",
        }
    }

    /// The kind [`NotificationKind::as_str`] names.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == stored)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::cars::{CarChange, CarStatus, ScrapeProblemKind};
    use crate::interviews::{PointsEntryKind, Role, SlotStatus};
    use crate::tracks::{ReviewMode, TrackStatus};

    /// Each name parses back to its value, names are distinct, and serde spells them the same way.
    fn one_vocabulary<T>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
    where
        T: Copy + PartialEq + std::fmt::Debug + Serialize,
    {
        let names: BTreeSet<&str> = all.iter().map(|v| as_str(*v)).collect();
        assert_eq!(names.len(), all.len(), "names are distinct");
        for value in all {
            assert_eq!(parse(as_str(*value)), Some(*value));
            assert_eq!(
                serde_json::to_value(value).unwrap(),
                serde_json::json!(as_str(*value))
            );
        }
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse(""), None);
    }

    /// Every enum a read model stores by name (and the API shows as a GraphQL enum), checked together.
    #[test]
    fn names_round_trip() {
        one_vocabulary(
            &NotificationKind::ALL,
            NotificationKind::as_str,
            NotificationKind::parse,
        );
        one_vocabulary(&SlotStatus::ALL, SlotStatus::as_str, SlotStatus::parse);
        one_vocabulary(
            &PointsEntryKind::ALL,
            PointsEntryKind::as_str,
            PointsEntryKind::parse,
        );
        one_vocabulary(&Role::ALL, Role::as_str, Role::parse);
        one_vocabulary(&TrackStatus::ALL, TrackStatus::as_str, TrackStatus::parse);
        one_vocabulary(&ReviewMode::ALL, ReviewMode::as_str, ReviewMode::parse);
        one_vocabulary(&CarStatus::ALL, CarStatus::as_str, CarStatus::parse);
        one_vocabulary(&CarChange::ALL, CarChange::as_str, CarChange::parse);
        one_vocabulary(
            &ScrapeProblemKind::ALL,
            ScrapeProblemKind::as_str,
            ScrapeProblemKind::parse,
        );
    }

    #[test]
    fn stored_names_stay_as_they_were() {
        // the read models hold these strings: renaming one needs a projection version bump
        assert_eq!(NotificationKind::TrackStarted.as_str(), "track_started");
        assert_eq!(
            NotificationKind::NoShowResolved.as_str(),
            "no_show_resolved"
        );
        assert_eq!(SlotStatus::AwaitingFeedback.as_str(), "awaiting_feedback");
        assert_eq!(PointsEntryKind::Earned.as_str(), "earned");
        assert_eq!(
            TrackStatus::ALL.map(TrackStatus::as_str),
            ["enrolling", "running", "completed"]
        );
        assert_eq!(
            ReviewMode::ALL.map(ReviewMode::as_str),
            ["ring", "all_available", "alone", "nobody"]
        );
        assert_eq!(
            CarStatus::ALL.map(CarStatus::as_str),
            ["active", "delisted"]
        );
        assert_eq!(
            CarChange::ALL.map(CarChange::as_str),
            [
                "listed",
                "price_changed",
                "details_changed",
                "delisted",
                "relisted"
            ]
        );
        assert_eq!(
            ScrapeProblemKind::ALL.map(ScrapeProblemKind::as_str),
            ["failure", "layout"]
        );
    }
}
