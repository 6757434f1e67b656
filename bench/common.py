"""Shared helpers for the benchmark scripts: payloads, machine facts, stats."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
import statistics
import subprocess
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"

PRED_PREFIX = "wargaming:ml_pred:{"
PRED_BYTES = 250
PATTERN_BYTES = 1024


def pred_key(apv_id: str) -> str:
    return f"{PRED_PREFIX}{apv_id}}}"


# As long as PRED_PREFIX, outside the module's namespace: the module indexes
# every key named like an entry, however written, so native baselines write
# here and carry none of its costs.
BASELINE_PREFIX = "baseline_:ml_pred:{"
assert len(BASELINE_PREFIX) == len(PRED_PREFIX)


def baseline_key(apv_id: str) -> str:
    return f"{BASELINE_PREFIX}{apv_id}}}"


def _pad_to(doc: dict, field: str, size: int) -> str:
    """Compact JSON of doc with doc[field] padded so the text is exactly size bytes."""
    doc = dict(doc)
    doc[field] = ""
    base = len(json.dumps(doc, separators=(",", ":")))
    if base > size:
        raise ValueError(f"document is already {base} bytes, over {size}")
    filler = "abcdefghijklmnopqrstuvwxyz0123456789"
    doc[field] = (filler * (size // len(filler) + 1))[: size - base]
    text = json.dumps(doc, separators=(",", ":"))
    assert len(text.encode()) == size, (len(text), size)
    return text


def prediction_json(apv_id: str = "apv-0000001") -> str:
    """A ~250-byte prediction, shaped like the service's (exactly PRED_BYTES)."""
    doc = {
        "apv_id": apv_id,
        "model_version": "wg-risk-3.2.1",
        "label": "exploitable",
        "score": 0.873142,
        "confidence": 0.912,
        "features": {"cvss": 7.5, "epss": 0.0412, "age_days": 37},
        "top_factors": ["net_reachable", "known_exploit"],
        "ts": 1732770000,
        "note": "",
    }
    return _pad_to(doc, "note", PRED_BYTES)


def pattern_json() -> str:
    """A 1 KiB vulnerability pattern: varied keys, nesting and value types (exactly PATTERN_BYTES)."""
    rng = random.Random(20241128)
    words = ["sqli", "xss", "rce", "ssrf", "lfi", "idor", "csrf", "xxe", "deser", "authz",
             "overflow", "race", "traversal", "injection", "bypass", "leak"]
    doc: dict = {
        "cwe": "CWE-89",
        "name": "parameterised query bypass via ORM raw()",
        "severity": "high",
        "cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "enabled": True,
        "deprecated": False,
        "superseded_by": None,
        "weights": [round(rng.uniform(0, 1), 6) for _ in range(8)],
        "thresholds": {"low": 0.25, "medium": 0.5, "high": 0.75, "critical": 0.9},
        "signatures": [
            {"lang": lang, "regex": rf"{w}\(.*\)", "hits": rng.randint(0, 99999), "fp_rate": round(rng.random(), 4)}
            for lang, w in zip(["python", "java", "go", "php"], rng.sample(words, 4))
        ],
        "tags": rng.sample(words, 6),
        "references": ["https://cwe.mitre.org/data/definitions/89.html", "https://owasp.org/Top10/A03_2021-Injection/"],
        "affected": [{"pkg": "django", "versions": "<4.2.8"}, {"pkg": "sqlalchemy", "versions": ">=1.4,<2.0.23"}],
        "unicode": "d\u00e9j\u00e0 vu \u2013 \u00fcber",
        "big_int": 12345678901234567890,
        "exp": 1.5e-7,
        "pad": "",
    }
    return _pad_to(doc, "pad", PATTERN_BYTES)


def machine_info(redis_server: str, module: str | None = None) -> dict:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = run("git", "-C", str(ROOT), "status", "--porcelain", "--", "src")
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "host": platform.node(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "redis_server": run(redis_server, "--version"),
        "git_commit": commit + (" (src/ modified)" if dirty else ""),
        "kernel": platform.release(),
        "module_build": _module_build(module),
    }


def _module_build(module: str | None) -> str:
    """sha256 prefix and mtime of the loaded .so: which build was measured."""
    if not module:
        return ""
    try:
        import hashlib
        data = Path(module).read_bytes()
        mtime = _dt.datetime.fromtimestamp(Path(module).stat().st_mtime, _dt.timezone.utc)
        return f"sha256 {hashlib.sha256(data).hexdigest()[:12]}, built {mtime:%Y-%m-%d %H:%M:%S} UTC"
    except OSError:
        return ""


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(sorted_values, q: float):
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def fmt(value, spec: str = ",.0f", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)
