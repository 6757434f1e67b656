//! A command fuzzer against a real server: random invocations of every
//! WARGAMING.* command with 0 to 8 hostile arguments (empty, binary, invalid
//! UTF-8, NUL bytes, huge numbers, option words in random case,
//! multi-megabyte arguments, valid and invalid JSON, JSON nested 100,000
//! deep, ids with braces or control characters, 512/513-byte ids), half of
//! them shaped like real calls so they get past the first check, over RESP2
//! and RESP3, while the module's configs change under them.
//!
//! Every reply must be a normal reply or an error starting with `ERR`,
//! `WRONGTYPE` or `OOM` (never the module's internal error), the server must
//! answer PING after every batch, and its log must show no crash, panic or
//! caught bug. At the end the key counts in STATS still match the keyspace.
//!
//! WARGAMING_FUZZ_ITERATIONS (default 60,000) sets the number of calls,
//! WARGAMING_SEED the seed (printed on failure).

mod common;
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redis::{ConnectionLike, Value};

const COMMANDS: [&str; 9] = [
    "setpred",
    "getpred",
    "setmatrix",
    "getmatrix",
    "hashpattern",
    "setpattern",
    "getpattern",
    "invalidate",
    "stats",
];
const BATCH: usize = 100;
/// A batch is sent early once its arguments reach this size.
const BATCH_BYTES: usize = 8 << 20;
const DEPTH: usize = 100_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// `word` in random letter case.
fn random_case(rng: &mut StdRng, word: &str) -> Vec<u8> {
    word.bytes()
        .map(|b| {
            if rng.gen_bool(0.5) {
                b.to_ascii_lowercase()
            } else {
                b.to_ascii_uppercase()
            }
        })
        .collect()
}

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

fn nested(depth: usize, open: &str, close: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(depth * (open.len() + close.len()) + 8);
    v.extend_from_slice(b"{\"a\":");
    for _ in 0..depth {
        v.extend_from_slice(open.as_bytes());
    }
    v.extend_from_slice(b"1");
    for _ in 0..depth {
        v.extend_from_slice(close.as_bytes());
    }
    v.push(b'}');
    v
}

const VALID_JSON: &[&str] = &[
    "{}",
    r#"{"a":1}"#,
    r#"{"verdict":"valid","confidence":0.93}"#,
    r#"{"cwe":"CWE-79","sink":"innerHTML"}"#,
    r#"{"b":1,"a":2,"a":3}"#,
    r#"{"n":1e400,"m":-1e400,"z":-0,"w":-0.0}"#,
    r#"{"big":123456789012345678901234567890123456789,"tiny":1e-400}"#,
    r#"{"u":"\ud83d\ude00 \u00e9 \u0000 \"\\\/\b\f\n\r\t"}"#,
    r#"{"é":"ü","日本":["語"]}"#,
    r#"{"a":{"b":[null,true,false,{"c":[]}]}}"#,
    "  {\n\t\"ws\" : [ 1 , 2 ] }  ",
    r#"{"f":1.5e300,"g":5e-324,"h":0.1,"i":100.0,"j":1E+16}"#,
];

const INVALID_JSON: &[&[u8]] = &[
    b"{",
    b"}",
    b"[]",
    b"[1,2]",
    b"\"str\"",
    b"42",
    b"null",
    b"{\"a\":}",
    b"{'a':1}",
    b"{\"a\":1,}",
    b"{\"a\":1}x",
    b"{\"a\":1}{}",
    b"{\"a\":NaN}",
    b"{\"a\":Infinity}",
    b"{\"a\":01}",
    b"{\"a\":\"\\ud800\"}",
    b"{\"a\":\"\\udc00\\ud800\"}",
    b"{\"a\":\"\\u12\"}",
    b"{\"a\":\"\\x41\"}",
    b"{\"a\":\"raw\ncontrol\"}",
    b"{\"a\":\"\0\"}",
    b"\xef\xbb\xbf{}",
    b"{\"a\":\"\xff\"}",
    b"{\"\xc3\x28\":1}",
    b"{\"a\":\"\xed\xa0\x80\"}",
    b"{\"a\":\"\xc0\xaf\"}",
    b"   ",
    b"{\"a\":1",
    b"{\"a\":[1,2}",
    b"{\"a\":-}",
    b"{\"a\":1e}",
    b"{\"a\":.5}",
];

