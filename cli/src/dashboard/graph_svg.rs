//! The run page's task graph, drawn on the server as SVG: the same [`TaskGraph`] as
//! `flowcore runs graph` draws in DOT and Mermaid, without needing Graphviz on the server or
//! a script in the browser.
//!
//! The layout is the simplest that reads left to right: each node's column is the length of
//! the longest path to it from a node with no upstream, and the nodes of a column are stacked
//! in the record's order. It never crosses an arrow backwards unless the graph has a cycle
//! (possible once mapped runs fold into one node), which it still draws.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use flowcore::EdgeKind;
use flowcore::graph::{Node, TaskGraph};
use maud::{Markup, html};

use super::chart::num;
use super::drawing::{FONT, truncate};

/// Nodes drawn at most; the rest are counted in a line of text below, so that a flow of
/// thousands of unmapped task runs still gives a drawing the browser can handle.
const MAX_NODES: usize = 300;
/// Lines of a label drawn at most (a label is one or two lines; a task name could hold more).
const MAX_LINES: usize = 3;
const MARGIN: f64 = 12.0;
/// Wide enough for an "allow failure" label before an arrow's head.
const COLUMN_GAP: f64 = 84.0;
const ROW_GAP: f64 = 16.0;
const PADDING: f64 = 10.0;
const LINE_HEIGHT: f64 = 15.0;
/// Room per character at the 12-unit font: an estimate, since the server cannot measure.
const CHAR_WIDTH: f64 = 7.0;
const MIN_NODE_WIDTH: f64 = 110.0;
const MAX_NODE_WIDTH: f64 = 280.0;
const EDGE_COLOUR: &str = "#757575";
const ARROW_ID: &str = "task-graph-arrow";

