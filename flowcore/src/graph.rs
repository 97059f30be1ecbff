//! The task graph of a flow run, drawn as Graphviz DOT or as a Mermaid flowchart.
//!
//! A [`TaskGraph`] has one node per task run and one edge per dependency recorded in the task
//! runs' [`upstream`](crate::TaskRunRecord::upstream): solid for data, dashed for `wait_for`,
//! dashed and labelled "allow failure" when the downstream ran even if the upstream failed.
//! Nodes are coloured by state, with Prefect's colours: Completed green, Cached teal,
//! Failed, TimedOut and Crashed red, Running blue, Pending and Retrying yellow, Cancelled and
//! Skipped grey.
//!
//! The runs a [`map`](crate::map) started would bury the rest of the graph, so all mapped runs
//! of one task fold into one node, `transform ×1000`, whose second line counts them by state
//! (`998 Completed, 2 Failed`) and whose colour is its members' worst state (see
//! [`Node::state`]).
//!
//! ```
//! use flowcore::graph::TaskGraph;
//! use flowcore::{flow, task};
//!
//! #[task]
//! async fn extract() -> u32 {
//!     7
//! }
//!
//! #[task]
//! async fn load(rows: u32) -> u32 {
//!     rows
//! }
//!
//! #[flow(name = "etl")]
//! async fn etl() -> u32 {
//!     load(extract().await).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (_, run) = etl().with_run().await;
//! let graph = TaskGraph::from_record(&run);
//! let labels: Vec<&str> = graph.nodes().iter().map(|n| n.task.as_str()).collect();
//! assert_eq!(labels, ["extract", "load"]);
//!
//! let title = format!("flow run '{}' of flow '{}'", run.name, run.flow);
//! assert!(graph.to_dot(&title).starts_with("digraph {"));
//! assert!(graph.to_mermaid(&title).contains("flowchart LR"));
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use uuid::Uuid;

use crate::record::{EdgeKind, FlowRunRecord};
use crate::state::StateKind;

/// The task runs of one flow run and what each depended on, ready to draw.
///
/// Build it with [`TaskGraph::from_record`]; draw it with [`to_dot`](TaskGraph::to_dot) or
/// [`to_mermaid`](TaskGraph::to_mermaid). Both drawings are deterministic: the same record
/// always gives the same text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskGraph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

/// A box of the graph: one task run, or all the mapped runs of one task.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Node {
    /// The node's identifier in DOT and Mermaid: `n0`, `n1`, … in the order of the nodes.
    pub id: String,
    /// The text in the box: the run's name, `"extract-a8e"`, or for mapped runs the task's
    /// name and their number, then after a newline their counts by state in the order of
    /// [`StateKind`]: `"transform ×1000\n998 Completed, 2 Failed"`.
    pub label: String,
    /// The task's name.
    pub task: String,
    /// How many task runs the node stands for: 1, or the number of mapped runs.
    pub count: usize,
    /// The state the node is coloured by. For mapped runs, the worst of theirs, in this
    /// order from worst: Crashed, Failed, TimedOut, Cancelled, Skipped, Running, Retrying,
    /// Pending, Cached, Completed. A single failure thus shows however many runs completed,
    /// and a map still going shows as going.
    pub state: StateKind,
    /// How many of the node's task runs are in each state.
    pub states: BTreeMap<StateKind, usize>,
}

/// An arrow of the graph: the downstream node depended on the upstream one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Edge {
    /// The upstream node, an index into [`TaskGraph::nodes`].
    pub from: usize,
    /// The downstream node, an index into [`TaskGraph::nodes`].
    pub to: usize,
    /// Whether the downstream was given the upstream's output, or waited for it.
    pub kind: EdgeKind,
    /// Whether the downstream ran even if the upstream failed. Where several dependencies
    /// fold into one edge, `true` if any of them was.
    pub allow_failure: bool,
}

