#!/usr/bin/env bash
# Side by side: the same workloads in Prefect 3, in flowcore and, in process, in two Rust peers
# (dagrs and apalis), on this machine (issue 7).
#
#   bash bench/compare.sh
#
# Not run by CI: it installs Prefect from PyPI into target/bench-venv (kept for the next run),
# builds bench/peers (its own Cargo project, dagrs and apalis from crates.io) into
# target/bench-peers, and bench/process (flowcore's one-task program, as a user's project builds
# it) into target/bench-process, and takes a few minutes. It runs bench/prefect_workloads.py, the
# release build of examples/bench_workloads.rs, bench/process and the peers' binaries, then
# prints one table (workload, Prefect, flowcore, dagrs, apalis, and each one's ratio to
# flowcore) and writes it as Markdown to target/bench-compare.md. Everything stays on
# 127.0.0.1: Prefect runs in its ephemeral mode (no PREFECT_API_URL), starting a temporary local
# server by itself.
#
# The whole-process rows time one fresh process per run (median of BENCH_PROCESS_RUNS, 5 by
# default) after one unmeasured run that creates the store (Prefect's database under a temporary
# PREFECT_HOME, flowcore's SQLite file under a temporary FLOWCORE_HOME); logging is on for both.
# Each is timed from a Python parent's posix_spawn to its wait4, next to /bin/true timed the same
# way (the floor, in the table's notes).
# The in-process rows run with logging off (flowcore, dagrs, apalis) or at WARNING (Prefect), and
# again with logging on for flowcore (init_logging(), to a file) and Prefect (its default, INFO,
# to a file and to its server): the "logging on" rows.
# The peers have in-process rows only, and only where they have an equivalent (dagrs: no cache;
# apalis: no cache, no dependencies between tasks); each binary's header comment says what each
# row maps to. A missing row shows as n/a.
set -euo pipefail

cd "$(dirname "$0")/.."
started=$(date +%s)
venv=target/bench-venv
runs=${BENCH_PROCESS_RUNS:-5}
logs=target/bench-compare-logs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$logs"
mkdir -p "$logs"

# --- Prefect, in its own virtualenv -------------------------------------------------------
if [[ ! -x $venv/bin/python ]]; then
    echo "creating $venv" >&2
    python3 -m venv "$venv"
fi
# FastAPI 0.155 dropped `min_items`, which Prefect 3's server still passes (`Body(min_items=1)`):
# without the pin the temporary server cannot even be imported.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    'prefect>=3,<4' 'fastapi<0.155'
py=$venv/bin/python

# Ephemeral mode: no API URL, a fresh home, a temporary server on 127.0.0.1.
unset PREFECT_API_URL PREFECT_API_KEY PREFECT_PROFILE PREFECT_LOGGING_LEVEL RUST_LOG
export PREFECT_HOME=$work/prefect-home
export PREFECT_SERVER_EPHEMERAL_ENABLED=true
export PREFECT_SERVER_ANALYTICS_ENABLED=false # no telemetry requests leaving the machine
# Under the 1000-task workloads the temporary server's SQLite database answers 503 ("database is
# locked") for a while; the client retries 5 times by default, which is not enough on 2 cores.
export PREFECT_CLIENT_MAX_RETRIES=20
# Its temporary server's start (imports, migrations of a fresh database) took longer than the
# 20 s Prefect waits by default on a loaded 2-core machine, and the run stopped there.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export FLOWCORE_HOME=$work/flowcore-home
prefect_version=$("$py" -c 'import prefect; print(prefect.__version__)')

# --- flowcore, release build --------------------------------------------------------------
cargo build --release --quiet --example bench_workloads
fc=target/release/examples/bench_workloads
# The whole-process rows run the same one-task flow built as a user's project builds it
# (bench/process/Cargo.toml says why it is a project of its own).
cargo build --release --quiet --manifest-path bench/process/Cargo.toml \
    --target-dir target/bench-process
fc_process=target/bench-process/release/flowcore-bench-process

# --- the peers, release build -------------------------------------------------------------
# A project of its own, so the workspace and CI never build dagrs and apalis. If it does not
# build (a new release of a peer, no network), the table still comes out, with n/a for them.
peers=target/bench-peers/release
echo "building bench/peers (dagrs, apalis)..." >&2
if cargo build --release --quiet --manifest-path bench/peers/Cargo.toml \
    --target-dir target/bench-peers 2>"$logs/peers-build.log"; then
    peers_built=true
else
    peers_built=false
    echo "warning: bench/peers did not build (see $logs/peers-build.log); dagrs and apalis: n/a" >&2
fi