/// `graph` as `<svg id="task-graph">`: one `<g class="node">` per node (a rounded box in its
/// state's colour, its label's lines as `<tspan>`s, a `<title>`), one `<g class="edge">` per
/// edge holding a curve with an arrowhead, dashed for `wait_for`, and a `text.edge-label`
/// "allow failure" where the downstream ran even if the upstream failed (as the DOT drawing
/// does).
///
/// The SVG has its natural size in `width` and `height` and a `viewBox`, so the page's CSS
/// can either scale it down (`max-width: 100%; height: auto`) or scroll it.
pub fn task_graph(graph: &TaskGraph) -> Markup {
    let all = graph.nodes();
    if all.is_empty() {
        return html! {
            svg #task-graph xmlns="http://www.w3.org/2000/svg" role="img"
                aria-label="Task graph" viewBox="0 0 400 40" width="400" height="40"
                font-family=(FONT) {
                text.empty x="200" y="25" text-anchor="middle" font-size="14" fill="#616161" {
                    "No task runs"
                }
            }
        };
    }
    let nodes = &all[..all.len().min(MAX_NODES)];
    let hidden = all.len() - nodes.len();
    let layout = Layout::new(graph, nodes);
    let edges = graph
        .edges()
        .iter()
        .filter(|e| e.from < nodes.len() && e.to < nodes.len());
    let height = layout.height + if hidden > 0 { 24.0 } else { 0.0 };

    html! {
        svg #task-graph xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Task graph"
            viewBox={ "0 0 " (num(layout.width)) " " (num(height)) }
            width=(num(layout.width)) height=(num(height)) font-family=(FONT) font-size="12" {
            defs {
                marker id=(ARROW_ID) viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"
                    markerHeight="7" orient="auto-start-reverse" {
                    path d="M0,0 L10,5 L0,10 z" fill=(EDGE_COLOUR) {}
                }
            }
            // Edges first, so that the boxes sit on top of their ends.
            @for edge in edges.clone() {
                @let (from, to) = (&layout.boxes[edge.from], &layout.boxes[edge.to]);
                @let (x1, y1) = (from.x + from.width, from.y + layout.node_height / 2.0);
                @let (x2, y2) = (to.x, to.y + layout.node_height / 2.0);
                @let bend = ((x2 - x1).abs() / 2.0).max(COLUMN_GAP / 2.0);
                @let dashed = edge.kind == EdgeKind::WaitFor || edge.allow_failure;
                @let kind = edge.kind.as_str();
                g.edge data-from=(nodes[edge.from].id) data-to=(nodes[edge.to].id)
                    data-kind=(kind) data-allow-failure=[edge.allow_failure.then_some("true")] {
                    path d={ "M" (num(x1)) "," (num(y1)) " C" (num(x1 + bend)) "," (num(y1))
                        " " (num(x2 - bend)) "," (num(y2)) " " (num(x2)) "," (num(y2)) }
                        fill="none" stroke=(EDGE_COLOUR) stroke-width="1.5"
                        stroke-dasharray=[dashed.then_some("6 4")]
                        marker-end={ "url(#" (ARROW_ID) ")" } {}
                }
            }
            @for (node, b) in nodes.iter().zip(&layout.boxes) {
                @let lines = label_lines(&node.label, b.width);
                @let centre = b.x + b.width / 2.0;
                // The lines' block centred in the box; 11 is about the font's ascent.
                @let first = b.y + (layout.node_height - lines.len() as f64 * LINE_HEIGHT) / 2.0
                    + 11.0;
                g.node data-node=(node.id) data-task=(node.task) data-state=(node.state.as_str()) {
                    title { (tooltip(node)) }
                    rect x=(num(b.x)) y=(num(b.y)) width=(num(b.width))
                        height=(num(layout.node_height)) rx="6" ry="6"
                        fill=(node.state.colour()) {}
                    text x=(num(centre)) text-anchor="middle" fill=(node.state.text_colour()) {
                        @for (i, line) in lines.iter().enumerate() {
                            tspan x=(num(centre)) y=(num(first + i as f64 * LINE_HEIGHT)) {
                                (line)
                            }
                        }
                    }
                }
            }
            // The "allow failure" labels last, in the gap before the arrow's head, where the
            // curve runs level into its box: an edge's middle can pass under another column.
            @for edge in edges.filter(|e| e.allow_failure) {
                @let to = &layout.boxes[edge.to];
                text.edge-label x=(num(to.x - COLUMN_GAP / 2.0))
                    y=(num(to.y + layout.node_height / 2.0 - 6.0)) text-anchor="middle"
                    font-size="10" fill="#616161" stroke="#ffffff" stroke-width="3"
                    paint-order="stroke" data-from=(nodes[edge.from].id)
                    data-to=(nodes[edge.to].id) { "allow failure" }
            }
            @if hidden > 0 {
                text.more x=(num(MARGIN)) y=(num(layout.height + 12.0)) fill="#616161" {
                    "… and " (hidden) " more task runs not drawn"
                }
            }
        }
    }
}

/// Where each node's box goes, and the drawing's size.
struct Layout {
    /// One per node, in the nodes' order.
    boxes: Vec<NodeBox>,
    /// The same for every box: the height of the label with the most lines.
    node_height: f64,
    width: f64,
    height: f64,
}

/// A node's box: its top left corner and its width (its column's).
struct NodeBox {
    x: f64,
    y: f64,
    width: f64,
}