impl TaskGraph {
    /// The graph of `run`'s task runs (not those of its subflow runs).
    ///
    /// Nodes come in the record's order; the node of a mapped task sits where its first
    /// mapped run is. A dependency on a task run that is not in the record (one of another
    /// flow run) is left out, and so is one between two mapped runs of the same node.
    /// Dependencies that fold into the same two nodes and kind make one edge.
    pub fn from_record(run: &FlowRunRecord) -> TaskGraph {
        let mut nodes: Vec<Node> = Vec::new();
        // The node of each task run, in the record's order, and by id for the upstream ids.
        let mut run_nodes = Vec::with_capacity(run.task_runs.len());
        let mut node_of: HashMap<Uuid, usize> = HashMap::with_capacity(run.task_runs.len());
        // The node of each mapped task, by the task's name.
        let mut folds: HashMap<&str, usize> = HashMap::new();
        for task_run in &run.task_runs {
            let state = task_run.state().kind;
            let index = match folds.get(&*task_run.task) {
                Some(&index) if task_run.map_index.is_some() => index,
                _ => {
                    let index = nodes.len();
                    let label = if task_run.map_index.is_some() {
                        folds.insert(&task_run.task, index);
                        // Written once every member is counted, below.
                        String::new()
                    } else {
                        task_run.name().to_string()
                    };
                    nodes.push(Node {
                        id: format!("n{index}"),
                        label,
                        task: task_run.task.to_string(),
                        count: 0,
                        state,
                        states: BTreeMap::new(),
                    });
                    index
                }
            };
            let node = &mut nodes[index];
            node.count += 1;
            *node.states.entry(state).or_insert(0) += 1;
            if severity(state) > severity(node.state) {
                node.state = state;
            }
            run_nodes.push(index);
            node_of.entry(task_run.id).or_insert(index);
        }
        for &index in folds.values() {
            let node = &mut nodes[index];
            let counts = crate::summary::state_counts(&node.states);
            node.label = format!("{} ×{}\n{counts}", node.task, node.count);
        }

        let mut edges: Vec<Edge> = Vec::new();
        // Each edge's place in `edges`, to fold duplicates into the first one.
        let mut seen: HashMap<(usize, usize, EdgeKind), usize> = HashMap::new();
        for (task_run, &to) in run.task_runs.iter().zip(&run_nodes) {
            for upstream in &task_run.upstream {
                let Some(&from) = node_of.get(&upstream.id) else {
                    continue;
                };
                if from == to {
                    continue;
                }
                match seen.get(&(from, to, upstream.kind)) {
                    Some(&i) => edges[i].allow_failure |= upstream.allow_failure,
                    None => {
                        seen.insert((from, to, upstream.kind), edges.len());
                        edges.push(Edge {
                            from,
                            to,
                            kind: upstream.kind,
                            allow_failure: upstream.allow_failure,
                        });
                    }
                }
            }
        }
        TaskGraph { nodes, edges }
    }