# --- whole process: one flow of one task, logging on ----------------------------------------
# Prints two JSON lines: the median wall time (ms) and peak RSS (MB) of `runs` fresh processes.
# Wall time: the process started with posix_spawn straight from a Python parent and timed from
# just before the spawn to the return of wait4 (perf_counter); no shell, `date` or GNU time in
# between, whose own forks and execs took 5-6 ms here (`/bin/true` read 5.6 ms timed with
# `date` around `/usr/bin/time`). Peak RSS: GNU time's %M, in runs of their own (a Python
# parent's spawn would count its own pages: the kernel keeps the larger of the parent's memory
# at the exec and the program's), of the largest single process of the tree (for Prefect: the
# client or its temporary server, whichever is larger).
spawn_timer() {
    "$py" - "$@" <<'PY'
import os, statistics, sys, time

runs, log, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
walls = []
for _ in range(runs):
    actions = [(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, out, 2)]
    start = time.perf_counter_ns()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=actions)
    _, status, _ = os.wait4(pid, 0)
    walls.append((time.perf_counter_ns() - start) // 1000)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed (see {log})")
print(statistics.median_high(walls))
PY
}

whole_process() {
    local name=$1
    shift
    "$@" >>"$logs/$name-process.log" 2>&1 # creates the store: not measured
    local wall rsss=() i
    wall=$(spawn_timer "$runs" "$logs/$name-process.log" "$@")
    for ((i = 0; i < runs; i++)); do
        /usr/bin/time -f "%M" -o "$work/time" "$@" >>"$logs/$name-process.log" 2>&1
        rsss+=("$(cat "$work/time")")
    done
    local rss
    rss=$(printf '%s\n' "${rsss[@]}" | sort -n | sed -n "$((runs / 2 + 1))p")
    echo "{\"workload\": \"process_wall\", \"value\": $wall, \"unit\": \"us\"}"
    echo "{\"workload\": \"process_rss\", \"value\": $rss, \"unit\": \"KB\"}"
}

# What the same timer reads for a process that does nothing: the machine's floor for any row
# of a whole process (its fork, exec and exit).
echo "the floor: /bin/true ($runs runs)..." >&2
floor=$(spawn_timer "$runs" /dev/null /bin/true)

echo "Prefect $prefect_version: whole process ($runs runs)..." >&2
whole_process prefect "$py" bench/prefect_workloads.py --workload one_task_flow \
    >"$work/prefect.jsonl"
echo "flowcore: whole process ($runs runs)..." >&2
whole_process flowcore "$fc_process" >"$work/flowcore.jsonl"

# --- in process ---------------------------------------------------------------------------
echo "Prefect: in-process workloads..." >&2
rm -rf "$PREFECT_HOME"
PREFECT_LOGGING_LEVEL=WARNING "$py" bench/prefect_workloads.py --all \
    >>"$work/prefect.jsonl" 2>"$logs/prefect-all.log"
echo "Prefect: in-process workloads, logging on..." >&2
rm -rf "$PREFECT_HOME"
"$py" bench/prefect_workloads.py --all --logged \
    >>"$work/prefect.jsonl" 2>"$logs/prefect-all-logged.log"
echo "flowcore: in-process workloads..." >&2
"$fc" --all >>"$work/flowcore.jsonl" 2>"$logs/flowcore-all.log"
echo "flowcore: in-process workloads, logging on..." >&2
# Its log lines go to stdout with the results; the table reads only the JSON lines.
"$fc" --all --logged >>"$work/flowcore.jsonl" 2>"$logs/flowcore-all-logged.log"
for peer in dagrs apalis; do
    : >"$work/$peer.jsonl" # stays empty (all n/a) without a build
    $peers_built || continue
    echo "$peer: in-process workloads..." >&2
    # A failing peer keeps the rows it printed; the others show n/a.
    "$peers/${peer}_workloads" --all >"$work/$peer.jsonl" 2>"$logs/$peer-all.log" ||
        echo "warning: ${peer}_workloads failed (see $logs/$peer-all.log)" >&2
done

# --- the table ----------------------------------------------------------------------------
seconds=$(($(date +%s) - started))
"$py" - "$work"/{prefect,flowcore,dagrs,apalis}.jsonl "$prefect_version" "$seconds" "$floor" <<'EOF'
import json, os, platform, re, subprocess, sys

def load(path):
    lines = (l for l in open(path) if l.startswith("{"))  # log lines are not results
    return {r["workload"]: r for r in map(json.loads, lines)}

