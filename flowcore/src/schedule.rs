//! When a deployment runs: every interval (from an optional anchor), on a cron line (in UTC or a
//! named time zone), or at a fixed list of times.
//!
//! A schedule only answers "when is the next run after this instant?"; the server that serves
//! deployments waits for that instant on tokio's clock, so tests step through a simulated day
//! under `tokio::time::pause()`.
//!
//! Instants are [`Timestamp`]s, as everywhere in flowcore's API (parse one from RFC 3339 text,
//! or convert a `SystemTime` or a chrono `DateTime<Utc>` with `From`).
//!
//! ```
//! use flowcore::Timestamp;
//! use flowcore::schedule::Schedule;
//!
//! let t = |text: &str| text.parse::<Timestamp>().unwrap();
//! let every = Schedule::every("30s").unwrap();
//! assert_eq!(every.next_after(t("2026-11-22T18:02:40Z")), Some(t("2026-11-22T18:03:00Z")));
//!
//! // Crontab's five fields (seconds optional); 1-5 is Monday to Friday, as in crontab. Cron
//! // lines and time zones need the `schedules` feature (on by default).
//! # #[cfg(feature = "schedules")] {
//! let weekdays = Schedule::cron("0 9 * * 1-5").unwrap().in_time_zone("Europe/Paris").unwrap();
//! // From a Saturday: Monday 09:00 in Paris is 08:00 UTC in November.
//! assert_eq!(weekdays.next_after(t("2026-11-21T12:00:00Z")), Some(t("2026-11-23T08:00:00Z")));
//!
//! assert!(Schedule::cron("0 9 * *").unwrap_err().to_string().contains("5 or 6 fields"));
//! # }
//! ```

use std::fmt;
#[cfg(feature = "schedules")]
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
#[cfg(feature = "schedules")]
use chrono_tz::Tz;

use crate::clock::Timestamp;

/// A schedule that cannot be made, with what was wrong and how to write it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// An interval that is not a duration, or is zero.
    #[error("bad interval {input:?}: {reason}; write it like \"30s\", \"5m\" or \"1h 30m\"")]
    Interval {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A cron line that does not parse.
    #[error("bad cron line {input:?}: {reason}")]
    Cron {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A time zone name that is not in the IANA database.
    #[error("unknown time zone {0:?}; use an IANA name like \"Europe/Paris\" or \"UTC\"")]
    TimeZone(String),
    /// A list of times without any.
    #[error("a schedule of fixed times needs at least one time")]
    NoTimes,
}

/// When runs happen. See the module's documentation.
#[derive(Clone, Debug)]
pub struct Schedule(Kind);

#[derive(Clone, Debug)]
enum Kind {
    Interval {
        every: Duration,
        anchor: DateTime<Utc>,
    },
    #[cfg(feature = "schedules")]
    Cron {
        line: String,
        cron: Box<cron::Schedule>,
        zone: Tz,
    },
    Times(Vec<Timestamp>),
}

impl Schedule {
    /// Every `interval` ("30s", "5m", "1h 30m"), at whole multiples of it since the Unix epoch
    /// unless [anchored](Schedule::anchored_at) elsewhere: "1h" runs on the hour.
    pub fn every(interval: &str) -> Result<Schedule, ScheduleError> {
        let every =
            humantime::parse_duration(interval.trim()).map_err(|e| ScheduleError::Interval {
                input: interval.to_owned(),
                reason: e.to_string(),
            })?;
        Schedule::interval(every).map_err(|_| ScheduleError::Interval {
            input: interval.to_owned(),
            reason: "an interval must be longer than zero".to_owned(),
        })
    }

    /// Every `every`; see [`Schedule::every`].
    pub fn interval(every: Duration) -> Result<Schedule, ScheduleError> {
        if every.is_zero() {
            return Err(ScheduleError::Interval {
                input: "0s".to_owned(),
                reason: "an interval must be longer than zero".to_owned(),
            });
        }
        Ok(Schedule(Kind::Interval {
            every,
            anchor: DateTime::UNIX_EPOCH,
        }))
    }

    /// Counts an interval schedule's ticks from `anchor` (Prefect's `anchor_date`): every day
    /// at 06:30 is `every("1d")` anchored at any day's 06:30. No effect on other schedules.
    pub fn anchored_at(mut self, at: Timestamp) -> Schedule {
        if let Kind::Interval { anchor, .. } = &mut self.0 {
            *anchor = at.to_datetime();
        }
        self
    }

    /// A cron line: crontab's five fields (minute hour day-of-month month day-of-week), or six
    /// with seconds first. Day-of-week numbers are crontab's, 0 or 7 for Sunday to 6 for
    /// Saturday; names (MON-FRI) work too. In UTC unless [`in_time_zone`](Schedule::in_time_zone).
    #[cfg(feature = "schedules")]
    pub fn cron(line: &str) -> Result<Schedule, ScheduleError> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let refuse = |reason: String| ScheduleError::Cron {
            input: line.to_owned(),
            reason,
        };
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(refuse(format!(
                    "it has {n} fields, a cron line has 5 or 6 fields (minute hour day-of-month month day-of-week, with seconds first if 6)"
                )));
            }
        };
        let day_of_week = crontab_days(rest[4]).map_err(refuse)?;
        // The cron crate counts days of the week from Sunday = 1 (Quartz); the names it takes
        // mean the same in both, so crontab's numbers are written as names.
        let quartz = format!(
            "{seconds} {} {} {} {} {day_of_week}",
            rest[0], rest[1], rest[2], rest[3]
        );
        let cron = cron::Schedule::from_str(&quartz).map_err(|e| refuse(e.to_string()))?;
        Ok(Schedule(Kind::Cron {
            line: line.trim().to_owned(),
            cron: Box::new(cron),
            zone: Tz::UTC,
        }))
    }

    /// Reads a cron schedule's fields in the time zone named `zone` ("Europe/Paris"), daylight
    /// saving included. No effect on other schedules.
    #[cfg(feature = "schedules")]
    pub fn in_time_zone(mut self, zone: &str) -> Result<Schedule, ScheduleError> {
        let tz: Tz = zone
            .parse()
            .map_err(|_| ScheduleError::TimeZone(zone.to_owned()))?;
        if let Kind::Cron { zone, .. } = &mut self.0 {
            *zone = tz;
        }
        Ok(self)
    }

    /// At each of `times`, once.
    pub fn at(times: impl IntoIterator<Item = Timestamp>) -> Result<Schedule, ScheduleError> {
        let mut times: Vec<_> = times.into_iter().collect();
        if times.is_empty() {
            return Err(ScheduleError::NoTimes);
        }
        times.sort();
        times.dedup();
        Ok(Schedule(Kind::Times(times)))
    }

    /// The first run strictly after `after`; `None` when a list of times is used up.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.0 {
            Kind::Interval { every, anchor } => {
                let every = i128::try_from(every.as_micros()).ok()?;
                let since = i128::from(after.as_micros()) - i128::from(anchor.timestamp_micros());
                // The next multiple of `every` past `since`, counting back before the anchor.
                let ticks = since.div_euclid(every) + 1;
                let micros = i64::try_from(ticks * every).ok()?;
                Some(Timestamp::from_micros(
                    anchor.timestamp_micros().checked_add(micros)?,
                ))
            }
            #[cfg(feature = "schedules")]
            Kind::Cron { cron, zone, .. } => cron
                .after(&after.to_datetime().with_timezone(zone))
                .next()
                .map(|t| Timestamp::from(t.with_timezone(&Utc))),
            Kind::Times(times) => times.iter().find(|t| **t > after).copied(),
        }
    }

    /// The next `n` runs after `after`.
    pub fn upcoming(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n);
        let mut at = after;
        while out.len() < n {
            let Some(next) = self.next_after(at) else {
                break;
            };
            out.push(next);
            at = next;
        }
        out
    }
}

