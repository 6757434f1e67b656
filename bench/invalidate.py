"""`bench/run.sh invalidate [N_PRED] [N_OTHER]`: deleting every prediction,
the client-side way (SCAN MATCH + one DEL) against WARGAMING.INVALIDATE ALL,
while a separate process PINGs the server on its own connection and records
every round trip. Started by run.sh, which owns the server.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import subprocess
import sys
import time
from array import array
from pathlib import Path

import redis

from common import BENCH_DIR, fmt, machine_info, percentile, pred_key, prediction_json

MATCH = "wargaming:ml_pred:*"
TARGET_WALL_S = 1.5
TARGET_PING_MS = 10.0


# ---------------------------------------------------------------- pinger

def _pinger(port: int, interval_s: float, stop, conn):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sends, rtts = array("q"), array("q")
    now = time.monotonic_ns
    conn.send("ready")
    while not stop.is_set():
        t0 = now()
        sock.sendall(b"PING\r\n")
        got = b""
        while not got.endswith(b"\r\n"):
            chunk = sock.recv(64)
            if not chunk:
                raise ConnectionError("server closed the PING connection")
            got += chunk
        t1 = now()
        if got != b"+PONG\r\n":
            raise RuntimeError(f"unexpected PING reply {got!r}")
        sends.append(t0)
        rtts.append(t1 - t0)
        if interval_s:
            time.sleep(interval_s)
    sock.close()
    conn.send_bytes(sends.tobytes())
    conn.send_bytes(rtts.tobytes())


class Pinger:
    """A PING loop in its own process, on its own connection."""

    def __init__(self, port: int, interval_s: float):
        ctx = mp.get_context("fork")
        self.stop_event = ctx.Event()
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_pinger, args=(port, interval_s, self.stop_event, child), daemon=True)

    def __enter__(self):
        self.proc.start()
        if not self.parent.poll(10) or self.parent.recv() != "ready":
            raise RuntimeError("PING process did not start")
        return self

    def stop(self):
        self.stop_event.set()
        sends, rtts = array("q"), array("q")
        sends.frombytes(self.parent.recv_bytes())
        rtts.frombytes(self.parent.recv_bytes())
        self.proc.join(10)
        return list(zip(sends, rtts))

    def __exit__(self, *exc):
        if self.proc.is_alive():
            self.stop_event.set()
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.terminate()


def ping_stats(pings, t0_ns: int, t1_ns: int) -> dict:
    """Round trips that overlap [t0, t1] (a PING sent just before a stall counts)."""
    inside = sorted(rtt for sent, rtt in pings if sent < t1_ns and sent + rtt > t0_ns)
    before = sorted(rtt for sent, rtt in pings if sent + rtt <= t0_ns)
    ms = 1e-6
    return {
        "count": len(inside),
        "worst_ms": inside[-1] * ms if inside else None,
        "p99_ms": percentile(inside, 99) * ms if inside else None,
        "p50_ms": percentile(inside, 50) * ms if inside else None,
        "over_10ms": sum(1 for r in inside if r * ms > TARGET_PING_MS),
        "idle_count": len(before),
        "idle_worst_ms": before[-1] * ms if before else None,
        "idle_p99_ms": percentile(before, 99) * ms if before else None,
    }


def server_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# ---------------------------------------------------------------- seeding

def seed(r: redis.Redis, redis_cli: str, port: int, n_pred: int, n_other: int):
    t = time.monotonic()
    r.flushall()
    if n_other:
        r.execute_command("DEBUG", "POPULATE", n_other, "other")
    value = prediction_json().encode()
    proc = subprocess.Popen([redis_cli, "-h", "127.0.0.1", "-p", str(port), "--pipe"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tail = b"$2\r\nEX\r\n$5\r\n86400\r\n"
    val = b"$%d\r\n%s\r\n" % (len(value), value)
    chunk = []
    for i in range(n_pred):
        key = pred_key(f"apv-{i:07d}").encode()
        chunk.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n%s%s" % (len(key), key, val, tail))
        if len(chunk) == 10_000:
            proc.stdin.write(b"".join(chunk))
            chunk.clear()
    proc.stdin.write(b"".join(chunk))
    proc.stdin.close()
    out = proc.stdout.read().decode(errors="replace")
    if proc.wait() != 0 or "errors: 0" not in out:
        raise RuntimeError(f"redis-cli --pipe failed: {out.strip()}")
    size = r.dbsize()
    if size != n_pred + n_other:
        raise RuntimeError(f"seeded {size} keys, expected {n_pred + n_other}")
    print(f"   seeded {n_pred:,} predictions + {n_other:,} other keys in {time.monotonic() - t:.1f} s", flush=True)


# ---------------------------------------------------------------- the two ways

def client_side(r: redis.Redis, n_pred: int, pinger_args, settle_s: float):
    with Pinger(*pinger_args) as pinger:
        time.sleep(settle_s)
        cpu0 = server_cpu(r)
        t0 = time.monotonic_ns()
        keys, cursor, calls = [], 0, 0
        while True:
            cursor, batch = r.scan(cursor, match=MATCH, count=100)
            keys.extend(batch)
            calls += 1
            if cursor == 0:
                break
        t_scan = time.monotonic_ns()
        deleted = r.execute_command("DEL", *keys) if keys else 0
        t1 = time.monotonic_ns()
        cpu1 = server_cpu(r)
        time.sleep(settle_s)
        pings = pinger.stop()
    if len(set(keys)) != n_pred or deleted != n_pred:
        raise RuntimeError(f"client side: SCAN found {len(set(keys))} keys, DEL deleted {deleted}, expected {n_pred}")
    return {
        "wall_s": (t1 - t0) / 1e9, "scan_s": (t_scan - t0) / 1e9, "del_s": (t1 - t_scan) / 1e9,
        "deleted": deleted, "scan_calls": calls, "server_cpu_s": cpu1 - cpu0, **ping_stats(pings, t0, t1),
    }


def module_side(r: redis.Redis, n_pred: int, n_other: int, pinger_args, settle_s: float):
    with Pinger(*pinger_args) as pinger:
        time.sleep(settle_s)
        cpu0 = server_cpu(r)
        t0 = time.monotonic_ns()
        count = r.execute_command("WARGAMING.INVALIDATE", "ALL")
        t1 = time.monotonic_ns()
        cpu1 = server_cpu(r)
        time.sleep(settle_s)
        pings = pinger.stop()
    left = r.dbsize()
    if count != n_pred or left != n_other:
        raise RuntimeError(f"INVALIDATE ALL replied {count} (expected {n_pred}); {left} keys left (expected {n_other})")
    return {"wall_s": (t1 - t0) / 1e9, "deleted": count, "server_cpu_s": cpu1 - cpu0, **ping_stats(pings, t0, t1)}


# ---------------------------------------------------------------- report

def report(args, info, a: dict, b: dict) -> str:
    def met(ok):
        return "**met**" if ok else "**MISSED**"

    rows = [
        ("wall time (s)", fmt(a["wall_s"], ".3f"), fmt(b["wall_s"], ".3f"),
         f"≤ {TARGET_WALL_S} s: {met(b['wall_s'] <= TARGET_WALL_S)}"),
        ("  of which SCAN / DEL (s)", f"{a['scan_s']:.3f} / {a['del_s']:.3f} ({a['scan_calls']:,} SCAN calls)", "", ""),
        ("server CPU used meanwhile (s)", f"{a['server_cpu_s']:.3f}", f"{b['server_cpu_s']:.3f}", ""),
        ("keys deleted (reply)", f"{a['deleted']:,}", f"{b['deleted']:,}", ""),
        ("worst PING round trip (ms)", fmt(a["worst_ms"], ".2f"), fmt(b["worst_ms"], ".2f"),
         f"≤ {TARGET_PING_MS:g} ms: {met(b['worst_ms'] is not None and b['worst_ms'] <= TARGET_PING_MS)}"),
        ("p99 PING round trip (ms)", fmt(a["p99_ms"], ".3f"), fmt(b["p99_ms"], ".3f"), ""),
        ("p50 PING round trip (ms)", fmt(a["p50_ms"], ".3f"), fmt(b["p50_ms"], ".3f"), ""),
        ("PINGs answered during the run", f"{a['count']:,}", f"{b['count']:,}", ""),
        (f"PINGs over {TARGET_PING_MS:g} ms", f"{a['over_10ms']:,}", f"{b['over_10ms']:,}", ""),
        ("idle baseline before: worst / p99 PING (ms)", f"{fmt(a['idle_worst_ms'], '.2f')} / {fmt(a['idle_p99_ms'], '.3f')}",
         f"{fmt(b['idle_worst_ms'], '.2f')} / {fmt(b['idle_p99_ms'], '.3f')}", ""),
    ]
    lines = ["| | client side: SCAN MATCH COUNT 100 + one DEL | WARGAMING.INVALIDATE ALL | target (module) |",
             "|---|---|---|---|"]
    lines += [f"| {w} | {x} | {y} | {t} |" for w, x, y, t in rows]
    return "\n".join(lines)


HEADER = """# INVALIDATE ALL vs client-side SCAN + DEL

