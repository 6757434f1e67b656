//! A soak: a million mixed commands, pipelined in batches of 1,000 over four
//! connections, each reply checked; then FLUSHALL gives the memory back
//! (used_memory within 1 MiB of where it was before the soak), the server is
//! alive and its log shows no crash and no caught bug. Fixed seed, printed
//! on failure; override with WARGAMING_SEED.

mod common;
use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{ConnectionLike, Value};

const CONNECTIONS: usize = 4;
const COMMANDS_PER_CONNECTION: usize = 250_000;
const WARM_UP_PER_CONNECTION: usize = 10_000;
const BATCH: usize = 1_000;
const PRED_IDS: u32 = 5_000;
const MATRIX_IDS: u32 = 200;
const PATTERNS: u32 = 2_000;

fn seed() -> u64 {
    std::env::var("WARGAMING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x50a4)
}

/// What a reply must look like.
enum Expect {
    Ok,
    /// HASHPATTERN of pattern `i`: its hash, the same every time.
    Hash(u32),
    /// A getter: nil, or a value written for this id.
    Value(String),
    /// GETPATTERN of a known hash: nil or exactly that pattern.
    Pattern(u32),
    /// GETPATTERN of a well-formed hash of no pattern: nil.
    Nil,
    /// INVALIDATE: 0..=n.
    Count(i64),
    Stats,
    /// An `ERR` whose detail starts with this.
    Refused(&'static str),
}

fn pattern_text(i: u32) -> String {
    format!(
        r#"{{"cwe":"CWE-{i}","sink":"s{}","n":[{i},{}],"x":{}.5}}"#,
        i % 17,
        i * 2,
        i % 10
    )
}

fn pred_value(rng: &mut StdRng, id: &str) -> String {
    format!(
        r#"{{"apv":"{id}","confidence":0.{},"pad":"{}"}}"#,
        rng.gen_range(0..1000),
        "p".repeat(rng.gen_range(0..300))
    )
}

/// Optional EX/PX; a few short PX so that keys also expire during the soak.
fn ttl(rng: &mut StdRng, c: &mut redis::Cmd) {
    match rng.gen_range(0..10) {
        0 => {
            c.arg("PX").arg(rng.gen_range(20..2_000));
        }
        1 => {
            c.arg("EX").arg(rng.gen_range(1..100_000));
        }
        _ => {}
    }
}

/// One random command and what its reply must be.
fn random_command(rng: &mut StdRng, hashes: &HashMap<u32, String>) -> (redis::Cmd, Expect) {
    let pred_id = |rng: &mut StdRng| format!("apv_{}", rng.gen_range(0..PRED_IDS));
    let roll = rng.gen_range(0..1000);
    match roll {
        0..=199 => {
            let id = pred_id(rng);
            let mut c = redis::cmd("WARGAMING.SETPRED");
            c.arg(&id).arg(pred_value(rng, &id));
            ttl(rng, &mut c);
            (c, Expect::Ok)
        }
        200..=399 => {
            let id = pred_id(rng);
            let mut c = redis::cmd("WARGAMING.GETPRED");
            c.arg(&id);
            (c, Expect::Value(format!(r#"{{"apv":"{id}","#)))
        }
        400..=469 => {
            let id = format!("model-{}", rng.gen_range(0..MATRIX_IDS));
            let mut c = redis::cmd("WARGAMING.SETMATRIX");
            c.arg(&id)
                .arg(format!(r#"{{"model":"{id}","tp":{}}}"#, rng.gen_range(0..100)));
            ttl(rng, &mut c);
            (c, Expect::Ok)
        }
        470..=539 => {
            let id = format!("model-{}", rng.gen_range(0..MATRIX_IDS));
            let mut c = redis::cmd("WARGAMING.GETMATRIX");
            c.arg(&id);
            (c, Expect::Value(format!(r#"{{"model":"{id}","#)))
        }
        540..=639 => {
            let i = rng.gen_range(0..PATTERNS);
            let mut c = redis::cmd("WARGAMING.HASHPATTERN");
            c.arg(pattern_text(i));
            if rng.gen_bool(0.3) {
                c.arg("NOSTORE");
            } else {
                ttl(rng, &mut c);
            }
            (c, Expect::Hash(i))
        }
        640..=659 => {
            // SETPATTERN with a hash learnt from HASHPATTERN, or a wrong one.
            let i = rng.gen_range(0..PATTERNS);
            let mut c = redis::cmd("WARGAMING.SETPATTERN");
            match hashes.get(&i) {
                Some(hash) => {
                    c.arg(hash).arg(pattern_text(i));
                    (c, Expect::Ok)
                }
                None => {
                    c.arg("0000000000000000").arg(pattern_text(i));
                    (c, Expect::Refused("pattern hash mismatch"))
                }
            }
        }
        660..=719 => {
            let i = rng.gen_range(0..PATTERNS);
            let mut c = redis::cmd("WARGAMING.GETPATTERN");
            match hashes.get(&i) {
                Some(hash) => {
                    c.arg(hash);
                    (c, Expect::Pattern(i))
                }
                None => {
                    c.arg(format!("{:016x}", rng.gen::<u64>() | 1 << 63));
                    (c, Expect::Nil)
                }
            }
        }
        720 if rng.gen_ratio(1, 20) => (cmd("WARGAMING.INVALIDATE", &[b"ALL"]), Expect::Count(i64::MAX)),
        720..=799 => {
            let n = rng.gen_range(1..6);
            let mut c = redis::cmd("WARGAMING.INVALIDATE");
            for _ in 0..n {
                c.arg(pred_id(rng));
            }
            (c, Expect::Count(n))
        }
        800..=819 => {
            let mut c = redis::cmd("WARGAMING.STATS");
            if roll == 800 && rng.gen_bool(0.1) {
                c.arg("RESET");
                return (c, Expect::Ok);
            }
            (c, Expect::Stats)
        }
        _ => refused(rng),
    }
}

/// A call the module must refuse.
fn refused(rng: &mut StdRng) -> (redis::Cmd, Expect) {
    let bad_ids: [(&[u8], &str); 6] = [
        (b"", "invalid id: must not be empty"),
        (b"a{b}", "invalid id: must not contain '{' or '}'"),
        (b"tab\there", "invalid id: must not contain ASCII control"),
        (b"nul\0", "invalid id: must not contain ASCII control"),
        (b"all", "invalid id: 'ALL' is reserved"),
        (&[b'x'; 513], "invalid id: longer than 512 bytes"),
    ];
    let bad_json: [(&[u8], &str); 5] = [
        (b"{bad", "invalid JSON"),
        (b"[1,2]", "invalid JSON: the value must be a JSON object"),
        (b"{\"a\":\xff}", "invalid JSON"),
        (b"{\"a\":1}{}", "invalid JSON"),
        (b"", "invalid JSON"),
    ];
    match rng.gen_range(0..6) {
        0 => {
            let (id, why) = bad_ids[rng.gen_range(0..bad_ids.len())];
            match rng.gen_range(0..3) {
                0 => (cmd("WARGAMING.GETPRED", &[id]), Expect::Refused(why)),
                1 => (cmd("WARGAMING.GETMATRIX", &[id]), Expect::Refused(why)),
                // Alone, `all` is INVALIDATE ALL; among ids, it is refused.
                _ if id == b"all" => (
                    cmd("WARGAMING.INVALIDATE", &[b"apv_1", id]),
                    Expect::Refused("ALL must come first"),
                ),
                _ => (cmd("WARGAMING.INVALIDATE", &[b"apv_1", id]), Expect::Refused(why)),
            }
        }
        1 => {
            let (id, why) = bad_ids[rng.gen_range(0..bad_ids.len())];
            let name = ["WARGAMING.SETPRED", "WARGAMING.SETMATRIX"][rng.gen_range(0..2)];
            (cmd(name, &[id, b"{}"]), Expect::Refused(why))
        }
        2 => {
            let (json, why) = bad_json[rng.gen_range(0..bad_json.len())];
            let name = ["WARGAMING.SETPRED", "WARGAMING.SETMATRIX"][rng.gen_range(0..2)];
            (cmd(name, &[b"apv_1", json]), Expect::Refused(why))
        }
        3 => {
            let (json, why) = bad_json[rng.gen_range(0..bad_json.len())];
            (cmd("WARGAMING.HASHPATTERN", &[json]), Expect::Refused(why))
        }
        4 => {
            let options: [(&[&[u8]], &str); 4] = [
                (&[b"EX", b"0"], "invalid expire time"),
                (&[b"PX", b"-5"], "invalid expire time"),
                (&[b"EX", b"ten"], "value is not an integer"),
                (&[b"KEEPTTL"], "syntax error"),
            ];
            let (opts, why) = options[rng.gen_range(0..options.len())];
            let mut c = cmd("WARGAMING.SETPRED", &[b"apv_1", b"{}"]);
            for o in opts {
                c.arg(*o);
            }
            (c, Expect::Refused(why))
        }
        _ => {
            let hash: &[u8] = [&b"ABCDEF0123456789"[..], b"123", b"0123456789abcdeg"][rng.gen_range(0..3)];
            (
                cmd("WARGAMING.GETPATTERN", &[hash]),
                Expect::Refused("invalid pattern hash"),
            )
        }
    }
}

fn check(reply: &Value, expect: &Expect, hashes: &mut HashMap<u32, String>) -> Result<(), String> {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let good = match (expect, reply) {
        (Expect::Ok, Value::Okay) => true,
        (Expect::Hash(i), Value::BulkString(h)) => {
            let h = text(h);
            let hex = h.len() == 16 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            hex && hashes.entry(*i).or_insert_with(|| h.clone()) == &h
        }
        (Expect::Value(_) | Expect::Pattern(_) | Expect::Nil, Value::Nil) => true,
        (Expect::Value(prefix), Value::BulkString(v)) => v.starts_with(prefix.as_bytes()),
        (Expect::Pattern(i), Value::BulkString(v)) => *v == pattern_text(*i).into_bytes(),
        (Expect::Count(n), Value::Int(k)) => (0..=*n).contains(k),
        (Expect::Stats, Value::Array(fields)) => {
            fields.len() > 40 && fields.first() == Some(&Value::BulkString(b"hits".to_vec()))
        }
        (Expect::Refused(why), Value::ServerError(e)) => {
            e.code() == "ERR" && e.details().is_some_and(|d| d.starts_with(why))
        }
        _ => false,
    };
    if good {
        Ok(())
    } else {
        Err(format!("{reply:?}"))
    }
}

/// Runs `commands` random commands in pipelined batches; `Err` names the
/// first wrong reply.
fn worker(url: String, seed: u64, commands: usize) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut con = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut hashes = HashMap::new();
    for batch in 0..commands.div_ceil(BATCH) {
        let mut pipe = redis::pipe();
        let mut expects = Vec::with_capacity(BATCH);
        let mut names = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let (c, expect) = random_command(&mut rng, &hashes);
            let packed = c.get_packed_command();
            names.push(String::from_utf8_lossy(&packed[..packed.len().min(120)]).replace("\r\n", " "));
            pipe.add_command(c);
            expects.push(expect);
        }
        let replies = con
            .req_packed_commands(&pipe.get_packed_pipeline(), 0, pipe.len())
            .map_err(|e| format!("batch {batch}: {e}"))?;
        if replies.len() != expects.len() {
            return Err(format!(
                "batch {batch}: {} replies to {} commands",
                replies.len(),
                BATCH
            ));
        }
        for (i, (reply, expect)) in replies.iter().zip(&expects).enumerate() {
            check(reply, expect, &mut hashes)
                .map_err(|got| format!("batch {batch} command {i} {}: got {got}", names[i]))?;
        }
    }
    Ok(())
}

fn run_workers(url: &str, seed: u64, per_connection: usize) {
    let handles: Vec<_> = (0..CONNECTIONS)
        .map(|n| {
            let url = url.to_string();
            thread::spawn(move || worker(url, seed.wrapping_add(n as u64), per_connection))
        })
        .collect();
    for (n, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("seed {seed}, connection {n}: {e}"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn used_memory(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

/// Empties the server and lets it settle; returns used_memory.
fn flush_and_measure(con: &mut redis::Connection) -> i64 {
    redis::cmd("FLUSHALL").arg("SYNC").exec(con).unwrap();
    redis::cmd("SLOWLOG").arg("RESET").exec(con).unwrap();
    redis::cmd("MEMORY").arg("PURGE").exec(con).unwrap();
    let clients = |con: &mut redis::Connection| -> usize {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(con).unwrap();
        list.lines().count()
    };
    // The workers' connections are gone.
    wait_for("worker connections to close", Duration::from_secs(10), || {
        clients(con) == 1
    });
    used_memory(con)
}

#[test]
fn a_million_mixed_commands_then_flushall_gives_the_memory_back() {
    let seed = seed();
    eprintln!("soak seed {seed} (WARGAMING_SEED overrides)");
    let server = Server::start();
    let mut con = server.connection();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("lazyfree-lazy-user-flush")
        .arg("no")
        .exec(&mut con)
        .unwrap();
    let started = Instant::now();
    // Warm-up: every code path and buffer has been used once.
    run_workers(&server.url(), seed ^ 0xffff, WARM_UP_PER_CONNECTION);
    let before = flush_and_measure(&mut con);
    let warm = started.elapsed();

    run_workers(&server.url(), seed, COMMANDS_PER_CONNECTION);
    let soaked = started.elapsed();
    let keys: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert!(keys > 1000, "only {keys} keys after the soak");

    let mut after = flush_and_measure(&mut con);
    // Freed memory may take a moment to be accounted for (lazy frees, client buffers).
    let deadline = Instant::now() + Duration::from_secs(10);
    while after - before > 1024 * 1024 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        after = flush_and_measure(&mut con);
    }
    eprintln!(
        "used_memory before {before}, after {after} (diff {}); warm-up {warm:?}, soak {:?}",
        after - before,
        soaked - warm
    );
    assert!(
        after - before <= 1024 * 1024,
        "seed {seed}: used_memory grew by {} bytes ({before} -> {after})",
        after - before
    );
    let fields: Vec<(String, Value)> = redis::cmd("WARGAMING.STATS").query(&mut con).unwrap();
    let keys_left: i64 = redis::from_redis_value(&fields.iter().find(|(k, _)| k == "keys").unwrap().1).unwrap();
    assert_eq!(keys_left, 0, "STATS keys after FLUSHALL");
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    server.assert_no_crash();
    let log = server.log();
    assert!(!log.contains("bug caught"), "{log}");
}
