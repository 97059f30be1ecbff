//! The home page's chart of flow runs over time: one stacked bar per time bucket, one segment
//! per state, drawn on the server as SVG so the page needs no JavaScript to show it.
//!
//! Times are labelled in UTC, and the chart says so: the server does not know the reader's
//! time zone, and a chart in the server's zone would silently disagree with the browser's.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flowcore::{StateKind, Timestamp};
use maud::{Markup, html};

use super::drawing::{FONT, GRID_COLOUR, TEXT_COLOUR};

/// The runs that started in one time bucket, counted by state. It serializes as
/// `/api/stats` lists buckets: `{"start": "2026-11-22T14:00:00.000000Z", "counts": {"Completed": 3}}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Bucket {
    /// The start of the bucket; it lasts the chart's `bucket_len`.
    pub start: Timestamp,
    /// How many runs are in each state. Zero counts may be present; they draw nothing.
    pub counts: BTreeMap<StateKind, usize>,
}

/// The size of the drawing, in viewBox units; the SVG scales to its container's width.
const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 250.0;
/// The plot area: room on the left for the y ticks, below for the x labels and the legend.
const PLOT_LEFT: f64 = 44.0;
const PLOT_RIGHT: f64 = WIDTH - 8.0;
const PLOT_TOP: f64 = 10.0;
const PLOT_BOTTOM: f64 = 196.0;
const X_LABEL_Y: f64 = 212.0;
const LEGEND_Y: f64 = 236.0;
/// At most this many x labels, so that they never overlap.
const MAX_X_LABELS: usize = 6;
/// The share of a bucket's slot its bar fills; the rest is the gap between bars.
const BAR_FILL: f64 = 0.8;
const AXIS_COLOUR: &str = "#9e9e9e";

