//! Full memory. Under `allkeys-lru` a long write stream never fails while
//! old predictions are evicted (and counted as evicted); under `noeviction`
//! the setters are refused with OOM and write nothing, while the getters,
//! STATS and INVALIDATE (ids and ALL) keep working and free the memory.

mod common;
use common::*;
use redis::{ConnectionLike, Value};

fn dbsize(con: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).unwrap()
}

/// Sends a pipeline and returns every reply, errors included.
fn replies(con: &mut redis::Connection, pipe: &redis::Pipeline) -> Vec<Value> {
    con.req_packed_commands(&pipe.get_packed_pipeline(), 0, pipe.len())
        .expect("pipeline")
}

fn value_of(i: usize) -> String {
    format!(r#"{{"apv":"apv_{i}","confidence":0.5,"pad":"{}"}}"#, "x".repeat(1000))
}

/// The error code of a reply, or None for a normal reply.
fn code(reply: &Value) -> Option<String> {
    match reply {
        Value::ServerError(e) => Some(e.code().to_string()),
        _ => None,
    }
}

#[test]
fn allkeys_lru_keeps_accepting_writes_and_counts_evictions() {
    const WRITES: usize = 50_000;
    const BATCH: usize = 250;
    let server = Server::with(
        Config::default()
            .line("maxmemory 5mb")
            .line("maxmemory-policy allkeys-lru"),
    );
    let mut con = server.connection();
    let mut largest = 0;
    for start in (0..WRITES).step_by(BATCH) {
        let mut pipe = redis::pipe();
        for i in start..start + BATCH {
            pipe.cmd("WARGAMING.SETPRED").arg(format!("apv_{i}")).arg(value_of(i));
        }
        pipe.cmd("DBSIZE");
        let got = replies(&mut con, &pipe);
        for (i, reply) in got.iter().take(BATCH).enumerate() {
            assert_eq!(*reply, Value::Okay, "write {} under allkeys-lru", start + i);
        }
        let Some(Value::Int(n)) = got.last() else {
            panic!("DBSIZE: {:?}", got.last())
        };
        largest = largest.max(*n);
    }
    // 5 MB holds a few thousand 1 KB values, never all 50,000.
    assert!(largest > 500 && largest < 6000, "DBSIZE peaked at {largest}");
    // One snapshot: any command may evict a few more keys before it runs, but
    // nothing is evicted between the commands of a transaction.
    let (keys, info, stats): (i64, String, Vec<(String, Value)>) = redis::pipe()
        .atomic()
        .cmd("DBSIZE")
        .cmd("INFO")
        .arg("stats")
        .cmd("WARGAMING.STATS")
        .query(&mut con)
        .unwrap();
    let evicted: i64 = info
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("evicted_keys");
    let stat = |field: &str| -> i64 {
        let v = stats.iter().find(|(k, _)| k == field).expect(field);
        redis::from_redis_value(&v.1).unwrap()
    };
    assert!(evicted > 0);
    // Every key is a distinct prediction with a 24 h TTL: what is not there was evicted.
    assert_eq!(keys + evicted, WRITES as i64, "keys {keys} + evicted {evicted}");
    assert_eq!(stat("ml_pred_evicted"), evicted);
    assert_eq!(stat("evicted"), evicted);
    assert_eq!(stat("ml_pred_keys"), keys);
    assert_eq!(stat("ml_pred_sets"), WRITES as i64);
    assert_eq!(stat("ml_pred_expired"), 0);
    // LRU: recent writes are there, the oldest is gone. (The LRU clock ticks
    // once a second, so among keys written in the same second eviction picks
    // at random: not even the very last write is certain to stay.)
    let recent = (WRITES - 20..WRITES)
        .filter(|i| {
            let got: Option<String> = redis::cmd("WARGAMING.GETPRED")
                .arg(format!("apv_{i}"))
                .query(&mut con)
                .unwrap();
            got == Some(value_of(*i))
        })
        .count();
    assert!(recent > 0, "none of the last 20 writes survived");
    let oldest: Option<String> = redis::cmd("WARGAMING.GETPRED").arg("apv_0").query(&mut con).unwrap();
    assert_eq!(oldest, None);
    assert!(info_int(&mut con, "memory", "used_memory") < 6 * 1024 * 1024);
    server.assert_no_crash();
}

#[test]
fn noeviction_refuses_setters_with_oom_but_reads_and_invalidate_work() {
    let server = Server::with(Config::default().line("maxmemory-policy noeviction"));
    let mut con = server.connection();
    let pred: String = value_of(0);
    let matrix = r#"{"tp":91,"fp":4,"tn":88,"fn":7}"#;
    let pattern = r#"{"cwe":"CWE-79","sink":"innerHTML"}"#;
    redis::cmd("WARGAMING.SETPRED")
        .arg("keep")
        .arg(&pred)
        .exec(&mut con)
        .unwrap();
    setmatrix(&mut con, "model-v2", matrix);
    let hash: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg(pattern)
        .query(&mut con)
        .unwrap();

    let used = info_int(&mut con, "memory", "used_memory");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 2 * 1024 * 1024)
        .exec(&mut con)
        .unwrap();
    // Fill until the first OOM.
    let mut stored = 0;
    let mut full = false;
    for start in (1..20_000).step_by(100) {
        let mut pipe = redis::pipe();
        for i in start..start + 100 {
            pipe.cmd("WARGAMING.SETPRED").arg(format!("apv_{i}")).arg(value_of(i));
        }
        for reply in replies(&mut con, &pipe) {
            match code(&reply) {
                None => {
                    assert_eq!(reply, Value::Okay);
                    stored += 1;
                }
                Some(c) if c == "OOM" => full = true,
                _ => panic!("after {stored} writes: {reply:?}"),
            }
        }
        if full {
            break;
        }
    }
    assert!(full, "memory never filled");
    assert!(stored > 500, "only {stored} writes fit in 2 MB");
    let keys = dbsize(&mut con);
    assert_eq!(keys, stored + 3);
    // Stay full whatever buffers the server frees meanwhile.
    let used = info_int(&mut con, "memory", "used_memory");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used - 256 * 1024)
        .exec(&mut con)
        .unwrap();
    let sets = stat_int(&mut con, "sets");

    // Every setter is refused with OOM and writes nothing.
    for (name, args) in [
        ("WARGAMING.SETPRED", vec!["new", "{}"]),
        ("WARGAMING.SETPRED", vec!["keep", "{}"]),
        ("WARGAMING.SETPRED", vec!["new", "{}", "EX", "10"]),
        ("WARGAMING.SETMATRIX", vec!["model-v3", "{}"]),
        ("WARGAMING.SETMATRIX", vec!["model-v2", "{}"]),
        ("WARGAMING.HASHPATTERN", vec![r#"{"new":1}"#]),
        ("WARGAMING.HASHPATTERN", vec![pattern, "PX", "100000"]),
        ("WARGAMING.SETPATTERN", vec![&hash, pattern]),
    ] {
        let e = error_of(&mut con, name, &args);
        assert!(e.starts_with("OOM "), "{name} {args:?}: {e}");
    }
    // NOSTORE writes nothing, but the command is deny-oom as a whole.
    let nostore = run(&mut con, "WARGAMING.HASHPATTERN", &[pattern, "NOSTORE"]);
    match &nostore {
        Ok(v) => assert_eq!(*v, Value::BulkString(hash.clone().into_bytes())),
        Err(e) => assert!(error_text(e).starts_with("OOM "), "{e:?}"),
    }
    eprintln!("HASHPATTERN NOSTORE with memory full: {nostore:?}");
    assert_eq!(dbsize(&mut con), keys, "a refused write wrote");
    assert_eq!(stat_int(&mut con, "sets"), sets);

    // Reads and STATS work, and read the old values.
    let got: Option<String> = redis::cmd("WARGAMING.GETPRED").arg("keep").query(&mut con).unwrap();
    assert_eq!(got.as_deref(), Some(pred.as_str()));
    let got: Option<String> = redis::cmd("WARGAMING.GETPRED").arg("new").query(&mut con).unwrap();
    assert_eq!(got, None);
    let got: Option<String> = redis::cmd("WARGAMING.GETMATRIX")
        .arg("model-v2")
        .query(&mut con)
        .unwrap();
    assert_eq!(got.as_deref(), Some(matrix));
    let got: Option<String> = redis::cmd("WARGAMING.GETPATTERN").arg(&hash).query(&mut con).unwrap();
    assert_eq!(got.as_deref(), Some(pattern));
    assert_eq!(stat_int(&mut con, "ml_pred_keys"), stored + 1);
    assert_eq!(stat_int(&mut con, "hits"), 3);
    assert_eq!(stat_int(&mut con, "misses"), 1);

    // Deleting works while full.
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE")
        .arg("apv_1")
        .arg("apv_2")
        .arg("apv_404404")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(dbsize(&mut con), keys - 2);
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
    assert_eq!(n, stored + 1 - 2, "INVALIDATE ALL while full");
    assert_eq!(dbsize(&mut con), 2, "the matrix and the pattern stay");
    assert_eq!(stat_int(&mut con, "ml_pred_keys"), 0);
    assert_eq!(stat_int(&mut con, "ml_pred_invalidated"), stored + 1);

    // The memory is back: writes are accepted again.
    let ok: String = redis::cmd("WARGAMING.SETPRED")
        .arg("new")
        .arg("{}")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    let got: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg(pattern)
        .query(&mut con)
        .unwrap();
    assert_eq!(got, hash);
    server.assert_no_crash();
}
