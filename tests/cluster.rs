//! Redis Cluster: 3 masters + 3 replicas on loopback, every node with the
//! module. Commands named by an id are routed by it (the hash tag puts the
//! key in the id's slot); keyless ones run per master; keys survive a
//! failover and move with their TTL when slots are resharded; redis-py's
//! `RedisCluster` follows the same paths.

mod common;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::cluster::{info, Cluster, SlotMap};
use common::*;
use redis::cluster::ClusterConnection;
use redis::cluster_routing::{AggregateOp, MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{ConnectionLike, FromRedisValue, Value};

/// Runs a command on any connection (plain or cluster); panics with the
/// command on error.
fn q<T: FromRedisValue>(con: &mut dyn ConnectionLike, name: &str, args: &[&str]) -> T {
    let mut c = redis::cmd(name);
    for a in args {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("{name} {args:?}: {e}"))
}

fn try_q(con: &mut dyn ConnectionLike, name: &str, args: &[&str]) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(name);
    for a in args {
        c.arg(*a);
    }
    c.query(con)
}

/// Ids of one kind: mostly ASCII, some with spaces and non-ASCII bytes.
fn make_ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            if i % 97 == 0 {
                format!("{prefix} ü:{i}")
            } else {
                format!("{prefix}-{i}")
            }
        })
        .collect()
}

fn pred_json(id: &str) -> String {
    format!(r#"{{"apv":"{id}","verdict":"valid","confidence":0.93}}"#)
}

fn matrix_json(id: &str) -> String {
    format!(r#"{{"model":"{id}","tp":91,"fp":4,"tn":88,"fn":7}}"#)
}

fn pattern_json(i: usize) -> String {
    format!(r#"{{"cwe":"CWE-{i}","sink":"innerHTML","weight":{i}.5}}"#)
}

/// `CLUSTER KEYSLOT` of each name, pipelined on one plain connection.
fn keyslots(con: &mut redis::Connection, names: &[&str]) -> Vec<u16> {
    let mut out = Vec::with_capacity(names.len());
    for chunk in names.chunks(2000) {
        let mut pipe = redis::pipe();
        for name in chunk {
            pipe.cmd("CLUSTER").arg("KEYSLOT").arg(*name);
        }
        let slots: Vec<u16> = pipe.query(con).expect("CLUSTER KEYSLOT");
        out.extend(slots);
    }
    out
}

fn all_keys(con: &mut redis::Connection) -> HashSet<String> {
    redis::cmd("KEYS").arg("*").query(con).expect("KEYS")
}

/// Every `(id, key)` lives on the master serving `CLUSTER KEYSLOT id`, which
/// is also the key's slot, and on no other master; masters hold nothing else.
fn assert_placement(cluster: &Cluster, map: &SlotMap, entries: &[(String, String)]) {
    let masters = map.masters();
    let held: BTreeMap<u16, HashSet<String>> = masters
        .iter()
        .map(|m| (m.port, all_keys(&mut cluster.direct(m.port))))
        .collect();
    let mut con = cluster.direct(masters[0].port);
    let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
    let keys: Vec<&str> = entries.iter().map(|(_, key)| key.as_str()).collect();
    let id_slots = keyslots(&mut con, &ids);
    let key_slots = keyslots(&mut con, &keys);
    let owners = map.owners();
    for (((id, key), id_slot), key_slot) in entries.iter().zip(&id_slots).zip(&key_slots) {
        assert_eq!(id_slot, key_slot, "{key}: slot of the key differs from slot of {id:?}");
        let owner = owners[usize::from(*id_slot)];
        for (port, keys) in &held {
            assert_eq!(
                keys.contains(key),
                *port == owner,
                "{key} (slot {id_slot}, owner {owner}): presence on master {port} is wrong"
            );
        }
    }
    let total: usize = held.values().map(HashSet::len).sum();
    assert_eq!(total, entries.len(), "masters hold keys nobody wrote");
}

/// Every live replica holds exactly its master's keys.
fn assert_replicas_mirror(cluster: &Cluster, map: &SlotMap) {
    cluster.wait_replicas_caught_up();
    assert!(map.replicas().values().any(|r| !r.is_empty()), "no replica to compare");
    for (master, replicas) in map.replicas() {
        let expected = all_keys(&mut cluster.direct(master));
        for replica in replicas {
            assert_eq!(
                all_keys(&mut cluster.direct(replica)),
                expected,
                "replica {replica} differs from master {master}"
            );
        }
    }
}

/// A STATS reply (RESP2 flat array or RESP3 map) as field to integer
/// (non-integer fields are left out).
fn stats_fields(reply: &Value) -> HashMap<String, i64> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Map(pairs) => pairs.clone(),
        Value::Array(items) => items.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect(),
        other => panic!("STATS replied {other:?}"),
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| {
            let k = String::from_redis_value(&k).ok()?;
            match v {
                Value::Int(n) => Some((k, n)),
                _ => None,
            }
        })
        .collect()
}

fn stats_of(con: &mut redis::Connection) -> HashMap<String, i64> {
    stats_fields(&q::<Value>(con, "WARGAMING.STATS", &[]))
}

fn routed_all_masters(policy: Option<ResponsePolicy>) -> RoutingInfo {
    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, policy))
}