/// The stacked bar chart of `buckets`, each `bucket_len` long, as `<svg id="runs-chart">`.
///
/// Each non-zero (bucket, state) pair is one `<rect class="segment" data-state="…">` filled
/// with the state's colour, with a `<title>` such as `12 Completed, 14:00–15:00 UTC`. With no
/// runs at all it says "No runs in this window" instead of drawing an empty grid that reads
/// like a rendering failure.
pub fn runs_chart(buckets: &[Bucket], bucket_len: Duration) -> Markup {
    let totals: Vec<usize> = buckets
        .iter()
        .map(|b| {
            b.counts
                .values()
                .fold(0usize, |sum, &n| sum.saturating_add(n))
        })
        .collect();
    let max_total = totals.iter().copied().max().unwrap_or(0);
    let (step, top) = y_scale(max_total);
    let plot_height = PLOT_BOTTOM - PLOT_TOP;
    // `top` is at least 1, so this never divides by zero.
    let per_run = plot_height / top as f64;
    let slot = (PLOT_RIGHT - PLOT_LEFT) / buckets.len().max(1) as f64;
    let bar_width = slot * BAR_FILL;
    let times = TimeFormat::new(buckets, bucket_len);
    let label_every = buckets.len().div_ceil(MAX_X_LABELS).max(1);

    // The bars: segments stacked bottom up in the order of the states. Each segment's edges
    // come from the running total, so that rounding never leaves a gap or an overlap.
    let mut segments = Vec::new();
    for (i, bucket) in buckets.iter().enumerate() {
        let x = PLOT_LEFT + slot * i as f64 + (slot - bar_width) / 2.0;
        let mut below = 0usize;
        for (&state, &n) in bucket.counts.iter().filter(|&(_, &n)| n > 0) {
            let bottom = round1(PLOT_BOTTOM - below as f64 * per_run);
            below = below.saturating_add(n);
            let top_y = round1(PLOT_BOTTOM - below as f64 * per_run);
            segments.push(Segment {
                state,
                n,
                x,
                y: top_y,
                height: bottom - top_y,
                span: times.span(bucket.start),
            });
        }
    }

    // The legend: the states that have runs, each with its total, side by side.
    let mut present: BTreeMap<StateKind, usize> = BTreeMap::new();
    for bucket in buckets {
        for (&state, &n) in &bucket.counts {
            if n > 0 {
                let total = present.entry(state).or_insert(0);
                *total = total.saturating_add(n);
            }
        }
    }
    let mut legend = Vec::with_capacity(present.len());
    let mut legend_x = PLOT_LEFT;
    for (state, n) in present {
        legend.push((state, n, legend_x));
        legend_x += legend_width(state);
    }

    html! {
        svg #runs-chart xmlns="http://www.w3.org/2000/svg" role="img"
            aria-label="Flow runs over time by state (UTC)"
            viewBox={ "0 0 " (num(WIDTH)) " " (num(HEIGHT)) }
            width="100%" font-family=(FONT) font-size="11" {
            @if max_total > 0 {
                // Horizontal grid lines and their counts.
                @for tick in (0..=top).step_by(step) {
                    @let y = PLOT_BOTTOM - tick as f64 * per_run;
                    line x1=(num(PLOT_LEFT)) x2=(num(PLOT_RIGHT)) y1=(num(y)) y2=(num(y))
                        stroke=(GRID_COLOUR) {}
                    text.y-tick x=(num(PLOT_LEFT - 6.0)) y=(num(y + 4.0)) text-anchor="end"
                        fill=(TEXT_COLOUR) { (tick) }
                }
                @for s in &segments {
                    rect.segment data-state=(s.state.as_str()) x=(num(s.x)) y=(num(s.y))
                        width=(num(bar_width)) height=(num(s.height)) fill=(s.state.colour()) {
                        title { (s.n) " " (s.state.as_str()) ", " (s.span) }
                    }
                }
            } @else {
                text.empty x=(num((PLOT_LEFT + PLOT_RIGHT) / 2.0))
                    y=(num((PLOT_TOP + PLOT_BOTTOM) / 2.0)) text-anchor="middle"
                    font-size="15" fill="#616161" { "No runs in this window" }
            }
            // The x axis and a handful of labels, under the middle of their bars.
            line x1=(num(PLOT_LEFT)) x2=(num(PLOT_RIGHT)) y1=(num(PLOT_BOTTOM))
                y2=(num(PLOT_BOTTOM)) stroke=(AXIS_COLOUR) {}
            @for (i, bucket) in buckets.iter().enumerate().step_by(label_every) {
                text.x-label x=(num(PLOT_LEFT + slot * (i as f64 + 0.5))) y=(num(X_LABEL_Y))
                    text-anchor="middle" fill=(TEXT_COLOUR) { (times.label(bucket.start)) }
            }
            @for (state, n, x) in legend {
                g.legend data-state=(state.as_str()) {
                    title { (n) " " (state.as_str()) }
                    rect x=(num(x)) y=(num(LEGEND_Y - 9.0)) width="10" height="10" rx="2"
                        fill=(state.colour()) {}
                    text x=(num(x + 14.0)) y=(num(LEGEND_Y)) fill=(TEXT_COLOUR) {
                        (state.as_str())
                    }
                }
            }
            text.time-zone x=(num(PLOT_RIGHT)) y=(num(LEGEND_Y)) text-anchor="end"
                fill="#757575" { "Times in UTC" }
        }
    }
}

/// One bar segment: `n` runs in `state`, in the bucket whose tooltip time is `span`.
struct Segment {
    state: StateKind,
    n: usize,
    x: f64,
    y: f64,
    height: f64,
    span: String,
}

/// The y axis's tick step and top, both whole numbers of runs: a step of 1, 2 or 5 times a
/// power of ten giving at most five intervals, and the first multiple of it at or above
/// `max`. For `max == 0` it is `(1, 1)`, so the caller can divide by the top.
fn y_scale(max: usize) -> (usize, usize) {
    let max = max.max(1);
    let mut power = 1usize;
    loop {
        for m in [1, 2, 5] {
            let step = power.saturating_mul(m);
            if max.div_ceil(step) <= 5 {
                // Saturating: only absurd counts near `usize::MAX` get a top below `max`.
                return (step, max.div_ceil(step).saturating_mul(step));
            }
        }
        power = power.saturating_mul(10);
    }
}

