//! The run page's timeline: a Gantt chart of a flow run's task runs, drawn on the server as
//! SVG, so that what ran in parallel, what waited and what took long shows at a glance.
//!
//! Times on its axis are relative to the start of the flow run ("0s", "1.5s", "2m"): the
//! absolute times are in the history and the table next to it, and relative ones need no
//! time zone.

use std::time::Duration;

use flowcore::summary::format_duration;
use flowcore::{FlowRunRecord, TaskRunRecord, Timestamp};
use maud::{Markup, html};

use super::chart::num;
use super::drawing::{FONT, GRID_COLOUR, TEXT_COLOUR, truncate};

/// Rows drawn at most; the rest are counted in a last text row, so that a flow of 100,000
/// task runs still gives a page the browser can draw.
const MAX_ROWS: usize = 200;
const WIDTH: f64 = 800.0;
/// The label column on the left, then the plot; room on the right for the last tick label.
const LABEL_X: f64 = 4.0;
const LABEL_CHARS: usize = 28;
const PLOT_LEFT: f64 = 190.0;
const PLOT_RIGHT: f64 = 770.0;
/// The tick labels sit above the rows.
const AXIS_HEIGHT: f64 = 24.0;
const ROW_HEIGHT: f64 = 22.0;
const BAR_HEIGHT: f64 = 14.0;
/// A run that took no time still gets a visible sliver.
const MIN_BAR_WIDTH: f64 = 2.0;
const MAX_TICKS: u64 = 6;

/// The Gantt chart of `run`'s task runs as `<svg id="timeline">`, with `now` standing for
/// the end of anything still going.
///
/// One row per task run in the order they were called (the record lists them in the order
/// they finished), each with its name on the left and a `<rect class="bar">` from its first
/// Running state (its first state if it never ran: a cache hit, a skip) to its final state,
/// coloured by its current state and titled with its name, state, duration and attempts.
pub fn timeline(run: &FlowRunRecord, now: Timestamp) -> Markup {
    if run.task_runs.is_empty() {
        return html! {
            svg #timeline xmlns="http://www.w3.org/2000/svg" role="img"
                aria-label="Timeline of task runs" viewBox="0 0 800 40" width="100%"
                font-family=(FONT) {
                text.empty x="400" y="25" text-anchor="middle" font-size="14" fill="#616161" {
                    "No task runs"
                }
            }
        };
    }

    // A task run still going in a flow run that is over (it crashed, or was cancelled) ends
    // with the flow run, not now: otherwise an old crashed run would stretch to today.
    let open_end = run.history.ended_at().unwrap_or(now);
    let mut rows: Vec<Row> = run.task_runs.iter().map(|t| Row::of(t, open_end)).collect();
    // Call order: when each task run was created. The sort is stable, so runs created in the
    // same microsecond keep the record's order.
    rows.sort_by_key(|r| r.created);
    let hidden = rows.len().saturating_sub(MAX_ROWS);
    rows.truncate(MAX_ROWS);

    let axis = Axis::new(run, &rows, open_end);
    let more_rows = usize::from(hidden > 0);
    let height = AXIS_HEIGHT + (rows.len() + more_rows) as f64 * ROW_HEIGHT + 6.0;
    let rows_bottom = AXIS_HEIGHT + rows.len() as f64 * ROW_HEIGHT;

    html! {
        svg #timeline xmlns="http://www.w3.org/2000/svg" role="img"
            aria-label="Timeline of task runs" width="100%"
            viewBox={ "0 0 " (num(WIDTH)) " " (num(height)) }
            font-family=(FONT) font-size="11" {
            @for (x, label) in axis.ticks() {
                line.tick x1=(num(x)) x2=(num(x)) y1=(num(AXIS_HEIGHT - 4.0))
                    y2=(num(rows_bottom)) stroke=(GRID_COLOUR) {}
                text.tick-label x=(num(x)) y="14" text-anchor="middle" fill=(TEXT_COLOUR) {
                    (label)
                }
            }
            @for (i, row) in rows.iter().enumerate() {
                @let y = AXIS_HEIGHT + i as f64 * ROW_HEIGHT;
                @let x = axis.x(row.start);
                @let width = (axis.x(row.end) - x).max(MIN_BAR_WIDTH);
                @let state = row.task.state().kind;
                g.task-run data-task-run=(row.task.id) {
                    title { (row.tooltip()) }
                    text.task-name x=(num(LABEL_X)) y=(num(y + 15.0)) fill=(TEXT_COLOUR) {
                        (truncate(&row.task.name().to_string(), LABEL_CHARS))
                    }
                    rect.bar data-state=(state.as_str()) x=(num(x))
                        y=(num(y + (ROW_HEIGHT - BAR_HEIGHT) / 2.0)) width=(num(width))
                        height=(num(BAR_HEIGHT)) rx="2" fill=(state.colour()) {}
                }
            }
            @if hidden > 0 {
                text.more x=(num(LABEL_X)) y=(num(rows_bottom + 15.0)) fill="#616161" {
                    "… and " (hidden) " more task runs"
                }
            }
        }
    }
}