/// Keys of one kind on one node.
fn count_kind(keys: &HashSet<String>, prefix: &str) -> i64 {
    keys.iter().filter(|k| k.starts_with(prefix)).count() as i64
}

/// Runs checks that do not depend on one another, reporting every failure.
struct Checks(Vec<String>);

impl Checks {
    fn run(&mut self, name: &str, check: impl FnOnce()) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(check)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            self.0.push(format!("{name}: {message}"));
        }
    }

    fn finish(self) {
        assert!(self.0.is_empty(), "failed checks:\n{}", self.0.join("\n"));
    }
}

#[test]
fn thousands_of_ids_route_to_their_slot_owner_and_keyless_commands_run_per_master() {
    const N: usize = 3000;
    let cluster = Cluster::start();
    let map = cluster.slot_map();
    let owners = map.owners();
    let masters: Vec<u16> = map.masters().iter().map(|m| m.port).collect();
    let mut con = cluster.connection();

    let apvs = make_ids("apv", N);
    let models = make_ids("model", N);
    for id in &apvs {
        assert_eq!(q::<String>(&mut con, "WARGAMING.SETPRED", &[id, &pred_json(id)]), "OK");
    }
    for id in &models {
        assert_eq!(
            q::<String>(&mut con, "WARGAMING.SETMATRIX", &[id, &matrix_json(id)]),
            "OK"
        );
    }
    // A pattern takes two steps: the hash from any node, then SETPATTERN
    // routed by the hash.
    let mut patterns: Vec<(String, String)> = Vec::with_capacity(N);
    for i in 0..N {
        let text = pattern_json(i);
        let hash: String = q(&mut con, "WARGAMING.HASHPATTERN", &[&text, "NOSTORE"]);
        assert_eq!(q::<String>(&mut con, "WARGAMING.SETPATTERN", &[&hash, &text]), "OK");
        patterns.push((hash, text));
    }
    let hashes: HashSet<&String> = patterns.iter().map(|(h, _)| h).collect();
    assert_eq!(hashes.len(), N, "distinct patterns, distinct hashes");

    for id in &apvs {
        let got: Vec<u8> = q(&mut con, "WARGAMING.GETPRED", &[id]);
        assert_eq!(got, pred_json(id).into_bytes(), "GETPRED {id}");
    }
    for id in &models {
        let got: Vec<u8> = q(&mut con, "WARGAMING.GETMATRIX", &[id]);
        assert_eq!(got, matrix_json(id).into_bytes(), "GETMATRIX {id}");
    }
    for (hash, text) in &patterns {
        let got: Vec<u8> = q(&mut con, "WARGAMING.GETPATTERN", &[hash]);
        assert_eq!(&got, text.as_bytes(), "GETPATTERN {hash}");
    }
    let missing = "apv-never-written";
    assert_eq!(q::<Option<Vec<u8>>>(&mut con, "WARGAMING.GETPRED", &[missing]), None);
    // SETPATTERN routed by a hash that is not the pattern's is refused.
    let err = try_q(
        &mut con,
        "WARGAMING.SETPATTERN",
        &["0000000000000000", &pattern_json(1)],
    )
    .unwrap_err();
    assert!(
        error_text(&err).starts_with("ERR pattern hash mismatch"),
        "{}",
        error_text(&err)
    );

    // Slots of the ids, from the server.
    let mut plain = cluster.direct(masters[0]);
    let apv_refs: Vec<&str> = apvs.iter().map(String::as_str).collect();
    let apv_slots = keyslots(&mut plain, &apv_refs);
    let owner_of_apv: HashMap<&str, u16> = apvs
        .iter()
        .zip(&apv_slots)
        .map(|(id, slot)| (id.as_str(), owners[usize::from(*slot)]))
        .collect();

    // INVALIDATE one id at a time: every fifth prediction.
    let mut invalidated: HashSet<&str> = HashSet::new();
    for id in apvs.iter().step_by(5) {
        assert_eq!(q::<i64>(&mut con, "WARGAMING.INVALIDATE", &[id]), 1, "INVALIDATE {id}");
        assert_eq!(
            q::<i64>(&mut con, "WARGAMING.INVALIDATE", &[id]),
            0,
            "INVALIDATE {id} again"
        );
        assert_eq!(q::<Option<Vec<u8>>>(&mut con, "WARGAMING.GETPRED", &[id]), None);
        invalidated.insert(id);
    }
    // Several ids in one INVALIDATE: fine within one slot, CROSSSLOT across.
    let mut by_slot: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (id, slot) in apvs.iter().zip(&apv_slots) {
        if !invalidated.contains(id.as_str()) {
            by_slot.entry(*slot).or_default().push(id);
        }
    }
    let same_slot = by_slot
        .values()
        .find(|ids| ids.len() >= 2)
        .expect("two live ids in one slot");
    let (a, b) = (same_slot[0], same_slot[1]);
    assert_eq!(q::<i64>(&mut con, "WARGAMING.INVALIDATE", &[a, b]), 2);
    invalidated.extend([a, b]);
    let (c, d) = {
        let mut live = apvs.iter().filter(|id| !invalidated.contains(id.as_str()));
        let c = live.next().unwrap();
        let c_slot = apv_slots[apvs.iter().position(|x| x == c).unwrap()];
        let d = apvs
            .iter()
            .zip(&apv_slots)
            .find(|(id, slot)| **slot != c_slot && !invalidated.contains(id.as_str()))
            .unwrap()
            .0;
        (c.as_str(), d.as_str())
    };
    let err = try_q(&mut con, "WARGAMING.INVALIDATE", &[c, d]).unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{}", error_text(&err));

    // Every key on its owner only; replicas mirror their masters.
    let mut entries: Vec<(String, String)> = Vec::new();
    entries.extend(
        apvs.iter()
            .filter(|id| !invalidated.contains(id.as_str()))
            .map(|id| (id.clone(), pred_key(id))),
    );
    entries.extend(models.iter().map(|id| (id.clone(), matrix_key(id))));
    entries.extend(patterns.iter().map(|(hash, _)| (hash.clone(), pattern_key(hash))));
    assert_placement(&cluster, &map, &entries);
    assert_replicas_mirror(&cluster, &map);

    // STATS on each master covers that master only.
    let held: BTreeMap<u16, HashSet<String>> = masters.iter().map(|&p| (p, all_keys(&mut cluster.direct(p)))).collect();
    let routed = con
        .route_command(&redis::cmd("WARGAMING.STATS"), routed_all_masters(None))
        .expect("STATS on all masters");
    let Value::Map(per_node) = routed else {
        panic!("STATS on all masters replied {routed:?}")
    };
    let per_node: BTreeMap<u16, HashMap<String, i64>> = per_node
        .iter()
        .map(|(addr, reply)| {
            let addr = String::from_redis_value(addr).unwrap();
            let port = addr.rsplit(':').next().unwrap().parse().unwrap();
            (port, stats_fields(reply))
        })
        .collect();
    assert_eq!(per_node.keys().copied().collect::<Vec<_>>(), masters);
    let live_apvs = N - invalidated.len();
    let mut sums: HashMap<&str, i64> = HashMap::new();
    for (&port, stats) in &per_node {
        let keys = &held[&port];
        let mut owned = |ids: &[String]| {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            keyslots(&mut plain, &refs)
                .iter()
                .filter(|s| owners[usize::from(**s)] == port)
                .count() as i64
        };
        let owned_apvs = apvs.iter().filter(|id| owner_of_apv[id.as_str()] == port).count() as i64;
        let owned_invalidated = invalidated.iter().filter(|id| owner_of_apv[**id] == port).count() as i64;
        let expect = [
            ("ml_pred_keys", count_kind(keys, "wargaming:ml_pred:")),
            ("confusion_keys", count_kind(keys, "wargaming:confusion:")),
            ("vuln_pattern_keys", count_kind(keys, "wargaming:vuln_pattern:")),
            ("ml_pred_sets", owned_apvs),
            ("ml_pred_hits", owned_apvs),
            ("ml_pred_invalidated", owned_invalidated),
            ("confusion_sets", owned(&models)),
            ("confusion_hits", owned(&models)),
            (
                "vuln_pattern_sets",
                owned(&patterns.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>()),
            ),
        ];
        for (field, value) in expect {
            assert_eq!(stats[field], value, "STATS {field} on master {port}");
            *sums.entry(field).or_default() += stats[field];
        }
    }
    assert_eq!(sums["ml_pred_keys"], live_apvs as i64);
    assert_eq!(sums["ml_pred_sets"], N as i64);
    assert_eq!(sums["confusion_keys"], N as i64);
    assert_eq!(sums["vuln_pattern_keys"], N as i64);
    assert_eq!(sums["vuln_pattern_sets"], N as i64);
    assert_eq!(sums["ml_pred_invalidated"], invalidated.len() as i64);

    // The same through redis-cli on every master.
    let cli_stats = cluster.call_on_masters(&["WARGAMING.STATS"]);
    assert_eq!(cli_stats.keys().copied().collect::<Vec<_>>(), masters);
    for (port, lines) in &cli_stats {
        let fields: HashMap<&str, &str> = lines.chunks(2).map(|p| (p[0].as_str(), p[1].as_str())).collect();
        assert_eq!(
            fields["ml_pred_keys"],
            per_node[port]["ml_pred_keys"].to_string(),
            "redis-cli STATS on {port}"
        );
    }

    // INVALIDATE ALL on every master with redis-cli: each deletes its own
    // predictions, and the counts add up.
    let deleted = cluster.call_on_masters(&["WARGAMING.INVALIDATE", "ALL"]);
    assert_eq!(deleted.keys().copied().collect::<Vec<_>>(), masters);
    let mut total = 0;
    for (port, lines) in &deleted {
        assert_eq!(lines.len(), 1, "INVALIDATE ALL on {port}: {lines:?}");
        let n: i64 = lines[0]
            .parse()
            .unwrap_or_else(|_| panic!("INVALIDATE ALL on {port}: {lines:?}"));
        assert_eq!(
            n,
            count_kind(&held[port], "wargaming:ml_pred:"),
            "INVALIDATE ALL on {port}"
        );
        total += n;
    }
    assert_eq!(total, live_apvs as i64);
    let survivors: Vec<(String, String)> = entries
        .iter()
        .filter(|(_, key)| !key.starts_with("wargaming:ml_pred:"))
        .cloned()
        .collect();
    assert_placement(&cluster, &map, &survivors);
    assert_replicas_mirror(&cluster, &map);
    for id in apvs.iter().take(50) {
        assert_eq!(q::<Option<Vec<u8>>>(&mut con, "WARGAMING.GETPRED", &[id]), None);
    }

    // And with the cluster client: INVALIDATE ALL on all masters, summed.
    let fresh = make_ids("again", 300);
    for id in &fresh {
        assert_eq!(q::<String>(&mut con, "WARGAMING.SETPRED", &[id, "{}"]), "OK");
    }
    let mut all = redis::cmd("WARGAMING.INVALIDATE");
    all.arg("ALL");
    let summed = con
        .route_command(
            &all,
            routed_all_masters(Some(ResponsePolicy::Aggregate(AggregateOp::Sum))),
        )
        .expect("INVALIDATE ALL on all masters");
    assert_eq!(summed, Value::Int(300));
    assert_placement(&cluster, &map, &survivors);
    cluster.assert_no_crash();
}

