//! The time column of a console line: `18:02:00.123`, local time, as Prefect prints it.
//!
//! The hours, minutes and seconds are worked out once a second on each thread: chrono's local
//! time (a time zone lookup) and a `strftime` pattern parsed at every line cost as much as the
//! rest of the line. The milliseconds are the clock's at each line.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::Timelike as _;

thread_local! {
    /// The second last worked out on this thread, since 1970, and its `HH:MM:SS.`, kept as
    /// text so that a line copies it rather than checks it is UTF-8 again.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends `now` (the time since the Unix epoch, `None` before it), `HH:MM:SS.mmm`.
pub(crate) fn write(out: &mut String, now: Option<Duration>) {
    let Some(now) = now else {
        // A clock set before 1970: chrono knows what time of day that is.
        let _ = write!(out, "{}", chrono::Local::now().format("%H:%M:%S%.3f"));
        return;
    };
    let seconds = now.as_secs();
    SECOND.with(|second| match second.try_borrow_mut() {
        Ok(mut second) => {
            if second.0 != seconds {
                *second = (seconds, hms_text(local_hms(seconds)));
            }
            out.push_str(&second.1);
        }
        // Borrowed only here, where nothing logs: not reached.
        Err(_) => out.push_str(&hms_text(local_hms(seconds))),
    });
    let millis = now.subsec_millis();
    for digit in [millis / 100, millis / 10 % 10, millis % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
}

/// `HH:MM:SS.`
fn hms_text(hms: [u8; 8]) -> String {
    let mut text = String::with_capacity(9);
    text.extend(hms.iter().map(|&b| char::from(b)));
    text.push('.');
    text
}

/// `HH:MM:SS` of the second `seconds` after 1970, in local time: what chrono's `%H:%M:%S` of
/// `Local::now()` prints in that second.
fn local_hms(seconds: u64) -> [u8; 8] {
    let local = i64::try_from(seconds)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|utc| utc.with_timezone(&chrono::Local));
    let (h, m, s) = local.map_or((0, 0, 0), |t| (t.hour(), t.minute(), t.second()));
    let two = |n: u32| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let [h1, h2] = two(h);
    let [m1, m2] = two(m);
    let [s1, s2] = two(s);
    [h1, h2, b':', m1, m2, b':', s1, s2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_what_chrono_prints_for_the_same_instant() {
        for seconds in [0u64, 59, 3_600, 86_399, 1_700_000_000, 4_102_444_799] {
            let expected = chrono::DateTime::from_timestamp(seconds as i64, 0)
                .unwrap()
                .with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string();
            assert_eq!(std::str::from_utf8(&local_hms(seconds)).unwrap(), expected);
        }
    }

    #[test]
    fn a_line_s_time_has_milliseconds_and_moves_with_the_clock() {
        let mut out = String::new();
        write(
            &mut out,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok(),
        );
        let after = chrono::Local::now().format("%H:%M:%S%.3f").to_string();
        assert_eq!(out.len(), 12, "{out}");
        assert!(
            out.chars().enumerate().all(|(i, c)| match i {
                2 | 5 => c == ':',
                8 => c == '.',
                _ => c.is_ascii_digit(),
            }),
            "{out}"
        );
        // Taken just after: the same or a later time of day (unless midnight came between).
        assert!(
            out <= after || after.starts_with("00:00:0"),
            "{out} {after}"
        );
    }
}