const NUMBERS: &[&str] = &[
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "99999999999999999999",
    "1e400",
    "-1",
    "0",
    "-0",
    "1",
    "10",
    "1000",
    "+5",
    "05",
    " 5",
    "5 ",
    "1.5",
    "0x10",
    "9223372036854775",
    "9223372036854776",
    "315360000",
];

const OPTIONS: &[&str] = &["EX", "PX", "NOSTORE", "ALL", "RESET", "KEEPTTL", "NX"];

/// Any hostile argument.
fn hostile(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..100) {
        0..=4 => Vec::new(),
        5..=12 => {
            let len = rng.gen_range(1..64);
            random_bytes(rng, len)
        }
        13..=16 => [
            &b"\xff\xfe"[..],
            b"\xc3\x28",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b"\xf8\x88\x80\x80\x80",
            b"a\x80b",
        ]
        .choose(rng)
        .unwrap()
        .to_vec(),
        17..=20 => [&b"\0"[..], b"a\0b", b"\0\0\0\0", b"apv\0", b"{\"a\":1}\0"]
            .choose(rng)
            .unwrap()
            .to_vec(),
        21..=32 => NUMBERS.choose(rng).unwrap().as_bytes().to_vec(),
        33..=47 => {
            let word = OPTIONS.choose(rng).unwrap();
            random_case(rng, word)
        }
        48 if rng.gen_ratio(1, 10) => big(rng),
        49..=60 => VALID_JSON.choose(rng).unwrap().as_bytes().to_vec(),
        61..=72 => INVALID_JSON.choose(rng).unwrap().to_vec(),
        73 | 74 => deep(rng),
        _ => id(rng),
    }
}

/// JSON nested far too deep, or around the module's limit of 128.
fn deep(rng: &mut StdRng) -> Vec<u8> {
    let depth = *[DEPTH, DEPTH, 126, 127, 128, 129, 1000].choose(rng).unwrap();
    match rng.gen_range(0..4) {
        0 => nested(depth, "[", "]"),
        1 => nested(depth, "{\"a\":", "}"),
        2 => nested(depth, "[{\"k\":", "}]"),
        // Unbalanced: never closed.
        _ => {
            let mut v = b"{\"a\":".to_vec();
            v.extend(std::iter::repeat_n(b'[', depth));
            v
        }
    }
}

/// A multi-megabyte argument: junk, a huge valid object, a huge id.
fn big(rng: &mut StdRng) -> Vec<u8> {
    let size = rng.gen_range(1 << 20..3 << 20);
    match rng.gen_range(0..4) {
        0 => random_bytes(rng, size),
        1 => {
            let mut v = b"{\"a\":\"".to_vec();
            v.extend(std::iter::repeat_n(b'x', size));
            v.extend_from_slice(b"\"}");
            v
        }
        2 => {
            let mut v = b"{\"a\":[".to_vec();
            for i in 0..size / 8 {
                v.extend_from_slice(format!("{},", i % 1000).as_bytes());
            }
            v.extend_from_slice(b"0]}");
            v
        }
        _ => vec![b'i'; size],
    }
}

/// Ids: fine, at the limits, or refused.
fn id(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..16) {
        0 => b"apv_001".to_vec(),
        1 => format!("apv_{}", rng.gen_range(0..50)).into_bytes(),
        2 => vec![b'a'; 512],
        3 => vec![b'a'; 513],
        4 => "é".repeat(256).into_bytes(), // 512 bytes
        5 => b"{braced}".to_vec(),
        6 => b"a}b".to_vec(),
        7 => [b"\x01" as &[u8], b"\x7f", b"a\nb", b"\x1f", b"\r\n"]
            .choose(rng)
            .unwrap()
            .to_vec(),
        8 => random_case(rng, "ALL"),
        9 => b"85a523a3a0b67d0e".to_vec(),
        10 => format!("{:016x}", rng.gen::<u64>()).into_bytes(),
        11 => b"85A523A3A0B67D0E".to_vec(),
        12 => [b"0123456789abcde" as &[u8], b"0123456789abcdef0", b"0123456789abcdeg"]
            .choose(rng)
            .unwrap()
            .to_vec(),
        13 => b"\xff\xfeid".to_vec(),
        14 => b"*".to_vec(),
        _ => b"model-v2".to_vec(),
    }
}

