//! Timestamps read from tokio's clock.

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time: microseconds since the Unix epoch, UTC.
///
/// Timestamps follow tokio's clock rather than the system clock, so that under
/// `tokio::time::pause()` a 15 s retry delay puts the two attempts 15 s apart in the run's
/// history, although the test took a millisecond. Outside a paused runtime this is wall time.
///
/// It is the one type of instant in flowcore's API (states, records, schedules, the store):
/// one `i64`, `Copy`, ordered, and exact to the microsecond on tokio's paused clock. It
/// serializes as an RFC 3339 string, `"2026-11-22T18:02:00.123456Z"`, parses from one, and
/// converts from a `SystemTime` or a chrono `DateTime<Utc>` (and back with
/// [`to_datetime`](Timestamp::to_datetime)). Spans of time are `std::time::Duration`s.
///
/// ```
/// use flowcore::Timestamp;
/// use std::time::Duration;
///
/// let t = Timestamp::from_micros(1_700_000_000_000_000);
/// assert_eq!(t.to_string(), "2023-11-14T22:13:20.000000Z");
/// assert_eq!(t.checked_add(Duration::from_secs(1)).unwrap().duration_since(t), Duration::from_secs(1));
/// assert_eq!("2023-11-14T22:13:20Z".parse::<Timestamp>(), Ok(t));
/// assert!("yesterday".parse::<Timestamp>().unwrap_err().contains("RFC 3339"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// The wall time and monotonic instant of one moment, taken once per process, so that every
/// later tokio instant maps to a wall time by plain arithmetic.
fn anchor() -> &'static (i64, std::time::Instant) {
    static ANCHOR: OnceLock<(i64, std::time::Instant)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, micros);
        (wall, std::time::Instant::now())
    })
}

/// Whole microseconds in `d`, rounded down, saturating.
fn micros(d: Duration) -> i64 {
    (d.as_secs() as i64)
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(d.subsec_micros()))
}

impl Timestamp {
    /// The current time on tokio's clock (see the type's documentation).
    pub fn now() -> Self {
        let (wall, at) = *anchor();
        let now = tokio::time::Instant::now().into_std();
        // A runtime paused before the anchor was taken has instants earlier than it. Rounding
        // down on both sides keeps the gap between two instants exact to the microsecond.
        // (64-bit arithmetic: this runs several times per task run.)
        let offset = match now.checked_duration_since(at) {
            Some(ahead) => micros(ahead),
            None => {
                let behind = at.duration_since(now);
                let rounded_up = behind.subsec_nanos().div_ceil(1000);
                -(behind.as_secs() as i64 * 1_000_000 + i64::from(rounded_up))
            }
        };
        Timestamp(wall.saturating_add(offset))
    }

    /// The system's wall clock, whatever tokio's clock says: for the heartbeats and crash
    /// marks that tell live processes from dead ones.
    pub fn wall_now() -> Self {
        Self::wall_at(SystemTime::now())
    }

    /// `time` of the system's wall clock, read already.
    pub(crate) fn wall_at(time: SystemTime) -> Self {
        Self::since_epoch(time.duration_since(UNIX_EPOCH).ok())
    }

    /// The wall time `since` after the Unix epoch (the epoch itself for a clock set before
    /// it): a log line's time, worked out once for its text and its id.
    pub(crate) fn since_epoch(since: Option<Duration>) -> Self {
        Timestamp(since.map_or(0, micros))
    }

    /// The timestamp `us` microseconds after the Unix epoch.
    pub const fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// `self + d`, or `None` past the year 292,277.
    pub fn checked_add(self, d: Duration) -> Option<Timestamp> {
        i64::try_from(d.as_micros())
            .ok()
            .and_then(|us| self.0.checked_add(us))
            .map(Timestamp)
    }

    /// This timestamp as a chrono date-time in UTC.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t.timestamp_micros())
    }
}

impl From<SystemTime> for Timestamp {
    /// Times before the epoch count back from it.
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(micros(after)),
            Err(before) => Timestamp(-micros(before.duration())),
        }
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;

    /// An RFC 3339 date and time with an offset: `2026-11-22T18:02:00Z`, `…+01:00`.
    fn from_str(text: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Timestamp(t.timestamp_micros()))
            .map_err(|e| {
                format!("bad time {text:?}: {e}; write it in RFC 3339, like 2026-11-22T18:02:00Z")
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock_exactly() {
        let before = Timestamp::now();
        tokio::time::sleep(Duration::from_secs(15)).await;
        let after = Timestamp::now();
        assert_eq!(after.duration_since(before), Duration::from_secs(15));
    }

    #[test]
    fn round_trips_through_json() {
        let t = Timestamp::from_micros(1_763_834_520_123_456);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-11-22T18:02:00.123456Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }
}
