//! How times, durations, sizes and counts read in tables.

use std::collections::BTreeMap;

use chrono::{DateTime, Local};
use flowcore::{StateKind, Timestamp};

use crate::style::{Style, state_colour};

/// A timestamp in the reader's time zone.
fn local(t: Timestamp) -> DateTime<Local> {
    t.to_datetime().with_timezone(&Local)
}

/// `2026-11-23 18:02:00`, local time.
pub fn date_time(t: Timestamp) -> String {
    local(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `18:02:00.123`, local time, as flowcore's console logs print it; with the date in front
/// when it is not the day of `day`, so that a run across midnight still reads right.
pub fn time_of_day(t: Timestamp, day: Timestamp) -> String {
    let (t, day) = (local(t), local(day));
    if t.date_naive() == day.date_naive() {
        t.format("%H:%M:%S%.3f").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
    }
}

/// As in flowcore's run summaries: `850µs`, `12.3ms`, `2.41s`, `3m 20s`.
pub use flowcore::summary::format_duration as duration;

/// `532 B`, `1.2 KiB`, `3.4 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `4 Completed, 1 Failed`, each state in its colour; empty when there are none.
pub fn state_counts(counts: &BTreeMap<StateKind, usize>, style: Style) -> (String, usize) {
    let mut plain = String::new();
    let mut painted = String::new();
    for (kind, n) in counts {
        if !plain.is_empty() {
            plain.push_str(", ");
            painted.push_str(", ");
        }
        plain.push_str(&format!("{n} {kind}"));
        painted.push_str(&format!(
            "{n} {}",
            style.paint(kind.as_str(), state_colour(*kind))
        ));
    }
    let width = flowcore::terminal::display_width(&plain);
    (painted, width)
}

/// `1 task run` / `3 task runs`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The first line of a message, marked when more follows: table cells hold one line.
pub fn first_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn counts_list_every_state_in_order() {
        let counts = BTreeMap::from([(StateKind::Failed, 1), (StateKind::Completed, 4)]);
        let (text, width) = state_counts(&counts, Style { colour: false });
        assert_eq!(text, "4 Completed, 1 Failed");
        assert_eq!(width, text.len());
        let (coloured, coloured_width) = state_counts(&counts, Style { colour: true });
        assert!(coloured.contains("\x1b[32mCompleted\x1b[0m"), "{coloured}");
        assert_eq!(coloured_width, width);
    }

    #[test]
    fn cells_keep_the_first_line() {
        assert_eq!(first_line("one"), "one");
        assert_eq!(first_line("one\ntwo"), "one …");
        assert_eq!(first_line(""), "");
    }
}
