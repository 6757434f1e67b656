//! `keys` in STATS stays equal to what SCAN finds, per kind and database,
//! across everything Redis does to keys — on the master and on a replica.
//! Randomized with a fixed seed (printed on failure; override with
//! WARGAMING_SEED).

mod common;
use std::time::Duration;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KINDS: [(&str, &str); 3] = [
    ("ml_pred", "wargaming:ml_pred:"),
    ("confusion", "wargaming:confusion:"),
    ("vuln_pattern", "wargaming:vuln_pattern:"),
];

fn stats_keys(con: &mut redis::Connection, db: i64) -> Vec<i64> {
    redis::cmd("SELECT").arg(db).exec(con).unwrap();
    let fields: Vec<(String, redis::Value)> = redis::cmd("WARGAMING.STATS").query(con).unwrap();
    let get = |name: &str| -> i64 {
        let v = &fields
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1;
        redis::from_redis_value(v).unwrap()
    };
    let mut out: Vec<i64> = KINDS.iter().map(|(k, _)| get(&format!("{k}_keys"))).collect();
    out.push(get("keys"));
    redis::cmd("SELECT").arg(0).exec(con).unwrap();
    out
}

fn scan_keys(con: &mut redis::Connection, db: i64) -> Vec<i64> {
    redis::cmd("SELECT").arg(db).exec(con).unwrap();
    let mut out = Vec::new();
    for (_, prefix) in KINDS {
        let keys = scan_match(con, &format!("{prefix}{{*}}"));
        out.push(keys.len() as i64);
    }
    out.push(out.iter().sum());
    redis::cmd("SELECT").arg(0).exec(con).unwrap();
    out
}

/// INVALIDATE ALL of each kind deletes exactly the keys SCAN finds: the key
/// index misses no entry and counts none twice, whatever happened to keys.
fn invalidate_all_matches_scan(con: &mut redis::Connection, db: i64, context: &str) {
    redis::cmd("SELECT").arg(db).exec(con).unwrap();
    for (word, (_, prefix)) in ["PRED", "MATRIX", "PATTERN"].into_iter().zip(KINDS) {
        let pattern = format!("{prefix}{{*}}");
        let before = scan_match(con, &pattern).len() as i64;
        let n: i64 = redis::cmd("WARGAMING.INVALIDATE")
            .arg("ALL")
            .arg(word)
            .query(con)
            .unwrap();
        assert_eq!(n, before, "INVALIDATE ALL {word} in db {db}: {context}");
        let left = scan_match(con, &pattern);
        assert!(
            left.is_empty(),
            "INVALIDATE ALL {word} in db {db} left {left:?}: {context}"
        );
    }
    redis::cmd("SELECT").arg(0).exec(con).unwrap();
}

fn key(rng: &mut StdRng) -> String {
    let (_, prefix) = KINDS[rng.gen_range(0..3)];
    format!("{prefix}{{id{}}}", rng.gen_range(0..40))
}

fn ok<T>(result: redis::RedisResult<T>) {
    // Some random operations fail by design (RENAME of a missing key, ...).
    let _ = result;
}

