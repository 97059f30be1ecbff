//! dagrs (0.9, its `Graph` API) as a peer of `examples/bench_workloads.rs`, for `bench/compare.sh`.
//!
//! ```sh
//! cargo run --release --manifest-path bench/peers/Cargo.toml --target-dir target/bench-peers \
//!     --bin dagrs_workloads -- --all
//! ```
//!
//! What each workload maps to here, on a multi-threaded Tokio runtime like flowcore's:
//!
//! - `sequential_{10,100,1000}` (µs per task): a chain of n nodes, node i+1 with an edge from
//!   node i. dagrs starts every node of a graph at once as its own Tokio task, and an edge only
//!   orders two nodes through its channel, so each node first waits for its predecessor's
//!   message, then sends its own and returns its index. Timed: building the graph (a named node,
//!   its id and channels per task) and `Graph::async_start`; flowcore's row times the n task
//!   calls inside a flow, each of which creates its task run, so both count everything the
//!   framework does per task. Median of 5 graphs (1 for 1000), after a warm-up graph of 10.
//!   Building is the small part (1 to 3 µs per task on 2 cores); running costs a Tokio task,
//!   node locks, graph events and a channel handoff to another thread per node.
//! - `map_1000` (ms): one graph of 1000 nodes without edges (all run at once), built, run, and
//!   the 1000 outputs summed, as flowcore's mapped flow sums its results.
//! - `retries` (ms): a graph of one node failing twice, then succeeding, with the node's
//!   `max_retries` = 2 and `retry_delay_ms` = 0 (dagrs's own retry loop around `Node::run`),
//!   built and run. dagrs sleeps before each retry even for 0 ms, and a zero Tokio sleep lasts
//!   until the timer's next 1 ms tick: about 1.1 ms per retry, most of this row (flowcore skips
//!   the sleep when the delay is zero).
//! - `cache_hit`: not printed. dagrs has no task result cache (its checkpoints resume a graph
//!   run; they do not reuse a task's output across runs).
//!
//! What dagrs tracks per node: an in-memory execution state (success or failure, the output),
//! graph events on a broadcast channel (no subscriber here), and hooks (none here). Nothing is
//! persisted: checkpointing is off by default. Logging: dagrs uses the `log` crate and no logger
//! is installed, so it is off, as for flowcore's in-process rows.

use std::error::Error;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dagrs::async_trait::async_trait;
use dagrs::{
    Action, Content, DefaultNode, EnvVar, Graph, InChannels, Node, NodeId, NodeName, NodeTable,
    OutChannels, Output,
};
use flowcore_bench_peers::{FLOW_REPS, MAP_REPS, SEQUENTIAL_REPS, emit_ms, emit_sequential};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The trivial task: waits for its predecessors, if any, passes its value on and returns it.
struct Noop(u32);

#[async_trait]
impl Action for Noop {
    async fn run(
        &self,
        input: &mut InChannels,
        output: &mut OutChannels,
        _: Arc<EnvVar>,
    ) -> Output {
        input.map(drop).await;
        output.broadcast(Content::new(self.0)).await;
        Output::new(self.0)
    }
}

/// Builds a graph of `n` noop nodes, chained when `chain` is set.
fn noop_graph(n: u32, chain: bool) -> Result<(Graph, Vec<NodeId>)> {
    let mut table = NodeTable::new();
    let mut graph = Graph::new();
    let mut ids = Vec::with_capacity(n as usize);
    for i in 0..n {
        let id = graph.add_node(DefaultNode::with_action(
            format!("noop-{i}"),
            Noop(i),
            &mut table,
        ))?;
        if let (true, Some(&previous)) = (chain, ids.last()) {
            graph.add_edge(previous, [id])?;
        }
        ids.push(id);
    }
    Ok((graph, ids))
}

/// Builds and runs a chain of `n` nodes, returning how long that took.
async fn sequential(n: u32) -> Result<Duration> {
    let start = Instant::now();
    let (mut graph, _) = noop_graph(n, true)?;
    graph.async_start().await?;
    Ok(start.elapsed())
}

/// Builds and runs `n` independent nodes, returning the sum of their outputs.
async fn mapped(n: u32) -> Result<u32> {
    let (mut graph, ids) = noop_graph(n, false)?;
    graph.async_start().await?;
    let results = graph.get_results::<u32>();
    Ok(ids
        .iter()
        .map(|id| *results[id].as_deref().unwrap_or(&0))
        .sum())
}

/// Fails on its first two attempts, succeeds on the third.
struct Flaky {
    id: NodeId,
    calls: u32,
    input: InChannels,
    output: OutChannels,
}

#[async_trait]
impl Node for Flaky {
    fn id(&self) -> NodeId {
        self.id
    }
    fn name(&self) -> NodeName {
        "flaky".to_owned()
    }
    fn input_channels(&mut self) -> &mut InChannels {
        &mut self.input
    }
    fn output_channels(&mut self) -> &mut OutChannels {
        &mut self.output
    }
    async fn run(&mut self, _: Arc<EnvVar>) -> Output {
        self.calls += 1;
        if self.calls <= 2 {
            Output::execution_failed(format!("flaky ({})", self.calls))
        } else {
            Output::new(self.calls)
        }
    }
    fn max_retries(&self) -> u32 {
        2
    }
    fn retry_delay_ms(&self, _attempt: u32) -> u64 {
        0
    }
}

/// Builds and runs a graph of one flaky node, returning its output.
async fn retrying() -> Result<u32> {
    let mut table = NodeTable::new();
    let flaky = Flaky {
        id: table.alloc_id_for("flaky"),
        calls: 0,
        input: InChannels::default(),
        output: OutChannels::default(),
    };
    let mut graph = Graph::new();
    let id = graph.add_node(flaky)?;
    graph.async_start().await?;
    Ok(graph.get_results::<u32>()[&id]
        .as_deref()
        .copied()
        .unwrap_or(0))
}

#[tokio::main]
async fn main() -> Result<()> {
    flowcore_bench_peers::require_all_flag("usage: dagrs_workloads --all");

    for (n, reps) in SEQUENTIAL_REPS {
        sequential(10).await?; // warm-up graph
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            samples.push(sequential(n).await?);
        }
        emit_sequential(n, samples);
    }

    mapped(10).await?;
    let mut samples = Vec::with_capacity(MAP_REPS);
    for _ in 0..MAP_REPS {
        let start = Instant::now();
        let sum = mapped(1000).await?;
        samples.push(start.elapsed());
        assert_eq!(
            sum,
            999 * 1000 / 2,
            "every mapped node should have returned its input"
        );
    }
    emit_ms("map_1000", samples);

    assert_eq!(
        retrying().await?,
        3,
        "the flaky node should succeed on attempt 3"
    );
    let mut samples = Vec::with_capacity(FLOW_REPS);
    for _ in 0..FLOW_REPS {
        let start = Instant::now();
        black_box(retrying().await?);
        samples.push(start.elapsed());
    }
    emit_ms("retries", samples);
    Ok(())
}