Each run of `bench/run.sh invalidate [N_PRED] [N_OTHER]` appends a section
below (newest last). Columns and method: see bench/README.md. Targets for the
module: wall time ≤ 1.5 s and worst PING round trip ≤ 10 ms at 1,000,000
predictions + 1,000,000 other keys.
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--module", required=True)
    p.add_argument("--module-loaded", default=None, help="the copy of --module that the server loaded")
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument("--redis-cli", default="redis-cli")
    p.add_argument("--n-pred", type=int, default=1_000_000)
    p.add_argument("--n-other", type=int, default=1_000_000)
    p.add_argument("--ping-interval-ms", type=float, default=0.5,
                   help="pause between two PINGs (a stall of D ms is still seen as a round trip of about D ms)")
    p.add_argument("--settle", type=float, default=0.5, help="seconds of PINGs before and after each run")
    p.add_argument("--results", default=str(BENCH_DIR / "INVALIDATE.md"))
    args = p.parse_args()

    info = machine_info(args.redis_server, args.module_loaded or args.module)
    r = redis.Redis(host="127.0.0.1", port=args.port, socket_timeout=600)
    pinger_args = (args.port, args.ping_interval_ms / 1000)
    print(f"server 127.0.0.1:{args.port}; {args.n_pred:,} predictions + {args.n_other:,} other keys; "
          f"nproc {info['nproc']}; load {info['loadavg']}")

    print("\n== (a) client side: SCAN 0 MATCH wargaming:ml_pred:* COUNT 100 to the end, then one DEL", flush=True)
    seed(r, args.redis_cli, args.port, args.n_pred, args.n_other)
    a = client_side(r, args.n_pred, pinger_args, args.settle)
    print(f"   wall {a['wall_s']:.3f} s (SCAN {a['scan_s']:.3f} s, DEL {a['del_s']:.3f} s); deleted {a['deleted']:,}; "
          f"PING worst {fmt(a['worst_ms'], '.2f')} ms, p99 {fmt(a['p99_ms'], '.3f')} ms", flush=True)

    print("\n== (b) WARGAMING.INVALIDATE ALL", flush=True)
    seed(r, args.redis_cli, args.port, args.n_pred, args.n_other)
    b = module_side(r, args.n_pred, args.n_other, pinger_args, args.settle)
    print(f"   wall {b['wall_s']:.3f} s; replied {b['deleted']:,}; "
          f"PING worst {fmt(b['worst_ms'], '.2f')} ms, p99 {fmt(b['p99_ms'], '.3f')} ms", flush=True)
    r.flushall()

    info["loadavg_end"] = " ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    table = report(args, info, a, b)
    print("\n" + table)
    section = f"""
## {info['date']}: {args.n_pred:,} predictions + {args.n_other:,} other keys

{table}

nproc {info['nproc']} ({info['cpu']}); load average {info['loadavg']} at start, {info['loadavg_end']} at end;
{info['redis_server']}; module git {info['git_commit']} ({info['module_build']}); PING interval {args.ping_interval_ms:g} ms.
"""
    path = Path(args.results)
    if not path.exists():
        path.write_text(HEADER)
    with path.open("a") as f:
        f.write(section)
    print(f"\nappended to {path}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
