"""The Prefect 3 side of bench/compare.sh: the same workloads as examples/bench_workloads.rs.

    python bench/prefect_workloads.py --all                    # in-process workloads
    python bench/prefect_workloads.py --all --logged           # the same, names ending _logged
    python bench/prefect_workloads.py --workload one_task_flow  # one flow, one task, then exit

Each measured workload prints one JSON line: {"workload": ..., "value": ..., "unit": ...}.
Run it with PREFECT_API_URL unset: Prefect then starts a temporary local server on 127.0.0.1
(its ephemeral mode), which the first flow run of the process waits for. compare.sh sets
PREFECT_HOME to a temporary directory and, for --all, PREFECT_LOGGING_LEVEL=WARNING.
"""

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta

from prefect import flow, task
from prefect.cache_policies import INPUTS

# Repetitions of each in-process workload (the median is printed), after one warm-up flow.
# One for the 1000-task flows: on 2 cores the temporary server's SQLite database falls behind
# (HTTP 503 "database is locked" for the next flow), and each takes several seconds anyway.
REPS = {"sequential_10": 5, "sequential_100": 5, "sequential_1000": 1, "map_1000": 1}
SETTLE_SECONDS = 3  # lets the server catch up between workloads; not measured
FLOW_REPS = 5  # retries and cache hit


@task
def noop(i):
    return i


@flow(name="one-task")
def one_task_flow():
    return noop(1)


@flow(name="sequential")
def sequential(n):
    """Returns the seconds its n sequential task runs took, measured inside the flow."""
    start = time.perf_counter()
    for i in range(n):
        noop(i)
    return time.perf_counter() - start


@flow(name="mapped")
def mapped(n):
    return sum(noop.map(range(n)).result())


FLAKY_CALLS = 0


@task(retries=2, retry_delay_seconds=0)
def flaky():
    """Fails on its first two attempts of each flow run, succeeds on the third."""
    global FLAKY_CALLS
    FLAKY_CALLS += 1
    if FLAKY_CALLS <= 2:
        raise RuntimeError(f"flaky ({FLAKY_CALLS})")
    return FLAKY_CALLS


@flow(name="retries")
def retrying():
    global FLAKY_CALLS
    FLAKY_CALLS = 0
    return flaky()


@task(cache_policy=INPUTS, cache_expiration=timedelta(days=1))
def cached(x):
    return x


@flow(name="cache-hit")
def cache_hit():
    return cached(7)


SUFFIX = ""  # "_logged" with --logged: the caller leaves Prefect's logging at its default


def emit(workload, value, unit):
    workload += SUFFIX
    print(json.dumps({"workload": workload, "value": value, "unit": unit}), flush=True)
    print(f"{time.strftime('%H:%M:%S')} {workload}: {value:.4g} {unit}", file=sys.stderr)


def timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def median_of(reps, measure):
    return statistics.median(measure() for _ in range(reps))


def run_all():
    one_task_flow()  # starts the temporary server: not part of any measure

    for n in (10, 100, 1000):
        time.sleep(SETTLE_SECONDS)
        sequential(10)  # warm-up flow
        seconds = median_of(REPS[f"sequential_{n}"], lambda: sequential(n))
        emit(f"sequential_{n}", seconds / n * 1e6, "us/task")

    time.sleep(SETTLE_SECONDS)
    mapped(10)
    emit("map_1000", median_of(REPS["map_1000"], lambda: timed(lambda: mapped(1000))) * 1e3, "ms")

    time.sleep(SETTLE_SECONDS)
    assert retrying() == 3
    emit("retries", median_of(FLOW_REPS, lambda: timed(retrying)) * 1e3, "ms")

    cache_hit()  # fills the cache
    emit("cache_hit", median_of(FLOW_REPS, lambda: timed(cache_hit)) * 1e3, "ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="run the in-process workloads")
    group.add_argument("--workload", choices=["one_task_flow"], help="run one workload")
    parser.add_argument("--logged", action="store_true", help="name the workloads *_logged")
    args = parser.parse_args()
    if args.logged:
        global SUFFIX
        SUFFIX = "_logged"
    if args.all:
        run_all()
    else:
        one_task_flow()
    return 0


if __name__ == "__main__":
    sys.exit(main())