/// A pattern whose text, taken as a key by a cluster client, routes to a
/// master that does not serve its hash: (text, hash, hash slot).
fn misrouted_pattern(plain: &mut redis::Connection, map: &SlotMap, from: usize) -> (String, String, u16) {
    for i in from.. {
        let text = format!(r#"{{"cwe":"CWE-{i}","sink":"eval"}}"#);
        let hash: String = q(plain, "WARGAMING.HASHPATTERN", &[&text, "NOSTORE"]);
        let slots = keyslots(plain, &[&hash, &text]);
        if map.owner_of(slots[0]) != map.owner_of(slots[1]) {
            return (text, hash, slots[0]);
        }
    }
    unreachable!()
}

#[test]
fn hashpattern_answers_on_any_node_and_a_storing_one_lands_on_the_owner() {
    let cluster = Cluster::start();
    let map = cluster.slot_map();
    let masters: Vec<u16> = map.masters().iter().map(|m| m.port).collect();
    let mut plain = cluster.direct(masters[0]);
    let text = pattern_json(7);
    let hash: String = q(&mut plain, "WARGAMING.HASHPATTERN", &[&text, "NOSTORE"]);
    let nowhere = |cluster: &Cluster, key: &str| {
        cluster.wait_replicas_caught_up();
        for port in cluster.live_ports() {
            assert!(
                !all_keys(&mut cluster.direct(port)).contains(key),
                "{key} found on node {port}"
            );
        }
    };
    let only_on_owner = |cluster: &Cluster, key: &str, owner: u16| {
        cluster.wait_replicas_caught_up();
        let replicas = map.replicas();
        for port in cluster.live_ports() {
            let expected = port == owner || replicas[&owner].contains(&port);
            assert_eq!(
                all_keys(&mut cluster.direct(port)).contains(key),
                expected,
                "{key} on node {port} (owner {owner})"
            );
        }
    };
    let mut checks = Checks(Vec::new());

    checks.run("HASHPATTERN NOSTORE on every master, PATTERNHASH on every node", || {
        for port in cluster.live_ports() {
            let is_master = masters.contains(&port);
            // HASHPATTERN is a write command (it stores unless NOSTORE):
            // replicas refuse it; the read-only PATTERNHASH runs anywhere.
            let mut attempts = vec![("WARGAMING.PATTERNHASH", vec![text.as_str()])];
            if is_master {
                attempts.push(("WARGAMING.HASHPATTERN", vec![text.as_str(), "NOSTORE"]));
            }
            for (command, args) in attempts {
                match try_q(&mut cluster.direct(port), command, &args) {
                    Ok(v) => assert_eq!(String::from_redis_value(&v).unwrap(), hash, "{command} on node {port}"),
                    Err(e) => panic!(
                        "{command} on node {port} ({}): {}",
                        role(&cluster, port),
                        error_text(&e)
                    ),
                }
            }
            if !is_master {
                let e = try_q(&mut cluster.direct(port), "WARGAMING.HASHPATTERN", &[&text, "NOSTORE"])
                    .expect_err("a replica refuses a write command");
                assert!(error_text(&e).starts_with("READONLY"), "{}", error_text(&e));
            }
        }
        nowhere(&cluster, &pattern_key(&hash));
    });

    checks.run("storing HASHPATTERN on a master that does not serve the hash", || {
        let (text, hash, slot) = misrouted_pattern(&mut plain, &map, 0);
        let owner = map.owner_of(slot).port;
        for &port in masters.iter().filter(|&&p| p != owner) {
            let mut con = cluster.direct(port);
            let sets = stats_of(&mut con)["vuln_pattern_sets"];
            assert_eq!(
                error_of(&mut con, "WARGAMING.HASHPATTERN", &[&text]),
                format!("MOVED {slot} 127.0.0.1:{owner}"),
                "from master {port}"
            );
            assert_eq!(
                stats_of(&mut con)["vuln_pattern_sets"],
                sets,
                "nothing counted on {port}"
            );
        }
        nowhere(&cluster, &pattern_key(&hash));
    });

    checks.run("storing HASHPATTERN sent straight to the owner", || {
        let (text, hash, slot) = misrouted_pattern(&mut plain, &map, 1000);
        let owner = map.owner_of(slot).port;
        let got = try_q(&mut cluster.direct(owner), "WARGAMING.HASHPATTERN", &[&text]);
        match got {
            Ok(v) => assert_eq!(String::from_redis_value(&v).unwrap(), hash),
            Err(e) => panic!("owner 127.0.0.1:{owner} of slot {slot} refused: {}", error_text(&e)),
        }
        only_on_owner(&cluster, &pattern_key(&hash), owner);
    });

    checks.run("storing HASHPATTERN through the cluster client follows MOVED", || {
        let (text, hash, slot) = misrouted_pattern(&mut plain, &map, 2000);
        let owner = map.owner_of(slot).port;
        let mut con = cluster.connection();
        let got: String = q(&mut con, "WARGAMING.HASHPATTERN", &[&text, "EX", "600"]);
        assert_eq!(got, hash);
        only_on_owner(&cluster, &pattern_key(&hash), owner);
        let stored: Vec<u8> = q(&mut con, "WARGAMING.GETPATTERN", &[&hash]);
        assert_eq!(stored, text.into_bytes());
    });

    cluster.assert_no_crash();
    checks.finish();
}

fn role(cluster: &Cluster, port: u16) -> String {
    info(&mut cluster.direct(port), "replication")
        .get("role")
        .cloned()
        .unwrap_or_default()
}

/// PEXPIRETIME of each prediction, through the cluster client.
fn expiry_times(con: &mut ClusterConnection, ids: &[String]) -> Vec<i64> {
    ids.iter()
        .map(|id| q::<i64>(con, "PEXPIRETIME", &[&pred_key(id)]))
        .collect()
}

fn assert_same_expiries(ids: &[String], before: &[i64], after: &[i64], what: &str) {
    let differ: Vec<String> = ids
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| b != a)
        .map(|(id, (b, a))| format!("{}: {b} -> {a}", pred_key(id)))
        .collect();
    assert!(
        differ.is_empty(),
        "PEXPIRETIME changed by {what} for {} of {} keys, e.g.\n{}",
        differ.len(),
        ids.len(),
        differ[..differ.len().min(5)].join("\n")
    );
}

