//! The interview rules as given/when/then specifications.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::testing::{at, given};

const HOUR: TimeDelta = TimeDelta::hours(1);
const NOW: Timestamp = at(1_800_000_000);
/// Two days after `NOW`.
const START: Timestamp = at(NOW.unix_seconds() + TimeDelta::hours(48).num_seconds());

fn user(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn slot_id() -> Uuid {
    user(77)
}

fn spec(role: Role) -> SlotSpec {
    SlotSpec::parse(
        role,
        START,
        60,
        "https://meet.google.com/abc-defg-hij",
        "Rust",
        Level::Middle,
    )
    .unwrap()
}

fn published(role: Role) -> SlotEvent {
    SlotEvent::SlotPublished {
        owner: user(1),
        spec: spec(role),
        at: NOW,
    }
}

fn booked() -> SlotEvent {
    SlotEvent::SlotBooked {
        booker: user(2),
        interviewer: user(1),
        interviewee: user(2),
        at: NOW + HOUR,
    }
}

fn book(booker: u128) -> SlotCommand {
    SlotCommand::Book {
        booker: user(booker),
        booker_free: true,
        owner_free: true,
        interviewee_balance: 3,
        at: NOW + HOUR,
    }
}

fn ended() -> SlotEvent {
    SlotEvent::InterviewEnded {
        feedback_due: START + HOUR + HOUR * 72,
        at: START + HOUR,
    }
}

fn feedback() -> SlotEvent {
    SlotEvent::FeedbackGiven {
        score: 4,
        text: "Solid.".into(),
        accept_by: START + HOUR * 2 + HOUR * 72,
        at: START + HOUR * 2,
    }
}

#[test]
fn a_user_publishes_a_slot_in_the_future() {
    given::<Slot>([])
        .when(SlotCommand::Publish {
            owner: user(1),
            spec: spec(Role::Interviewer),
            owner_free: true,
            owner_balance: 0,
            at: NOW,
        })
        .then([published(Role::Interviewer)]);
}

#[test]
fn a_slot_in_the_past_or_over_another_interview_is_refused() {
    let mut past = spec(Role::Interviewer);
    past.start = NOW - TimeDelta::seconds(1);
    given::<Slot>([])
        .when(SlotCommand::Publish {
            owner: user(1),
            spec: past,
            owner_free: true,
            owner_balance: 0,
            at: NOW,
        })
        .then_err(InterviewError::StartNotAhead);
    given::<Slot>([])
        .when(SlotCommand::Publish {
            owner: user(1),
            spec: spec(Role::Interviewer),
            owner_free: false,
            owner_balance: 0,
            at: NOW,
        })
        .then_err(InterviewError::Overlap);
}

#[test]
fn a_slot_that_would_end_after_the_last_representable_instant_is_not_ahead() {
    let last = Timestamp::from(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    let spec = |start| {
        SlotSpec::parse(
            Role::Interviewer,
            start,
            60,
            "https://meet.google.com/abc-defg-hij",
            "Rust",
            Level::Middle,
        )
    };
    assert_eq!(spec(last), Err(InterviewError::StartNotAhead));
    assert_eq!(spec(last - HOUR).unwrap().end(), last);
}

#[test]
fn publishing_as_interviewee_needs_the_points_an_interview_costs() {
    given::<Slot>([])
        .when(SlotCommand::Publish {
            owner: user(1),
            spec: spec(Role::Interviewee),
            owner_free: true,
            owner_balance: 2,
            at: NOW,
        })
        .then_err(InterviewError::InsufficientPoints(2));
}

#[test]
fn slot_specs_are_validated() {
    assert_eq!(
        SlotSpec::parse(
            Role::Interviewer,
            START,
            10,
            "https://meet.jit.si/room",
            "x",
            Level::Junior
        ),
        Err(InterviewError::Duration)
    );
    assert!(matches!(
        SlotSpec::parse(
            Role::Interviewer,
            START,
            60,
            "https://example.com/x",
            "x",
            Level::Junior
        ),
        Err(InterviewError::Link(_))
    ));
}

#[test]
fn another_user_books_an_open_slot_and_takes_the_other_role() {
    given::<Slot>([published(Role::Interviewer)])
        .when(book(2))
        .then([booked()]);
    given::<Slot>([published(Role::Interviewee)])
        .when(book(2))
        .then([SlotEvent::SlotBooked {
            booker: user(2),
            interviewer: user(2),
            interviewee: user(1),
            at: NOW + HOUR,
        }]);
}

#[test]
fn nobody_books_their_own_slot() {
    given::<Slot>([published(Role::Interviewer)])
        .when(book(1))
        .then_err(InterviewError::OwnSlot);
}

#[test]
fn a_booked_slot_cannot_be_booked_again_but_the_same_booking_is_harmless() {
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(book(3))
        .then_err(InterviewError::AlreadyBooked);
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(book(2))
        .then([]);
}

#[test]
fn an_overlapping_interview_or_too_few_points_refuses_the_booking() {
    let refused = |booker_free, owner_free, balance| SlotCommand::Book {
        booker: user(2),
        booker_free,
        owner_free,
        interviewee_balance: balance,
        at: NOW + HOUR,
    };
    given::<Slot>([published(Role::Interviewer)])
        .when(refused(false, true, 3))
        .then_err(InterviewError::Overlap);
    given::<Slot>([published(Role::Interviewer)])
        .when(refused(true, false, 3))
        .then_err(InterviewError::OwnerBusy);
    given::<Slot>([published(Role::Interviewer)])
        .when(refused(true, true, 2))
        .then_err(InterviewError::InsufficientPoints(2));
}

#[test]
fn before_booking_the_owner_withdraws_the_slot_for_free() {
    given::<Slot>([published(Role::Interviewer)])
        .when(SlotCommand::Cancel {
            by: user(1),
            cutoff: HOUR * 2,
            at: NOW,
        })
        .then([SlotEvent::SlotWithdrawn { at: NOW }]);
}

#[test]
fn either_side_cancels_a_booking_until_the_cutoff_and_a_booker_cancelling_reopens_the_slot() {
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::Cancel {
            by: user(2),
            cutoff: HOUR * 2,
            at: START - HOUR * 2,
        })
        .then([SlotEvent::BookingCancelled {
            by: user(2),
            reopened: true,
            at: START - HOUR * 2,
        }]);
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::Cancel {
            by: user(1),
            cutoff: HOUR * 2,
            at: NOW + HOUR * 2,
        })
        .then([SlotEvent::BookingCancelled {
            by: user(1),
            reopened: false,
            at: NOW + HOUR * 2,
        }]);
}

