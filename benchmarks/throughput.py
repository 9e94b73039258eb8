"""Throughput: alloysync against bare Dramatiq, on the same machine, with the same worker pool, in one run.

Every path gets N one-off jobs (or messages) and a pool of P processes x T threads:
  bare        bare Dramatiq: a no-op actor (it only INCRs a counter), messages sent with plain
              `send()`; the ceiling of any Dramatiq-based design on this machine;
  edit        Dramatiq whose actor also makes one status edit through the emulator's public API:
              the floor of any design that writes a status back per message;
  drain       alloysync's workers draining N runs already created (enqueue.py), no serve: the worker
              side alone (claim, call a no-op task, finish, its outbox event), timed from the
              moment every message is put on the queue of the booted, idle pool;
  e2e         alloysync end to end: N job records bulk-created in the emulator → Succeeded on each
              record in Alloy (serve's poller and reporter, the workers, the emulator);
  e2e_limited the same for `--limited-jobs` (300) records under the emulator's Alloy limits (150
              edits a minute per key) with alloysync's default budgets and poll interval: the
              edits per job a real tenant sees (a few minutes; not part of the ratios).
The emulator's rate limits are off and every alloysync budget is raised, so what is measured is
alloysync's own cost. Redis runs with AOF `appendfsync everysec` (production's setting).

bare, edit, drain and e2e run in `--repeat` rounds (3), each round all four one after another;
each path reports its median run (the run itself, and every run's rate), and the end-to-end share
of each round is that round's e2e rate over its bare rate. A 2,000-message bare run lasts under a
second on this machine, one run alone moved its rate by a third from one try to the next, and a
slow spell of the shared machine can last minutes (the same code then spends a third more CPU
per job), so the paths are measured in the same minutes, not one after the other. e2e also
reports how long the records waited for the first poll (up to ALLOYSYNC_POLL_INTERVAL) and the
rate from then on, for reading the figure; the share counts from the records' creation.
Reported per path: the rate, its share of bare Dramatiq; for drain and e2e also the Redis commands
per job (INFO commandstats), and CPU per job of each process (serve, worker pool, emulator,
redis-server, from /proc); for e2e the Alloy edits per job. Then a poller run over `--records`
(100,000) paused records: records ingested per second on the first pass, serve's peak RSS, and the
queries a full reconciliation costs (paced: it is not waited for — `--full` to wait), and the CPU per
record of serve and of the emulator during the first pass (the emulator filters and sorts every
record for each page, so its share grows with `--records`). `--only-poller` runs that part alone.

Run:  .venv/bin/python -m benchmarks.throughput   (or ./dev bench throughput)
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script (`python benchmarks/throughput.py`, i.e. ./dev bench)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import os
import subprocess
import time
from typing import Any

import redis

from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue
from alloysync.model.registry import DEFAULT_QUEUE, load_task_modules
from alloysync.model.runs import RunKind, RunRequest
from alloysync.settings import Settings
from alloysync.state import keys
from benchmarks.common import (
    Stack,
    add_result_name_option,
    attributes_of,
    machine_info,
    progress,
    run_main,
    running_stack,
    scrape,
    write_result,
)
from tests.support.system import CODES, DESIGN, REPO

NAME = "throughput"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RAISED = "100000"  # every alloysync budget, per minute


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs (messages) per path (2000)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (8)")
    parser.add_argument("--records", type=int, default=100_000, help="records of the poller run (100000)")
    parser.add_argument("--full", action="store_true", help="wait for the poller run's full reconciliation")
    parser.add_argument("--skip-poller", action="store_true", help="do not run the poller part")
    parser.add_argument("--only-poller", action="store_true", help="run the poller part only")
    parser.add_argument(
        "--limited-jobs", type=int, default=300,
        help="jobs of the end-to-end run under Alloy's limits and default budgets (300; 0 = skip)",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, default=3,
        help="runs of each of bare, edit, drain and e2e, interleaved; the median is reported (3)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=900, help="give up on a path after this long")
    add_result_name_option(parser, NAME)
    return parser.parse_args(argv)


# --- measuring processes ---------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.append(child)
            frontier.append(child)
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class CpuMeter:
    """CPU seconds of named process trees between `start` and `stop`."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.started: dict[str, float] = {}

    def start(self) -> None:
        self.started = {name: cpu_seconds(tree(pid)) for name, pid in self.roots.items()}

    def stop(self, jobs: int) -> dict[str, float]:
        return {
            name: round((cpu_seconds(tree(pid)) - self.started[name]) / jobs * 1000, 3)
            for name, pid in self.roots.items()
        }  # ms of CPU per job