/// One task run's row: when it was created (for the order), and its bar's ends.
struct Row<'a> {
    task: &'a TaskRunRecord,
    created: Timestamp,
    start: Timestamp,
    end: Timestamp,
}

impl<'a> Row<'a> {
    /// The row of `task`; `open_end` ends a run that has not.
    fn of(task: &'a TaskRunRecord, open_end: Timestamp) -> Row<'a> {
        let created = task.history.first().map_or(task.state().at, |s| s.at);
        let start = task.history.started_at().unwrap_or(created);
        let end = task.history.ended_at().unwrap_or(open_end).max(start);
        Row {
            task,
            created,
            start,
            end,
        }
    }

    /// `extract-a8e: Completed, 1.23s, 1 attempt`; `… Running, 3.00s so far, …` for one
    /// still going; with the map index of a mapped run.
    fn tooltip(&self) -> String {
        let task = self.task;
        let state = task.state().kind;
        let mapped = task
            .map_index
            .map_or_else(String::new, |i| format!(" (map index {i})"));
        let duration = match task.duration() {
            Some(d) => format_duration(d),
            None => format!(
                "{} so far",
                format_duration(self.end.duration_since(self.start))
            ),
        };
        let attempts = match task.attempts {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        format!("{}{mapped}: {state}, {duration}, {attempts}", task.name())
    }
}

/// The time axis: from the flow run's start to its end, widened to take in every bar.
struct Axis {
    start: Timestamp,
    /// The span in microseconds, at least 1 so that `x` never divides by zero.
    span_us: i64,
}

impl Axis {
    fn new(run: &FlowRunRecord, rows: &[Row], open_end: Timestamp) -> Axis {
        // The flow run's start is when it started running: a deployment's run may have sat
        // Scheduled for hours before that. Its first state if it never ran.
        let flow_start = run
            .history
            .started_at()
            .or_else(|| run.history.first().map(|s| s.at))
            .unwrap_or(open_end);
        let start = rows
            .iter()
            .map(|r| r.start)
            .fold(flow_start, Timestamp::min);
        let end = rows.iter().map(|r| r.end).fold(open_end, Timestamp::max);
        Axis {
            start,
            span_us: end.as_micros().saturating_sub(start.as_micros()).max(1),
        }
    }

    /// The x of time `t`, inside the plot.
    fn x(&self, t: Timestamp) -> f64 {
        let offset = t.as_micros().saturating_sub(self.start.as_micros()) as f64;
        let fraction = (offset / self.span_us as f64).clamp(0.0, 1.0);
        PLOT_LEFT + fraction * (PLOT_RIGHT - PLOT_LEFT)
    }

    /// A few ticks at round offsets from the start, with their labels: at most `MAX_TICKS`
    /// intervals.
    fn ticks(&self) -> Vec<(f64, String)> {
        let span = u64::try_from(self.span_us).unwrap_or(1);
        let step = tick_step(span);
        (0..=span / step)
            .map(|i| {
                let offset = i * step;
                let fraction = offset as f64 / span as f64;
                (
                    PLOT_LEFT + fraction * (PLOT_RIGHT - PLOT_LEFT),
                    relative(Duration::from_micros(offset)),
                )
            })
            .collect()
    }
}

/// The smallest round step, in microseconds, that cuts `span_us` into at most `MAX_TICKS`
/// intervals: 1, 2 or 5 times a power of ten below a second, then steps that read well on a
/// clock (15 s, 30 s, 1 min, … 6 h, 12 h), then whole days.
fn tick_step(span_us: u64) -> u64 {
    const S: u64 = 1_000_000;
    const CLOCK: [u64; 16] = [
        S,
        2 * S,
        5 * S,
        10 * S,
        15 * S,
        30 * S,
        60 * S,
        120 * S,
        300 * S,
        600 * S,
        900 * S,
        1_800 * S,
        3_600 * S,
        7_200 * S,
        21_600 * S,
        43_200 * S,
    ];
    let fits = |step: u64| span_us.div_ceil(step) <= MAX_TICKS;
    let mut power = 1;
    while power < S {
        for m in [1, 2, 5] {
            if fits(m * power) {
                return m * power;
            }
        }
        power *= 10;
    }
    if let Some(&step) = CLOCK.iter().find(|&&s| fits(s)) {
        return step;
    }
    let day = 86_400 * S;
    span_us.div_ceil(MAX_TICKS).div_ceil(day).max(1) * day
}

/// An offset from the start, short: `0s`, `250µs`, `1.5ms`, `1.5s`, `2m`, `2m 30s`, `1h`,
/// `1h 30m`, `2d`, `1d 12h`. At most one decimal.
fn relative(d: Duration) -> String {
    let us = d.as_micros();
    let (s, m, h) = (d.as_secs(), d.as_secs() / 60, d.as_secs() / 3_600);
    match us {
        0 => "0s".to_owned(),
        1..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{}ms", num(us as f64 / 1_000.0)),
        1_000_000..60_000_000 => format!("{}s", num(d.as_secs_f64())),
        _ if m < 60 => pair(m, "m", s % 60, "s"),
        _ if h < 24 => pair(h, "h", m % 60, "m"),
        _ => pair(h / 24, "d", h % 24, "h"),
    }
}

/// `2m`, or `2m 30s` when the smaller unit is not zero.
fn pair(big: u64, big_unit: &str, small: u64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit} {small}{small_unit}")
    }
}

