#!/usr/bin/env python3
"""redis-py's RedisCluster against a cluster of nodes running the module.

Usage: cluster_redis_py.py PORT [PORT ...]   (nodes on 127.0.0.1)

Follows the documented path: SETPRED/GETPRED/INVALIDATE routed by the id,
HASHPATTERN NOSTORE on any primary then SETPATTERN routed by the hash, and
the keyless STATS and INVALIDATE ALL sent to every primary, counts summed.
Exits non-zero on any failure. Run by tests/cluster.rs.
"""

import json
import random
import sys
import traceback

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException

N = 1000


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def pred_key(apv_id):
    return "wargaming:ml_pred:{%s}" % apv_id


def pattern_key(pattern_hash):
    return "wargaming:vuln_pattern:{%s}" % pattern_hash


def as_dict(reply):
    """A STATS reply: a map on RESP3, a flat field/value list on RESP2."""
    if isinstance(reply, dict):
        items = reply.items()
    else:
        items = zip(reply[0::2], reply[1::2])
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in items}


def on_every_primary(rc, *args):
    """Runs a keyless command on every primary: {node name: reply}.

    `target_nodes=rc.get_primaries()` (a list of ClusterNode) works on every
    redis-py version; the `RedisCluster.PRIMARIES` flag is refused for
    keyless module commands by redis-py 8.x (see flags_probe).
    """
    replies = rc.execute_command(*args, target_nodes=rc.get_primaries())
    check(isinstance(replies, dict), "per-node replies expected, got %r" % (replies,))
    check(len(replies) == len(rc.get_primaries()), "one reply per primary: %r" % (replies,))
    return replies


def flags_probe(rc):
    """Says whether this redis-py accepts node flags for a keyless module command."""
    try:
        replies = rc.execute_command("WARGAMING.STATS", target_nodes=RedisCluster.PRIMARIES)
        print("target_nodes=RedisCluster.PRIMARIES works with redis-py %s (%d replies)"
              % (redis.__version__, len(replies)))
    except RedisClusterException as e:
        print("target_nodes=RedisCluster.PRIMARIES refused by redis-py %s: %s"
              % (redis.__version__, str(e).splitlines()[0]))


def main(ports):
    rc = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", p) for p in ports],
        socket_timeout=30,
    )
    primaries = rc.get_primaries()
    check(len(primaries) == 3, "3 primaries, got %r" % (primaries,))

    ids = ["py-apv-%d" % i if i % 50 else "py apv ü %d" % i for i in range(N)]
    preds = {i: json.dumps({"apv": i, "verdict": "valid", "confidence": 0.5}) for i in ids}
    for apv_id, text in preds.items():
        check(rc.execute_command("WARGAMING.SETPRED", apv_id, text) in (b"OK", True, "OK"),
              "SETPRED %s" % apv_id)
    for apv_id, text in preds.items():
        got = rc.execute_command("WARGAMING.GETPRED", apv_id)
        check(got == text.encode(), "GETPRED %s: %r" % (apv_id, got))
    check(rc.execute_command("WARGAMING.GETPRED", "py-never-written") is None, "GETPRED miss")

    # redis-py routed each id to the primary serving its slot, and the key
    # is there and on no other primary (KEYS: a keyed command would be
    # redirected).
    held = {node.name: set(node.redis_connection.keys("*")) for node in primaries}
    for apv_id in ids:
        owner = rc.get_node_from_key(apv_id)
        for node in primaries:
            present = pred_key(apv_id).encode() in held[node.name]
            check(present == (node.name == owner.name),
                  "%s on %s: %s (owner %s)" % (pred_key(apv_id), node.name, present, owner.name))

    # Patterns: the hash from any primary (NOSTORE), then SETPATTERN routed
    # by the hash.
    hashes = {}
    for i in range(N // 2):
        text = json.dumps({"cwe": "CWE-%d" % i, "sink": "innerHTML"})
        h = rc.execute_command("WARGAMING.HASHPATTERN", text, "NOSTORE",
                               target_nodes=random.choice(primaries))
        h = h.decode()
        check(rc.execute_command("WARGAMING.SETPATTERN", h, text) in (b"OK", True, "OK"), "SETPATTERN %s" % h)
        hashes[h] = text
    for h, text in hashes.items():
        got = rc.execute_command("WARGAMING.GETPATTERN", h)
        check(got == text.encode(), "GETPATTERN %s: %r" % (h, got))
        owner = rc.get_node_from_key(h)
        check(owner.redis_connection.exists(pattern_key(h)) == 1, "%s on its owner" % pattern_key(h))
        check(owner.server_type == "primary", "owner of %s is a primary" % h)

    # INVALIDATE one id: its key positions come from COMMAND GETKEYS.
    invalidated = ids[::10]
    for apv_id in invalidated:
        check(rc.execute_command("WARGAMING.INVALIDATE", apv_id) == 1, "INVALIDATE %s" % apv_id)
        check(rc.execute_command("WARGAMING.GETPRED", apv_id) is None, "GETPRED %s after INVALIDATE" % apv_id)
    live = N - len(invalidated)

    flags_probe(rc)

    stats = {name: as_dict(reply) for name, reply in on_every_primary(rc, "WARGAMING.STATS").items()}
    keys = {name: s["ml_pred_keys"] for name, s in stats.items()}
    check(sum(keys.values()) == live, "ml_pred_keys per primary %r, expected sum %d" % (keys, live))
    check(sum(s["ml_pred_sets"] for s in stats.values()) == N, "ml_pred_sets sum")
    check(sum(s["vuln_pattern_keys"] for s in stats.values()) == len(hashes), "vuln_pattern_keys sum")
    print("STATS ml_pred_keys per primary:", keys)

    deleted = on_every_primary(rc, "WARGAMING.INVALIDATE", "ALL")
    check(deleted == keys, "INVALIDATE ALL per primary %r, STATS said %r" % (deleted, keys))
    check(sum(deleted.values()) == live, "INVALIDATE ALL total %r, expected %d" % (deleted, live))
    print("INVALIDATE ALL per primary:", deleted)
    for apv_id in ids:
        check(rc.execute_command("WARGAMING.GETPRED", apv_id) is None, "GETPRED %s after ALL" % apv_id)
    for h in list(hashes)[:50]:
        check(rc.execute_command("WARGAMING.GETPATTERN", h) is not None, "patterns survive ALL")
    print("redis-py %s: ok" % redis.__version__)


if __name__ == "__main__":
    try:
        main([int(p) for p in sys.argv[1:]])
    except Exception:
        traceback.print_exc()
        sys.exit(1)