def redis_calls(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(value["calls"]) for value in stats.values())


def edits_made(stack: Stack) -> int:
    """Item edits the emulator accepted (2xx): refused ones (429) are not edits."""
    counts = stack.emulator.stats().get("write", {})
    return sum(count for status, count in counts.items() if status.startswith("2"))


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.05) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic()


# --- the paths -------------------------------------------------------------------------------------


def bare_round(stack: Stack, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """One round of bare and edit: Dramatiq's own worker CLI with benchmarks/throughput_actors.py."""
    env = {
        **os.environ,
        "BENCH_REDIS_URL": stack.redis_server.url,
        "BENCH_ALLOY_URL": stack.emulator.url,
        "BENCH_ALLOY_TOKEN": stack.emulator.token,
        "PYTHONPATH": str(REPO),
        "dramatiq_worker_timeout": "100",  # the same idle poll alloysync's workers use
    }
    client = redis.Redis.from_url(stack.redis_server.url)
    log = (stack.workdir / "bare-dramatiq.log").open("ab")
    command = [
        sys.executable,
        "-m",
        "dramatiq",
        "benchmarks.throughput_actors",
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
        "--queues",
        "bench",
    ]
    worker = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        os.environ["BENCH_REDIS_URL"] = stack.redis_server.url  # the actors' module reads it on import
        import benchmarks.throughput_actors as actors  # the same broker module, in this process

        time.sleep(3)  # let the worker processes boot
        items = stack.emulator.bulk_create(
            [
                {"designCode": DESIGN, "attributes": [{"attributeCode": CODES.title, "value": f"e{n}"}]}
                for n in range(args.jobs)
            ]
        )  # an edit needs the item's current signature
        runs: dict[str, dict[str, Any]] = {}
        for path in ("bare", "edit"):
            client.set(actors.DONE, 0)
            started = time.monotonic()
            for number in range(args.jobs):
                if path == "bare":
                    actors.noop.send(number)
                else:
                    item = items[number]
                    actors.edit.send(item["itemId"], item["signature"], CODES.status)
            done = wait_for(lambda: int(client.get(actors.DONE) or 0) >= args.jobs, args.timeout, path)
            runs[path] = {
                "seconds": round(done - started, 2),
                "per_second": round(args.jobs / (done - started), 1),
            }
            progress(f"{path}: {runs[path]}")
        return runs
    finally:
        worker.terminate()
        worker.wait(30)
        client.close()


def noop_request(number: int, round_number: int = 0) -> RunRequest:
    item = f"drain{round_number}x{number:06d}"
    return RunRequest(
        run_id=f"now:{item}:v1", item_id=item, kind=RunKind.NOW, steps=("tests.noop",), params={},
        source="bench", reason="Queued: benchmark",
    )  # fmt: skip


def drain_path(
    stack: Stack, args: argparse.Namespace, env: dict[str, str], round_number: int = 0
) -> dict[str, Any]:
    """Runs created first and their messages held back, the pool started and idle, then every
    message put on its queue at once: the worker side alone, timed from that moment."""
    settings = Settings(redis_url=stack.redis_server.url, task_modules=["tests.support.tasks"])
    client = redis.Redis.from_url(stack.redis_server.url, decode_responses=True)
    broker = build_broker(settings)
    queue = RunQueue(client, broker, load_task_modules(settings.task_modules), settings)
    requests = [noop_request(n, round_number) for n in range(args.jobs)]
    for start in range(0, args.jobs, 500):
        queue.submit_many(requests[start : start + 500])
    queue_key = broker.queue_keys(DEFAULT_QUEUE)[0]
    held = f"{queue_key}.held"
    if client.llen(queue_key) != args.jobs:
        raise RuntimeError(f"expected {args.jobs} messages on {queue_key}, found {client.llen(queue_key)}")
    # Out of the pool's sight while it boots: timing from the first run a booting pool picks up
    # would start late and leave out the runs it took meanwhile.
    client.rename(queue_key, held)
    events_before = int(client.xlen(keys.OUTBOX))
    stack.system.overrides.update(env)
    worker = stack.system.start_worker()
    meter = CpuMeter({"worker": worker.pid, "redis": stack.redis_server.child.pid})  # type: ignore[union-attr]
    time.sleep(3)  # let the worker processes boot, as the bare path does
    calls_before = redis_calls(client)
    meter.start()
    started = time.monotonic()
    client.rename(held, queue_key)  # every message on the queue at once
    # Each run appends two events as it runs (Running, Succeeded) to the Queued one of its creation.
    done = wait_for(
        lambda: int(client.xlen(keys.OUTBOX)) >= events_before + 2 * args.jobs, args.timeout, "the drain"
    )
    cpu = meter.stop(args.jobs)
    calls = (redis_calls(client) - calls_before) / args.jobs
    worker.stop()
    broker.close()
    client.close()
    seconds = done - started
    return {"seconds": round(seconds, 2), "per_second": round(args.jobs / seconds, 1),
            "redis_commands_per_run": round(calls, 1), "cpu_ms_per_run": cpu}  # fmt: skip


def e2e_path(
    stack: Stack, args: argparse.Namespace, env: dict[str, str], jobs: int | None = None
) -> dict[str, Any]:
    """`jobs` (default N) records bulk-created → every one shows Succeeded in the emulator."""
    jobs = args.jobs if jobs is None else jobs
    client = redis.Redis.from_url(stack.redis_server.url, decode_responses=True)
    system = stack.system
    system.overrides.update(env)
    serve = system.start_serve()
    worker = system.start_worker()
    stack.wait_for_poller()
    time.sleep(1)
    meter = CpuMeter(
        {
            "serve": serve.pid,
            "worker": worker.pid,
            "emulator": stack.emulator.process.pid,  # type: ignore[union-attr]
            "redis": stack.redis_server.child.pid,  # type: ignore[union-attr]
        }
    )
    writes_before = edits_made(stack)
    calls_before = redis_calls(client)
    jobs_before = int(client.scard(keys.JOBS))
    meter.start()
    started = time.monotonic()
    created = stack.emulator.bulk_create(
        [
            {
                "designCode": DESIGN,
                "attributes": [
                    {"attributeCode": CODES.title, "value": f"job {n}"},
                    {"attributeCode": CODES.enabled, "value": True},
                    {"attributeCode": CODES.task, "value": "tests.noop"},
                ],
            }
            for n in range(jobs)
        ]
    )
    ids = {item["itemId"] for item in created}

    read_at = 0.0
    picked_up_at: float | None = None

    def all_succeeded() -> bool:
        # The emulator's count of accepted edits first (cheap): every record is read only once
        # there have been as many edits as jobs, so the check can run as often as the bare path's.
        nonlocal read_at, picked_up_at
        if picked_up_at is None and int(client.scard(keys.JOBS)) > jobs_before:
            picked_up_at = time.monotonic()  # the first page is in: the poll interval's wait is over
        if edits_made(stack) - writes_before < len(ids):
            return False
        # The emulator answers the read as of its arrival: the records were all Succeeded by then.
        # Encoding, sending and parsing 2,000 records is this harness's time, not alloysync's.
        read_at = time.monotonic()
        items = stack.job_items()
        return sum(
            1
            for item in items
            if item["itemId"] in ids and attributes_of(item).get(CODES.status) == "Succeeded"
        ) == len(ids)

    wait_for(all_succeeded, args.timeout, "every record to show Succeeded")
    done = read_at
    cpu = meter.stop(jobs)
    calls = (redis_calls(client) - calls_before) / jobs
    time.sleep(3)  # late writes (after the last Succeeded) count too
    writes = edits_made(stack) - writes_before
    serve.stop()
    worker.stop()
    client.close()
    seconds = done - started
    # How long the records waited for the first poll (up to ALLOYSYNC_POLL_INTERVAL), and the rate
    # from then on: for reading the figure, not part of the share of bare Dramatiq.
    waited = (picked_up_at if picked_up_at is not None else done) - started
    after_pickup = max(seconds - waited, 1e-3)
    return {"seconds": round(seconds, 2), "per_second": round(jobs / seconds, 1),
            "first_pickup_s": round(waited, 2), "per_second_from_first_pickup": round(jobs / after_pickup, 1),
            "alloy_edits_per_job": round(writes / jobs, 3), "redis_commands_per_job": round(calls, 1),
            "cpu_ms_per_job": cpu}  # fmt: skip


def poller_path(args: argparse.Namespace) -> dict[str, Any]:
    """The first pass over `--records` paused records: records/s, serve's peak RSS, full-pass queries."""
    env = {"ALLOYSYNC_ALLOY_QUERY_PER_MINUTE": RAISED, "ALLOYSYNC_ALLOY_READ_PER_MINUTE": RAISED,
           "ALLOYSYNC_ALLOY_WRITE_PER_MINUTE": RAISED, "ALLOYSYNC_FULL_SYNC_INTERVAL": "5"}  # fmt: skip
    with running_stack(f"{NAME}-poller", rate_limits=False, appendfsync="everysec") as stack:
        stack.system.overrides.update(env)
        progress(f"poller: creating {args.records} paused records ...")
        for start in range(0, args.records, 5000):
            stack.emulator.bulk_create(
                [
                    {
                        "designCode": DESIGN,
                        "attributes": [
                            {"attributeCode": CODES.title, "value": f"p{n}"},
                            {"attributeCode": CODES.enabled, "value": False},
                            {"attributeCode": CODES.task, "value": "tests.noop"},
                        ],
                    }
                    for n in range(start, min(args.records, start + 5000))
                ]
            )
        time.sleep(12 + args.records / 1000)  # the emulator's edit dates run ahead: let them pass
        serve = stack.system.start_serve()
        meter = CpuMeter({"serve": serve.pid, "emulator": stack.emulator.process.pid})  # type: ignore[union-attr]
        meter.start()
        started = time.monotonic()
        peak = 0.0

        def first_pass_done() -> bool:
            nonlocal peak
            peak = max(peak, rss_mb(serve.pid))
            samples = scrape(stack.system.url())
            return samples.get('alloysync_poll_duration_seconds_count{kind="incremental"}', 0) >= 1

        done = wait_for(first_pass_done, args.timeout, "the first pass", interval=0.5)
        cpu = meter.stop(args.records)
        seconds = done - started
        result: dict[str, Any] = {
            "records": args.records,
            "first_pass_s": round(seconds, 1),
            "records_per_second": round(args.records / seconds, 1),
            "cpu_ms_per_record": cpu,  # serve's and the emulator's (which filters and sorts per page)
        }
        if args.full:

            def full_done() -> bool:
                nonlocal peak
                peak = max(peak, rss_mb(serve.pid))
                return scrape(stack.system.url()).get("alloysync_full_sync_queries", 0) > 0

            wait_for(full_done, args.timeout * 4, "the full reconciliation", interval=2)
            samples = scrape(stack.system.url())
            result["full_reconciliation_queries"] = int(samples.get("alloysync_full_sync_queries", 0))
            result["full_reconciliation_s"] = round(samples.get("alloysync_full_sync_duration_seconds", 0), 1)
        result["serve_peak_rss_mb"] = round(peak, 1)
        result["full_reconciliation_queries_expected"] = args.records // 100 + 1
        return result


PATHS = ("bare", "edit", "drain", "e2e")


def throughput_paths(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """`--repeat` rounds, each of bare, edit and drain (on one stack, its Dramatiq worker started
    afresh and stopped every round) and e2e (on a fresh stack): every path's rounds are spread over
    the same minutes, so a slow spell of this shared machine falls on all of them alike. Each path
    reports its median round; `e2e_share_by_round` pairs each round's end-to-end rate with that
    round's bare rate."""
    rounds: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
    pool_text = f"pool {args.processes}x{args.threads}"
    with running_stack(NAME, rate_limits=False, appendfsync="everysec") as stack:
        for round_number in range(args.repeat):
            progress(
                f"round {round_number + 1}/{args.repeat}: bare Dramatiq and Dramatiq + one edit, "
                f"{args.jobs} messages, {pool_text} ..."
            )
            for path, run in bare_round(stack, args).items():
                rounds[path].append(run)
            progress("alloysync's worker drain ...")
            rounds["drain"].append(drain_path(stack, args, env, round_number))
            progress(f"drain: {rounds['drain'][-1]}")
            with running_stack(f"{NAME}-e2e", rate_limits=False, appendfsync="everysec") as e2e_stack:
                progress("alloysync end to end ...")
                rounds["e2e"].append(e2e_path(e2e_stack, args, env))
                progress(f"e2e: {rounds['e2e'][-1]}")
    results: dict[str, Any] = {path: median_run(path_rounds) for path, path_rounds in rounds.items()}
    results["e2e_share_by_round"] = [
        round(e2e["per_second"] / bare["per_second"], 3)
        for e2e, bare in zip(rounds["e2e"], rounds["bare"], strict=True)
    ]
    if args.limited_jobs:
        results["e2e_limited"] = limited_path(args, env)
    return results


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median rate (its own figures), with every run's rate beside it."""
    ordered = sorted(runs, key=lambda run: float(run["per_second"]))
    return {**ordered[(len(ordered) - 1) // 2], "rates": [run["per_second"] for run in runs]}


def limited_path(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """End to end under Alloy's own limits (the emulator's, 150 edits a minute per key) with
    alloysync's default budgets and poll interval: the edits per job a real tenant would see."""
    pool = {name: value for name, value in env.items() if name.startswith("ALLOYSYNC_WORKER_")}
    with running_stack(f"{NAME}-limited", rate_limits=True, appendfsync="everysec") as stack:
        progress(f"alloysync end to end under Alloy's limits, {args.limited_jobs} jobs (a few minutes) ...")
        result = e2e_path(stack, args, {**pool, "ALLOYSYNC_LOG_LEVEL": "WARNING"}, jobs=args.limited_jobs)
        progress(f"e2e under Alloy's limits: {result}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    pool = {"ALLOYSYNC_WORKER_PROCESSES": str(args.processes), "ALLOYSYNC_WORKER_THREADS": str(args.threads)}
    env = {
        **pool,
        "ALLOYSYNC_ALLOY_QUERY_PER_MINUTE": RAISED,
        "ALLOYSYNC_ALLOY_READ_PER_MINUTE": RAISED,
        "ALLOYSYNC_ALLOY_WRITE_PER_MINUTE": RAISED,
        "ALLOYSYNC_REPORT_WRITES_PER_MINUTE": RAISED,
        "ALLOYSYNC_POLL_INTERVAL": "0.5",
        "ALLOYSYNC_LOG_LEVEL": "WARNING",
        # alloysync's workers export their metrics, as in production: the harness gives each pool a
        # metrics port (it reads /metrics to know the pool is up), whatever this env says.
    }
    results: dict[str, Any] = {}
    ratios: dict[str, float] = {}
    if not args.only_poller:
        results = throughput_paths(args, env)
        bare = results["bare"]["per_second"]
        ratios = {path: round(results[path]["per_second"] / bare, 3) for path in PATHS}
    if not args.skip_poller or args.only_poller:
        progress(f"the poller over {args.records} records ...")
        results["poller"] = poller_path(args)
        progress(f"poller: {results['poller']}")
    path = write_result(NAME if args.result_name == NAME else args.result_name,
                        {"benchmark": NAME, "parameters": vars(args), "machine": machine,
                         "results": results, "share_of_bare_dramatiq": ratios})  # fmt: skip
    print(f"\nResult: {args.jobs} jobs, pool {args.processes}x{args.threads}, {machine['cpu_count']} CPUs.")
    if ratios:
        for name in PATHS:
            print(f"  {name:6} {results[name]['per_second']:>8} /s   {ratios[name]:.3f} of bare Dramatiq")
        e2e = results["e2e"]
        print(f"  e2e share of bare Dramatiq, round by round: {results['e2e_share_by_round']}")
        print(
            f"  e2e: the first poll came {e2e['first_pickup_s']} s after the records were created; "
            f"{e2e['per_second_from_first_pickup']}/s from then on"
        )
        print(
            f"  e2e: {e2e['alloy_edits_per_job']} Alloy edits per job, "
            f"{e2e['redis_commands_per_job']} Redis commands per job, CPU ms per job {e2e['cpu_ms_per_job']}"
        )
        if "e2e_limited" in results:
            limited = results["e2e_limited"]
            edits = limited["alloy_edits_per_job"]
            print(f"  e2e under Alloy's limits: {edits} Alloy edits per job ({limited})")
    if "poller" in results:
        print(f"  poller: {results['poller']}")
    print(f"Written to {path}.")
    return 0


if __name__ == "__main__":
    run_main(main)