prefect, flowcore, dagrs, apalis = map(load, sys.argv[1:5])
prefect_version, seconds, floor = sys.argv[5:8]
rows = [
    ("process_wall", "one-task flow, whole process: wall time", "ms", 1e-3),
    ("process_rss", "one-task flow, whole process: peak RSS", "MB", 1 / 1024),
    ("sequential_10", "10 sequential tasks in a flow", "µs/task", 1),
    ("sequential_100", "100 sequential tasks in a flow", "µs/task", 1),
    ("sequential_1000", "1000 sequential tasks in a flow", "µs/task", 1),
    ("map_1000", "1000 mapped tasks (whole flow)", "ms", 1),
    ("retries", "task failing twice, retries = 2, no delay (whole flow)", "ms", 1),
    ("cache_hit", "flow whose one task hits the cache (whole flow)", "ms", 1),
    ("sequential_10_logged", "logging on: 10 sequential tasks in a flow", "µs/task", 1),
    ("sequential_100_logged", "logging on: 100 sequential tasks in a flow", "µs/task", 1),
    ("sequential_1000_logged", "logging on: 1000 sequential tasks in a flow", "µs/task", 1),
    ("map_1000_logged", "logging on: 1000 mapped tasks (whole flow)", "ms", 1),
    ("retries_logged", "logging on: task failing twice, retries = 2 (whole flow)", "ms", 1),
]

def fmt(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"

def cell(results, key, unit, scale):
    return f"{fmt(results[key]['value'] * scale)} {unit}" if key in results else "n/a"

def ratio(results, key):
    if key not in results or key not in flowcore:
        return "n/a"
    return f"{fmt(results[key]['value'] / flowcore[key]['value'])}×"

lines = [
    "| workload | Prefect | flowcore | dagrs | apalis "
    "| Prefect / flowcore | dagrs / flowcore | apalis / flowcore |",
    "|---|--:|--:|--:|--:|--:|--:|--:|",
]
for key, label, unit, scale in rows:
    cells = [cell(r, key, unit, scale) for r in (prefect, flowcore, dagrs, apalis)]
    cells += [ratio(r, key) for r in (prefect, dagrs, apalis)]
    lines.append(f"| {label} | {' | '.join(cells)} |")
table = "\n".join(lines)

def peer(name, results):
    """The peer's version, as bench/peers/Cargo.lock pins it."""
    if not results:
        return f"{name} (not run)"
    try:
        lock = open("bench/peers/Cargo.lock").read()
    except OSError:
        return name
    found = re.search(rf'name = "{name}"\nversion = "([^"]+)"', lock)
    return f"{name} {found[1]}" if found else name

rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
header = (
    f"Prefect {prefect_version} (Python {platform.python_version()}, ephemeral local server) vs "
    f"flowcore ({rustc}, release), and in process {peer('dagrs', dagrs)} and "
    f"{peer('apalis', apalis)} (release), on {os.cpu_count()} cores of {cpu}."
)
notes = f"""
Whole process: one fresh process per run, median of the runs, after one unmeasured run that
creates the store; logging on for both; flowcore with its default SQLite store (bench/process: a
project of its own, built as a user's), Prefect with its temporary server (its start-up
included). Wall time from just before a Python parent's posix_spawn to the return of its wait4;
the same timer reads {int(floor) / 1000:.2f} ms for /bin/true (the machine's fork, exec and exit),
which every whole-process row includes. Peak RSS is GNU time's %M, in runs of their own: the
largest single process (for Prefect, the client or its temporary server). In-process rows:
Prefect logging at WARNING, flowcore logging off with the memory store, each after a warm-up
flow; sequential tasks are timed inside the flow, the other rows time the whole flow call;
median of 5 flows, except 1 flow for the 1000-task rows. "Logging on" rows: the same with
Prefect's default logging (INFO, printed and sent to its server) and flowcore's init_logging()
(printed), both written to a file.

dagrs and apalis (bench/peers, in-process rows only, same repetitions): the same trivial task on
a multi-threaded Tokio runtime, no logger installed, nothing persisted. dagrs: one Graph per
run, timed from building it to the end of the run; sequential tasks are a chain of nodes, each
waiting for its predecessor's message; mapped tasks are nodes without edges; retries are the
node's max_retries = 2 with retry_delay_ms = 0, which still sleeps until Tokio's next 1 ms
timer tick before each retry; no cache. apalis: one worker on its in-memory backend per
workload, started before the timing; a task is done when the worker yields its result;
sequential tasks are pushed one after the other, mapped tasks all at once (no concurrency
limit); retries are its retry layer, RetryPolicy::retries(2); no cache, no dependencies between
tasks. Per task, dagrs keeps the node's outcome and output and apalis the task's status and
attempt count, where flowcore's memory store records each run's state history.
"""
with open("target/bench-compare.md", "w") as out:
    out.write(f"# flowcore vs Prefect, dagrs and apalis\n\n{header}\n\n{table}\n{notes}\nbench/compare.sh took {seconds} s.\n")
print(header)
print()
print(table)
EOF
echo "(written to target/bench-compare.md; logs in $logs; took $seconds s)" >&2