#[test]
fn acknowledged_predictions_survive_a_master_failover() {
    const N: usize = 2000;
    let mut cluster = Cluster::start();
    let map = cluster.slot_map();
    let mut con = cluster.connection();
    let ids = make_ids("fo", N);
    for (i, id) in ids.iter().enumerate() {
        let ttl = (3600 + i).to_string();
        assert_eq!(
            q::<String>(&mut con, "WARGAMING.SETPRED", &[id, &pred_json(id), "EX", &ttl]),
            "OK"
        );
    }
    // WAIT on each master, over the connections that wrote: the writes
    // reached the replicas before the kill.
    let acked: i64 = q(&mut con, "WAIT", &["1", "10000"]);
    assert_eq!(acked, 1, "every master has its write acknowledged by its replica");
    cluster.wait_replicas_caught_up();
    let expiries = expiry_times(&mut con, &ids);

    let victim = map.owner_of(0).port;
    let heir = map.replicas()[&victim][0];
    let victim_id = cluster.node_id(victim);
    let heir_keys = all_keys(&mut cluster.direct(heir));
    assert_eq!(heir_keys, all_keys(&mut cluster.direct(victim)), "replica caught up");
    let moved_slots: Vec<u16> = (0..16384u16)
        .filter(|s| map.owners()[usize::from(*s)] == victim)
        .collect();

    cluster.kill(victim);
    let after = cluster.wait_settled();
    assert!(after.masters().iter().all(|m| m.id != victim_id));
    for slot in &moved_slots {
        assert_eq!(
            after.owner_of(*slot).port,
            heir,
            "slot {slot} now served by the promoted replica"
        );
    }
    assert_eq!(role(&cluster, heir), "master");

    // A cluster client reads everything back. (A fresh one: redis-rs's sync
    // cluster client retries a refused connection to the dead master without
    // refreshing its slot map, so one seeded before the kill never recovers.)
    let mut con = cluster.connection();
    for id in &ids {
        let got: Vec<u8> = q(&mut con, "WARGAMING.GETPRED", &[id]);
        assert_eq!(got, pred_json(id).into_bytes(), "GETPRED {id} after failover");
    }
    assert_same_expiries(&ids, &expiries, &expiry_times(&mut con, &ids), "failover");
    let entries: Vec<(String, String)> = ids.iter().map(|id| (id.clone(), pred_key(id))).collect();
    assert_placement(&cluster, &after, &entries);

    // The promoted replica counts its keys right and takes writes.
    let mut heir_con = cluster.direct(heir);
    assert_eq!(
        stats_of(&mut heir_con)["ml_pred_keys"],
        count_kind(&heir_keys, "wargaming:ml_pred:")
    );
    let newcomers = make_ids("fo-new", 200);
    for id in &newcomers {
        assert_eq!(q::<String>(&mut con, "WARGAMING.SETPRED", &[id, "{}"]), "OK");
    }
    let mut entries = entries;
    entries.extend(newcomers.iter().map(|id| (id.clone(), pred_key(id))));
    assert_placement(&cluster, &after, &entries);
    cluster.assert_no_crash();
}