#[cfg(test)]
mod tests {
    use flowcore::StateKind;
    use serde_json::json;

    use super::super::chart::svg::{Element, elements};
    use super::*;

    /// 2026-11-22T14:00:00Z.
    const T0: i64 = 1_795_356_000_000_000;

    fn at(secs: f64) -> Timestamp {
        Timestamp::from_micros(T0 + (secs * 1_000_000.0) as i64)
    }

    fn states(states: &[(StateKind, f64)]) -> serde_json::Value {
        let states: Vec<flowcore::State> = states
            .iter()
            .map(|&(kind, secs)| flowcore::State::new(kind, at(secs), None))
            .collect();
        json!(states)
    }

    /// A task run of `task` (its id ends in `n`) with these states.
    fn task_run(
        task: &str,
        n: u128,
        attempts: u32,
        history: &[(StateKind, f64)],
    ) -> serde_json::Value {
        json!({
            "id": flowcore::Uuid::from_u128((0x019a << 112) | n),
            "task": task,
            "flow_run_id": null,
            "history": states(history),
            "attempts": attempts,
        })
    }

    fn flow_run(history: &[(StateKind, f64)], task_runs: Vec<serde_json::Value>) -> FlowRunRecord {
        serde_json::from_value(json!({
            "id": flowcore::Uuid::from_u128(1),
            "name": "enchanted-peacock",
            "flow": "etl",
            "parent_id": null,
            "history": states(history),
            "attempts": 1,
            "task_runs": task_runs,
            "subflow_runs": [],
        }))
        .expect("a flow run record")
    }