#[test]
fn after_the_cutoff_a_booking_cannot_be_cancelled() {
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::Cancel {
            by: user(2),
            cutoff: HOUR * 2,
            at: START - HOUR,
        })
        .then_err(InterviewError::CutoffPassed);
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::Cancel {
            by: user(9),
            cutoff: HOUR * 2,
            at: NOW + HOUR * 2,
        })
        .then_err(InterviewError::NotAParty);
}

#[test]
fn reminders_go_out_24_and_1_hours_before_the_start_once_each() {
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::Remind {
            hours_before: 24,
            at: START - HOUR * 24,
        })
        .then([SlotEvent::InterviewReminderSent {
            hours_before: 24,
            at: START - HOUR * 24,
        }]);
    given::<Slot>([
        published(Role::Interviewer),
        booked(),
        SlotEvent::InterviewReminderSent {
            hours_before: 24,
            at: START - HOUR * 24,
        },
    ])
    .when(SlotCommand::Remind {
        hours_before: 24,
        at: START - HOUR * 23,
    })
    .then([]);
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::Remind {
            hours_before: 1,
            at: START - HOUR * 2,
        })
        .then_err(InterviewError::NotYetDue);
}

#[test]
fn a_booking_made_after_a_reminder_was_due_skips_that_reminder() {
    let late = SlotEvent::SlotBooked {
        booker: user(2),
        interviewer: user(1),
        interviewee: user(2),
        at: START - HOUR * 10,
    };
    given::<Slot>([published(Role::Interviewer), late])
        .when(SlotCommand::Remind {
            hours_before: 24,
            at: START - HOUR * 9,
        })
        .then([]);
}

#[test]
fn after_the_end_the_interview_awaits_feedback() {
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::End {
            feedback_within: HOUR * 72,
            at: START + HOUR,
        })
        .then([ended()]);
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::End {
            feedback_within: HOUR * 72,
            at: START + TimeDelta::minutes(59),
        })
        .then_err(InterviewError::NotYetDue);
}