impl fmt::Display for Schedule {
    /// `every 30s`, `every 1d from 2026-11-22T06:30:00Z`, `cron "0 9 * * 1-5" (Europe/Paris)`,
    /// `at 3 times`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Interval { every, anchor } => {
                write!(f, "every {}", humantime::format_duration(*every))?;
                if *anchor != DateTime::UNIX_EPOCH {
                    write!(
                        f,
                        " from {}",
                        anchor.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )?;
                }
                Ok(())
            }
            #[cfg(feature = "schedules")]
            Kind::Cron { line, zone, .. } => write!(f, "cron {line:?} ({zone})"),
            Kind::Times(times) if times.len() == 1 => write!(
                f,
                "at {}",
                times[0]
                    .to_datetime()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Kind::Times(times) => write!(f, "at {} times", times.len()),
        }
    }
}

#[cfg(feature = "schedules")]
/// Crontab's day-of-week field with its numbers written as names: `1-5` → `MON-FRI`,
/// `0,6` → `SUN,SAT`, `*/2` unchanged.
fn crontab_days(field: &str) -> Result<String, String> {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let mut out = String::with_capacity(field.len() * 2);
    for (i, item) in field.split(',').enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let days: Vec<String> = range
            .split('-')
            .map(|day| match day.parse::<usize>() {
                Ok(n) if n < NAMES.len() => Ok(NAMES[n].to_owned()),
                Ok(n) => Err(format!(
                    "day of the week {n} is out of range: use 0-7 (0 and 7 are Sunday) or names like MON"
                )),
                Err(_) => Ok(day.to_owned()),
            })
            .collect::<Result<_, _>>()?;
        out.push_str(&days.join("-"));
        if let Some(step) = step {
            out.push('/');
            out.push_str(step);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap().into()
    }

    #[test]
    fn intervals_tick_on_multiples_of_their_anchor() {
        let hourly = Schedule::every("1h").unwrap();
        assert_eq!(
            hourly.upcoming(utc(2026, 11, 22, 17, 59, 59), 2),
            [utc(2026, 11, 22, 18, 0, 0), utc(2026, 11, 22, 19, 0, 0)]
        );
        // Strictly after: a run at 18:00 is followed by 19:00.
        assert_eq!(
            hourly.next_after(utc(2026, 11, 22, 18, 0, 0)),
            Some(utc(2026, 11, 22, 19, 0, 0))
        );
        let daily = Schedule::every("1d")
            .unwrap()
            .anchored_at(utc(2026, 1, 1, 6, 30, 0));
        assert_eq!(
            daily.next_after(utc(2026, 11, 22, 12, 0, 0)),
            Some(utc(2026, 11, 23, 6, 30, 0))
        );
        // Before the anchor, ticks count back from it.
        assert_eq!(
            daily.next_after(utc(2025, 12, 31, 7, 0, 0)),
            Some(utc(2026, 1, 1, 6, 30, 0))
        );
        assert_eq!(daily.to_string(), "every 1day from 2026-01-01T06:30:00Z");
    }

    #[test]
    #[cfg(feature = "schedules")]
    fn cron_reads_crontab_days_and_optional_seconds() {
        let weekdays = Schedule::cron("30 9 * * 1-5").unwrap();
        // 2026-11-21 is a Saturday.
        assert_eq!(
            weekdays.upcoming(utc(2026, 11, 21, 0, 0, 0), 2),
            [utc(2026, 11, 23, 9, 30, 0), utc(2026, 11, 24, 9, 30, 0)]
        );
        let sundays = Schedule::cron("0 0 * * 0").unwrap();
        assert_eq!(
            sundays.next_after(utc(2026, 11, 21, 0, 0, 0)),
            Some(utc(2026, 11, 22, 0, 0, 0))
        );
        assert_eq!(
            Schedule::cron("0 0 * * 7")
                .unwrap()
                .next_after(utc(2026, 11, 21, 0, 0, 0)),
            Some(utc(2026, 11, 22, 0, 0, 0))
        );
        let every_15s = Schedule::cron("*/15 * * * * *").unwrap();
        assert_eq!(
            every_15s.upcoming(utc(2026, 11, 22, 18, 0, 1), 2),
            [utc(2026, 11, 22, 18, 0, 15), utc(2026, 11, 22, 18, 0, 30)]
        );
    }

    #[test]
    #[cfg(feature = "schedules")]
    fn cron_follows_daylight_saving_in_a_named_zone() {
        let nine = Schedule::cron("0 9 * * *")
            .unwrap()
            .in_time_zone("Europe/Paris")
            .unwrap();
        // Summer (UTC+2) then winter (UTC+1): 2026-10-25 is the change.
        assert_eq!(
            nine.upcoming(utc(2026, 10, 24, 0, 0, 0), 2),
            [utc(2026, 10, 24, 7, 0, 0), utc(2026, 10, 25, 8, 0, 0)]
        );
        assert_eq!(nine.to_string(), "cron \"0 9 * * *\" (Europe/Paris)");
    }

    #[test]
    fn bad_schedules_say_what_is_wrong_and_how_to_write_it() {
        assert_eq!(
            Schedule::every("30 seconds please")
                .unwrap_err()
                .to_string(),
            "bad interval \"30 seconds please\": expected number at 11; write it like \"30s\", \"5m\" or \"1h 30m\""
        );
        assert!(
            Schedule::every("0s")
                .unwrap_err()
                .to_string()
                .contains("longer than zero")
        );
        assert_eq!(Schedule::at([]).unwrap_err(), ScheduleError::NoTimes);
    }

    #[test]
    #[cfg(feature = "schedules")]
    fn bad_cron_lines_and_zones_say_what_is_wrong() {
        assert!(
            Schedule::cron("61 * * * *")
                .unwrap_err()
                .to_string()
                .starts_with("bad cron line \"61 * * * *\":")
        );
        assert!(
            Schedule::cron("0 0 * * 8")
                .unwrap_err()
                .to_string()
                .contains("0-7")
        );
        assert_eq!(
            Schedule::cron("0 9 * * *")
                .unwrap()
                .in_time_zone("Mars/Olympus")
                .unwrap_err()
                .to_string(),
            "unknown time zone \"Mars/Olympus\"; use an IANA name like \"Europe/Paris\" or \"UTC\""
        );
    }

    #[test]
    fn fixed_times_run_once_each_in_order() {
        let times = Schedule::at([utc(2026, 11, 23, 8, 0, 0), utc(2026, 11, 22, 8, 0, 0)]).unwrap();
        assert_eq!(
            times.upcoming(utc(2026, 11, 1, 0, 0, 0), 5),
            [utc(2026, 11, 22, 8, 0, 0), utc(2026, 11, 23, 8, 0, 0)]
        );
        assert_eq!(times.next_after(utc(2026, 11, 23, 8, 0, 0)), None);
    }
}
