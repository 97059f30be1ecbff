//! The time windows the home page counts and charts runs over.

use std::time::Duration;

use flowcore::Timestamp;

/// Last hour, day or week.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Window {
    Hour,
    #[default]
    Day,
    Week,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Hour, Window::Day, Window::Week];

    /// `hour`, `day` or `week` (none: the default, a day); anything else is refused with
    /// the words that work.
    pub fn parse(text: Option<&str>) -> Result<Window, String> {
        match text.map(str::trim) {
            None | Some("") => Ok(Window::default()),
            Some(text) => Window::ALL
                .into_iter()
                .find(|w| w.as_str().eq_ignore_ascii_case(text))
                .ok_or_else(|| format!("unknown window {text:?}; use hour, day or week")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Week => "week",
        }
    }

    pub fn length(self) -> Duration {
        match self {
            Window::Hour => Duration::from_secs(3600),
            Window::Day => Duration::from_secs(86_400),
            Window::Week => Duration::from_secs(7 * 86_400),
        }
    }

    /// The width of one bar of the chart: 12, 24 and 14 bars.
    pub fn bucket(self) -> Duration {
        match self {
            Window::Hour => Duration::from_secs(300),
            Window::Day => Duration::from_secs(3600),
            Window::Week => Duration::from_secs(12 * 3600),
        }
    }

    /// Where the window starts, so that its buckets fall on whole multiples of their width:
    /// the first bucket is the one holding `now - length`.
    pub fn start(self, now: Timestamp) -> Timestamp {
        let bucket = self.bucket().as_micros() as i64;
        let from = now.as_micros() - self.length().as_micros() as i64;
        Timestamp::from_micros(from.div_euclid(bucket) * bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_start_on_a_bucket_boundary() {
        assert_eq!(Window::parse(None), Ok(Window::Day));
        assert_eq!(Window::parse(Some("WEEK")), Ok(Window::Week));
        assert_eq!(
            Window::parse(Some("month")).unwrap_err(),
            "unknown window \"month\"; use hour, day or week"
        );
        let now = Timestamp::from_micros(1_800_000_123_000_000);
        let start = Window::Hour.start(now);
        assert_eq!(start.as_micros() % 300_000_000, 0);
        assert!(now.duration_since(start) >= Duration::from_secs(3600));
        assert!(now.duration_since(start) < Duration::from_secs(3900));
    }
}