/// An option list shaped like a real one, often valid.
fn options(rng: &mut StdRng, out: &mut Vec<Vec<u8>>, room: usize) {
    let mut left = room;
    while left > 0 && rng.gen_bool(0.6) {
        match rng.gen_range(0..4) {
            0 if left >= 2 => {
                let word = if rng.gen_bool(0.5) { "EX" } else { "PX" };
                out.push(random_case(rng, word));
                out.push(if rng.gen_bool(0.5) {
                    rng.gen_range(1..100_000).to_string().into_bytes()
                } else {
                    NUMBERS.choose(rng).unwrap().as_bytes().to_vec()
                });
                left -= 2;
            }
            1 => {
                out.push(random_case(rng, "NOSTORE"));
                left -= 1;
            }
            _ => {
                out.push(hostile(rng));
                left -= 1;
            }
        }
    }
}

/// An invocation shaped like a real call of `name`, with hostile parts.
fn shaped(rng: &mut StdRng, name: &str) -> Vec<Vec<u8>> {
    let json = |rng: &mut StdRng| match rng.gen_range(0..6) {
        0..=2 => VALID_JSON.choose(rng).unwrap().as_bytes().to_vec(),
        3 => INVALID_JSON.choose(rng).unwrap().to_vec(),
        4 => deep(rng),
        _ => hostile(rng),
    };
    let mut args = Vec::new();
    match name {
        "setpred" | "setmatrix" => {
            args.push(id(rng));
            args.push(json(rng));
            options(rng, &mut args, 6);
        }
        "hashpattern" => {
            args.push(json(rng));
            options(rng, &mut args, 7);
        }
        "setpattern" => {
            args.push(id(rng));
            args.push(json(rng));
            options(rng, &mut args, 6);
        }
        "invalidate" => {
            for _ in 0..rng.gen_range(1..8) {
                args.push(id(rng));
            }
        }
        "stats" => {
            if rng.gen_bool(0.5) {
                args.push(random_case(rng, "RESET"));
            }
        }
        _ => args.push(id(rng)),
    }
    args
}

/// What is wrong with a reply, if anything.
fn bad_reply(reply: &Value) -> Option<String> {
    match reply {
        Value::ServerError(e) => {
            let detail = e.details().unwrap_or("");
            if !["ERR", "WRONGTYPE", "OOM"].contains(&e.code()) {
                Some(format!("error code {:?}: {detail}", e.code()))
            } else if detail.contains("internal error") {
                Some(format!("internal error: {detail}"))
            } else {
                None
            }
        }
        Value::Push { .. } => Some(format!("unexpected push {reply:?}")),
        _ => None,
    }
}