/// The room a legend entry takes: its swatch, its name at about 6.5 units a character, a gap.
fn legend_width(state: StateKind) -> f64 {
    14.0 + state.as_str().len() as f64 * 6.5 + 14.0
}

/// How the chart writes times: the time of day for buckets shorter than a day, the date for
/// longer ones, and in tooltips the date too when the chart covers more than one day, so that
/// "14:00" is never ambiguous.
struct TimeFormat {
    bucket_len: Duration,
    daily: bool,
    seconds: bool,
    several_days: bool,
}

impl TimeFormat {
    fn new(buckets: &[Bucket], bucket_len: Duration) -> TimeFormat {
        const DAY: Duration = Duration::from_secs(86_400);
        let several_days = match (buckets.first(), buckets.last()) {
            (Some(first), Some(last)) => {
                let end = end_of(last.start, bucket_len);
                // The end is exclusive: a window ending at midnight stays on its day.
                let last_moment = end.checked_sub_signed(chrono::TimeDelta::microseconds(1));
                first.start.to_datetime().date_naive() != last_moment.unwrap_or(end).date_naive()
            }
            _ => false,
        };
        TimeFormat {
            bucket_len,
            daily: bucket_len >= DAY,
            seconds: !bucket_len.as_secs().is_multiple_of(60) || bucket_len.subsec_nanos() != 0,
            several_days,
        }
    }

    /// The x label of the bucket starting at `start`: `14:00`, or `Nov 22`.
    fn label(&self, start: Timestamp) -> String {
        let t = start.to_datetime();
        if self.daily {
            t.format("%b %-d").to_string()
        } else {
            t.format(self.time_pattern()).to_string()
        }
    }

    /// The tooltip's time span of the bucket starting at `start`: `14:00–15:00 UTC`,
    /// `Nov 22 14:00–15:00 UTC` when the chart covers several days, `Nov 22 UTC` for a day
    /// from midnight, `Nov 22–Nov 28 UTC` for a week from midnight, and
    /// `Nov 22 14:00–Nov 23 14:00 UTC` for a day that does not start at midnight.
    fn span(&self, start: Timestamp) -> String {
        let from = start.to_datetime();
        let to = end_of(start, self.bucket_len);
        let midnight = from.time() == chrono::NaiveTime::MIN;
        if self.daily && midnight && self.bucket_len.as_secs().is_multiple_of(86_400) {
            let last_day = to
                .checked_sub_signed(chrono::TimeDelta::microseconds(1))
                .unwrap_or(to);
            if last_day.date_naive() == from.date_naive() {
                format!("{} UTC", from.format("%b %-d"))
            } else {
                format!(
                    "{}–{} UTC",
                    from.format("%b %-d"),
                    last_day.format("%b %-d")
                )
            }
        } else if self.daily {
            // Days that do not start at midnight: both ends in full.
            let pattern = "%b %-d %H:%M";
            format!("{}–{} UTC", from.format(pattern), to.format(pattern))
        } else {
            let pattern = self.time_pattern();
            let day = if self.several_days {
                format!("{} ", from.format("%b %-d"))
            } else {
                String::new()
            };
            format!("{day}{}–{} UTC", from.format(pattern), to.format(pattern))
        }
    }

    fn time_pattern(&self) -> &'static str {
        if self.seconds { "%H:%M:%S" } else { "%H:%M" }
    }
}

/// The end of the bucket starting at `start`, saturating at chrono's last date-time.
fn end_of(start: Timestamp, bucket_len: Duration) -> DateTime<Utc> {
    start
        .checked_add(bucket_len)
        .map_or(DateTime::<Utc>::MAX_UTC, Timestamp::to_datetime)
}

/// `v` rounded to one decimal.
fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A coordinate for an SVG attribute: at most one decimal, no `.0`, `0` for NaN or infinity.
pub(super) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_owned();
    }
    let r = round1(v);
    if r == r.trunc() {
        // `+ 0.0` turns -0 into 0.
        format!("{}", r + 0.0)
    } else {
        format!("{r:.1}")
    }
}

