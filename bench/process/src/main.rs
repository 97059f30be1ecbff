//! One flow of one task, the default SQLite store (`$FLOWCORE_HOME/flowcore.db`) and logging on,
//! then exit: the program whose whole process `bench/compare.sh` times, as Prefect's
//! `prefect_workloads.py --workload one_task_flow` is timed. The same flow as
//! `bench_workloads --workload one_task_flow`, built as a user's project builds it.

use flowcore::{flow, task};

#[task]
async fn noop(i: u32) -> u32 {
    i
}

#[flow(name = "one-task")]
async fn one_task_flow() -> u32 {
    noop(1).await
}

#[tokio::main]
async fn main() {
    flowcore::init_logging();
    std::hint::black_box(one_task_flow().await);
}