fn show(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            let shown = String::from_utf8_lossy(&a[..a.len().min(60)]).into_owned();
            if a.len() > 60 {
                format!("{shown:?}...({} bytes)", a.len())
            } else {
                format!("{shown:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Puts non-string values where the module's keys live: getters must answer
/// WRONGTYPE, setters replace them, INVALIDATE deletes them.
fn plant_foreign_types(rng: &mut StdRng, con: &mut redis::Connection) {
    let id = format!("apv_{}", rng.gen_range(0..50));
    redis::pipe()
        .cmd("DEL")
        .arg(pred_key("apv_001"))
        .arg(pred_key(&id))
        .arg(matrix_key("model-v2"))
        .arg(pattern_key("85a523a3a0b67d0e"))
        .cmd("RPUSH")
        .arg(pred_key("apv_001"))
        .arg("x")
        .cmd("ZADD")
        .arg(pred_key(&id))
        .arg(1)
        .arg("x")
        .cmd("HSET")
        .arg(matrix_key("model-v2"))
        .arg("f")
        .arg("v")
        .cmd("SADD")
        .arg(pattern_key("85a523a3a0b67d0e"))
        .arg("x")
        .exec(con)
        .unwrap();
}

/// Changes a module config at random, within its allowed range.
fn shake_config(rng: &mut StdRng, con: &mut redis::Connection) {
    let (name, value) = match rng.gen_range(0..4) {
        0 => (
            "wargaming.max-json-bytes",
            *["2", "100", "1048576", "16777216"].choose(rng).unwrap(),
        ),
        1 => ("wargaming.pred-ttl", *["1", "86400", "315360000"].choose(rng).unwrap()),
        2 => ("wargaming.matrix-ttl", *["1", "300", "315360000"].choose(rng).unwrap()),
        _ => (
            "wargaming.pattern-ttl",
            *["1", "43200", "315360000"].choose(rng).unwrap(),
        ),
    };
    redis::cmd("CONFIG").arg("SET").arg(name).arg(value).exec(con).unwrap();
}

/// Keys of each kind as a full SCAN sees them (it also reclaims expired keys).
fn scan_count(con: &mut redis::Connection, prefix: &str) -> i64 {
    scan_match(con, &format!("{prefix}*")).len() as i64
}

#[test]
fn random_hostile_calls_get_normal_replies_or_clean_errors() {
    let seed: u64 = env_or("WARGAMING_SEED", 0xbad_1dea);
    let iterations: usize = env_or("WARGAMING_FUZZ_ITERATIONS", 60_000);
    eprintln!("hostile_input seed {seed}, {iterations} calls (WARGAMING_SEED, WARGAMING_FUZZ_ITERATIONS override)");
    let mut rng = StdRng::seed_from_u64(seed);
    let server = Server::start();
    let mut resp2 = server.connection();
    let mut resp3 = server.connection_resp3();
    for con in [&mut resp2, &mut resp3] {
        con.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    }
    let mut control = server.connection();
    let started = Instant::now();
    let (mut errors, mut wrongtype, mut big_args, mut deep_args) = (0usize, 0usize, 0usize, 0usize);
    let mut done = 0;
    while done < iterations {
        if rng.gen_ratio(1, 20) {
            shake_config(&mut rng, &mut control);
        }
        if rng.gen_ratio(1, 5) {
            plant_foreign_types(&mut rng, &mut control);
        }
        let mut pipe = redis::pipe();
        let mut calls: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        let mut bytes = 0;
        while calls.len() < BATCH && bytes < BATCH_BYTES && done + calls.len() < iterations {
            let name = COMMANDS.choose(&mut rng).unwrap();
            let args = if rng.gen_bool(0.5) {
                shaped(&mut rng, name)
            } else {
                (0..rng.gen_range(0..=8)).map(|_| hostile(&mut rng)).collect()
            };
            let full = random_case(&mut rng, &format!("wargaming.{name}"));
            let c = pipe.cmd(std::str::from_utf8(&full).unwrap());
            for a in &args {
                c.arg(&a[..]);
                bytes += a.len();
                big_args += usize::from(a.len() >= 1 << 20);
                deep_args += usize::from(a.len() >= DEPTH);
            }
            calls.push((String::from_utf8_lossy(&full).into_owned(), args));
        }
        let con = if rng.gen_bool(0.5) { &mut resp2 } else { &mut resp3 };
        let replies = con
            .req_packed_commands(&pipe.get_packed_pipeline(), 0, pipe.len())
            .unwrap_or_else(|e| {
                panic!(
                    "seed {seed}, calls {done}..{}: connection failed: {e}\nlast calls:\n{}\n{}",
                    done + calls.len(),
                    calls
                        .iter()
                        .map(|(n, a)| format!("{n} {}", show(a)))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    server.log()
                )
            });
        assert_eq!(replies.len(), calls.len(), "seed {seed}: replies");
        for (i, (reply, (name, args))) in replies.iter().zip(&calls).enumerate() {
            if let Some(why) = bad_reply(reply) {
                panic!("seed {seed}, call {}: {name} {}\n{why}", done + i, show(args));
            }
            errors += usize::from(matches!(reply, Value::ServerError(_)));
            wrongtype += usize::from(matches!(reply, Value::ServerError(e) if e.code() == "WRONGTYPE"));
        }
        done += calls.len();
        let pong: String = redis::cmd("PING")
            .query(&mut control)
            .unwrap_or_else(|e| panic!("seed {seed}: no PING after {done} calls: {e}\n{}", server.log()));
        assert_eq!(pong, "PONG");
    }
    eprintln!(
        "{done} calls in {:?}: {errors} errors ({wrongtype} WRONGTYPE), {big_args} multi-megabyte and {deep_args} \
         huge arguments",
        started.elapsed()
    );
    assert!(errors > done / 4 && errors < done, "{errors} errors in {done} calls");

    // The key counts survived everything.
    for (field, prefix) in [
        ("ml_pred_keys", "wargaming:ml_pred:"),
        ("confusion_keys", "wargaming:confusion:"),
        ("vuln_pattern_keys", "wargaming:vuln_pattern:"),
    ] {
        let scanned = scan_count(&mut control, prefix);
        assert_eq!(stat_int(&mut control, field), scanned, "seed {seed}: {field}");
    }
    server.assert_no_crash();
    let log = server.log().to_lowercase();
    for sign in ["panic", "bug caught"] {
        assert!(!log.contains(sign), "seed {seed}: server log shows {sign:?}:\n{log}");
    }
}