/// A small reader of the SVG the renderers write, for their tests: the attributes of each
/// element of a tag, and the text of `<title>`s. Not a general parser: it relies on maud's
/// output (double-quoted attributes, `>` escaped inside them).
#[cfg(test)]
pub(super) mod svg {
    use std::collections::BTreeMap;

    /// One element: its attributes and the source from its `<` to the end of the document.
    pub struct Element<'a> {
        pub attrs: BTreeMap<String, String>,
        pub rest: &'a str,
    }

    impl<'a> Element<'a> {
        pub fn attr(&self, name: &str) -> &str {
            self.attrs
                .get(name)
                .map(String::as_str)
                .unwrap_or_else(|| panic!("no {name} in {:?}", self.attrs))
        }

        pub fn num(&self, name: &str) -> f64 {
            let v = self.attr(name);
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        }

        /// The text of the first `<title>` inside or after this element.
        pub fn title(&self) -> &'a str {
            let start = self.rest.find("<title>").expect("a <title>") + "<title>".len();
            let end = self.rest[start..].find("</title>").expect("</title>");
            &self.rest[start..start + end]
        }
    }

    /// Every `<tag …>` in `svg`, in document order.
    pub fn elements<'a>(svg: &'a str, tag: &str) -> Vec<Element<'a>> {
        let open = format!("<{tag}");
        let mut found = Vec::new();
        let mut from = 0;
        while let Some(at) = svg[from..].find(&open) {
            let start = from + at;
            from = start + open.len();
            let after = &svg[from..];
            if !after.starts_with([' ', '>']) {
                continue;
            }
            let end = after.find('>').expect("an element's end");
            found.push(Element {
                attrs: attributes(&after[..end]),
                rest: &svg[start..],
            });
        }
        found
    }

    fn attributes(mut text: &str) -> BTreeMap<String, String> {
        let mut attrs = BTreeMap::new();
        loop {
            text = text.trim_start();
            let Some(eq) = text.find("=\"") else {
                return attrs;
            };
            let name = text[..eq].trim().to_owned();
            let value_start = eq + 2;
            let len = text[value_start..].find('"').expect("a closing quote");
            attrs.insert(name, text[value_start..value_start + len].to_owned());
            text = &text[value_start + len + 1..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::svg::elements;
    use super::*;

    /// 2026-11-22T14:00:00Z.
    const T0: i64 = 1_795_356_000_000_000;
    const HOUR: Duration = Duration::from_secs(3_600);

    fn at_hour(h: i64) -> Timestamp {
        Timestamp::from_micros(T0 + h * 3_600_000_000)
    }

    fn bucket(h: i64, counts: &[(StateKind, usize)]) -> Bucket {
        Bucket {
            start: at_hour(h),
            counts: counts.iter().copied().collect(),
        }
    }

    #[test]
    fn the_test_clock_starts_where_the_tests_say() {
        assert_eq!(at_hour(0).to_string(), "2026-11-22T14:00:00.000000Z");
    }

    #[test]
    fn a_bucket_serializes_as_the_api_lists_it() {
        let json = serde_json::to_string(&bucket(0, &[(StateKind::Completed, 3)]));
        assert_eq!(
            json.ok().as_deref(),
            Some(r#"{"start":"2026-11-22T14:00:00.000000Z","counts":{"Completed":3}}"#)
        );
    }

    #[test]
    fn one_segment_per_non_zero_count_with_height_in_proportion() {
        use StateKind::*;
        let buckets = [
            bucket(0, &[(Completed, 12), (Failed, 3)]),
            bucket(1, &[(Completed, 0), (Running, 6)]),
            bucket(2, &[]),
            bucket(3, &[(Cached, 1), (Crashed, 2), (Completed, 4)]),
        ];
        let svg = runs_chart(&buckets, HOUR).into_string();
        assert!(svg.starts_with("<svg id=\"runs-chart\""), "{svg}");
        assert!(svg.contains("viewBox=\"0 0 800 250\""), "{svg}");
        assert!(svg.contains("width=\"100%\""), "{svg}");

        let segments = elements(&svg, "rect")
            .into_iter()
            .filter(|r| r.attrs.get("class").is_some_and(|c| c == "segment"))
            .collect::<Vec<_>>();
        // The segments come bucket by bucket, in the order of the states.
        let expected = [
            (0, Completed, 12),
            (0, Failed, 3),
            (1, Running, 6),
            (3, Completed, 4),
            (3, Cached, 1),
            (3, Crashed, 2),
        ];
        assert_eq!(segments.len(), expected.len(), "{svg}");
        let per_run = segments[0].num("height") / 12.0;
        assert!(per_run > 0.0);
        let mut bars: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for (segment, (b, state, n)) in segments.iter().zip(expected) {
            assert_eq!(segment.attr("fill"), state.colour());
            assert_eq!(segment.attr("data-state"), state.as_str());
            let height = segment.num("height");
            assert!(
                (height - n as f64 * per_run).abs() <= 0.15,
                "{state} × {n}: height {height}, expected {}",
                n as f64 * per_run
            );
            // Segments of one bar share their x and stack without gaps, bottom up.
            let (x, y) = (segment.num("x"), segment.num("y"));
            let bottom = bars.entry(b).or_insert((x, PLOT_BOTTOM));
            assert_eq!(bottom.0, x);
            assert!(
                (y + height - bottom.1).abs() < 0.05,
                "{state} in bucket {b}"
            );
            bottom.1 = y;
            assert!(segment.title().starts_with(&format!("{n} {state}, ")));
        }
        // Bars go left to right in bucket order.
        let xs: Vec<f64> = bars.values().map(|b| b.0).collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
        // The tallest bar (15 runs) fits in the plot area.
        assert!(bars.values().all(|b| b.1 >= PLOT_TOP));
    }

    #[test]
    fn tooltips_say_the_count_state_and_hour_in_utc() {
        let svg = runs_chart(&[bucket(0, &[(StateKind::Completed, 12)])], HOUR).into_string();
        let segment = &elements(&svg, "rect")[0];
        assert_eq!(segment.title(), "12 Completed, 14:00–15:00 UTC");
        assert!(svg.contains(">Times in UTC<"));
        assert!(svg.contains(">14:00<"), "{svg}");
    }

    #[test]
    fn tooltips_name_the_day_when_the_chart_crosses_midnight() {
        let buckets: Vec<Bucket> = (0..24)
            .map(|h| bucket(h, &[(StateKind::Failed, 1)]))
            .collect();
        let svg = runs_chart(&buckets, HOUR).into_string();
        let titles: Vec<&str> = elements(&svg, "rect")
            .iter()
            .filter(|r| r.attrs.contains_key("data-state"))
            .map(|r| r.title())
            .collect();
        assert_eq!(titles[0], "1 Failed, Nov 22 14:00–15:00 UTC");
        assert_eq!(titles[23], "1 Failed, Nov 23 13:00–14:00 UTC");
    }

    #[test]
    fn a_handful_of_x_labels_by_date_for_daily_buckets() {
        let day = Duration::from_secs(86_400);
        let midnight = T0 - 14 * 3_600_000_000;
        let days = |first: i64| -> Vec<Bucket> {
            (0..30)
                .map(|d| Bucket {
                    start: Timestamp::from_micros(first + d * 86_400_000_000),
                    counts: BTreeMap::from([(StateKind::Completed, 2)]),
                })
                .collect()
        };
        let svg = runs_chart(&days(midnight), day).into_string();
        let labels = elements(&svg, "text")
            .into_iter()
            .filter(|t| t.attrs.get("class").is_some_and(|c| c == "x-label"))
            .count();
        assert!((2..=MAX_X_LABELS).contains(&labels), "{labels} labels");
        assert!(svg.contains(">Nov 22<"), "{svg}");
        assert!(svg.contains(">2 Completed, Nov 23 UTC<"), "{svg}");

        let week = runs_chart(&days(midnight)[..1], day * 7).into_string();
        assert!(week.contains(">2 Completed, Nov 22–Nov 28 UTC<"), "{week}");
        // Days that do not start at midnight keep their hours.
        let rolling = runs_chart(&days(T0), day).into_string();
        assert!(rolling.contains(">Nov 22<"), "{rolling}");
        assert!(
            rolling.contains(">2 Completed, Nov 22 14:00–Nov 23 14:00 UTC<"),
            "{rolling}"
        );
    }

    #[test]
    fn y_ticks_are_a_few_whole_numbers_covering_the_tallest_bar() {
        assert_eq!(y_scale(0), (1, 1));
        assert_eq!(y_scale(1), (1, 1));
        assert_eq!(y_scale(5), (1, 5));
        assert_eq!(y_scale(6), (2, 6));
        assert_eq!(y_scale(15), (5, 15));
        assert_eq!(y_scale(999), (200, 1000));
        // Absurd counts do not overflow.
        assert!(y_scale(usize::MAX).1 > 0);
        for max in 1..2000 {
            let (step, top) = y_scale(max);
            assert!(top >= max && top / step <= 5 && top % step == 0, "{max}");
        }
        let svg = runs_chart(&[bucket(0, &[(StateKind::Completed, 7)])], HOUR).into_string();
        let ticks: Vec<String> = elements(&svg, "text")
            .iter()
            .filter(|t| t.attrs.get("class").is_some_and(|c| c == "y-tick"))
            .map(|t| t.rest[t.rest.find('>').unwrap_or(0) + 1..].to_owned())
            .map(|s| s[..s.find('<').unwrap_or(0)].to_owned())
            .collect();
        assert_eq!(ticks, ["0", "2", "4", "6", "8"]);
    }

    #[test]
    fn the_legend_lists_the_states_present() {
        use StateKind::*;
        let buckets = [
            bucket(0, &[(Completed, 1), (Skipped, 0)]),
            bucket(1, &[(Failed, 2)]),
        ];
        let svg = runs_chart(&buckets, HOUR).into_string();
        let legend: Vec<String> = elements(&svg, "g")
            .iter()
            .map(|g| g.attr("data-state").to_owned())
            .collect();
        assert_eq!(legend, ["Completed", "Failed"]);
    }

    #[test]
    fn no_runs_says_so() {
        let empty_buckets: Vec<Bucket> = (0..4)
            .map(|h| bucket(h, &[(StateKind::Completed, 0)]))
            .collect();
        for (buckets, len) in [
            (&empty_buckets[..], HOUR),
            (&[][..], HOUR),
            (&empty_buckets[..], Duration::ZERO),
        ] {
            let svg = runs_chart(buckets, len).into_string();
            assert!(svg.contains(">No runs in this window<"), "{svg}");
            assert!(!svg.contains("class=\"segment\""), "{svg}");
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
    }

    #[test]
    fn a_zero_bucket_length_draws_without_dividing_by_it() {
        let svg =
            runs_chart(&[bucket(0, &[(StateKind::Completed, 3)])], Duration::ZERO).into_string();
        assert_eq!(
            elements(&svg, "rect")[0].title(),
            "3 Completed, 14:00–14:00 UTC"
        );
    }

    #[test]
    fn numbers_have_at_most_one_decimal() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(-0.01), "0");
        assert_eq!(num(f64::NAN), "0");
        let buckets: Vec<Bucket> = (0..7)
            .map(|h| bucket(h, &[(StateKind::Completed, 3), (StateKind::Failed, 7)]))
            .collect();
        let svg = runs_chart(&buckets, HOUR).into_string();
        for rect in elements(&svg, "rect") {
            for key in ["x", "y", "width", "height"] {
                let v = rect.attr(key);
                assert!(
                    v.split('.').nth(1).is_none_or(|d| d.len() == 1),
                    "{key}={v}"
                );
            }
        }
    }
}