/// How much later a migrated key may expire: MIGRATE sends the TTL relative
/// to the source's clock and the target adds its own, so the absolute
/// expiry moves by the transfer time (typically 0 or 1 ms).
const MIGRATE_DRIFT_MS: i64 = 1000;

#[test]
fn resharding_moves_predictions_with_their_expiry_to_the_new_owner() {
    const N: usize = 3000;
    let cluster = Cluster::start();
    let before = cluster.slot_map();
    let mut con = cluster.connection();
    let ids = make_ids("rs", N);
    for (i, id) in ids.iter().enumerate() {
        let ttl = (3_600_000 + i * 1000).to_string();
        assert_eq!(
            q::<String>(&mut con, "WARGAMING.SETPRED", &[id, &pred_json(id), "PX", &ttl]),
            "OK"
        );
    }
    let expiries = expiry_times(&mut con, &ids);
    let entries: Vec<(String, String)> = ids.iter().map(|id| (id.clone(), pred_key(id))).collect();
    assert_placement(&cluster, &before, &entries);
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let slots = keyslots(&mut cluster.direct(before.masters()[0].port), &id_refs);

    let masters = before.masters();
    let (from, to) = (&masters[0], &masters[1]);
    let entry = format!("127.0.0.1:{}", from.port);
    cluster.redis_cli(&[
        "--cluster",
        "reshard",
        &entry,
        "--cluster-from",
        &from.id,
        "--cluster-to",
        &to.id,
        "--cluster-slots",
        "1000",
        "--cluster-yes",
    ]);
    let after = cluster.wait_settled();
    let (old, new) = (before.owners(), after.owners());
    let moved = (0..16384).filter(|&s| old[s] == from.port && new[s] == to.port).count();
    assert_eq!(moved, 1000, "slots moved from {} to {}", from.port, to.port);
    assert_eq!(
        (0..16384).filter(|&s| old[s] != new[s]).count(),
        1000,
        "no other slot moved"
    );

    // Ids whose key has been migrated at least once so far.
    let mut migrated: HashSet<usize> = HashSet::new();
    let mut check = |previous: &SlotMap, map: &SlotMap, con: &mut ClusterConnection, what: &str| {
        let (old, new) = (previous.owners(), map.owners());
        migrated.extend((0..N).filter(|&i| {
            let slot = usize::from(slots[i]);
            old[slot] != new[slot]
        }));
        assert!(!migrated.is_empty(), "{what} moved no prediction");
        assert_placement(&cluster, map, &entries);
        assert_replicas_mirror(&cluster, map);
        // The client still has the previous map: it follows MOVED.
        for id in &ids {
            let got: Vec<u8> = q(con, "WARGAMING.GETPRED", &[id]);
            assert_eq!(got, pred_json(id).into_bytes(), "GETPRED {id} after {what}");
        }
        let now = expiry_times(con, &ids);
        let stayed: Vec<usize> = (0..N).filter(|i| !migrated.contains(i)).collect();
        assert_same_expiries(
            &stayed.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>(),
            &stayed.iter().map(|&i| expiries[i]).collect::<Vec<_>>(),
            &stayed.iter().map(|&i| now[i]).collect::<Vec<_>>(),
            what,
        );
        for &i in &migrated {
            let drift = now[i] - expiries[i];
            assert!(
                (0..=MIGRATE_DRIFT_MS).contains(&drift),
                "{}: PEXPIRETIME {} -> {} after {what}",
                pred_key(&ids[i]),
                expiries[i],
                now[i]
            );
        }
        // Key counts follow keys that left (MIGRATE) and arrived (RESTORE).
        for m in map.masters() {
            let keys = all_keys(&mut cluster.direct(m.port));
            assert_eq!(
                stats_of(&mut cluster.direct(m.port))["ml_pred_keys"],
                count_kind(&keys, "wargaming:ml_pred:"),
                "STATS ml_pred_keys on {} after {what}",
                m.port
            );
        }
    };
    check(&before, &after, &mut con, "reshard");

    // Rebalancing moves about as many slots on again.
    cluster.redis_cli(&["--cluster", "rebalance", &entry]);
    let balanced = cluster.wait_settled();
    assert_ne!(balanced.owners(), new, "rebalance moved slots");
    check(&after, &balanced, &mut con, "rebalance");
    cluster.assert_no_crash();
}

