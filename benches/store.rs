//! End-to-end task-run throughput with the SQLite run store (the default store), and with the
//! PostgreSQL one.
//!
//! `cargo bench --bench store`. The store is a new SQLite file in a temporary directory,
//! installed before the first run and removed when the benchmark ends; the path is printed
//! at the start. Logging is off (no subscriber is installed).
//!
//! Each iteration runs one flow that calls a trivial `#[task]` `n` times, so a sample covers
//! everything a task run costs: its record, its Pending → Running → Completed transitions and
//! its output sent to the store's writer thread, that thread's group commits, and the flush
//! the flow waits for before it returns (its final state committed). Criterion reports the
//! throughput in task runs per second (`elem/s`); issue 7 asks for 200,000 (5 µs each).
//!
//! - `store_sqlite/sequential/n`: the task awaited `n` times, one after the other;
//! - `store_sqlite/join_all/n`: `n` calls awaited together with `futures::future::join_all`;
//! - `store_sqlite/cache_hit/n`: a `cache_for` task called `n` times with the same argument:
//!   every call after the first reads the cached result from the SQLite file;
//! - `store_sqlite/flow_run_round_trip`: a flow run of one task run, from the call to its
//!   return: two commits waited for, its start (committed before its body runs, so that a
//!   crash always leaves the run) and its final state.
//!
//! A process has one store, so the same benchmarks with the memory store are in
//! `benches/task_overhead.rs` (`cargo bench --bench task_overhead -- store_memory`).
//!
//! The store keeps every run, so the file grows over the benchmark (over a million task runs,
//! several hundred MB; the size is printed at the end): later samples write into bigger
//! tables, as a long-lived store does, and the throughput goes down as the file grows.
//!
//! `store_postgres` measures the PostgreSQL store (`cargo bench --bench store -- store_postgres`)
//! against a server the benchmark starts on this machine with the tests' harness
//! (tests/support/postgres.rs: PostgreSQL 15 or newer, found as the tests find it), on its Unix
//! socket only, with `fsync = on`: every commit waited for is durable, as in production. The
//! group says it skipped where no PostgreSQL can be started (and fails then under
//! `FLOWCORE_POSTGRES_TEST=required`, as the tests do); the server is stopped and its files
//! removed when the group ends, or, should the process die, by the harness's watchdog.
//! Its flows run in the PostgreSQL store by [`Store::scope`]; the SQLite store stays the
//! process's. Its database grows as the SQLite file does (its size is printed at the end).
//!
//! - `store_postgres/sequential/10000` and `store_postgres/flow_run_round_trip`: as SQLite's;
//! - `store_postgres/raw_insert_100_rows`: what the server and one durable commit cost without
//!   flowcore: one 100-row `INSERT` (a prepared statement, in a transaction of its own) into a
//!   three-column table with a primary key, with the `postgres` client; in rows per second;
//! - `store_postgres/raw_transaction_per_row`: a one-row `INSERT` in a transaction of its own:
//!   one round trip and one WAL flush per event, the floor under any commit a caller waits for.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use flowcore::{Store, flow, task};
use futures::future::join_all;

// The tests' helpers, for their PostgreSQL harness.
#[path = "../tests/support/mod.rs"]
mod support;

#[task]
async fn trivial(i: u64) -> u64 {
    i
}

#[task(cache_for = "1d")]
async fn cached(x: u64) -> u64 {
    x
}

#[flow]
async fn sequential(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc.wrapping_add(trivial(black_box(i)).await);
    }
    acc
}

#[flow]
async fn concurrent(n: u64) -> u64 {
    join_all((0..n).map(|i| trivial(black_box(i))))
        .await
        .into_iter()
        .fold(0, u64::wrapping_add)
}

#[flow]
async fn cache_hits(n: u64) -> u64 {
    let mut acc = 0u64;
    for _ in 0..n {
        acc = acc.wrapping_add(cached(black_box(7)).await);
    }
    acc
}

#[flow]
async fn one_task() -> u64 {
    trivial(black_box(1)).await
}

/// Task runs per flow run.
const SIZES: [u64; 2] = [1_000, 10_000];

fn store_sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // The first cache_hits call stores the entry; every later call hits it.
    rt.block_on(cached(7));

    let mut group = c.benchmark_group("store_sqlite");
    // A sample is whole flows of up to 10,000 task runs: few samples, each of equal size.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for n in SIZES {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("sequential", n), &n, |b, &n| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(sequential(n).await);
                }
                start.elapsed()
            })
        });
        group.bench_with_input(BenchmarkId::new("join_all", n), &n, |b, &n| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(concurrent(n).await);
                }
                start.elapsed()
            })
        });
        group.bench_with_input(BenchmarkId::new("cache_hit", n), &n, |b, &n| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(cache_hits(n).await);
                }
                start.elapsed()
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("flow_run_round_trip", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(one_task().await);
            }
            start.elapsed()
        })
    });
    group.finish();
}

/// Task runs per flow run in the PostgreSQL group: the figure.
const PG_TASK_RUNS: u64 = 10_000;

/// Rows per statement of `raw_insert_100_rows`.
const RAW_ROWS: usize = 100;

