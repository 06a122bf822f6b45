//! Time in the domain: [`Timestamp`] for an instant, [`chrono::TimeDelta`] for a duration.
//!
//! Deciders never read a clock: an adapter reads one, and the instant travels in the command as a `Timestamp`
//! (`at`), gets compared with the instants in the state (a start, a deadline) and moved by durations (a policy's
//! `TimeDelta::hours(2)`), and is recorded in events.
//!
//! # Why whole seconds, stored as a number
//!
//! Events store an instant as integer Unix seconds (`"at": 1772438400`), as they have since the first event was
//! written, and the log is never rewritten (see [`crate::event`]). So a `Timestamp` serialises as exactly that
//! integer, and holds nothing finer than a second: sub-second parts are dropped (towards the past) when one is
//! made from a [`DateTime`] or moved by a `TimeDelta`. What a decider decides is then exactly what is stored and
//! replayed, and the events already in a log decode to the same instants.
//!
//! Durations are counted in the unit their users think in and stored that way where they are stored: a track's
//! assignment has `hours` (`AssignmentSpec::hours`), an interview `minutes`, a reminder `hours_before`; each
//! becomes a `TimeDelta` in one place, where it is added to an instant.

use std::fmt;
use std::ops::{Add, Sub};

use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, to the second (UTC). Serialises as integer Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The instant `seconds` after 1970-01-01T00:00:00Z; `None` outside what [`DateTime`] represents (about
    /// 262,000 years either side).
    pub const fn from_unix_seconds(seconds: i64) -> Option<Self> {
        match DateTime::from_timestamp_secs(seconds) {
            Some(at) => Some(Self(at)),
            None => None,
        }
    }

    /// Seconds since 1970-01-01T00:00:00Z, as events and `bigint` columns store them.
    pub const fn unix_seconds(self) -> i64 {
        self.0.timestamp()
    }

    /// `self + delta`, or `None` if that is beyond what a `Timestamp` represents.
    pub fn checked_add(self, delta: TimeDelta) -> Option<Self> {
        self.0.checked_add_signed(delta).map(Self::from)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    /// The second `at` is in (its sub-second part dropped, as [`DateTime::timestamp`] counts).
    fn from(at: DateTime<Utc>) -> Self {
        // setting the nanoseconds to 0 cannot fail (it also brings a leap second back to the second it extends)
        Self(at.with_nanosecond(0).unwrap_or(at))
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(at: Timestamp) -> Self {
        at.0
    }
}

/// Panics, as [`DateTime`] does, if the result is beyond what a `Timestamp` represents.
impl Add<TimeDelta> for Timestamp {
    type Output = Timestamp;

    fn add(self, delta: TimeDelta) -> Timestamp {
        Self::from(self.0 + delta)
    }
}

/// Panics, as [`DateTime`] does, if the result is beyond what a `Timestamp` represents.
impl Sub<TimeDelta> for Timestamp {
    type Output = Timestamp;

    fn sub(self, delta: TimeDelta) -> Timestamp {
        Self::from(self.0 - delta)
    }
}

/// The time from `earlier` to `self` (negative if `earlier` is later): whole seconds.
impl Sub for Timestamp {
    type Output = TimeDelta;

    fn sub(self, earlier: Timestamp) -> TimeDelta {
        self.0 - earlier.0
    }
}

/// RFC 3339, as the GraphQL `DateTime` scalar writes it: `2026-03-02T08:00:00Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.unix_seconds())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seconds = i64::deserialize(deserializer)?;
        Self::from_unix_seconds(seconds)
            .ok_or_else(|| D::Error::custom(format!("Unix time {seconds} is out of range")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(seconds).unwrap()
    }

    #[test]
    fn it_is_stored_as_the_unix_seconds_it_always_was() {
        let stored = serde_json::json!(1_772_438_400);
        let decoded: Timestamp = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(decoded.unix_seconds(), 1_772_438_400);
        assert_eq!(decoded.to_string(), "2026-03-02T08:00:00Z");
        assert_eq!(serde_json::to_value(decoded).unwrap(), stored);
        assert!(serde_json::from_value::<Timestamp>(serde_json::json!(i64::MAX)).is_err());
        assert!(serde_json::from_value::<Timestamp>(serde_json::json!("1772438400")).is_err());
    }

    #[test]
    fn it_holds_whole_seconds() {
        let precise = DateTime::from_timestamp(1_772_438_400, 999_999_999).unwrap();
        assert_eq!(Timestamp::from(precise), at(1_772_438_400));
        let before_1970 = DateTime::from_timestamp(-1, 500_000_000).unwrap();
        assert_eq!(Timestamp::from(before_1970), at(-1));
        assert_eq!(at(10) + TimeDelta::milliseconds(1_999), at(11));
        assert_eq!(at(10) - TimeDelta::milliseconds(1), at(9));
    }

    #[test]
    fn durations_move_it_and_measure_between_two() {
        let start = at(1_800_000_000);
        assert_eq!(start + TimeDelta::hours(2), at(1_800_007_200));
        assert_eq!(start - TimeDelta::minutes(1), at(1_799_999_940));
        assert_eq!(at(1_800_007_200) - start, TimeDelta::hours(2));
        assert_eq!(start - at(1_800_007_200), TimeDelta::hours(-2));
        assert!(start < start + TimeDelta::seconds(1));
        assert_eq!(DateTime::<Utc>::from(start).timestamp(), 1_800_000_000);
        assert_eq!(
            start.checked_add(TimeDelta::days(1)),
            Some(at(1_800_086_400))
        );
        assert_eq!(start.checked_add(TimeDelta::MAX), None);
    }
}