fn pyenv_python(root: &Path) -> PathBuf {
    let env = root.join("target/pyenv");
    let python = env.join("bin/python");
    let has_redis = |python: &Path| {
        Command::new(python)
            .args(["-c", "import redis.cluster"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_redis(&python) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&env)
            .status()
            .expect("python3 -m venv");
        assert!(status.success(), "python3 -m venv {} failed", env.display());
        let status = Command::new(env.join("bin/pip"))
            .args(["install", "--quiet", "redis"])
            .status()
            .expect("pip install redis");
        assert!(status.success(), "pip install redis failed");
        assert!(has_redis(&python), "redis-py not importable after install");
    }
    python
}

#[test]
fn redis_py_cluster_client_uses_the_documented_path() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = pyenv_python(&root);
    let cluster = Cluster::start();
    let output = Command::new(&python)
        .arg(root.join("tests/support/cluster_redis_py.py"))
        .args(cluster.live_ports().iter().map(u16::to_string))
        .output()
        .expect("run cluster_redis_py.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "cluster_redis_py.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    cluster.assert_no_crash();
}

/// A prediction migrated into a slot this node is still importing: RM_Call
/// would refuse a DEL there (no ASKING), so the sweep deletes cluster keys
/// through the key API. It must be deleted and counted, and gone for good.
#[test]
fn invalidate_all_deletes_entries_in_a_slot_being_imported() {
    let cluster = Cluster::start_with(3, 0);
    let map = cluster.slot_map();
    let masters = map.masters();
    let (to, from) = (&masters[0], &masters[1]);
    let mut src = cluster.direct(from.port);
    let mut dst = cluster.direct(to.port);
    // An id whose slot the source node serves.
    let id = (0..)
        .map(|i| format!("apv-{i}"))
        .find(|id| {
            let slot: u16 = q(&mut src, "CLUSTER", &["KEYSLOT", id]);
            map.owner_of(slot).port == from.port
        })
        .unwrap();
    let slot: u16 = q(&mut src, "CLUSTER", &["KEYSLOT", &id]);
    let slot = slot.to_string();
    let _: () = q(&mut src, "WARGAMING.SETPRED", &[&id, r#"{"old":1}"#]);
    let _: () = q(&mut dst, "CLUSTER", &["SETSLOT", &slot, "IMPORTING", &from.id]);
    let _: () = q(&mut src, "CLUSTER", &["SETSLOT", &slot, "MIGRATING", &to.id]);
    let key = pred_key(&id);
    let port = to.port.to_string();
    let _: () = q(&mut src, "MIGRATE", &["127.0.0.1", &port, &key, "0", "5000"]);
    let n: i64 = q(&mut dst, "WARGAMING.INVALIDATE", &["ALL"]);
    assert_eq!(n, 1, "the imported prediction is deleted and counted");
    let left: i64 = q(&mut dst, "DBSIZE", &[]);
    assert_eq!(left, 0);
    for node in [&mut dst, &mut src] {
        let _: () = q(node, "CLUSTER", &["SETSLOT", &slot, "NODE", &to.id]);
    }
    let again: i64 = q(&mut dst, "WARGAMING.INVALIDATE", &["ALL"]);
    assert_eq!(again, 0);
    cluster.assert_no_crash();
}
