//! Who reviews whom after an assignment's deadline.
//!
//! With 4 or more submitters: shuffle them with the recorded seed and put them on a circle; each reviews the
//! next 1, 2 and 3 places on. So every submission gets exactly 3 reviews, every submitter gives exactly 3, nobody
//! reviews themselves and no (reviewer, author) pair occurs twice.
//!
//! Fewer than 4 submitters cannot fill that circle, so the fallback is: with 2 or 3, each reviews every other
//! submitter (1 or 2 reviews each way, mode [`ReviewMode::AllAvailable`]); a single submitter has nobody to
//! review and is reviewed by nobody ([`ReviewMode::Alone`]); with none there is nothing to allocate
//! ([`ReviewMode::Nobody`]). The mode is recorded in the event, so readers know which rule applied.
//!
//! Participants who did not submit take no part in the allocation: they review nobody and nobody reviews them.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Reviews each submitter gives and receives when the circle can be filled.
pub const REVIEWS_EACH: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewMode {
    /// 4 or more submitters: 3 reviews each way around the shuffled circle.
    Ring,
    /// 2 or 3 submitters: everyone reviews everyone else.
    AllAvailable,
    /// 1 submitter: no reviews.
    Alone,
    /// No submissions.
    Nobody,
}

impl ReviewMode {
    pub const ALL: [ReviewMode; 4] = [
        ReviewMode::Ring,
        ReviewMode::AllAvailable,
        ReviewMode::Alone,
        ReviewMode::Nobody,
    ];

    /// The stable name of the mode (the `tracks` read model stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewMode::Ring => "ring",
            ReviewMode::AllAvailable => "all_available",
            ReviewMode::Alone => "alone",
            ReviewMode::Nobody => "nobody",
        }
    }

    /// The mode [`ReviewMode::as_str`] names.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == stored)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReviewPair {
    pub reviewer: Uuid,
    pub author: Uuid,
}

/// An allocation, as recorded: the rule used, the shuffled circle, and the resulting pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub mode: ReviewMode,
    /// The submitters in circle order after the shuffle.
    pub order: Vec<Uuid>,
    pub pairs: Vec<ReviewPair>,
}

impl Allocation {
    /// How many reviews `reviewer` was given to do.
    pub fn owed_by(&self, reviewer: Uuid) -> usize {
        self.pairs.iter().filter(|p| p.reviewer == reviewer).count()
    }

    pub fn contains(&self, pair: ReviewPair) -> bool {
        self.pairs.contains(&pair)
    }
}

/// Allocates reviews among `submitters` (in any order; duplicates are ignored) with `seed`. The same submitters
/// and seed always give the same allocation.
pub fn allocate(submitters: &[Uuid], seed: u64) -> Allocation {
    let mut order = submitters.to_vec();
    order.sort_unstable();
    order.dedup();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n = order.len();
    let (mode, offsets) = match n {
        0 => (ReviewMode::Nobody, 0),
        1 => (ReviewMode::Alone, 0),
        2 | 3 => (ReviewMode::AllAvailable, n - 1),
        _ => (ReviewMode::Ring, REVIEWS_EACH),
    };
    let pairs = (0..n)
        .flat_map(|i| {
            let order = &order;
            (1..=offsets).map(move |offset| ReviewPair {
                reviewer: order[i],
                author: order[(i + offset) % n],
            })
        })
        .collect();
    Allocation { mode, order, pairs }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn people(n: usize) -> Vec<Uuid> {
        (0..n).map(|i| Uuid::from_u128(i as u128 + 1)).collect()
    }

    #[test]
    fn every_cohort_from_4_to_60_gets_exactly_3_reviews_each_way_without_self_or_repeated_pairs() {
        for n in 4..=60 {
            for seed in [0, 1, 42, u64::MAX, 0xdead_beef] {
                let submitters = people(n);
                let allocation = allocate(&submitters, seed);
                assert_eq!(allocation.mode, ReviewMode::Ring);
                assert_eq!(allocation.pairs.len(), 3 * n);
                let mut given: HashMap<Uuid, usize> = HashMap::new();
                let mut received: HashMap<Uuid, usize> = HashMap::new();
                let mut seen = HashSet::new();
                for pair in &allocation.pairs {
                    assert_ne!(pair.reviewer, pair.author, "n={n} seed={seed}: self review");
                    assert!(
                        seen.insert(*pair),
                        "n={n} seed={seed}: repeated pair {pair:?}"
                    );
                    *given.entry(pair.reviewer).or_default() += 1;
                    *received.entry(pair.author).or_default() += 1;
                }
                for person in &submitters {
                    assert_eq!(given[person], 3, "n={n} seed={seed}");
                    assert_eq!(received[person], 3, "n={n} seed={seed}");
                }
            }
        }
    }

    #[test]
    fn the_seed_decides_the_circle_and_the_same_seed_gives_the_same_allocation() {
        let submitters = people(12);
        let mut reversed = submitters.clone();
        reversed.reverse();
        assert_eq!(allocate(&submitters, 7), allocate(&reversed, 7));
        assert_ne!(
            allocate(&submitters, 7).order,
            allocate(&submitters, 8).order
        );
    }

    #[test]
    fn small_cohorts_review_everyone_available() {
        assert_eq!(allocate(&[], 1).mode, ReviewMode::Nobody);
        let alone = allocate(&people(1), 1);
        assert_eq!((alone.mode, alone.pairs.len()), (ReviewMode::Alone, 0));
        for n in [2, 3] {
            let allocation = allocate(&people(n), 5);
            assert_eq!(allocation.mode, ReviewMode::AllAvailable);
            assert_eq!(allocation.pairs.len(), n * (n - 1));
            for person in people(n) {
                assert_eq!(allocation.owed_by(person), n - 1);
            }
            assert!(allocation.pairs.iter().all(|p| p.reviewer != p.author));
        }
    }
}