impl Layout {
    fn new(graph: &TaskGraph, nodes: &[Node]) -> Layout {
        let layers = layers(graph, nodes.len());
        let columns = layers.iter().max().map_or(0, |&l| l + 1);

        // Each column as wide as its widest label allows, within bounds.
        let mut column_width = vec![MIN_NODE_WIDTH; columns];
        let mut rows = vec![0usize; columns];
        let mut max_lines = 1;
        for (node, &layer) in nodes.iter().zip(&layers) {
            let lines: Vec<&str> = node.label.lines().take(MAX_LINES).collect();
            max_lines = max_lines.max(lines.len());
            let chars = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
            let wanted = chars as f64 * CHAR_WIDTH + 2.0 * PADDING;
            column_width[layer] = column_width[layer].max(wanted.min(MAX_NODE_WIDTH));
        }
        let node_height = max_lines as f64 * LINE_HEIGHT + 2.0 * PADDING;

        let mut column_x = Vec::with_capacity(columns);
        let mut x = MARGIN;
        for width in &column_width {
            column_x.push(x);
            x += width + COLUMN_GAP;
        }
        let width = x - COLUMN_GAP + MARGIN;

        let boxes = layers
            .iter()
            .map(|&layer| {
                let row = rows[layer];
                rows[layer] += 1;
                NodeBox {
                    x: column_x[layer],
                    y: MARGIN + row as f64 * (node_height + ROW_GAP),
                    width: column_width[layer],
                }
            })
            .collect();
        let tallest = rows.iter().copied().max().unwrap_or(0) as f64;
        Layout {
            boxes,
            node_height,
            width,
            height: 2.0 * MARGIN + tallest * (node_height + ROW_GAP) - ROW_GAP,
        }
    }
}

/// Each of the first `n` nodes' column: the length of the longest path to it from a node
/// with no upstream, found in topological order (Kahn's algorithm, lowest index first).
/// Where a cycle leaves no node free, the lowest-numbered node left goes next as if its
/// remaining upstream edges were not there, so every node gets a column and it terminates.
fn layers(graph: &TaskGraph, n: usize) -> Vec<usize> {
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting = vec![0usize; n];
    for edge in graph.edges() {
        if edge.from < n && edge.to < n && edge.from != edge.to {
            downstream[edge.from].push(edge.to);
            waiting[edge.to] += 1;
        }
    }
    let mut layer = vec![0usize; n];
    let mut placed = vec![false; n];
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut lowest_unplaced = 0;
    loop {
        let i = match ready.pop() {
            Some(Reverse(i)) => i,
            None => {
                while lowest_unplaced < n && placed[lowest_unplaced] {
                    lowest_unplaced += 1;
                }
                if lowest_unplaced == n {
                    break;
                }
                lowest_unplaced
            }
        };
        if placed[i] {
            continue;
        }
        placed[i] = true;
        for &j in &downstream[i] {
            if !placed[j] {
                layer[j] = layer[j].max(layer[i] + 1);
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push(Reverse(j));
                }
            }
        }
    }
    layer
}