fn random_op(rng: &mut StdRng, con: &mut redis::Connection, log: &mut Vec<String>) {
    let id = format!("id{}", rng.gen_range(0..40));
    let op = rng.gen_range(0..22);
    let k1 = key(rng);
    let k2 = key(rng);
    log.push(format!("{op} {id} {k1} {k2}"));
    match op {
        0..=2 => ok(redis::cmd("WARGAMING.SETPRED").arg(&id).arg("{}").query::<()>(con)),
        3 => ok(redis::cmd("WARGAMING.SETMATRIX").arg(&id).arg("{}").query::<()>(con)),
        4 => ok(redis::cmd("WARGAMING.HASHPATTERN")
            .arg(format!(r#"{{"p":{}}}"#, rng.gen_range(0..40)))
            .query::<String>(con)),
        5 => ok(redis::cmd("SET").arg(&k1).arg("plain").query::<()>(con)),
        6 => ok(redis::cmd("DEL").arg(&k1).arg(&k2).query::<i64>(con)),
        7 => ok(redis::cmd("UNLINK").arg(&k1).query::<i64>(con)),
        8 => ok(redis::cmd("PEXPIRE")
            .arg(&k1)
            .arg(rng.gen_range(1..15))
            .query::<i64>(con)),
        9 => ok(redis::cmd("GET").arg(&k1).query::<Option<String>>(con)),
        10 => ok(redis::cmd("RENAME").arg(&k1).arg(&k2).query::<()>(con)),
        11 => ok(redis::cmd("RENAME")
            .arg(&k1)
            .arg(format!("other:{id}"))
            .query::<()>(con)),
        12 => ok(redis::cmd("RENAME")
            .arg(format!("other:{id}"))
            .arg(&k1)
            .query::<()>(con)),
        13 => ok(redis::cmd("COPY").arg(&k1).arg(&k2).arg("REPLACE").query::<i64>(con)),
        14 => ok(redis::cmd("COPY")
            .arg(&k1)
            .arg(&k2)
            .arg("DB")
            .arg(1)
            .arg("REPLACE")
            .query::<i64>(con)),
        15 => {
            let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(&k1).query(con).unwrap();
            if let Some(dump) = dump {
                ok(redis::cmd("RESTORE")
                    .arg(&k2)
                    .arg(0)
                    .arg(dump)
                    .arg("REPLACE")
                    .query::<()>(con));
            }
        }
        16 => ok(redis::cmd("MOVE").arg(&k1).arg(1).query::<i64>(con)),
        17 => {
            redis::cmd("SELECT").arg(1).exec(con).unwrap();
            ok(redis::cmd("MOVE").arg(&k1).arg(0).query::<i64>(con));
            ok(redis::cmd("WARGAMING.SETPRED").arg(&id).arg("{}").query::<()>(con));
            redis::cmd("SELECT").arg(0).exec(con).unwrap();
        }
        18 => ok(redis::cmd("WARGAMING.INVALIDATE").arg(&id).query::<i64>(con)),
        19 => ok(redis::cmd("SET").arg(format!("other:{id}")).arg("x").query::<()>(con)),
        20 => ok(redis::cmd("SETRANGE").arg(&k1).arg(3).arg("xy").query::<i64>(con)),
        _ => ok(redis::cmd("RPUSH").arg(&k1).arg("x").query::<i64>(con)),
    }
}

/// The rare operations run in turn (each at least once per run), with
/// random operations in between.
fn rare_op(op: usize, master: &mut Server, replica: &mut Server, log: &mut Vec<String>) {
    let mut con = master.connection();
    log.push(format!("rare {op}"));
    match op {
        0 => redis::cmd("SWAPDB").arg(0).arg(1).exec(&mut con).unwrap(),
        1 => redis::cmd("FLUSHDB").exec(&mut con).unwrap(),
        2 => redis::cmd("DEBUG").arg("RELOAD").exec(&mut con).unwrap(),
        3 => {
            let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
            assert!(n >= 0);
        }
        4 => {
            // Eviction: squeeze maxmemory below what is used, then write.
            let info: String = redis::cmd("INFO").arg("memory").query(&mut con).unwrap();
            let used: i64 = info
                .lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory")
                .arg(used - 2000)
                .exec(&mut con)
                .unwrap();
            for i in 0..5 {
                ok(redis::cmd("SET")
                    .arg(format!("filler:{i}"))
                    .arg("x".repeat(500))
                    .query::<()>(&mut con));
            }
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory")
                .arg(0)
                .exec(&mut con)
                .unwrap();
        }
        5 => {
            // Restart from RDB.
            redis::cmd("SAVE").exec(&mut con).unwrap();
            let config = master.config.clone();
            master.restart(config);
            wait_replica_up(replica);
        }
        6 => {
            // Replica restart: a full sync.
            let config = replica.config.clone();
            replica.restart(config);
            wait_replica_up(replica);
        }
        _ => {
            // Restart from AOF.
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("appendonly")
                .arg("yes")
                .exec(&mut con)
                .unwrap();
            wait_for("AOF rewrite", Duration::from_secs(20), || {
                let info: String = redis::cmd("INFO").arg("persistence").query(&mut con).unwrap();
                info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
            });
            let config = master.config.clone().line("appendonly yes");
            master.restart(config);
            let mut con = master.connection();
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("appendonly")
                .arg("no")
                .exec(&mut con)
                .unwrap();
            master.config.lines.retain(|l| l != "appendonly yes");
            wait_replica_up(replica);
        }
    }
}

fn wait_replica_up(replica: &Server) {
    let mut r = replica.connection();
    wait_for("replica link up", Duration::from_secs(30), || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap();
        info.contains("master_link_status:up")
    });
}

#[test]
fn keys_match_scan_under_random_operations() {
    let seed: u64 = std::env::var("WARGAMING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261128);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut master = Server::with(Config::default().line("maxmemory-policy allkeys-random"));
    let mut replica = Server::with(Config::default().line(&format!("replicaof 127.0.0.1 {}", master.port)));
    wait_replica_up(&replica);
    let mut log: Vec<String> = Vec::new();

    for batch in 0..60 {
        {
            let mut con = master.connection();
            for _ in 0..60 {
                random_op(&mut rng, &mut con, &mut log);
            }
        }
        if batch % 6 == 5 {
            // First let short TTLs pass and have the master reclaim them (and
            // tell the replica): a reload or restart drops an expired key
            // silently, and the replica would keep its copy (hidden from SCAN
            // but still there, so still counted) for ever.
            std::thread::sleep(Duration::from_millis(20));
            let mut m = master.connection();
            for db in [0, 1] {
                scan_keys(&mut m, db);
            }
            wait_replica_synced(&master, &replica);
            rare_op(batch / 6 % 8, &mut master, &mut replica, &mut log);
            // Whatever the rare operation did, the index still names every
            // entry (expired ones reclaimed first, as above).
            std::thread::sleep(Duration::from_millis(20));
            let mut m = master.connection();
            for db in [0, 1] {
                scan_keys(&mut m, db);
            }
            for db in [0, 1] {
                let context = format!("seed {seed}, after rare op {}", batch / 6 % 8);
                invalidate_all_matches_scan(&mut m, db, &context);
            }
        }
        // Let short TTLs pass; SCAN on the master then reclaims them.
        std::thread::sleep(Duration::from_millis(20));
        let mut m = master.connection();
        let mut r = replica.connection();
        for db in [0, 1] {
            let scanned = scan_keys(&mut m, db);
            let counted = stats_keys(&mut m, db);
            assert_eq!(
                counted,
                scanned,
                "master db {db}, seed {seed}, batch {batch}, last ops: {:?}",
                &log[log.len().saturating_sub(8)..]
            );
        }
        wait_replica_synced(&master, &replica);
        for db in [0, 1] {
            let scanned = scan_keys(&mut r, db);
            let counted = stats_keys(&mut r, db);
            assert_eq!(
                counted,
                scanned,
                "replica db {db}, seed {seed}, batch {batch}, last ops: {:?}",
                &log[log.len().saturating_sub(8)..]
            );
        }
    }
    // The replica's index too: promoted, it invalidates exactly its keys.
    let mut r = replica.connection();
    redis::cmd("REPLICAOF").arg("NO").arg("ONE").exec(&mut r).unwrap();
    for db in [0, 1] {
        invalidate_all_matches_scan(&mut r, db, &format!("seed {seed}, promoted replica"));
    }
    master.assert_no_crash();
    replica.assert_no_crash();
}
