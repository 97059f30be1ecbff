//! What the peer binaries share with `examples/bench_workloads.rs`: the repetitions, the median
//! and the JSON lines that `bench/compare.sh` reads.

use std::time::Duration;

/// `(tasks, repetitions)` of the sequential workloads, as in `bench_workloads.rs`.
pub const SEQUENTIAL_REPS: [(u32, usize); 3] = [(10, 5), (100, 5), (1000, 1)];
/// Repetitions of the 1000 parallel tasks.
pub const MAP_REPS: usize = 1;
/// Repetitions of the retries workload (and of flowcore's cache hit).
pub const FLOW_REPS: usize = 5;

/// Prints one line `{"workload": ..., "value": ..., "unit": ...}` on stdout.
pub fn emit(workload: &str, value: f64, unit: &str) {
    println!(r#"{{"workload": "{workload}", "value": {value}, "unit": "{unit}"}}"#);
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Prints `sequential_{n}` from the median time of its runs: µs per task.
pub fn emit_sequential(n: u32, samples: Vec<Duration>) {
    let per_task = median(samples).as_secs_f64() / f64::from(n);
    emit(&format!("sequential_{n}"), per_task * 1e6, "us/task");
}

/// Prints a whole-run workload from the median time of its runs: ms.
pub fn emit_ms(workload: &str, samples: Vec<Duration>) {
    emit(workload, median(samples).as_secs_f64() * 1e3, "ms");
}

/// Exits with the usage unless the arguments are exactly `--all`.
pub fn require_all_flag(usage: &str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args != ["--all"] {
        eprintln!("{usage}");
        std::process::exit(2);
    }
}