#[test]
fn the_interviewer_gives_a_score_from_1_to_5_and_a_text() {
    given::<Slot>([published(Role::Interviewer), booked(), ended()])
        .when(SlotCommand::GiveFeedback {
            by: user(1),
            score: 4,
            text: " Solid. ".into(),
            feedback_within: HOUR * 72,
            accept_within: HOUR * 72,
            at: START + HOUR * 2,
        })
        .then([feedback()]);
    let bad = |by, score| SlotCommand::GiveFeedback {
        by: user(by),
        score,
        text: "x".into(),
        feedback_within: HOUR * 72,
        accept_within: HOUR * 72,
        at: START + HOUR * 2,
    };
    given::<Slot>([published(Role::Interviewer), booked(), ended()])
        .when(bad(1, 6))
        .then_err(InterviewError::Feedback);
    given::<Slot>([published(Role::Interviewer), booked(), ended()])
        .when(bad(2, 3))
        .then_err(InterviewError::NotInterviewer);
}

#[test]
fn feedback_before_the_end_is_refused() {
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::GiveFeedback {
            by: user(1),
            score: 4,
            text: "x".into(),
            feedback_within: HOUR * 72,
            accept_within: HOUR * 72,
            at: START + TimeDelta::minutes(30),
        })
        .then_err(InterviewError::NotEnded);
}

#[test]
fn the_interviewee_accepts_or_disputes_the_feedback() {
    given::<Slot>([published(Role::Interviewer), booked(), ended(), feedback()])
        .when(SlotCommand::Accept {
            by: user(2),
            at: START + HOUR * 3,
        })
        .then([SlotEvent::FeedbackAccepted {
            auto: false,
            at: START + HOUR * 3,
        }]);
    given::<Slot>([published(Role::Interviewer), booked(), ended(), feedback()])
        .when(SlotCommand::Dispute {
            by: user(2),
            reason: "Too harsh".into(),
            at: START + HOUR * 3,
        })
        .then([SlotEvent::FeedbackDisputed {
            reason: "Too harsh".into(),
            at: START + HOUR * 3,
        }]);
    given::<Slot>([published(Role::Interviewer), booked(), ended(), feedback()])
        .when(SlotCommand::Accept {
            by: user(1),
            at: START + HOUR * 3,
        })
        .then_err(InterviewError::NotInterviewee);
}

#[test]
fn unanswered_feedback_is_accepted_automatically_once_its_time_is_over() {
    let accept_by = START + HOUR * 2 + HOUR * 72;
    given::<Slot>([published(Role::Interviewer), booked(), ended(), feedback()])
        .when(SlotCommand::AutoAccept {
            at: accept_by - TimeDelta::seconds(1),
        })
        .then_err(InterviewError::NotYetDue);
    given::<Slot>([published(Role::Interviewer), booked(), ended(), feedback()])
        .when(SlotCommand::AutoAccept { at: accept_by })
        .then([SlotEvent::FeedbackAccepted {
            auto: true,
            at: accept_by,
        }]);
}

#[test]
fn a_no_show_is_reported_within_24_hours_after_the_end() {
    given::<Slot>([published(Role::Interviewer), booked()])
        .when(SlotCommand::ReportNoShow {
            by: user(2),
            at: START + HOUR * 2,
        })
        .then([reported()]);
    given::<Slot>([published(Role::Interviewer), booked(), ended()])
        .when(SlotCommand::ReportNoShow {
            by: user(1),
            at: START + HOUR * 26,
        })
        .then_err(InterviewError::NoShowWindow);
}

#[test]
fn missing_feedback_expires_the_interview() {
    given::<Slot>([published(Role::Interviewer), booked(), ended()])
        .when(SlotCommand::ExpireFeedback {
            at: START + HOUR + HOUR * 72,
        })
        .then([SlotEvent::FeedbackExpired {
            at: START + HOUR + HOUR * 72,
        }]);
}

// -- effects on calendars and ledgers ---------------------------------------------------------------------------

#[test]
fn booking_schedules_both_calendars_and_holds_the_interviewees_points() {
    let state = Slot::fold(&[published(Role::Interviewer)]);
    let effects = effects(slot_id(), state.as_ref(), &booked());
    assert_eq!(
        effects,
        [
            Effect::Calendar(
                user(1),
                CalendarCommand::Book {
                    slot: slot_id(),
                    start: START,
                    end: START + HOUR,
                    at: NOW + HOUR
                }
            ),
            Effect::Calendar(
                user(2),
                CalendarCommand::Book {
                    slot: slot_id(),
                    start: START,
                    end: START + HOUR,
                    at: NOW + HOUR
                }
            ),
            Effect::Ledger(
                user(2),
                LedgerCommand::Hold {
                    slot: slot_id(),
                    amount: 3,
                    at: NOW + HOUR
                }
            ),
        ]
    );
}

