//! The track's rules as given/when/then specifications.

use super::*;
use crate::testing::{at, given};

const HOUR: TimeDelta = TimeDelta::hours(1);
const T0: Timestamp = at(1_800_000_000);

fn user(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn admin() -> Uuid {
    user(999)
}

fn criteria() -> Vec<Criterion> {
    vec![
        Criterion {
            name: "Correctness".into(),
            description: "It works".into(),
            min_score: 0,
            max_score: 5,
        },
        Criterion {
            name: "Style".into(),
            description: "".into(),
            min_score: 1,
            max_score: 3,
        },
    ]
}

fn spec(min: u32, max: Option<u32>) -> TrackSpec {
    TrackSpec::parse(
        " Rust in 3 weeks ",
        "Ownership, traits, async.",
        min,
        max,
        criteria(),
        vec![
            AssignmentSpec {
                title: "Ownership".into(),
                description: "Write a linked list".into(),
                hours: 10,
            },
            AssignmentSpec {
                title: "Traits".into(),
                description: "".into(),
                hours: 20,
            },
        ],
    )
    .unwrap()
}

fn created(min: u32, max: Option<u32>) -> TrackEvent {
    TrackEvent::TrackCreated {
        spec: spec(min, max),
        by: admin(),
        at: T0 - HOUR,
    }
}

fn enrolled(n: u128) -> TrackEvent {
    TrackEvent::LearnerEnrolled {
        participant: user(n),
        at: T0 - TimeDelta::seconds(10),
    }
}

fn repo(path: &str) -> RepoUrl {
    RepoUrl::parse(&format!("https://github.com/{path}")).unwrap()
}

fn submitted(assignment: u32, n: u128) -> TrackEvent {
    TrackEvent::SolutionSubmitted {
        assignment,
        participant: user(n),
        repository: repo(&format!("user{n}/a{assignment}")),
        replaces: false,
        at: T0 + HOUR,
    }
}

/// A track of `n` participants (minimum `n`) that started at T0 with assignment 0 due at T0 + 10 h.
fn started(n: u128) -> Vec<TrackEvent> {
    let mut events = vec![created(n as u32, None)];
    events.extend((1..=n).map(enrolled));
    events.push(TrackEvent::TrackStarted {
        participants: (1..=n).map(user).collect(),
        at: T0,
    });
    events.push(TrackEvent::AssignmentOpened {
        assignment: 0,
        opened_at: T0,
        deadline: T0 + HOUR * 10,
    });
    events
}

/// `started(n)`, where participants `1..=submitters` submitted and assignment 0 closed with `seed` 7.
fn closed(n: u128, submitters: u128) -> (Vec<TrackEvent>, Allocation) {
    let mut events = started(n);
    events.extend((1..=submitters).map(|i| submitted(0, i)));
    let close = Track::decide(
        &TrackCommand::CloseAssignment {
            assignment: 0,
            seed: 7,
            at: T0 + HOUR * 10,
        },
        &Track::fold(&events),
    )
    .unwrap();
    let allocation = close
        .iter()
        .find_map(|e| match e {
            TrackEvent::ReviewsAllocated { allocation, .. } => Some(allocation.clone()),
            _ => None,
        })
        .unwrap();
    events.extend(close);
    (events, allocation)
}

fn scores(correctness: i32, style: i32) -> Vec<Score> {
    vec![
        Score {
            criterion: "Correctness".into(),
            score: correctness,
        },
        Score {
            criterion: "Style".into(),
            score: style,
        },
    ]
}

fn review_event(pair: ReviewPair) -> TrackEvent {
    TrackEvent::ReviewSubmitted {
        assignment: 0,
        reviewer: pair.reviewer,
        author: pair.author,
        scores: scores(4, 2),
        comment: None,
        at: T0 + HOUR * 11,
    }
}

fn review_command(pair: ReviewPair) -> TrackCommand {
    TrackCommand::SubmitReview {
        assignment: 0,
        reviewer: pair.reviewer,
        author: pair.author,
        scores: scores(4, 2),
        comment: None,
        at: T0 + HOUR * 11,
    }
}

// -- creation ---------------------------------------------------------------------------------------------------

#[test]
fn an_admin_creates_a_track() {
    given::<Track>([])
        .when(TrackCommand::Create {
            spec: spec(3, Some(10)),
            by: admin(),
            at: T0 - HOUR,
        })
        .then([created(3, Some(10))]);
}

#[test]
fn a_track_definition_is_validated() {
    let parse = |min, max, criteria, hours| {
        TrackSpec::parse(
            "T",
            "",
            min,
            max,
            criteria,
            vec![AssignmentSpec {
                title: "A".into(),
                description: "".into(),
                hours,
            }],
        )
    };
    assert_eq!(parse(0, None, criteria(), 1), Err(TrackError::Participants));
    assert_eq!(
        parse(5, Some(4), criteria(), 1),
        Err(TrackError::Participants)
    );
    assert_eq!(parse(1, None, criteria(), 0), Err(TrackError::Assignments));
    assert!(matches!(
        parse(1, None, vec![], 1),
        Err(TrackError::Criteria(_))
    ));
    let mut twice = criteria();
    twice[1].name = "CORRECTNESS".into();
    assert!(matches!(
        parse(1, None, twice, 1),
        Err(TrackError::Criteria(_))
    ));
    let mut empty_range = criteria();
    empty_range[0].max_score = 0;
    assert!(matches!(
        parse(1, None, empty_range, 1),
        Err(TrackError::Criteria(_))
    ));
    assert_eq!(spec(1, None).title, "Rust in 3 weeks");
}

#[test]
fn criteria_may_be_revised_before_the_start() {
    let mut revised = criteria();
    revised[1].max_score = 10;
    given::<Track>([created(2, None), enrolled(1)])
        .when(TrackCommand::ReviseCriteria {
            criteria: revised.clone(),
            by: admin(),
            at: T0 - TimeDelta::seconds(5),
        })
        .then([TrackEvent::CriteriaRevised {
            criteria: revised,
            by: admin(),
            at: T0 - TimeDelta::seconds(5),
        }]);
}

#[test]
fn criteria_cannot_change_once_the_track_has_started() {
    let mut revised = criteria();
    revised.pop();
    given::<Track>(started(2))
        .when(TrackCommand::ReviseCriteria {
            criteria: revised,
            by: admin(),
            at: T0 + TimeDelta::seconds(5),
        })
        .then_err(TrackError::AlreadyStarted);
}

// -- enrollment and the start -----------------------------------------------------------------------------------

#[test]
fn a_user_enrolls_in_a_track_below_its_minimum() {
    given::<Track>([created(3, None), enrolled(1)])
        .when(TrackCommand::Enroll {
            participant: user(2),
            at: T0 - TimeDelta::seconds(10),
        })
        .then([enrolled(2)]);
}

#[test]
fn the_enrollment_that_reaches_the_minimum_starts_the_track_and_opens_the_first_assignment() {
    given::<Track>([created(3, None), enrolled(1), enrolled(2)])
        .when(TrackCommand::Enroll {
            participant: user(3),
            at: T0,
        })
        .then([
            TrackEvent::LearnerEnrolled {
                participant: user(3),
                at: T0,
            },
            TrackEvent::TrackStarted {
                participants: vec![user(1), user(2), user(3)],
                at: T0,
            },
            TrackEvent::AssignmentOpened {
                assignment: 0,
                opened_at: T0,
                deadline: T0 + HOUR * 10,
            },
        ]);
}

#[test]
fn enrolling_twice_changes_nothing() {
    given::<Track>([created(3, None), enrolled(1)])
        .when(TrackCommand::Enroll {
            participant: user(1),
            at: T0,
        })
        .then([]);
}

#[test]
fn a_started_track_takes_late_joiners_until_the_first_deadline_without_starting_again() {
    given::<Track>(started(2))
        .when(TrackCommand::Enroll {
            participant: user(3),
            at: T0 + HOUR,
        })
        .then([TrackEvent::LearnerEnrolled {
            participant: user(3),
            at: T0 + HOUR,
        }]);
    let mut events = started(2);
    events.push(TrackEvent::LearnerEnrolled {
        participant: user(3),
        at: T0 + HOUR,
    });
    given::<Track>(events)
        .when(TrackCommand::SubmitSolution {
            assignment: 0,
            participant: user(3),
            repository: repo("late/joiner"),
            at: T0 + HOUR * 2,
        })
        .then([TrackEvent::SolutionSubmitted {
            assignment: 0,
            participant: user(3),
            repository: repo("late/joiner"),
            replaces: false,
            at: T0 + HOUR * 2,
        }]);
}

#[test]
fn enrollment_closes_at_the_first_deadline() {
    given::<Track>(started(2))
        .when(TrackCommand::Enroll {
            participant: user(3),
            at: T0 + HOUR * 10,
        })
        .then_err(TrackError::EnrollmentClosed);
}

#[test]
fn a_full_track_refuses_enrollment() {
    let mut events = started(2);
    events[0] = created(2, Some(2));
    given::<Track>(events)
        .when(TrackCommand::Enroll {
            participant: user(3),
            at: T0 + TimeDelta::seconds(1),
        })
        .then_err(TrackError::Full);
}

#[test]
fn a_participant_leaves_before_the_start() {
    given::<Track>([created(3, None), enrolled(1)])
        .when(TrackCommand::Leave {
            participant: user(1),
            at: T0 - TimeDelta::seconds(5),
        })
        .then([TrackEvent::LearnerLeft {
            participant: user(1),
            at: T0 - TimeDelta::seconds(5),
        }]);
}

#[test]
fn nobody_leaves_a_started_track() {
    given::<Track>(started(2))
        .when(TrackCommand::Leave {
            participant: user(1),
            at: T0 + TimeDelta::seconds(5),
        })
        .then_err(TrackError::AlreadyStarted);
}

#[test]
fn leaving_a_track_one_is_not_in_is_refused() {
    given::<Track>([created(3, None)])
        .when(TrackCommand::Leave {
            participant: user(1),
            at: T0,
        })
        .then_err(TrackError::NotEnrolled);
}

#[test]
fn commands_on_a_track_that_does_not_exist_are_refused() {
    given::<Track>([])
        .when(TrackCommand::Enroll {
            participant: user(1),
            at: T0,
        })
        .then_err(TrackError::NotFound);
}

// -- solutions --------------------------------------------------------------------------------------------------

#[test]
fn a_participant_submits_a_repository_link_before_the_deadline() {
    given::<Track>(started(2))
        .when(TrackCommand::SubmitSolution {
            assignment: 0,
            participant: user(1),
            repository: repo("user1/a0"),
            at: T0 + HOUR,
        })
        .then([submitted(0, 1)]);
}

#[test]
fn resubmitting_before_the_deadline_replaces_the_link() {
    let mut events = started(2);
    events.push(submitted(0, 1));
    given::<Track>(events)
        .when(TrackCommand::SubmitSolution {
            assignment: 0,
            participant: user(1),
            repository: repo("user1/better"),
            at: T0 + HOUR * 2,
        })
        .then([TrackEvent::SolutionSubmitted {
            assignment: 0,
            participant: user(1),
            repository: repo("user1/better"),
            replaces: true,
            at: T0 + HOUR * 2,
        }]);
}

#[test]
fn submitting_the_same_link_again_changes_nothing() {
    let mut events = started(2);
    events.push(submitted(0, 1));
    given::<Track>(events)
        .when(TrackCommand::SubmitSolution {
            assignment: 0,
            participant: user(1),
            repository: repo("user1/a0"),
            at: T0 + HOUR * 2,
        })
        .then([]);
}

#[test]
fn a_submission_at_or_after_the_deadline_is_refused() {
    given::<Track>(started(2))
        .when(TrackCommand::SubmitSolution {
            assignment: 0,
            participant: user(1),
            repository: repo("user1/a0"),
            at: T0 + HOUR * 10,
        })
        .then_err(TrackError::PastDeadline(0));
}

#[test]
fn only_participants_submit_and_only_to_open_assignments() {
    given::<Track>(started(2))
        .when(TrackCommand::SubmitSolution {
            assignment: 0,
            participant: user(7),
            repository: repo("x/y"),
            at: T0 + TimeDelta::seconds(1),
        })
        .then_err(TrackError::NotEnrolled);
    given::<Track>(started(2))
        .when(TrackCommand::SubmitSolution {
            assignment: 1,
            participant: user(1),
            repository: repo("x/y"),
            at: T0 + TimeDelta::seconds(1),
        })
        .then_err(TrackError::AssignmentNotOpen(1));
}

// -- reminders and deadlines ------------------------------------------------------------------------------------

#[test]
fn at_80_percent_of_the_time_a_participant_without_a_solution_is_reminded() {
    given::<Track>(started(2))
        .when(TrackCommand::RemindDeadline {
            assignment: 0,
            participant: user(2),
            at: T0 + HOUR * 8,
        })
        .then([TrackEvent::DeadlineReminderSent {
            assignment: 0,
            participant: user(2),
            deadline: T0 + HOUR * 10,
            at: T0 + HOUR * 8,
        }]);
}

#[test]
fn a_reminder_before_80_percent_is_refused() {
    given::<Track>(started(2))
        .when(TrackCommand::RemindDeadline {
            assignment: 0,
            participant: user(2),
            at: T0 + HOUR * 8 - TimeDelta::seconds(1),
        })
        .then_err(TrackError::NotYetDue);
}

#[test]
fn a_participant_is_reminded_only_once() {
    let mut events = started(2);
    events.push(TrackEvent::DeadlineReminderSent {
        assignment: 0,
        participant: user(2),
        deadline: T0 + HOUR * 10,
        at: T0 + HOUR * 8,
    });
    given::<Track>(events)
        .when(TrackCommand::RemindDeadline {
            assignment: 0,
            participant: user(2),
            at: T0 + HOUR * 9,
        })
        .then([]);
}

#[test]
fn a_participant_who_already_submitted_is_not_reminded() {
    let mut events = started(2);
    events.push(submitted(0, 1));
    given::<Track>(events)
        .when(TrackCommand::RemindDeadline {
            assignment: 0,
            participant: user(1),
            at: T0 + HOUR * 8,
        })
        .then([]);
}

#[test]
fn an_admin_extends_the_open_assignments_deadline_and_the_reminder_follows() {
    let mut events = started(2);
    events.push(TrackEvent::DeadlineExtended {
        assignment: 0,
        previous: T0 + HOUR * 10,
        deadline: T0 + HOUR * 20,
        by: admin(),
        at: T0 + HOUR,
    });
    let state = Track::fold(&events).unwrap();
    assert_eq!(state.stages[0].remind_at(), T0 + HOUR * 16);
    given::<Track>(events.clone())
        .when(TrackCommand::RemindDeadline {
            assignment: 0,
            participant: user(2),
            at: T0 + HOUR * 8,
        })
        .then_err(TrackError::NotYetDue);
    given::<Track>(events)
        .when(TrackCommand::CloseAssignment {
            assignment: 0,
            seed: 1,
            at: T0 + HOUR * 10,
        })
        .then_err(TrackError::NotYetDue);
}

#[test]
fn a_deadline_can_only_move_later() {
    given::<Track>(started(2))
        .when(TrackCommand::ExtendDeadline {
            assignment: 0,
            deadline: T0 + HOUR * 9,
            by: admin(),
            at: T0 + HOUR,
        })
        .then_err(TrackError::DeadlineNotLater);
}

#[test]
fn a_deadline_moves_at_most_a_year_ahead() {
    given::<Track>(started(2))
        .when(TrackCommand::ExtendDeadline {
            assignment: 0,
            deadline: T0 + HOUR + MAX_DEADLINE_AHEAD + TimeDelta::seconds(1),
            by: admin(),
            at: T0 + HOUR,
        })
        .then_err(TrackError::DeadlineTooFar);
    given::<Track>(started(2))
        .when(TrackCommand::ExtendDeadline {
            assignment: 0,
            deadline: T0 + HOUR + MAX_DEADLINE_AHEAD,
            by: admin(),
            at: T0 + HOUR,
        })
        .then([TrackEvent::DeadlineExtended {
            assignment: 0,
            previous: T0 + HOUR * 10,
            deadline: T0 + HOUR + MAX_DEADLINE_AHEAD,
            by: admin(),
            at: T0 + HOUR,
        }]);
}

#[test]
fn a_closed_assignments_deadline_cannot_be_extended() {
    let (events, _) = closed(4, 4);
    given::<Track>(events)
        .when(TrackCommand::ExtendDeadline {
            assignment: 0,
            deadline: T0 + HOUR * 30,
            by: admin(),
            at: T0 + HOUR * 11,
        })
        .then_err(TrackError::AssignmentClosed(0));
}

// -- the close and the allocation -------------------------------------------------------------------------------

#[test]
fn an_assignment_cannot_close_before_its_deadline() {
    given::<Track>(started(4))
        .when(TrackCommand::CloseAssignment {
            assignment: 0,
            seed: 1,
            at: T0 + HOUR * 10 - TimeDelta::seconds(1),
        })
        .then_err(TrackError::NotYetDue);
}

#[test]
fn at_the_deadline_reviews_are_allocated_with_the_recorded_seed_and_the_next_assignment_opens() {
    let mut events = started(5);
    events.extend((1..=4).map(|i| submitted(0, i)));
    let at = T0 + HOUR * 10 + TimeDelta::seconds(30);
    let allocation = allocate(&[user(1), user(2), user(3), user(4)], 99);
    given::<Track>(events)
        .when(TrackCommand::CloseAssignment {
            assignment: 0,
            seed: 99,
            at,
        })
        .then([
            TrackEvent::AssignmentClosed { assignment: 0, at },
            TrackEvent::ReviewsAllocated {
                assignment: 0,
                seed: 99,
                allocation,
                at,
            },
            TrackEvent::AssignmentOpened {
                assignment: 1,
                opened_at: at,
                deadline: at + HOUR * 20,
            },
            // user 5 did not submit: nothing to review, so the next assignment is open to them at once
            TrackEvent::AssignmentUnlocked {
                assignment: 1,
                participant: user(5),
                at,
            },
        ]);
}

#[test]
fn closing_twice_changes_nothing() {
    let (events, _) = closed(4, 4);
    given::<Track>(events)
        .when(TrackCommand::CloseAssignment {
            assignment: 0,
            seed: 5,
            at: T0 + HOUR * 12,
        })
        .then([]);
}

#[test]
fn replaying_the_allocation_uses_the_recorded_pairs_not_a_new_draw() {
    let (mut events, _) = closed(4, 4);
    let recorded = Allocation {
        mode: ReviewMode::Ring,
        order: vec![user(4), user(3), user(2), user(1)],
        pairs: vec![ReviewPair {
            reviewer: user(1),
            author: user(2),
        }],
    };
    for event in &mut events {
        if let TrackEvent::ReviewsAllocated { allocation, .. } = event {
            *allocation = recorded.clone();
        }
    }
    let state = Track::fold(&events).unwrap();
    assert_eq!(state.stages[0].allocation.as_ref(), Some(&recorded));
}

#[test]
fn a_cohort_of_fewer_than_4_submitters_reviews_everyone_available() {
    let (events, allocation) = closed(3, 3);
    assert_eq!(allocation.mode, ReviewMode::AllAvailable);
    let state = Track::fold(&events).unwrap();
    for n in 1..=3 {
        assert_eq!(state.stages[0].reviews_pending(user(n)), 2);
    }
    let (events, allocation) = closed(3, 1);
    assert_eq!(allocation.mode, ReviewMode::Alone);
    let state = Track::fold(&events).unwrap();
    // the lone submitter and the two who did not submit all move on at once
    assert_eq!(state.stages[1].unlocked.len(), 3);
}

#[test]
fn closing_the_last_assignment_completes_the_track() {
    let (mut events, _) = closed(1, 1);
    let at = T0 + HOUR * 40;
    events.push(submitted(1, 1));
    given::<Track>(events)
        .when(TrackCommand::CloseAssignment {
            assignment: 1,
            seed: 3,
            at,
        })
        .then([
            TrackEvent::AssignmentClosed { assignment: 1, at },
            TrackEvent::ReviewsAllocated {
                assignment: 1,
                seed: 3,
                allocation: allocate(&[user(1)], 3),
                at,
            },
            TrackEvent::TrackCompleted { at },
        ]);
}

// -- reviews and unlocking --------------------------------------------------------------------------------------

#[test]
fn a_reviewer_scores_an_allocated_solution() {
    let (events, allocation) = closed(4, 4);
    let pair = allocation.pairs[0];
    given::<Track>(events)
        .when(TrackCommand::SubmitReview {
            assignment: 0,
            reviewer: pair.reviewer,
            author: pair.author,
            scores: vec![
                Score {
                    criterion: " style".into(),
                    score: 2,
                },
                Score {
                    criterion: "CORRECTNESS".into(),
                    score: 4,
                },
            ],
            comment: Some("  Nice tests.  ".into()),
            at: T0 + HOUR * 11,
        })
        .then([TrackEvent::ReviewSubmitted {
            assignment: 0,
            reviewer: pair.reviewer,
            author: pair.author,
            // named as the track names them, in the track's order
            scores: vec![
                Score {
                    criterion: "Correctness".into(),
                    score: 4,
                },
                Score {
                    criterion: "Style".into(),
                    score: 2,
                },
            ],
            comment: Some("Nice tests.".into()),
            at: T0 + HOUR * 11,
        }]);
}

#[test]
fn a_review_must_score_every_criterion_within_its_range() {
    let (events, allocation) = closed(4, 4);
    let pair = allocation.pairs[0];
    let attempt = |scores: Vec<Score>| TrackCommand::SubmitReview {
        assignment: 0,
        reviewer: pair.reviewer,
        author: pair.author,
        scores,
        comment: None,
        at: T0 + HOUR * 11,
    };
    for bad in [
        scores(6, 2),
        scores(4, 0),
        vec![Score {
            criterion: "Correctness".into(),
            score: 1,
        }],
        {
            let mut s = scores(1, 1);
            s.push(Score {
                criterion: "Speed".into(),
                score: 1,
            });
            s
        },
    ] {
        let outcome = Track::decide(&attempt(bad.clone()), &Track::fold(&events));
        assert!(
            matches!(outcome, Err(TrackError::Scores(_))),
            "{bad:?}: {outcome:?}"
        );
    }
}

#[test]
fn nobody_reviews_a_solution_they_were_not_allocated() {
    let (events, allocation) = closed(4, 4);
    let reviewer = allocation.pairs[0].reviewer;
    // with 4 submitters each reviews the 3 others, so only oneself is not allocated
    given::<Track>(events)
        .when(review_command(ReviewPair {
            reviewer,
            author: reviewer,
        }))
        .then_err(TrackError::NotYourReview);
}

#[test]
fn a_review_is_given_once() {
    let (mut events, allocation) = closed(4, 4);
    let pair = allocation.pairs[0];
    events.push(review_event(pair));
    given::<Track>(events.clone())
        .when(review_command(pair))
        .then([]);
    given::<Track>(events)
        .when(TrackCommand::SubmitReview {
            assignment: 0,
            reviewer: pair.reviewer,
            author: pair.author,
            scores: scores(1, 1),
            comment: None,
            at: T0 + HOUR * 12,
        })
        .then_err(TrackError::AlreadyReviewed);
}

#[test]
fn the_next_assignment_is_locked_until_the_three_reviews_are_done() {
    let (events, _) = closed(4, 4);
    given::<Track>(events)
        .when(TrackCommand::SubmitSolution {
            assignment: 1,
            participant: user(1),
            repository: repo("user1/a1"),
            at: T0 + HOUR * 12,
        })
        .then_err(TrackError::AssignmentLocked(1));
}

#[test]
fn the_third_review_unlocks_the_next_assignment() {
    let (mut events, allocation) = closed(4, 4);
    let mine: Vec<ReviewPair> = allocation
        .pairs
        .iter()
        .filter(|p| p.reviewer == user(1))
        .copied()
        .collect();
    assert_eq!(mine.len(), 3);
    events.extend(mine[..2].iter().map(|p| review_event(*p)));
    given::<Track>(events).when(review_command(mine[2])).then([
        review_event(mine[2]),
        TrackEvent::AssignmentUnlocked {
            assignment: 1,
            participant: user(1),
            at: T0 + HOUR * 11,
        },
    ]);
}

#[test]
fn the_state_tells_each_participant_their_current_assignment() {
    let (mut events, allocation) = closed(5, 4);
    let state = Track::fold(&events).unwrap();
    assert_eq!(state.current_assignment(user(1)), Some(0));
    assert_eq!(state.current_assignment(user(5)), Some(1));
    events.extend(
        allocation
            .pairs
            .iter()
            .filter(|p| p.reviewer == user(1))
            .map(|p| review_event(*p)),
    );
    events.push(TrackEvent::AssignmentUnlocked {
        assignment: 1,
        participant: user(1),
        at: T0 + HOUR * 11,
    });
    let state = Track::fold(&events).unwrap();
    assert_eq!(state.current_assignment(user(1)), Some(1));
    assert_eq!(state.open_assignment().map(|(i, _)| i), Some(1));
}

// -- diary ------------------------------------------------------------------------------------------------------

fn write(text: &str, enrolled: bool, opened: bool) -> DiaryCommand {
    DiaryCommand::Write {
        entry_id: user(500),
        track: user(600),
        assignment: 0,
        participant: user(1),
        text: text.into(),
        enrolled,
        assignment_opened: opened,
        at: T0,
    }
}

#[test]
fn a_participant_writes_in_their_diary_under_an_opened_assignment() {
    given::<Diary>([])
        .when(write("  Lifetimes finally clicked. ", true, true))
        .then([DiaryEvent::DiaryEntryWritten {
            entry_id: user(500),
            track: user(600),
            assignment: 0,
            participant: user(1),
            text: "Lifetimes finally clicked.".into(),
            at: T0,
        }]);
}

#[test]
fn a_diary_takes_entries_only_from_participants_under_opened_assignments() {
    given::<Diary>([])
        .when(write("x", false, true))
        .then_err(DiaryError::NotEnrolled);
    given::<Diary>([])
        .when(write("x", true, false))
        .then_err(DiaryError::NotOpened(0));
    given::<Diary>([])
        .when(write("   ", true, true))
        .then_err(DiaryError::Length);
}

// -- reviews owed across assignments ----------------------------------------------------------------------------

/// Like [`closed`], with a third assignment, then assignment 1 closed too (nobody submitted to it).
fn two_closed() -> (Vec<TrackEvent>, Allocation) {
    let (mut events, allocation) = closed(4, 4);
    if let TrackEvent::TrackCreated { spec, .. } = &mut events[0] {
        spec.assignments.push(AssignmentSpec {
            title: "Async".into(),
            description: "".into(),
            hours: 5,
        });
    }
    let close = Track::decide(
        &TrackCommand::CloseAssignment {
            assignment: 1,
            seed: 8,
            at: T0 + HOUR * 31,
        },
        &Track::fold(&events),
    )
    .unwrap();
    events.extend(close);
    (events, allocation)
}

#[test]
fn reviews_still_owed_keep_the_next_assignments_locked_whatever_came_since() {
    let (events, _) = two_closed();
    let state = Track::fold(&events).unwrap();
    // nobody gave their reviews of assignment 0: skipping assignment 1 does not open assignment 2
    assert!(
        state.stages[2].unlocked.is_empty(),
        "{:?}",
        state.stages[2].unlocked
    );
    given::<Track>(events)
        .when(TrackCommand::SubmitSolution {
            assignment: 2,
            participant: user(1),
            repository: repo("user1/a2"),
            at: T0 + HOUR * 32,
        })
        .then_err(TrackError::AssignmentLocked(2));
}

#[test]
fn the_last_review_owed_opens_the_assignment_open_now_never_a_closed_one() {
    let (mut events, allocation) = two_closed();
    let mine: Vec<ReviewPair> = allocation
        .pairs
        .iter()
        .filter(|p| p.reviewer == user(1))
        .copied()
        .collect();
    events.extend(mine[..2].iter().map(|p| review_event(*p)));
    given::<Track>(events).when(review_command(mine[2])).then([
        review_event(mine[2]),
        TrackEvent::AssignmentUnlocked {
            assignment: 2,
            participant: user(1),
            at: T0 + HOUR * 11,
        },
    ]);
}

#[test]
fn nobody_is_reminded_of_an_assignment_that_is_not_open_to_them_or_past_its_deadline() {
    let (events, _) = closed(4, 4);
    // assignment 1 is locked for user 1 until their reviews are given
    given::<Track>(events.clone())
        .when(TrackCommand::RemindDeadline {
            assignment: 1,
            participant: user(1),
            at: T0 + HOUR * 29,
        })
        .then([]);
    given::<Track>(started(2))
        .when(TrackCommand::RemindDeadline {
            assignment: 0,
            participant: user(1),
            at: T0 + HOUR * 10,
        })
        .then([]);
}

#[test]
fn an_assignment_the_track_does_not_have_is_not_found() {
    given::<Track>(started(2))
        .when(TrackCommand::SubmitSolution {
            assignment: 5,
            participant: user(1),
            repository: repo("x/y"),
            at: T0 + TimeDelta::seconds(1),
        })
        .then_err(TrackError::NoSuchAssignment(5));
}

// -- snapshots ----------------------------------------------------------------------------------------------------

#[test]
fn a_tracks_state_survives_its_snapshot_with_reviews_reminders_and_allocations() {
    let (mut events, allocation) = closed(5, 4);
    events.extend(allocation.pairs.iter().take(2).map(|p| review_event(*p)));
    let state = Track::fold(&events);
    assert!(
        state
            .as_ref()
            .is_some_and(|s| !s.stages[0].reviews.is_empty())
    );
    let snapshots = Track::snapshots().expect("tracks keep snapshots");
    let stored = (snapshots.encode)(&state).expect("the state encodes");
    // through text, as the snapshot table stores it
    let stored: serde_json::Value = serde_json::from_str(&stored.to_string()).unwrap();
    assert_eq!((snapshots.decode)(stored), Some(state));
}