    /// The nodes, in the record's order of their (first) task run.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The edges, in the order the record lists the dependencies.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The graph as a Graphviz `digraph`, left to right, with `title` above it. Render it
    /// with `dot -Tsvg`.
    ///
    /// ```text
    /// digraph {
    ///     graph [rankdir=LR, label="flow run 'x' of flow 'etl'", labelloc=t, fontname="Helvetica"];
    ///     node [shape=box, style="rounded,filled", fontname="Helvetica"];
    ///     edge [fontname="Helvetica"];
    ///     n0 [label="extract-a8e", fillcolor="#2e7d32", fontcolor="#ffffff"];
    ///     n1 [label="load-77c", fillcolor="#2e7d32", fontcolor="#ffffff"];
    ///     n0 -> n1;
    /// }
    /// ```
    pub fn to_dot(&self, title: &str) -> String {
        let mut out = String::from("digraph {\n");
        let _ = writeln!(
            out,
            "    graph [rankdir=LR, label=\"{}\", labelloc=t, fontname=\"Helvetica\"];",
            dot_escape(title)
        );
        out.push_str("    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
        out.push_str("    edge [fontname=\"Helvetica\"];\n");
        for node in &self.nodes {
            let _ = writeln!(
                out,
                "    {} [label=\"{}\", fillcolor=\"{}\", fontcolor=\"{}\"];",
                node.id,
                dot_escape(&node.label),
                node.state.colour(),
                node.state.text_colour()
            );
        }
        for edge in &self.edges {
            let style = match (edge.kind, edge.allow_failure) {
                (_, true) => " [style=dashed, label=\"allow failure\"]",
                (EdgeKind::WaitFor, false) => " [style=dashed]",
                (EdgeKind::Data, false) => "",
            };
            let _ = writeln!(
                out,
                "    {} -> {}{style};",
                self.nodes[edge.from].id, self.nodes[edge.to].id
            );
        }
        out.push_str("}\n");
        out
    }

    /// The graph as a Mermaid `flowchart`, left to right, with `title` in its front matter,
    /// for Markdown that renders Mermaid (GitHub's does).
    ///
    /// ```text
    /// ---
    /// title: "flow run 'x' of flow 'etl'"
    /// ---
    /// flowchart LR
    ///     n0["extract-a8e"]
    ///     n1["load-77c"]
    ///     n0 --> n1
    ///     classDef completed fill:#2e7d32,color:#ffffff
    ///     class n0,n1 completed
    /// ```
    ///
    /// Data edges are `-->`, `wait_for` edges `-.->`, and edges that allowed failure
    /// `-. allow failure .->`.
    pub fn to_mermaid(&self, title: &str) -> String {
        let mut out = format!("---\ntitle: {}\n---\nflowchart LR\n", yaml_quote(title));
        for node in &self.nodes {
            let _ = writeln!(out, "    {}[\"{}\"]", node.id, mermaid_escape(&node.label));
        }
        for edge in &self.edges {
            let arrow = match (edge.kind, edge.allow_failure) {
                (_, true) => "-. allow failure .->",
                (EdgeKind::WaitFor, false) => "-.->",
                (EdgeKind::Data, false) => "-->",
            };
            let _ = writeln!(
                out,
                "    {} {arrow} {}",
                self.nodes[edge.from].id, self.nodes[edge.to].id
            );
        }
        // One class per state that some node has, in the order of the states.
        let mut by_state: BTreeMap<StateKind, Vec<&str>> = BTreeMap::new();
        for node in &self.nodes {
            by_state.entry(node.state).or_default().push(&node.id);
        }
        for (state, ids) in by_state {
            let class = state.as_str().to_ascii_lowercase();
            let _ = writeln!(
                out,
                "    classDef {class} fill:{},color:{}",
                state.colour(),
                state.text_colour()
            );
            let _ = writeln!(out, "    class {} {class}", ids.join(","));
        }
        out
    }
}

/// How bad a state is, to colour mapped runs by their worst: higher is worse. The order is
/// documented on [`Node::state`].
fn severity(state: StateKind) -> u8 {
    match state {
        StateKind::Completed => 0,
        StateKind::Cached => 1,
        StateKind::Scheduled | StateKind::Late | StateKind::Pending | StateKind::Paused => 2,
        StateKind::Retrying => 3,
        StateKind::Running => 4,
        StateKind::Skipped => 5,
        StateKind::Cancelling | StateKind::Cancelled => 6,
        StateKind::TimedOut => 7,
        StateKind::Failed => 8,
        StateKind::Crashed => 9,
    }
}

/// `text` for inside a DOT string: quotes and backslashes escaped (a backslash left alone
/// would start one of Graphviz's `\N`-style escapes), newlines as `\n`, which Graphviz draws
/// as a centred line break.
fn dot_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` for inside a Mermaid `["…"]` label. Mermaid reads `#name;` as an entity and the
/// label as HTML, so `"`, `<`, `>`, `&` and `#` itself become entities; a backtick too, since
/// one first in the label would make it a Markdown string. Newlines become `<br/>`.
fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '#' => out.push_str("#35;"),
            '`' => out.push_str("#96;"),
            '\n' => out.push_str("<br/>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` as a double-quoted YAML string, for the front matter's title: a plain one would
/// break on a name with `: ` or a leading quote in it.
fn yaml_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::clock::Timestamp;
    use crate::record::{CacheStatus, History, TaskRunRecord, Upstream};
    use crate::state::State;

    /// A task run of `task` whose id ends in `tail` (its name is `task-TAIL`), ended in
    /// `state`.
    fn task_run(
        task: &str,
        tail: u128,
        state: StateKind,
        upstream: Vec<Upstream>,
    ) -> TaskRunRecord {
        let history = History::from_states(vec![
            State::new(StateKind::Pending, Timestamp::from_micros(0), None),
            State::new(state, Timestamp::from_micros(1), None),
        ]);
        TaskRunRecord {
            id: Uuid::from_u128((0x019a << 112) | tail),
            task: Cow::Owned(task.to_owned()),
            given_name: None,
            flow_run_id: None,
            tags: Cow::Borrowed(&[]),
            history,
            attempts: 1,
            cache: CacheStatus::Off,
            upstream: upstream.into(),
            map_index: None,
        }
    }

    fn mapped(
        task: &str,
        tail: u128,
        state: StateKind,
        index: u32,
        upstream: Vec<Upstream>,
    ) -> TaskRunRecord {
        TaskRunRecord {
            map_index: Some(index),
            ..task_run(task, tail, state, upstream)
        }
    }

    fn data(run: &TaskRunRecord) -> Upstream {
        Upstream {
            id: run.id,
            kind: EdgeKind::Data,
            allow_failure: false,
        }
    }

    fn wait_for(run: &TaskRunRecord, allow_failure: bool) -> Upstream {
        Upstream {
            id: run.id,
            kind: EdgeKind::WaitFor,
            allow_failure,
        }
    }

    fn flow_run(task_runs: Vec<TaskRunRecord>) -> FlowRunRecord {
        FlowRunRecord {
            id: Uuid::from_u128(1),
            name: "enchanted-peacock".to_owned(),
            flow: Cow::Borrowed("etl"),
            tags: Vec::new(),
            parent_id: None,
            history: History::from_states(vec![State::new(
                StateKind::Completed,
                Timestamp::from_micros(2),
                None,
            )]),
            attempts: 1,
            task_runs,
            subflow_runs: Vec::new(),
            not_recorded: None,
        }
    }

    const TITLE: &str = "flow run 'enchanted-peacock' of flow 'etl'";

    #[test]
    fn a_chain_with_a_wait_for_edge() {
        let extract = task_run("extract", 0xa8e, StateKind::Completed, vec![]);
        let transform = task_run(
            "transform",
            0x3f1,
            StateKind::Completed,
            vec![data(&extract)],
        );
        let create_table = task_run("create_table", 0xc01, StateKind::Cached, vec![]);
        let load = task_run(
            "load",
            0x77c,
            StateKind::Failed,
            vec![data(&transform), wait_for(&create_table, false)],
        );
        let graph = TaskGraph::from_record(&flow_run(vec![extract, transform, create_table, load]));

        assert_eq!(
            graph.to_dot(TITLE),
            r##"digraph {
    graph [rankdir=LR, label="flow run 'enchanted-peacock' of flow 'etl'", labelloc=t, fontname="Helvetica"];
    node [shape=box, style="rounded,filled", fontname="Helvetica"];
    edge [fontname="Helvetica"];
    n0 [label="extract-a8e", fillcolor="#2e7d32", fontcolor="#ffffff"];
    n1 [label="transform-3f1", fillcolor="#2e7d32", fontcolor="#ffffff"];
    n2 [label="create_table-c01", fillcolor="#00897b", fontcolor="#ffffff"];
    n3 [label="load-77c", fillcolor="#c62828", fontcolor="#ffffff"];
    n0 -> n1;
    n1 -> n3;
    n2 -> n3 [style=dashed];
}
"##
        );
        assert_eq!(
            graph.to_mermaid(TITLE),
            r#"---
title: "flow run 'enchanted-peacock' of flow 'etl'"
---
flowchart LR
    n0["extract-a8e"]
    n1["transform-3f1"]
    n2["create_table-c01"]
    n3["load-77c"]
    n0 --> n1
    n1 --> n3
    n2 -.-> n3
    classDef completed fill:#2e7d32,color:#ffffff
    class n0,n1 completed
    classDef cached fill:#00897b,color:#ffffff
    class n2 cached
    classDef failed fill:#c62828,color:#ffffff
    class n3 failed
"#
        );
    }