/// The lines of `label` that fit a box `width` wide: at most `MAX_LINES`, each cut with an
/// ellipsis when too long. The tooltip has the whole label.
fn label_lines(label: &str, width: f64) -> Vec<String> {
    let max_chars = (((width - 2.0 * PADDING) / CHAR_WIDTH).floor() as usize).max(4);
    let mut lines: Vec<String> = label
        .lines()
        .take(MAX_LINES)
        .map(|line| truncate(line, max_chars))
        .collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// The whole label, and the state for a single run (a fold's label counts its states).
fn tooltip(node: &Node) -> String {
    if node.count == 1 {
        format!("{}\n{}", node.label, node.state)
    } else {
        node.label.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::chart::svg::{Element, elements};
    use super::*;
    use flowcore::{FlowRunRecord, StateKind, Timestamp};

    /// The task run `n` of `task`, ended in `state`, depending on `upstream`: pairs of
    /// (task run number, edge kind, allow_failure).
    fn task_run(
        task: &str,
        n: u128,
        state: StateKind,
        map_index: Option<u32>,
        upstream: &[(u128, EdgeKind, bool)],
    ) -> serde_json::Value {
        let t = Timestamp::from_micros(1_795_356_000_000_000);
        json!({
            "id": flowcore::Uuid::from_u128(n),
            "task": task,
            "flow_run_id": null,
            "history": [
                flowcore::State::new(StateKind::Pending, t, None),
                flowcore::State::new(state, t, None),
            ],
            "attempts": 1,
            "map_index": map_index,
            "upstream": upstream.iter().map(|&(id, kind, allow_failure)| json!({
                "id": flowcore::Uuid::from_u128(id),
                "kind": kind,
                "allow_failure": allow_failure,
            })).collect::<Vec<_>>(),
        })
    }

    fn graph_of(task_runs: Vec<serde_json::Value>) -> TaskGraph {
        let record: FlowRunRecord = serde_json::from_value(json!({
            "id": flowcore::Uuid::from_u128(0xf),
            "name": "enchanted-peacock",
            "flow": "etl",
            "parent_id": null,
            "history": [],
            "attempts": 1,
            "task_runs": task_runs,
            "subflow_runs": [],
        }))
        .expect("a flow run record");
        TaskGraph::from_record(&record)
    }

    /// Each node's task name, tooltip and box.
    struct Drawn<'a> {
        task: String,
        title: &'a str,
        rect: Element<'a>,
    }

    fn boxes(svg: &str) -> Vec<Drawn<'_>> {
        elements(svg, "g")
            .into_iter()
            .filter(|g| g.attrs.get("class").is_some_and(|c| c == "node"))
            .map(|g| Drawn {
                task: g.attr("data-task").to_owned(),
                title: g.title(),
                rect: elements(g.rest, "rect").into_iter().next().expect("a box"),
            })
            .collect()
    }

    fn drawn<'a>(boxes: &'a [Drawn<'a>], task: &str) -> &'a Drawn<'a> {
        boxes
            .iter()
            .find(|d| d.task == task)
            .unwrap_or_else(|| panic!("no node of {task}"))
    }

    /// The box of the node of `task`.
    fn find<'a>(boxes: &'a [Drawn<'a>], task: &str) -> &'a Element<'a> {
        &drawn(boxes, task).rect
    }

    /// Each edge's (from, to, kind, dashed, labelled "allow failure").
    fn edges(svg: &str) -> Vec<(String, String, String, bool, bool)> {
        let labels: Vec<(String, String)> = elements(svg, "text")
            .into_iter()
            .filter(|t| t.attrs.get("class").is_some_and(|c| c == "edge-label"))
            .map(|t| {
                assert!(t.rest.contains(">allow failure</text>"));
                (t.attr("data-from").to_owned(), t.attr("data-to").to_owned())
            })
            .collect();
        elements(svg, "g")
            .into_iter()
            .filter(|g| g.attrs.get("class").is_some_and(|c| c == "edge"))
            .map(|g| {
                let path = elements(g.rest, "path").into_iter().next().expect("a path");
                assert_eq!(path.attr("marker-end"), format!("url(#{ARROW_ID})"));
                let ends = (g.attr("data-from").to_owned(), g.attr("data-to").to_owned());
                (
                    g.attr("data-from").to_owned(),
                    g.attr("data-to").to_owned(),
                    g.attr("data-kind").to_owned(),
                    path.attrs.contains_key("stroke-dasharray"),
                    labels.contains(&ends),
                )
            })
            .collect()
    }

    fn edge(
        from: &str,
        to: &str,
        kind: &str,
        dashed: bool,
        allow: bool,
    ) -> (String, String, String, bool, bool) {
        (from.into(), to.into(), kind.into(), dashed, allow)
    }

    use EdgeKind::{Data, WaitFor};
    use StateKind::*;

    #[test]
    fn nodes_go_right_of_their_upstream_and_stack_in_record_order() {
        let graph = graph_of(vec![
            task_run("extract", 1, Completed, None, &[]),
            task_run("create_table", 2, Cached, None, &[]),
            task_run("transform", 3, Completed, None, &[(1, Data, false)]),
            task_run(
                "load",
                4,
                Failed,
                None,
                &[(3, Data, false), (2, WaitFor, false)],
            ),
            task_run("report", 5, Completed, None, &[(4, WaitFor, true)]),
        ]);
        let svg = task_graph(&graph).into_string();
        assert!(svg.starts_with("<svg id=\"task-graph\""), "{svg}");
        let boxes = boxes(&svg);
        assert_eq!(boxes.len(), 5);
        let (extract, table) = (find(&boxes, "extract"), find(&boxes, "create_table"));
        let (transform, load) = (find(&boxes, "transform"), find(&boxes, "load"));
        let report = find(&boxes, "report");
        // Sources share the first column, in record order downwards.
        assert_eq!(extract.num("x"), table.num("x"));
        assert!(extract.num("y") < table.num("y"));
        // Each node right of the end of its upstream's box.
        let right = |e: &Element| e.num("x") + e.num("width");
        assert!(transform.num("x") > right(extract));
        assert!(load.num("x") > right(transform));
        assert!(load.num("x") > right(table));
        assert!(report.num("x") > right(load));
        // Coloured by state, with a title.
        assert_eq!(load.attr("fill"), Failed.colour());
        assert_eq!(table.attr("fill"), Cached.colour());
        let title = drawn(&boxes, "create_table").title;
        assert_eq!(title, "create_table-002\nCached");

        assert_eq!(
            edges(&svg),
            [
                edge("n0", "n2", "data", false, false),
                edge("n2", "n3", "data", false, false),
                edge("n1", "n3", "wait_for", true, false),
                edge("n3", "n4", "wait_for", true, true),
            ]
        );
        // Arrows go from the right side of one box to the left side of the next.
        let path = elements(&svg, "path")
            .into_iter()
            .find(|p| p.attrs.contains_key("marker-end"))
            .expect("an edge");
        let d = path.attr("d");
        assert!(d.starts_with(&format!("M{},", num(right(extract)))), "{d}");
        assert!(
            d.ends_with(&format!(
                " {},{}",
                num(transform.num("x")),
                num(transform.num("y") + transform.num("height") / 2.0)
            )),
            "{d}"
        );
    }

    #[test]
    fn a_node_goes_after_its_longest_path() {
        // a → b → c and a → c: c goes in the third column, not the second.
        let graph = graph_of(vec![
            task_run("a", 1, Completed, None, &[]),
            task_run("b", 2, Completed, None, &[(1, Data, false)]),
            task_run(
                "c",
                3,
                Completed,
                None,
                &[(1, Data, false), (2, Data, false)],
            ),
        ]);
        assert_eq!(layers(&graph, 3), [0, 1, 2]);
        let svg = task_graph(&graph).into_string();
        let boxes = boxes(&svg);
        assert!(find(&boxes, "c").num("x") > find(&boxes, "b").num("x"));
        assert_eq!(find(&boxes, "a").num("y"), find(&boxes, "c").num("y"));
    }

    #[test]
    fn a_fold_draws_its_two_lines_in_its_text_colour() {
        let graph = graph_of(vec![
            task_run("source", 1, Completed, None, &[]),
            task_run("transform", 2, Completed, Some(0), &[(1, Data, false)]),
            task_run("transform", 3, Failed, Some(1), &[(1, Data, false)]),
            task_run("transform", 4, Completed, Some(2), &[(1, Data, false)]),
            task_run("wait", 5, Pending, None, &[]),
        ]);
        let svg = task_graph(&graph).into_string();
        let spans: Vec<String> = elements(&svg, "tspan")
            .iter()
            .map(|t| {
                let text = &t.rest[t.rest.find('>').unwrap_or(0) + 1..];
                text[..text.find('<').unwrap_or(0)].to_owned()
            })
            .collect();
        assert_eq!(
            spans,
            [
                "source-001",
                "transform ×3",
                "2 Completed, 1 Failed",
                "wait-005"
            ]
        );
        let texts = elements(&svg, "text");
        let fills: Vec<&str> = texts.iter().map(|t| t.attr("fill")).collect();
        assert_eq!(
            fills,
            [
                Completed.text_colour(),
                Failed.text_colour(),
                Pending.text_colour()
            ]
        );
        assert_ne!(Pending.text_colour(), Failed.text_colour());
        let boxes = boxes(&svg);
        assert_eq!(find(&boxes, "transform").attr("fill"), Failed.colour());
        assert_eq!(find(&boxes, "wait").attr("fill"), Pending.colour());
        // Every box is as tall as the two-line label needs.
        assert!(
            boxes
                .iter()
                .all(|b| b.rect.num("height") >= 2.0 * LINE_HEIGHT)
        );
    }

    #[test]
    fn a_cycle_through_a_fold_still_draws_every_node() {
        // b took mapped run 0's output, and mapped run 1 waited for b: the fold and b depend
        // on each other.
        let graph = graph_of(vec![
            task_run("m", 1, Completed, Some(0), &[]),
            task_run("b", 2, Completed, None, &[(1, Data, false)]),
            task_run("m", 3, Completed, Some(1), &[(2, WaitFor, false)]),
        ]);
        assert_eq!(graph.nodes().len(), 2);
        assert_eq!(graph.edges().len(), 2);
        let svg = task_graph(&graph).into_string();
        assert_eq!(boxes(&svg).len(), 2);
        assert_eq!(edges(&svg).len(), 2);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn the_drawing_is_bounded() {
        let task_runs = (0..MAX_NODES as u128 + 50)
            .map(|i| task_run("step", i, Completed, None, &[]))
            .collect();
        let svg = task_graph(&graph_of(task_runs)).into_string();
        assert_eq!(boxes(&svg).len(), MAX_NODES);
        assert!(svg.contains(">… and 50 more task runs not drawn</text>"));
        // Long labels are cut to their box.
        let long = "x".repeat(500);
        let svg =
            task_graph(&graph_of(vec![task_run(&long, 1, Completed, None, &[])])).into_string();
        let boxes = boxes(&svg);
        let rect = &boxes[0].rect;
        assert_eq!(rect.num("width"), MAX_NODE_WIDTH);
        assert!(svg.contains("x…</tspan>"));
        assert_eq!(boxes[0].title, format!("{long}-001\nCompleted"));
    }

    #[test]
    fn an_empty_graph_says_so() {
        let svg = task_graph(&graph_of(vec![])).into_string();
        assert!(svg.starts_with("<svg id=\"task-graph\""));
        assert!(svg.contains(">No task runs</text>"), "{svg}");
        assert!(!svg.contains("<rect"));
    }

    #[flowcore::task(name = "<script>alert(1)</script>")]
    async fn evil() -> String {
        // Long enough for flowcore to track the value and record the data edge.
        "seven rows of data".to_owned()
    }

    #[flowcore::task]
    async fn create_table() -> Result<(), String> {
        Err("disk full".into())
    }

    #[flowcore::task]
    async fn load(rows: String) -> Result<usize, flowcore::UpstreamFailed> {
        Ok(rows.len())
    }

    #[flowcore::flow]
    async fn etl() -> Result<usize, flowcore::UpstreamFailed> {
        let table = create_table().submit();
        load(evil().await)
            .wait_for(flowcore::allow_failure(&table))
            .await
    }

    #[tokio::test]
    async fn a_real_run_escapes_names_and_draws_its_edges() {
        let _ = flowcore::Store::memory().install();
        let (out, run) = etl().with_run().await;
        assert_eq!(out, Ok(18));
        let svg = task_graph(&TaskGraph::from_record(&run)).into_string();

        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        assert!(!svg.contains("<script"), "{svg}");
        let boxes = boxes(&svg);
        let evil = find(&boxes, "&lt;script&gt;alert(1)&lt;/script&gt;");
        let (load, table) = (find(&boxes, "load"), find(&boxes, "create_table"));
        assert!(load.num("x") > evil.num("x") + evil.num("width"));
        assert!(load.num("x") > table.num("x") + table.num("width"));
        assert_eq!(table.attr("fill"), Failed.colour());
        let mut kinds: Vec<(String, bool, bool)> =
            edges(&svg).into_iter().map(|e| (e.2, e.3, e.4)).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                ("data".into(), false, false),
                ("wait_for".into(), true, true)
            ]
        );
    }
}
