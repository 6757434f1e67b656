//! WARGAMING.HASHPATTERN against the seed's Python, on a real server.
//!
//! `tests/support/gen_patterns.py` spells 10,000 JSON objects (every plane,
//! every escape, odd whitespace, shuffled and repeated keys, numbers of every
//! size and spelling) and gives the hash Python computes for each; every one
//! must come back from the module identical. `HASHING_SEED` and
//! `HASHING_COUNT` override the fixed seed and count to explore further.

mod common;
use common::*;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const SEED: u64 = 20_251_128;
const COUNT: usize = 10_000;
/// Commands per pipeline.
const BATCH: usize = 250;
/// One pattern in this many is stored (no NOSTORE) and read back.
const STORE_EVERY: usize = 23;

struct Case {
    index: usize,
    what: String,
    hash: String,
    canonical: String,
    text: Vec<u8>,
}

impl Case {
    fn store(&self) -> bool {
        self.index.is_multiple_of(STORE_EVERY)
    }

    fn command(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("WARGAMING.HASHPATTERN");
        cmd.arg(&self.text[..]);
        if !self.store() {
            cmd.arg("NOSTORE");
        }
        cmd
    }

    fn describe(&self, seed: u64) -> String {
        format!(
            "pattern #{} ({}) of seed {seed}\n  text     {:?}\n  python   {}\n  canonical {}",
            self.index,
            self.what,
            String::from_utf8_lossy(&self.text),
            self.hash,
            self.canonical
        )
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
        Err(_) => default,
    }
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Runs the generator and reads its JSON lines.
fn generate(seed: u64, count: usize) -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(root.join("tests/support/gen_patterns.py"))
        .args(["--seed", &seed.to_string(), "--count", &count.to_string()])
        .output()
        .expect("run python3 tests/support/gen_patterns.py");
    assert!(
        output.status.success(),
        "generator failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("generator output is UTF-8");
    let cases: Vec<Case> = stdout
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let field = |name: &str| -> String {
                value[name]
                    .as_str()
                    .unwrap_or_else(|| panic!("no {name} in {line}"))
                    .to_string()
            };
            Case {
                index: value["i"].as_u64().expect("i") as usize,
                what: field("what"),
                hash: field("hash"),
                canonical: field("canonical"),
                text: unhex(&field("text_hex")),
            }
        })
        .collect();
    assert_eq!(cases.len(), count, "generator printed {} patterns", cases.len());
    for (position, case) in cases.iter().enumerate() {
        assert_eq!(case.index, position);
        assert_eq!(case.hash.len(), 16, "{}", case.hash);
    }
    cases
}

/// Sends one batch pipelined; if the pipeline fails (an error reply), sends
/// its commands one by one to say which.
fn hash_batch(con: &mut redis::Connection, batch: &[Case], seed: u64) -> Vec<String> {
    let mut pipe = redis::pipe();
    for case in batch {
        pipe.add_command(case.command());
    }
    match pipe.query::<Vec<String>>(con) {
        Ok(hashes) => hashes,
        Err(first) => {
            let mut failures = Vec::new();
            for case in batch {
                if let Err(e) = case.command().query::<String>(con) {
                    failures.push(format!("{}\n  error    {}", case.describe(seed), error_text(&e)));
                }
            }
            panic!(
                "HASHPATTERN refused {} valid pattern(s) ({first}):\n{}",
                failures.len(),
                failures.join("\n")
            );
        }
    }
}

