//! INVALIDATE ALL at scale: exact semantics while other clients read, write
//! and ping, overlapping calls, a caller that disconnects, and a replica
//! without the module converging through standard DELs.

mod common;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const OLD: usize = 300_000;
const OTHER: usize = 200_000;

fn seed_predictions(con: &mut redis::Connection, prefix: &str, count: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("WARGAMING.SETPRED")
                .arg(format!("{prefix}{i}"))
                .arg(format!(r#"{{"old":{i}}}"#))
                .ignore();
        }
        pipe.exec(con).unwrap();
    }
}

/// Predictions plus other keys (DEBUG POPULATE: fast, not replicated), so
/// that a sweep takes long enough to act while it runs.
fn seed_with_others(con: &mut redis::Connection, prefix: &str, predictions: usize, others: usize) {
    seed_predictions(con, prefix, predictions);
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(others)
        .arg("other")
        .exec(con)
        .unwrap();
}

/// Other keys, set with a replicated command (DEBUG POPULATE is not).
fn seed_others(con: &mut redis::Connection, count: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        let mut mset = redis::cmd("MSET");
        for i in chunk {
            mset.arg(format!("other:{i}")).arg("x");
        }
        mset.exec(con).unwrap();
    }
}

fn blocked_clients(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Sends INVALIDATE ALL on its own connection; returns once the server has
/// accepted it (the caller shows as blocked), with a handle to the reply.
fn start_invalidate_all(
    server: &Server,
    observer: &mut redis::Connection,
    blocked_before: i64,
) -> thread::JoinHandle<i64> {
    let mut con = server.connection();
    let handle = thread::spawn(move || {
        redis::cmd("WARGAMING.INVALIDATE")
            .arg("ALL")
            .query::<i64>(&mut con)
            .unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while blocked_clients(observer) <= blocked_before {
        assert!(
            !handle.is_finished(),
            "INVALIDATE ALL replied before it was seen blocked"
        );
        assert!(Instant::now() < deadline, "INVALIDATE ALL never blocked");
    }
    handle
}

fn pred_keys(con: &mut redis::Connection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("wargaming:ml_pred:*").query(con).unwrap();
    keys.sort();
    keys
}

#[test]
fn exact_semantics_under_concurrent_writers_readers_and_pings() {
    let master = Server::start();
    let replica = Server::with(Config::without_module().line(&format!("replicaof 127.0.0.1 {}", master.port)));
    let mut con = master.connection();
    seed_predictions(&mut con, "old_", OLD);
    seed_others(&mut con, OTHER);
    let mut r = replica.connection();
    wait_for("replica in sync", Duration::from_secs(60), || {
        let n: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
        n == (OLD + OTHER) as i64
    });

    let done = Arc::new(AtomicBool::new(false));
    let invalidation = start_invalidate_all(&master, &mut con, 0);

    // From here on, every old prediction is gone for GETPRED, and every
    // prediction written now survives.
    let writer = {
        let (mut c, done) = (master.connection(), done.clone());
        thread::spawn(move || {
            let mut written = Vec::new();
            let mut i = 0usize;
            while !done.load(Ordering::Relaxed) || i < 200 {
                // New ids, and overwrites of old ones.
                let id = if i.is_multiple_of(3) {
                    format!("old_{}", i * 7 % OLD)
                } else {
                    format!("new_{i}")
                };
                let value = format!(r#"{{"new":{i}}}"#);
                redis::cmd("WARGAMING.SETPRED")
                    .arg(&id)
                    .arg(&value)
                    .exec(&mut c)
                    .unwrap();
                let got: Option<String> = redis::cmd("WARGAMING.GETPRED").arg(&id).query(&mut c).unwrap();
                assert_eq!(
                    got.as_deref(),
                    Some(value.as_str()),
                    "a write after acceptance is visible at once"
                );
                written.push((id, value));
                i += 1;
            }
            written
        })
    };
    let reader = {
        let (mut c, done) = (master.connection(), done.clone());
        thread::spawn(move || {
            let mut reads = 0u64;
            let mut i = 0usize;
            while !done.load(Ordering::Relaxed) {
                // Ids the writer never touches (it overwrites multiples of 7 mod OLD only up to i*7).
                let id = format!("old_{}", (i * 7919 + 1) % OLD);
                let got: Option<String> = redis::cmd("WARGAMING.GETPRED").arg(&id).query(&mut c).unwrap();
                if let Some(v) = got {
                    assert!(
                        v.starts_with(r#"{"new""#),
                        "old prediction {id} returned after acceptance: {v}"
                    );
                }
                reads += 1;
                i += 1;
            }
            reads
        })
    };
    let pings = Arc::new(AtomicU64::new(0));
    let pinger = {
        let (mut c, done, pings) = (master.connection(), done.clone(), pings.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let pong: String = redis::cmd("PING").query(&mut c).unwrap();
                assert_eq!(pong, "PONG");
                pings.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let count = invalidation.join().unwrap();
    let pings_during = pings.load(Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let reads = reader.join().unwrap();
    pinger.join().unwrap();

    assert_eq!(count, OLD as i64, "every prediction live at acceptance is counted once");
    assert!(
        pings_during >= 10,
        "other clients were served while the sweep ran ({pings_during} PINGs)"
    );
    assert!(reads > 0);

    // Survivors: exactly the predictions written after acceptance, last value wins.
    let mut expected: std::collections::BTreeMap<String, String> = Default::default();
    for (id, value) in &written {
        expected.insert(pred_key(id), value.clone());
    }
    let keys = pred_keys(&mut con);
    assert_eq!(keys, expected.keys().cloned().collect::<Vec<_>>());
    for (key, value) in &expected {
        let got: String = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        assert_eq!(&got, value, "{key}");
    }
    let others: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(others as usize, OTHER + expected.len());

    // The replica, without the module, converges through plain DELs.
    wait_replica_synced(&master, &replica);
    assert_eq!(pred_keys(&mut r), keys);

    // The survivors, overwritten old entries included, are in the key index:
    // the next INVALIDATE ALL deletes exactly them.
    let again: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
    assert_eq!(again as usize, expected.len());
    assert!(pred_keys(&mut con).is_empty());
    master.assert_no_crash();
    replica.assert_no_crash();
}

#[test]
fn overlapping_calls_act_one_after_the_other() {
    let server = Server::start();
    let mut con = server.connection();
    seed_with_others(&mut con, "a_", 300_000, 100_000);

    let first = start_invalidate_all(&server, &mut con, 0);
    // Written after the first, before the second: the second's to delete.
    seed_predictions(&mut con, "b_", 300);
    let second = start_invalidate_all(&server, &mut con, 1);
    // Written after both: survives both.
    seed_predictions(&mut con, "c_", 200);

    let (first, second) = (first.join().unwrap(), second.join().unwrap());
    assert_eq!((first, second), (300_000, 300));
    let keys = pred_keys(&mut con);
    assert_eq!(keys.len(), 200);
    assert!(
        keys.iter().all(|k| k.starts_with("wargaming:ml_pred:{c_")),
        "{:?}",
        &keys[..3]
    );
}

#[test]
fn a_caller_that_disconnects_does_not_stop_the_sweep() {
    let server = Server::start();
    let mut con = server.connection();
    seed_with_others(&mut con, "d_", 100_000, 100_000);
    {
        // Send INVALIDATE ALL and hang up without reading the reply.
        use std::io::Write;
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        raw.write_all(b"*2\r\n$20\r\nWARGAMING.INVALIDATE\r\n$3\r\nALL\r\n")
            .unwrap();
        wait_for("INVALIDATE ALL accepted", Duration::from_secs(30), || {
            blocked_clients(&mut con) == 1
        });
    }
    wait_for("the sweep to finish", Duration::from_secs(60), || {
        pred_keys(&mut con).is_empty()
    });
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 100_000);
    let count: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
    assert_eq!(count, 0);
    server.assert_no_crash();
}

/// Old predictions in [`server_with_a_running_sweep`]: enough for the sweep
/// to last while the test acts (it visits predictions only).
const SWEPT: usize = 300_000;

/// A sweep in progress on a server with SWEPT old predictions.
fn server_with_a_running_sweep() -> (
    Server,
    redis::Connection,
    std::thread::JoinHandle<redis::RedisResult<i64>>,
) {
    let server = Server::start();
    let mut con = server.connection();
    seed_with_others(&mut con, "o_", SWEPT, 100_000);
    let mut caller = server.connection();
    let handle = thread::spawn(move || redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query::<i64>(&mut caller));
    wait_for("INVALIDATE ALL accepted", Duration::from_secs(30), || {
        handle.is_finished() || blocked_clients(&mut con) == 1
    });
    assert!(
        !handle.is_finished(),
        "the sweep ended before the test could act during it"
    );
    (server, con, handle)
}

#[test]
fn invalidating_ids_during_a_sweep_counts_each_key_once() {
    let (server, mut con, handle) = server_with_a_running_sweep();
    // Already condemned: gone for this caller, counted by the sweep.
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE")
        .arg("o_1")
        .arg("o_2")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 0);
    // A new prediction is this caller's to delete.
    redis::cmd("WARGAMING.SETPRED")
        .arg("new")
        .arg("{}")
        .exec(&mut con)
        .unwrap();
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("new").query(&mut con).unwrap();
    assert_eq!(n, 1);
    assert_eq!(handle.join().unwrap().unwrap(), SWEPT as i64);
    assert!(pred_keys(&mut con).is_empty());
    server.assert_no_crash();
}

#[test]
fn entries_rewritten_during_a_sweep_survive_it_and_not_the_next() {
    let (server, mut con, handle) = server_with_a_running_sweep();
    // Ids the sweep reaches last (it goes in id order), rewritten while it
    // runs: by the module (which counts the old value as deleted by the
    // sweep) and by a plain SET (which replaces it, not deleted by anyone).
    setpred(&mut con, "o_99999", r#"{"rewritten":1}"#);
    redis::cmd("SET")
        .arg(pred_key("o_99998"))
        .arg(r#"{"rewritten":2}"#)
        .exec(&mut con)
        .unwrap();
    assert_eq!(handle.join().unwrap().unwrap(), SWEPT as i64 - 1);
    assert_eq!(pred_keys(&mut con), vec![pred_key("o_99998"), pred_key("o_99999")]);
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
    assert_eq!(n, 2, "the rewritten entries are the next INVALIDATE ALL's");
    assert!(pred_keys(&mut con).is_empty());
    server.assert_no_crash();
}

#[test]
fn a_transaction_joins_a_running_sweep_and_finishes_it() {
    let (server, mut con, handle) = server_with_a_running_sweep();
    seed_predictions(&mut con, "t_", 10);
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .cmd("WARGAMING.INVALIDATE")
        .arg("ALL")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 10, "the transaction's own share: written after the first call");
    assert_eq!(handle.join().unwrap().unwrap(), SWEPT as i64);
    assert!(pred_keys(&mut con).is_empty());
    server.assert_no_crash();
}

#[test]
fn flushdb_during_a_sweep_ends_it_and_later_writes_survive() {
    let (server, mut con, handle) = server_with_a_running_sweep();
    redis::cmd("FLUSHDB").exec(&mut con).unwrap();
    seed_predictions(&mut con, "after_", 500);
    let count = handle.join().unwrap().unwrap();
    assert!((0..SWEPT as i64).contains(&count), "deleted before the flush: {count}");
    assert_eq!(pred_keys(&mut con).len(), 500, "written after the flush: kept");
    server.assert_no_crash();
}

#[test]
fn swapdb_during_a_sweep_follows_the_data() {
    let (server, mut con, handle) = server_with_a_running_sweep();
    // Database 1 has its own predictions, which this sweep must not touch.
    redis::cmd("SELECT").arg(1).exec(&mut con).unwrap();
    seed_predictions(&mut con, "db1_", 300);
    redis::cmd("SWAPDB").arg(0).arg(1).exec(&mut con).unwrap();
    assert_eq!(handle.join().unwrap().unwrap(), SWEPT as i64);
    // db 1 now holds the swept data, db 0 the untouched predictions.
    assert!(pred_keys(&mut con).is_empty(), "the swept data is in db 1");
    redis::cmd("SELECT").arg(0).exec(&mut con).unwrap();
    assert_eq!(pred_keys(&mut con).len(), 300);
    server.assert_no_crash();
}

#[test]
fn a_master_turned_replica_stops_its_sweep_and_converges() {
    let new_master = Server::start();
    let mut m = new_master.connection();
    seed_predictions(&mut m, "m_", 1_000);
    let (server, mut con, handle) = server_with_a_running_sweep();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(new_master.port)
        .exec(&mut con)
        .unwrap();
    // Redis itself unblocks blocked callers when a master turns replica
    // (UNBLOCKED ...), as it does for BLPOP; the module then stops the sweep.
    let e = handle.join().unwrap().expect_err("the sweep is stopped");
    let text = error_text(&e);
    assert!(
        text.starts_with("UNBLOCKED") || text.starts_with("ERR INVALIDATE ALL stopped"),
        "{text}"
    );
    wait_for("replica in sync", Duration::from_secs(60), || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut con).unwrap();
        info.contains("master_link_status:up")
    });
    wait_replica_synced(&new_master, &server);
    assert_eq!(
        pred_keys(&mut con),
        pred_keys(&mut m),
        "the replica holds its master's predictions"
    );
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 1_000);
    server.assert_no_crash();
}

#[test]
fn all_of_one_kind_deletes_that_kind_only() {
    let server = Server::start();
    let mut con = server.connection();
    seed_predictions(&mut con, "p_", 500);
    let mut pipe = redis::pipe();
    for i in 0..300 {
        pipe.cmd("WARGAMING.SETMATRIX").arg(format!("m{i}")).arg("{}").ignore();
        pipe.cmd("WARGAMING.HASHPATTERN")
            .arg(format!(r#"{{"p":{i}}}"#))
            .ignore();
    }
    pipe.exec(&mut con).unwrap();
    let kind_keys = |con: &mut redis::Connection, kind: &str| -> usize {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("wargaming:{kind}:*"))
            .query(con)
            .unwrap();
        keys.len()
    };
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE")
        .arg("ALL")
        .arg("matrix")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 300);
    assert_eq!(
        (
            kind_keys(&mut con, "ml_pred"),
            kind_keys(&mut con, "confusion"),
            kind_keys(&mut con, "vuln_pattern")
        ),
        (500, 0, 300)
    );
    let got: Option<String> = redis::cmd("WARGAMING.GETMATRIX").arg("m1").query(&mut con).unwrap();
    assert_eq!(got, None);
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE")
        .arg("ALL")
        .arg("PATTERN")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 300);
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE")
        .arg("all")
        .arg("Pred")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 500);
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 0);
    assert_eq!(stat_int(&mut con, "confusion_invalidated"), 300);
    assert_eq!(stat_int(&mut con, "vuln_pattern_invalidated"), 300);
    assert_eq!(stat_int(&mut con, "ml_pred_invalidated"), 500);
    // Unknown kinds and extra words are syntax errors; ALL declares no key.
    assert_eq!(
        error_of(&mut con, "WARGAMING.INVALIDATE", &["ALL", "PATTERNS"]),
        "ERR syntax error"
    );
    assert_eq!(
        error_of(&mut con, "WARGAMING.INVALIDATE", &["ALL", "PRED", "x"]),
        "ERR syntax error"
    );
    assert!(run(
        &mut con,
        "COMMAND",
        &["GETKEYS", "WARGAMING.INVALIDATE", "ALL", "MATRIX"]
    )
    .is_err());
    server.assert_no_crash();
}

#[test]
fn a_module_loaded_into_a_running_server_knows_its_entries() {
    let server = Server::with(Config::without_module().line("enable-module-command yes"));
    let mut con = server.connection();
    for i in 0..1_000 {
        redis::cmd("SET")
            .arg(pred_key(&format!("before_{i}")))
            .arg("{}")
            .exec(&mut con)
            .unwrap();
    }
    seed_others(&mut con, 1_000);
    redis::cmd("MODULE")
        .arg("LOAD")
        .arg(module_path().to_str().unwrap())
        .exec(&mut con)
        .unwrap();
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
    assert_eq!(n, 1_000, "entries written before the module was loaded");
    assert!(pred_keys(&mut con).is_empty());
    let left: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(left, 1_000);
    server.assert_no_crash();
}
