"""`bench/run.sh stats [N]`: WARGAMING.STATS throughput with 1,000 entries and
with N (default 1,000,000), on the same server. STATS keeps exact key counts
from keyspace events, so its cost must not grow with the keyspace: the ratio
should stay near 1. Started by run.sh, which owns the server.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time

import redis

from common import BENCH_DIR, machine_info, prediction_json


def seed(r: redis.Redis, start: int, count: int) -> None:
    value = prediction_json()
    pipe = r.pipeline(transaction=False)
    for i in range(start, start + count):
        pipe.execute_command("WARGAMING.SETPRED", f"apv-{i}", value)
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()


def stats_rps(benchmark: str, port: int, requests: int) -> float:
    out = subprocess.run(
        [benchmark, "-p", str(port), "-n", str(requests), "-c", "10", "-P", "1", "-q", "WARGAMING.STATS"],
        check=True, capture_output=True, text=True,
    ).stdout
    match = re.findall(r"([\d.]+) requests per second", out)
    if not match:
        raise RuntimeError(f"cannot parse redis-benchmark output: {out!r}")
    return float(match[-1])


def keys_field(r: redis.Redis) -> int:
    fields = r.execute_command("WARGAMING.STATS")
    pairs = dict(zip(fields[0::2], fields[1::2])) if isinstance(fields, list) else fields
    return int(pairs[b"ml_pred_keys"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-server", required=True)
    parser.add_argument("--redis-benchmark", required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--module-loaded", required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    r = redis.Redis(port=args.port)

    seed(r, 0, 1_000)
    small = [stats_rps(args.redis_benchmark, args.port, args.requests) for _ in range(3)]
    t0 = time.monotonic()
    seed(r, 1_000, args.n - 1_000)
    seeded_s = time.monotonic() - t0
    large = [stats_rps(args.redis_benchmark, args.port, args.requests) for _ in range(3)]
    keys = keys_field(r)
    small_rps, large_rps = sorted(small)[1], sorted(large)[1]
    info = machine_info(args.redis_server, args.module_loaded)
    lines = [
        "## WARGAMING.STATS at 1,000 vs {:,} predictions".format(args.n),
        "",
        f"{info['date']}; {info['redis_server']}; {info['nproc']} CPUs, load {info['loadavg']}; commit {info['git_commit']}",
        "",
        "| entries | STATS requests/s (median of 3, 10 clients) | ml_pred_keys reported |",
        "|---|---|---|",
        f"| 1,000 | {small_rps:,.0f} | 1,000 |",
        f"| {args.n:,} | {large_rps:,.0f} | {keys:,} |",
        "",
        f"Ratio (large / small): **{large_rps / small_rps:.2f}** (constant time means about 1.0). "
        f"Seeding took {seeded_s:.1f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with open(BENCH_DIR / "STATS.md", "w") as f:
        f.write(text)
    if keys != args.n:
        raise SystemExit(f"ml_pred_keys is {keys}, expected {args.n}")


if __name__ == "__main__":
    main()