    #[test]
    fn mapped_runs_fold_into_one_node_with_counts_and_one_edge_each_way() {
        let source = task_run("source", 0x001, StateKind::Completed, vec![]);
        let states = [
            StateKind::Completed,
            StateKind::Failed,
            StateKind::Completed,
            StateKind::Failed,
            StateKind::Completed,
        ];
        let mut doubles: Vec<TaskRunRecord> = Vec::new();
        for (i, state) in states.into_iter().enumerate() {
            let mut upstream = vec![data(&source)];
            // A dependency inside the fold, which must not draw an edge to itself.
            if let Some(previous) = doubles.last() {
                upstream.push(wait_for(previous, false));
            }
            doubles.push(mapped(
                "double",
                0x100 + i as u128,
                state,
                i as u32,
                upstream,
            ));
        }
        let mut upstream: Vec<Upstream> = doubles.iter().map(data).collect();
        // Two wait_for dependencies on the fold: one edge, which allowed failure.
        upstream.push(wait_for(&doubles[0], false));
        upstream.push(wait_for(&doubles[3], true));
        let sink = task_run("sink", 0x002, StateKind::Completed, upstream);
        let mut task_runs = vec![source];
        task_runs.extend(doubles);
        task_runs.push(sink);
        let graph = TaskGraph::from_record(&flow_run(task_runs));

        let fold = &graph.nodes()[1];
        assert_eq!(fold.count, 5);
        assert_eq!(fold.state, StateKind::Failed);
        assert_eq!(
            fold.states,
            BTreeMap::from([(StateKind::Completed, 3), (StateKind::Failed, 2)])
        );
        assert_eq!(graph.edges().len(), 3);
        assert_eq!(
            graph.to_dot(TITLE),
            r##"digraph {
    graph [rankdir=LR, label="flow run 'enchanted-peacock' of flow 'etl'", labelloc=t, fontname="Helvetica"];
    node [shape=box, style="rounded,filled", fontname="Helvetica"];
    edge [fontname="Helvetica"];
    n0 [label="source-001", fillcolor="#2e7d32", fontcolor="#ffffff"];
    n1 [label="double ×5\n3 Completed, 2 Failed", fillcolor="#c62828", fontcolor="#ffffff"];
    n2 [label="sink-002", fillcolor="#2e7d32", fontcolor="#ffffff"];
    n0 -> n1;
    n1 -> n2;
    n1 -> n2 [style=dashed, label="allow failure"];
}
"##
        );
        assert_eq!(
            graph.to_mermaid(TITLE),
            r#"---
title: "flow run 'enchanted-peacock' of flow 'etl'"
---
flowchart LR
    n0["source-001"]
    n1["double ×5<br/>3 Completed, 2 Failed"]
    n2["sink-002"]
    n0 --> n1
    n1 --> n2
    n1 -. allow failure .-> n2
    classDef completed fill:#2e7d32,color:#ffffff
    class n0,n2 completed
    classDef failed fill:#c62828,color:#ffffff
    class n1 failed
"#
        );
    }

    #[test]
    fn an_unmapped_run_of_a_mapped_task_keeps_its_own_node() {
        let task_runs = vec![
            mapped("double", 0x100, StateKind::Completed, 0, vec![]),
            task_run("double", 0x200, StateKind::Completed, vec![]),
            mapped("double", 0x101, StateKind::Completed, 1, vec![]),
        ];
        let graph = TaskGraph::from_record(&flow_run(task_runs));
        let labels: Vec<&str> = graph.nodes().iter().map(|n| n.label.as_str()).collect();
        assert_eq!(labels, ["double ×2\n2 Completed", "double-200"]);
    }

    #[test]
    fn a_fold_takes_the_colour_of_its_worst_state() {
        use StateKind::*;
        let cases = [
            ([Completed, Cached], Cached),
            ([Pending, Running], Running),
            ([Retrying, Pending], Retrying),
            ([Running, Skipped], Skipped),
            ([Skipped, Cancelled], Cancelled),
            ([Cancelled, TimedOut], TimedOut),
            ([TimedOut, Failed], Failed),
            ([Failed, Crashed], Crashed),
        ];
        for (states, worst) in cases {
            let task_runs = states
                .iter()
                .enumerate()
                .map(|(i, &s)| mapped("t", i as u128, s, i as u32, vec![]))
                .collect();
            let graph = TaskGraph::from_record(&flow_run(task_runs));
            assert_eq!(graph.nodes()[0].state, worst, "{states:?}");
        }
    }

    #[test]
    fn labels_are_escaped() {
        let evil = task_run(r#"say "hi" <script>\"#, 0xabc, StateKind::Completed, vec![]);
        let mapped = mapped("a&b#1`", 0x001, StateKind::Running, 0, vec![]);
        let graph = TaskGraph::from_record(&flow_run(vec![evil, mapped]));

        let dot = graph.to_dot("run \"x\" of flow 'a\\b'");
        assert!(
            dot.contains(r#"label="run \"x\" of flow 'a\\b'", labelloc=t"#),
            "{dot}"
        );
        assert!(
            dot.contains(r#"n0 [label="say \"hi\" <script>\\-abc", "#),
            "{dot}"
        );
        assert!(
            dot.contains(r#"n1 [label="a&b#1` ×1\n1 Running", "#),
            "{dot}"
        );

        let mermaid = graph.to_mermaid("run \"x\": <b>");
        assert!(
            mermaid.starts_with("---\ntitle: \"run \\\"x\\\": <b>\"\n---\nflowchart LR\n"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("    n0[\"say #quot;hi#quot; #lt;script#gt;\\-abc\"]\n"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("    n1[\"a#amp;b#35;1#96; ×1<br/>1 Running\"]\n"),
            "{mermaid}"
        );
        assert!(!mermaid.contains("<script>"), "{mermaid}");
    }

    #[test]
    fn an_edge_to_a_task_run_not_in_the_record_is_left_out() {
        let elsewhere = task_run("elsewhere", 0xfff, StateKind::Completed, vec![]);
        let load = task_run("load", 0x77c, StateKind::Completed, vec![data(&elsewhere)]);
        let graph = TaskGraph::from_record(&flow_run(vec![load]));
        assert_eq!(graph.nodes().len(), 1);
        assert!(graph.edges().is_empty());
        assert!(!graph.to_dot(TITLE).contains("->"));
        assert!(!graph.to_mermaid(TITLE).contains("-->"));
    }

    #[test]
    fn an_empty_flow_run_draws_an_empty_graph() {
        let graph = TaskGraph::from_record(&flow_run(vec![]));
        assert!(
            graph
                .to_dot(TITLE)
                .ends_with("edge [fontname=\"Helvetica\"];\n}\n")
        );
        assert!(graph.to_mermaid(TITLE).ends_with("flowchart LR\n"));
    }
}