fn store_postgres(c: &mut Criterion) {
    let Some(pg) = support::Postgres::with_options(support::PostgresOptions::default().durable())
    else {
        println!("store_postgres: skipped, no PostgreSQL could be started (see above)");
        return;
    };
    let db = pg.database("bench_store");
    let store = Store::postgres(db.url()).expect("a PostgreSQL store in a fresh database");
    println!("PostgreSQL store: {} (fsync on)", db.url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let mut group = c.benchmark_group("store_postgres");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(PG_TASK_RUNS));
    group.bench_with_input(
        BenchmarkId::new("sequential", PG_TASK_RUNS),
        &PG_TASK_RUNS,
        |b, &n| {
            b.to_async(&rt).iter_custom(|iters| {
                let store = store.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(store.scope(sequential(n)).await);
                    }
                    start.elapsed()
                }
            })
        },
    );
    group.throughput(Throughput::Elements(1));
    group.bench_function("flow_run_round_trip", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(store.scope(one_task()).await);
                }
                start.elapsed()
            }
        })
    });

    let mut client = postgres::Client::connect(db.url(), postgres::NoTls)
        .expect("a connection to the benchmark's database");
    client
        .batch_execute(
            "CREATE TABLE raw_rows (id bigint PRIMARY KEY, at bigint NOT NULL, message text);
             CREATE TABLE raw_events (id bigint PRIMARY KEY, at bigint NOT NULL, message text);",
        )
        .expect("the anchors' tables");
    let placeholders: Vec<String> = (0..RAW_ROWS)
        .map(|r| {
            let n = 3 * r;
            format!("(${}::bigint, ${}::bigint, ${}::text)", n + 1, n + 2, n + 3)
        })
        .collect();
    let insert_rows = client
        .prepare(&format!(
            "INSERT INTO raw_rows (id, at, message) VALUES {}",
            placeholders.join(", ")
        ))
        .expect("prepare the 100-row insert");
    let insert_event = client
        .prepare(
            "INSERT INTO raw_events (id, at, message) VALUES ($1::bigint, $2::bigint, $3::text)",
        )
        .expect("prepare the one-row insert");
    let message = "Finished in state Completed()";
    let mut next_id = 0i64;
    group.throughput(Throughput::Elements(RAW_ROWS as u64));
    group.bench_function("raw_insert_100_rows", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let rows: Vec<(i64, i64)> = (0..RAW_ROWS)
                    .map(|_| {
                        next_id += 1;
                        (next_id, next_id * 7)
                    })
                    .collect();
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> = rows
                    .iter()
                    .flat_map(|(id, at)| {
                        [
                            id as &(dyn postgres::types::ToSql + Sync),
                            at as _,
                            &message as _,
                        ]
                    })
                    .collect();
                client
                    .execute(&insert_rows, &params)
                    .expect("insert 100 rows");
            }
            start.elapsed()
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_transaction_per_row", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                next_id += 1;
                client
                    .execute(&insert_event, &[&next_id, &(next_id * 7), &message])
                    .expect("insert one row");
            }
            start.elapsed()
        })
    });
    // What a `NOTIFY` would add to each commit, were workers woken by LISTEN/NOTIFY: the same
    // one-row transaction with a notification in it, with a listener connected (the server
    // queues notifications for listeners, and writes the queue at commit).
    let mut listener = postgres::Client::connect(db.url(), postgres::NoTls).expect("connect");
    listener.batch_execute("LISTEN flowcore").expect("LISTEN");
    group.bench_function("raw_transaction_per_row_with_notify", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                next_id += 1;
                let mut tx = client.transaction().expect("BEGIN");
                tx.execute(&insert_event, &[&next_id, &(next_id * 7), &message])
                    .expect("insert one row");
                tx.batch_execute("NOTIFY flowcore").expect("NOTIFY");
                tx.commit().expect("COMMIT");
            }
            start.elapsed()
        })
    });
    // The same transaction without the notification, made the same way, to compare with.
    group.bench_function("raw_transaction_per_row_explicit", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                next_id += 1;
                let mut tx = client.transaction().expect("BEGIN");
                tx.execute(&insert_event, &[&next_id, &(next_id * 7), &message])
                    .expect("insert one row");
                tx.commit().expect("COMMIT");
            }
            start.elapsed()
        })
    });
    drop(listener);
    group.finish();

    // As SQLite's, the store's throughput depends on how big it has grown.
    let size: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .map(|row| row.get(0))
        .unwrap_or(0);
    println!("PostgreSQL store at the end: {} MB", size / 1_000_000);
    // The store's writer thread and connections go before the server does, so that none of
    // them takes the server's going for an outage to report.
    drop(store);
    drop(client);
    drop(db);
    drop(pg);
}

criterion_group!(benches, store_sqlite, store_postgres);

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("flowcore.db");
    Store::sqlite(&path)
        .and_then(Store::install)
        .expect("a SQLite store in a temporary directory");
    println!("SQLite store: {}", path.display());

    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();

    // The throughput depends on how big the store has grown: say how big it ended.
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = path.with_extension("db-wal");
    println!(
        "SQLite store at the end: {} MB (+ {} MB write-ahead log)",
        size(&path) / 1_000_000,
        size(&wal) / 1_000_000
    );
}