#[test]
fn acceptance_captures_the_hold_and_pays_the_interviewer_while_a_cancellation_refunds_it() {
    let state = Slot::fold(&[published(Role::Interviewer), booked(), ended(), feedback()]);
    let accepted = SlotEvent::FeedbackAccepted {
        auto: true,
        at: at(5),
    };
    assert_eq!(
        effects(slot_id(), state.as_ref(), &accepted),
        [
            Effect::Ledger(
                user(2),
                LedgerCommand::Capture {
                    slot: slot_id(),
                    at: at(5)
                }
            ),
            Effect::Ledger(
                user(1),
                LedgerCommand::Earn {
                    slot: slot_id(),
                    amount: 1,
                    at: at(5)
                }
            ),
        ]
    );
    let state = Slot::fold(&[published(Role::Interviewer), booked()]);
    let cancelled = SlotEvent::BookingCancelled {
        by: user(1),
        reopened: false,
        at: at(6),
    };
    assert!(
        effects(slot_id(), state.as_ref(), &cancelled).contains(&Effect::Ledger(
            user(2),
            LedgerCommand::Release {
                slot: slot_id(),
                at: at(6)
            }
        ))
    );
    // a no-show report moves no points until it settles
    assert_eq!(effects(slot_id(), state.as_ref(), &reported()), []);
    let reported_state = Slot::fold(&[published(Role::Interviewer), booked(), reported()]);
    let confirmed = SlotEvent::NoShowConfirmed { at: at(7) };
    assert_eq!(
        effects(slot_id(), reported_state.as_ref(), &confirmed),
        [Effect::Ledger(
            user(2),
            LedgerCommand::Release {
                slot: slot_id(),
                at: at(7)
            }
        )]
    );
    let took_place = SlotEvent::NoShowResolved {
        absent: None,
        by: user(9),
        at: at(8),
    };
    assert_eq!(
        effects(slot_id(), reported_state.as_ref(), &took_place),
        [
            Effect::Ledger(
                user(2),
                LedgerCommand::Capture {
                    slot: slot_id(),
                    at: at(8)
                }
            ),
            Effect::Ledger(
                user(1),
                LedgerCommand::Earn {
                    slot: slot_id(),
                    amount: 1,
                    at: at(8)
                }
            ),
        ]
    );
}

/// The interviewee (2) reports the interviewer (1) absent, two hours after the start.
fn reported() -> SlotEvent {
    SlotEvent::NoShowReported {
        reporter: user(2),
        absent: user(1),
        contest_by: START + HOUR * 2 + NO_SHOW_WINDOW,
        at: START + HOUR * 2,
    }
}

#[test]
fn the_side_reported_absent_contests_in_time_and_an_admin_decides() {
    let history = [published(Role::Interviewer), booked(), reported()];
    given::<Slot>(history.clone())
        .when(SlotCommand::ContestNoShow {
            by: user(1),
            reason: "I was in the room; they never joined".into(),
            at: START + HOUR * 3,
        })
        .then([SlotEvent::NoShowContested {
            reason: "I was in the room; they never joined".into(),
            at: START + HOUR * 3,
        }]);
    given::<Slot>(history.clone())
        .when(SlotCommand::ContestNoShow {
            by: user(2),
            reason: "x".into(),
            at: START + HOUR * 3,
        })
        .then_err(InterviewError::NotAccused);
    given::<Slot>(history.clone())
        .when(SlotCommand::ContestNoShow {
            by: user(1),
            reason: "late".into(),
            at: START + HOUR * 2 + NO_SHOW_WINDOW,
        })
        .then_err(InterviewError::NoShowSettled);
    let contested = SlotEvent::NoShowContested {
        reason: "x".into(),
        at: START + HOUR * 3,
    };
    given::<Slot>([
        published(Role::Interviewer),
        booked(),
        reported(),
        contested,
    ])
    .when(SlotCommand::ResolveNoShow {
        by: user(9),
        absent: Some(Role::Interviewee),
        at: START + HOUR * 30,
    })
    .then([SlotEvent::NoShowResolved {
        absent: Some(user(2)),
        by: user(9),
        at: START + HOUR * 30,
    }]);
}

