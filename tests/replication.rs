//! Writes and deletions reach a replica that does not even have the module,
//! as standard commands with absolute expiry times.

mod common;
use std::time::Duration;

use common::*;

fn pexpiretime(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME").arg(key).query(con).unwrap()
}

fn keys(con: &mut redis::Connection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
    keys.sort();
    keys
}

/// Waits until the replica has processed everything the master sent.
fn sync(master: &mut redis::Connection) {
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(master).unwrap();
    assert_eq!(acked, 1, "replica did not acknowledge");
}

fn replica_of(master: &Server) -> Server {
    let replica = Server::with(Config::without_module().line(&format!("replicaof 127.0.0.1 {}", master.port)));
    let mut con = replica.connection();
    wait_for("replica link up", Duration::from_secs(20), || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut con).unwrap();
        info.contains("master_link_status:up")
    });
    replica
}

#[test]
fn replica_without_module_gets_writes_and_deletes_with_the_same_expiry() {
    let master = Server::start();
    let replica = replica_of(&master);
    let mut m = master.connection();
    let mut r = replica.connection();

    redis::cmd("WARGAMING.SETPRED")
        .arg("apv_1")
        .arg(r#"{"p":1}"#)
        .exec(&mut m)
        .unwrap();
    redis::cmd("WARGAMING.SETPRED")
        .arg("apv_2")
        .arg(r#"{"p":2}"#)
        .arg("PX")
        .arg(123_456)
        .exec(&mut m)
        .unwrap();
    redis::cmd("WARGAMING.SETMATRIX")
        .arg("v1")
        .arg(r#"{"tp":3}"#)
        .exec(&mut m)
        .unwrap();
    let hash: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg(r#"{"cwe":"CWE-89"}"#)
        .query(&mut m)
        .unwrap();
    redis::cmd("WARGAMING.HASHPATTERN")
        .arg(r#"{"not":"stored"}"#)
        .arg("NOSTORE")
        .exec(&mut m)
        .unwrap();
    // An overwrite replaces value and expiry on the replica too.
    redis::cmd("WARGAMING.SETPRED")
        .arg("apv_1")
        .arg(r#"{"p":11}"#)
        .arg("EX")
        .arg(50)
        .exec(&mut m)
        .unwrap();
    sync(&mut m);

    let expected = vec![
        matrix_key("v1"),
        pred_key("apv_1"),
        pred_key("apv_2"),
        pattern_key(&hash),
    ];
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(keys(&mut r), sorted);
    for key in &expected {
        let mv: Vec<u8> = redis::cmd("GET").arg(key).query(&mut m).unwrap();
        let rv: Vec<u8> = redis::cmd("GET").arg(key).query(&mut r).unwrap();
        assert_eq!(mv, rv, "{key}");
        let (mt, rt) = (pexpiretime(&mut m, key), pexpiretime(&mut r, key));
        assert!(mt > 0, "{key} has an expiry");
        assert_eq!(mt, rt, "{key}: same absolute expiry");
    }

    let n: i64 = redis::cmd("WARGAMING.INVALIDATE")
        .arg("apv_1")
        .arg("missing")
        .query(&mut m)
        .unwrap();
    assert_eq!(n, 1);
    sync(&mut m);
    let exists: i64 = redis::cmd("EXISTS").arg(pred_key("apv_1")).query(&mut r).unwrap();
    assert_eq!(exists, 0);

    for i in 0..2000 {
        redis::cmd("WARGAMING.SETPRED")
            .arg(format!("bulk{i}"))
            .arg("{}")
            .exec(&mut m)
            .unwrap();
    }
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut m).unwrap();
    assert_eq!(n, 2001);
    sync(&mut m);
    let mut left = vec![matrix_key("v1"), pattern_key(&hash)];
    left.sort();
    assert_eq!(keys(&mut r), left);
    assert_eq!(keys(&mut m), left);
    replica.assert_no_crash();
    master.assert_no_crash();
}

#[test]
fn reads_propagate_nothing() {
    let master = Server::start();
    let replica = replica_of(&master);
    let mut m = master.connection();
    redis::cmd("WARGAMING.SETPRED").arg("a").arg("{}").exec(&mut m).unwrap();
    sync(&mut m);
    let offset = |con: &mut redis::Connection| -> i64 {
        let info: String = redis::cmd("INFO").arg("replication").query(con).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = offset(&mut m);
    for _ in 0..50 {
        redis::cmd("WARGAMING.GETPRED").arg("a").exec(&mut m).unwrap();
        redis::cmd("WARGAMING.GETPRED").arg("missing").exec(&mut m).unwrap();
        redis::cmd("WARGAMING.HASHPATTERN")
            .arg("{}")
            .arg("NOSTORE")
            .exec(&mut m)
            .unwrap();
        redis::cmd("WARGAMING.STATS").exec(&mut m).unwrap();
        redis::cmd("WARGAMING.INVALIDATE").arg("missing").exec(&mut m).unwrap();
    }
    assert_eq!(offset(&mut m), before, "nothing was propagated");
    drop(replica);
}