#[test]
fn ten_thousand_patterns_hash_like_python() {
    let seed = env_or("HASHING_SEED", SEED);
    let count = env_or("HASHING_COUNT", COUNT);
    let cases = generate(seed, count);

    let server = Server::start();
    let mut con = server.connection();
    let mut mismatches = Vec::new();
    for batch in cases.chunks(BATCH) {
        let hashes = hash_batch(&mut con, batch, seed);
        assert_eq!(hashes.len(), batch.len());
        for (case, got) in batch.iter().zip(hashes) {
            if got != case.hash {
                mismatches.push(format!("{}\n  module   {got}", case.describe(seed)));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} hashes differ from Python (seed {seed}); the first ones:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );

    // Stored patterns: the key holds the exact bytes sent (the last sent, when
    // two spellings share a hash); NOSTORE left nothing behind.
    let mut stored: HashMap<&str, &Case> = HashMap::new();
    for case in cases.iter().filter(|case| case.store()) {
        stored.insert(&case.hash, case);
    }
    assert!(stored.len() > count / STORE_EVERY / 2, "too few stored patterns");
    let mut pipe = redis::pipe();
    let stored: Vec<&Case> = stored.into_values().collect();
    for case in &stored {
        pipe.get(pattern_key(&case.hash));
    }
    let values: Vec<Option<Vec<u8>>> = pipe.query(&mut con).expect("GET stored patterns");
    for (case, value) in stored.iter().zip(values) {
        let value = value.unwrap_or_else(|| panic!("not stored: {}", case.describe(seed)));
        assert!(
            value == case.text,
            "stored bytes differ: {}\n  stored   {:?}",
            case.describe(seed),
            String::from_utf8_lossy(&value)
        );
    }
    let keys: usize = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(keys, stored.len(), "NOSTORE patterns must not be stored");
    server.assert_no_crash();
}

/// What the module refuses, with an `ERR` reply and nothing stored.
#[test]
fn refusals_are_errors() {
    let server = Server::start();
    let mut con = server.connection();
    let nested = |depth: usize| format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
    let refused: Vec<(&str, Vec<u8>)> = vec![
        // Lone surrogates (Python would accept these).
        ("high alone", br#"{"s":"\ud800"}"#.to_vec()),
        ("low alone", br#"{"s":"\udc00"}"#.to_vec()),
        ("low alone, upper case", br#"{"s":"x\uDFFFy"}"#.to_vec()),
        ("high then ASCII escape", br#"{"s":"\ud800\u0041"}"#.to_vec()),
        ("high then raw char", br#"{"s":"\ud800x"}"#.to_vec()),
        ("high then high", br#"{"s":"\ud800\ud800"}"#.to_vec()),
        ("high then short escape", br#"{"s":"\udbff\n"}"#.to_vec()),
        ("low then high", br#"{"s":"\udc00\ud800"}"#.to_vec()),
        ("high in a key", br#"{"\ud83d":1}"#.to_vec()),
        (
            "high then raw astral",
            "{\"s\":\"\\ud83d\u{1F600}\"}".as_bytes().to_vec(),
        ),
        // Not objects.
        ("array", b"[]".to_vec()),
        ("array of object", b" [{}]".to_vec()),
        ("integer", b"1".to_vec()),
        ("string", br#""s""#.to_vec()),
        ("null", b"null".to_vec()),
        ("true", b"true".to_vec()),
        ("empty", b"".to_vec()),
        ("whitespace", b" \t\r\n".to_vec()),
        // Invalid JSON.
        ("unclosed", b"{".to_vec()),
        ("unclosed string", br#"{"a":"b}"#.to_vec()),
        ("missing value", br#"{"a":}"#.to_vec()),
        ("missing colon", br#"{"a" 1}"#.to_vec()),
        ("trailing comma", br#"{"a":1,}"#.to_vec()),
        ("single quotes", b"{'a':1}".to_vec()),
        ("bare key", b"{a:1}".to_vec()),
        ("NaN", br#"{"a":NaN}"#.to_vec()),
        ("Infinity", br#"{"a":Infinity}"#.to_vec()),
        ("leading zero", br#"{"a":01}"#.to_vec()),
        ("plus sign", br#"{"a":+1}"#.to_vec()),
        ("bare point", br#"{"a":1.}"#.to_vec()),
        ("leading point", br#"{"a":.5}"#.to_vec()),
        ("empty exponent", br#"{"a":1e}"#.to_vec()),
        ("hex number", br#"{"a":0x10}"#.to_vec()),
        ("two values", b"{} {}".to_vec()),
        ("trailing garbage", br#"{"a":1}x"#.to_vec()),
        ("raw control char", b"{\"a\":\"\x01\"}".to_vec()),
        ("raw newline", b"{\"a\":\"\n\"}".to_vec()),
        ("bad escape", br#"{"a":"\x41"}"#.to_vec()),
        ("short u escape", br#"{"a":"\u41"}"#.to_vec()),
        ("non-hex u escape", br#"{"a":"\u00g1"}"#.to_vec()),
        ("invalid UTF-8", b"{\"a\":\"\xff\"}".to_vec()),
        ("overlong UTF-8", b"{\"a\":\"\xc0\xaf\"}".to_vec()),
        ("encoded surrogate", b"{\"a\":\"\xed\xa0\x80\"}".to_vec()),
        ("BOM", "\u{feff}{}".as_bytes().to_vec()),
        ("form feed whitespace", b"{\x0c}".to_vec()),
        ("vertical tab whitespace", b"{}\x0b".to_vec()),
        ("NBSP whitespace", "{\u{a0}}".as_bytes().to_vec()),
        ("comment", b"{} // no".to_vec()),
        ("NUL after object", b"{}\x00".to_vec()),
        ("deeper than 512", nested(600).into_bytes()),
    ];
    for (what, text) in &refused {
        for nostore in [true, false] {
            let mut cmd = redis::cmd("WARGAMING.HASHPATTERN");
            cmd.arg(&text[..]);
            if nostore {
                cmd.arg("NOSTORE");
            }
            match cmd.query::<redis::Value>(&mut con) {
                Ok(v) => panic!("{what}: {:?} was accepted: {v:?}", String::from_utf8_lossy(text)),
                Err(e) => {
                    let message = error_text(&e);
                    assert!(message.starts_with("ERR "), "{what}: {message}");
                }
            }
        }
    }
    // Lone surrogates get their own message.
    let e = error_of(&mut con, "WARGAMING.HASHPATTERN", &[r#"{"s":"\ud800"}"#]);
    assert!(e.contains("lone surrogate"), "{e}");
    let e = error_of(&mut con, "WARGAMING.HASHPATTERN", &["[]", "NOSTORE"]);
    assert!(e.contains("object"), "{e}");
    // Up to the limit is fine, and hashes as Python does.
    let deep = nested(511);
    let ok: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg(&deep)
        .arg("NOSTORE")
        .query(&mut con)
        .expect("511 levels are accepted");
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg("import json,hashlib,sys;print(hashlib.sha256(json.dumps(json.loads(sys.argv[1]),sort_keys=True).encode()).hexdigest()[:16])")
        .arg(&deep)
        .output()
        .expect("python3");
    assert_eq!(ok, String::from_utf8_lossy(&python.stdout).trim());
    let keys: usize = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(keys, 0, "a refused pattern was stored");
    server.assert_no_crash();
}