#[test]
fn an_uncontested_report_is_confirmed_when_its_window_is_over_and_the_other_side_cannot_counter_report()
 {
    let history = [published(Role::Interviewer), booked(), reported()];
    given::<Slot>(history.clone())
        .when(SlotCommand::ConfirmNoShow {
            at: START + HOUR * 2 + NO_SHOW_WINDOW - TimeDelta::seconds(1),
        })
        .then_err(InterviewError::NotYetDue);
    given::<Slot>(history.clone())
        .when(SlotCommand::ConfirmNoShow {
            at: START + HOUR * 2 + NO_SHOW_WINDOW,
        })
        .then([SlotEvent::NoShowConfirmed {
            at: START + HOUR * 2 + NO_SHOW_WINDOW,
        }]);
    given::<Slot>(history)
        .when(SlotCommand::ReportNoShow {
            by: user(1),
            at: START + HOUR * 3,
        })
        .then_err(InterviewError::NoShowAlreadyReported);
}

#[test]
fn a_calendar_never_holds_two_overlapping_interviews() {
    given::<Calendar>([CalendarEvent::InterviewScheduled {
        slot: user(5),
        start: at(100),
        end: at(200),
        at: at(1),
    }])
    .when(CalendarCommand::Book {
        slot: user(6),
        start: at(150),
        end: at(250),
        at: at(2),
    })
    .then_err(CalendarError::Overlap);
    given::<Calendar>([CalendarEvent::InterviewScheduled {
        slot: user(5),
        start: at(100),
        end: at(200),
        at: at(1),
    }])
    .when(CalendarCommand::Book {
        slot: user(6),
        start: at(200),
        end: at(250),
        at: at(2),
    })
    .then([CalendarEvent::InterviewScheduled {
        slot: user(6),
        start: at(200),
        end: at(250),
        at: at(2),
    }]);
}

#[test]
fn a_hold_needs_the_points_and_never_overdraws() {
    given::<Ledger>([LedgerEvent::PointsGranted {
        amount: 3,
        reason: "signup".into(),
        at: at(1),
    }])
    .when(LedgerCommand::Hold {
        slot: user(5),
        amount: 3,
        at: at(2),
    })
    .then([LedgerEvent::PointsHeld {
        slot: user(5),
        amount: 3,
        at: at(2),
    }]);
    given::<Ledger>([
        LedgerEvent::PointsGranted {
            amount: 3,
            reason: "signup".into(),
            at: at(1),
        },
        LedgerEvent::PointsHeld {
            slot: user(5),
            amount: 3,
            at: at(2),
        },
    ])
    .when(LedgerCommand::Hold {
        slot: user(6),
        amount: 3,
        at: at(3),
    })
    .then_err(LedgerError::InsufficientPoints(0));
}

#[test]
fn the_ledgers_entries_always_sum_to_its_balance_and_holds() {
    for seed in 0..200 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut entries: Vec<LedgerEvent> = vec![];
        for step in 0..60 {
            let state = Ledger::fold(&entries);
            let slot = user(rng.random_range(1..6));
            let command = match rng.random_range(0..5) {
                0 => LedgerCommand::Grant {
                    amount: rng.random_range(0..4),
                    reason: "test".into(),
                    at: at(step),
                },
                1 => LedgerCommand::Hold {
                    slot,
                    amount: INTERVIEW_COST,
                    at: at(step),
                },
                2 => LedgerCommand::Capture { slot, at: at(step) },
                3 => LedgerCommand::Release { slot, at: at(step) },
                _ => LedgerCommand::Earn {
                    slot,
                    amount: INTERVIEWER_REWARD,
                    at: at(step),
                },
            };
            if let Ok(events) = Ledger::decide(&command, &state) {
                entries.extend(events);
            }
            let state = Ledger::fold(&entries);
            let (balance, held) = entries
                .iter()
                .map(LedgerEvent::deltas)
                .fold((0, 0), |(b, h), (db, dh)| (b + db, h + dh));
            assert_eq!(balance, state.balance, "seed {seed}");
            assert_eq!(held, state.held.values().sum::<i64>(), "seed {seed}");
            assert!(state.balance >= 0 && held >= 0, "seed {seed}: {state:?}");
        }
    }
}