    fn bars(svg: &str) -> Vec<Element<'_>> {
        elements(svg, "rect")
            .into_iter()
            .filter(|r| r.attrs.get("class").is_some_and(|c| c == "bar"))
            .collect()
    }

    fn names(svg: &str) -> Vec<String> {
        elements(svg, "text")
            .iter()
            .filter(|t| t.attrs.get("class").is_some_and(|c| c == "task-name"))
            .map(|t| {
                let text = &t.rest[t.rest.find('>').unwrap_or(0) + 1..];
                text[..text.find('<').unwrap_or(0)].to_owned()
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 0.1
    }

    use StateKind::*;

    #[test]
    fn bars_are_placed_and_sized_by_their_times_in_call_order() {
        // The record lists task runs in the order they finished: a, skipped, flaky.
        let run = flow_run(
            &[(Pending, 0.0), (Running, 0.0), (Failed, 10.0)],
            vec![
                task_run(
                    "a",
                    0xa,
                    1,
                    &[(Pending, 1.0), (Running, 1.0), (Completed, 3.0)],
                ),
                task_run("skipped", 0xc, 0, &[(Pending, 5.0), (Skipped, 5.0)]),
                task_run(
                    "flaky",
                    0xb,
                    2,
                    &[
                        (Pending, 2.0),
                        (Running, 4.0),
                        (Retrying, 5.0),
                        (Running, 6.0),
                        (Failed, 9.0),
                    ],
                ),
            ],
        );
        let svg = timeline(&run, at(100.0)).into_string();
        assert!(svg.starts_with("<svg id=\"timeline\""), "{svg}");
        assert_eq!(names(&svg), ["a-00a", "flaky-00b", "skipped-00c"]);

        // 10 s over the plot's width.
        let per_sec = (PLOT_RIGHT - PLOT_LEFT) / 10.0;
        let bars = bars(&svg);
        let expected = [
            (Completed, 1.0, 2.0),
            (Failed, 4.0, 5.0),
            (Skipped, 5.0, 0.0),
        ];
        assert_eq!(bars.len(), 3);
        for (bar, (state, start, secs)) in bars.iter().zip(expected) {
            assert_eq!(bar.attr("fill"), state.colour());
            assert_eq!(bar.attr("data-state"), state.as_str());
            assert!(
                close(bar.num("x"), PLOT_LEFT + start * per_sec),
                "{state}: x"
            );
            let width = (secs * per_sec).max(MIN_BAR_WIDTH);
            assert!(close(bar.num("width"), width), "{state}: width");
        }
        // Rows go down in order.
        let ys: Vec<f64> = bars.iter().map(|b| b.num("y")).collect();
        assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");

        let titles: Vec<&str> = elements(&svg, "g").iter().map(Element::title).collect();
        assert_eq!(
            titles,
            [
                "a-00a: Completed, 2.00s, 1 attempt",
                "flaky-00b: Failed, 5.00s, 2 attempts",
                "skipped-00c: Skipped, 0µs, 0 attempts",
            ]
        );
        // Ticks every 2 s from the flow run's start.
        let ticks: Vec<f64> = elements(&svg, "line").iter().map(|l| l.num("x1")).collect();
        assert_eq!(ticks.len(), 6);
        assert!(close(ticks[0], PLOT_LEFT) && close(ticks[5], PLOT_RIGHT));
        for label in ["0s", "2s", "4s", "10s"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
    }

    #[test]
    fn a_run_still_going_reaches_now_and_one_in_a_crashed_flow_run_its_end() {
        let running = task_run("slow", 0x1, 1, &[(Pending, 0.0), (Running, 2.0)]);
        let going = flow_run(&[(Pending, 0.0), (Running, 0.0)], vec![running.clone()]);
        let svg = timeline(&going, at(4.0)).into_string();
        let bar = &bars(&svg)[0];
        assert_eq!(bar.attr("fill"), Running.colour());
        assert!(close(bar.num("x"), (PLOT_LEFT + PLOT_RIGHT) / 2.0));
        assert!(close(bar.num("x") + bar.num("width"), PLOT_RIGHT));
        assert_eq!(
            elements(&svg, "g")[0].title(),
            "slow-001: Running, 2.00s so far, 1 attempt"
        );

        let crashed = flow_run(&[(Running, 0.0), (Crashed, 8.0)], vec![running]);
        let svg = timeline(&crashed, at(1_000_000.0)).into_string();
        let bar = &bars(&svg)[0];
        assert!(close(
            bar.num("x"),
            PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) / 4.0
        ));
        assert!(close(bar.num("x") + bar.num("width"), PLOT_RIGHT));
        assert!(svg.contains(">8s</text>"), "{svg}");
    }

    #[test]
    fn a_deployments_wait_before_running_is_left_out_of_the_axis() {
        let run = flow_run(
            &[
                (Scheduled, 0.0),
                (Pending, 3_600.0),
                (Running, 3_600.0),
                (Completed, 3_610.0),
            ],
            vec![task_run(
                "a",
                0xa,
                1,
                &[(Pending, 3_600.0), (Running, 3_600.0), (Completed, 3_605.0)],
            )],
        );
        let svg = timeline(&run, at(4_000.0)).into_string();
        let bar = &bars(&svg)[0];
        assert!(close(bar.num("x"), PLOT_LEFT));
        assert!(close(bar.num("width"), (PLOT_RIGHT - PLOT_LEFT) / 2.0));
    }

    #[test]
    fn rows_beyond_the_limit_are_counted_not_drawn() {
        let task_runs = (0..250u32)
            .map(|i| {
                let t = f64::from(i);
                task_run(
                    "step",
                    u128::from(i),
                    1,
                    &[(Pending, t), (Running, t), (Completed, t + 1.0)],
                )
            })
            .collect();
        let run = flow_run(&[(Running, 0.0), (Completed, 251.0)], task_runs);
        let svg = timeline(&run, at(300.0)).into_string();
        assert_eq!(bars(&svg).len(), MAX_ROWS);
        assert!(
            svg.contains(">… and 50 more task runs</text>"),
            "tail of {}",
            &svg[svg.len() - 300..]
        );
        let height = AXIS_HEIGHT + 201.0 * ROW_HEIGHT + 6.0;
        assert!(svg.contains(&format!("viewBox=\"0 0 800 {}\"", num(height))));
        // The first 200 in call order are the ones drawn.
        assert_eq!(names(&svg).last().map(String::as_str), Some("step-0c7"));
    }

    #[test]
    fn no_task_runs_says_so() {
        let run = flow_run(&[(Running, 0.0), (Completed, 1.0)], vec![]);
        let svg = timeline(&run, at(2.0)).into_string();
        assert!(svg.starts_with("<svg id=\"timeline\""));
        assert!(svg.contains(">No task runs</text>"), "{svg}");
        assert!(!svg.contains("<rect"));
    }

    #[test]
    fn everything_at_one_instant_draws_without_dividing_by_zero() {
        let run = flow_run(
            &[(Running, 0.0), (Completed, 0.0)],
            vec![task_run(
                "instant",
                0x1,
                0,
                &[(Pending, 0.0), (Cached, 0.0)],
            )],
        );
        let svg = timeline(&run, at(0.0)).into_string();
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let bar = &bars(&svg)[0];
        assert!(close(bar.num("x"), PLOT_LEFT));
        assert!(close(bar.num("width"), MIN_BAR_WIDTH));
        // A history read from a damaged store may be empty; it still draws.
        let damaged = flow_run(&[], vec![task_run("lost", 0x2, 0, &[])]);
        assert_eq!(bars(&timeline(&damaged, at(0.0)).into_string()).len(), 1);
    }

    #[test]
    fn ticks_are_round_and_few() {
        let secs = |s: u64| s * 1_000_000;
        assert_eq!(tick_step(1), 1);
        assert_eq!(tick_step(secs(10)), secs(2));
        assert_eq!(tick_step(secs(3)), 500_000);
        assert_eq!(tick_step(secs(150)), secs(30));
        assert_eq!(tick_step(secs(86_400 * 30)), secs(86_400 * 5));
        for span in [1, 7, 999, 123_456, secs(59), secs(7_000), secs(1_000_000)] {
            let step = tick_step(span);
            assert!(span.div_ceil(step) <= MAX_TICKS, "{span}: {step}");
        }
        let d = |us: u64| relative(Duration::from_micros(us));
        assert_eq!(d(0), "0s");
        assert_eq!(d(250), "250µs");
        assert_eq!(d(1_500), "1.5ms");
        assert_eq!(d(500_000), "500ms");
        assert_eq!(d(secs(1) + 500_000), "1.5s");
        assert_eq!(d(secs(120)), "2m");
        assert_eq!(d(secs(150)), "2m 30s");
        assert_eq!(d(secs(5_400)), "1h 30m");
        assert_eq!(d(secs(86_400 * 2)), "2d");
    }

    #[test]
    fn long_names_are_cut_and_kept_whole_in_the_tooltip() {
        let long = "a_task_with_a_name_longer_than_the_label_column";
        let run = flow_run(
            &[(Running, 0.0), (Completed, 1.0)],
            vec![task_run(long, 0x1, 1, &[(Running, 0.0), (Completed, 1.0)])],
        );
        let svg = timeline(&run, at(1.0)).into_string();
        let name = &names(&svg)[0];
        assert_eq!(name.chars().count(), LABEL_CHARS);
        assert!(name.ends_with('…'));
        assert!(
            elements(&svg, "g")[0]
                .title()
                .starts_with(&format!("{long}-001: "))
        );
    }

    #[flowcore::task(name = "<script>alert(1)</script>")]
    async fn evil(secs: u64) -> u64 {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        secs
    }

    #[flowcore::task]
    async fn after(secs: u64) -> u64 {
        tokio::time::sleep(Duration::from_secs(secs * 3)).await;
        secs
    }

    #[flowcore::flow]
    async fn two_steps() -> u64 {
        after(evil(1).await).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_real_run_draws_its_steps_one_after_the_other_and_escapes_names() {
        let _ = flowcore::Store::memory().install();
        let (out, run) = two_steps().with_run().await;
        assert_eq!(out, 1);
        let svg = timeline(&run, Timestamp::now()).into_string();

        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        assert!(!svg.contains("<script"), "{svg}");
        let bars = bars(&svg);
        assert_eq!(bars.len(), 2);
        let (first, second) = (&bars[0], &bars[1]);
        let first_end = first.num("x") + first.num("width");
        assert!(second.num("x") >= first_end - 0.1, "{svg}");
        // 1 s, then 3 s.
        let ratio = second.num("width") / first.num("width");
        assert!((ratio - 3.0).abs() < 0.05, "{ratio}");
    }
}
