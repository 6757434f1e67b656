//! Every command end to end: replies, errors, TTLs, counters.

mod common;
use common::*;
use redis::Value;

const PRED: &str = r#"{"apv_id": "apv_001", "confidence": 0.93, "verdict": "valid"}"#;

fn pttl(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(con).unwrap()
}

fn stat_float(con: &mut redis::Connection, field: &str) -> f64 {
    let text: String = redis::from_redis_value(&stat(con, field)).unwrap();
    text.parse().unwrap()
}

#[test]
fn module_is_listed_as_wargaming() {
    let server = Server::start();
    let mut con = server.connection();
    let modules: Vec<Vec<Value>> = redis::cmd("MODULE").arg("LIST").query(&mut con).unwrap();
    // Redis 8 also lists its built-in modules (vectorset, ...).
    let ours: Vec<&Vec<Value>> = modules
        .iter()
        .filter(|m| redis::from_redis_value::<String>(&m[1]).unwrap() == "wargaming")
        .collect();
    assert_eq!(ours.len(), 1, "{modules:?}");
    let path: String = redis::from_redis_value(&ours[0][5]).unwrap();
    assert_eq!(std::path::Path::new(&path), module_path());
}

#[test]
fn setpred_getpred_round_trip_exact_bytes_with_default_ttl() {
    let server = Server::start();
    let mut con = server.connection();
    let ok: String = redis::cmd("WARGAMING.SETPRED")
        .arg("apv_001")
        .arg(PRED)
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    let got: Vec<u8> = redis::cmd("WARGAMING.GETPRED").arg("apv_001").query(&mut con).unwrap();
    assert_eq!(got, PRED.as_bytes());
    // Plain GET sees the same plain string.
    let raw: Vec<u8> = redis::cmd("GET").arg(pred_key("apv_001")).query(&mut con).unwrap();
    assert_eq!(raw, PRED.as_bytes());
    let ttl = pttl(&mut con, &pred_key("apv_001"));
    assert!((86_399_000..=86_400_000).contains(&ttl), "{ttl}");
    let missing: Option<Vec<u8>> = redis::cmd("WARGAMING.GETPRED").arg("nope").query(&mut con).unwrap();
    assert_eq!(missing, None);
}

#[test]
fn values_are_stored_byte_for_byte() {
    let server = Server::start();
    let mut con = server.connection();
    let odd = "{ \"k\" :\t[1 , 2.50, \"caf\u{e9} \\u00e9 \u{1F600}\"] ,\"k\":null }\n";
    redis::cmd("WARGAMING.SETPRED")
        .arg("odd")
        .arg(odd)
        .exec(&mut con)
        .unwrap();
    let got: Vec<u8> = redis::cmd("WARGAMING.GETPRED").arg("odd").query(&mut con).unwrap();
    assert_eq!(got, odd.as_bytes());
    // Ids may hold any bytes but braces and controls, UTF-8 or not.
    let id: &[u8] = b"CVE-2024/\xc3\xa9:\xff x";
    setpred(&mut con, id, "{}");
    let got: Vec<u8> = redis::cmd("WARGAMING.GETPRED").arg(id).query(&mut con).unwrap();
    assert_eq!(got, b"{}");
    let mut key = b"wargaming:ml_pred:{".to_vec();
    key.extend_from_slice(id);
    key.push(b'}');
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut con).unwrap();
    assert_eq!(exists, 1);
}

#[test]
fn ex_and_px_override_the_default() {
    let server = Server::start();
    let mut con = server.connection();
    redis::cmd("WARGAMING.SETPRED")
        .arg("a")
        .arg("{}")
        .arg("ex")
        .arg(100)
        .exec(&mut con)
        .unwrap();
    let ttl = pttl(&mut con, &pred_key("a"));
    assert!((99_000..=100_000).contains(&ttl), "{ttl}");
    redis::cmd("WARGAMING.SETMATRIX")
        .arg("v1")
        .arg("{}")
        .arg("PX")
        .arg(2500)
        .exec(&mut con)
        .unwrap();
    let ttl = pttl(&mut con, &matrix_key("v1"));
    assert!((2_000..=2_500).contains(&ttl), "{ttl}");
    let hash: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg(r#"{"a":1}"#)
        .arg("Ex")
        .arg(7)
        .query(&mut con)
        .unwrap();
    let ttl = pttl(&mut con, &pattern_key(&hash));
    assert!((6_000..=7_000).contains(&ttl), "{ttl}");
}

#[test]
fn kinds_have_their_own_default_ttls_and_keys() {
    let server = Server::start();
    let mut con = server.connection();
    setmatrix(&mut con, "model-v2", r#"{"tp": 5}"#);
    let ttl = pttl(&mut con, &matrix_key("model-v2"));
    assert!((299_000..=300_000).contains(&ttl), "{ttl}");
    let got: Vec<u8> = redis::cmd("WARGAMING.GETMATRIX")
        .arg("model-v2")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, br#"{"tp": 5}"#);
    // The same id in another kind is another key.
    let none: Option<String> = redis::cmd("WARGAMING.GETPRED").arg("model-v2").query(&mut con).unwrap();
    assert_eq!(none, None);

    let pattern = r#"{"cwe": "CWE-79", "sink": "innerHTML"}"#;
    let hash: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg(pattern)
        .query(&mut con)
        .unwrap();
    assert_eq!(hash, python_hash(pattern));
    let ttl = pttl(&mut con, &pattern_key(&hash));
    assert!((43_199_000..=43_200_000).contains(&ttl), "{ttl}");
    let got: Vec<u8> = redis::cmd("WARGAMING.GETPATTERN").arg(&hash).query(&mut con).unwrap();
    assert_eq!(got, pattern.as_bytes(), "patterns are stored exactly as sent");
}

#[test]
fn hashpattern_matches_python_and_nostore_stores_nothing() {
    let server = Server::start();
    let mut con = server.connection();
    // python3 -c 'import json,hashlib;print(hashlib.sha256(json.dumps({"b":[1,2.0],"a":"\u00e9"},sort_keys=True).encode()).hexdigest()[:16])'
    let expected = python_hash(r#"{"b":[1,2.0],"a":"é"}"#);
    let hash: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg(r#"{"b":[1,2.0],"a":"é"}"#)
        .arg("NOSTORE")
        .query(&mut con)
        .unwrap();
    assert_eq!(hash, expected);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 0);
    // Same pattern, other key order and spacing: same hash, one key.
    let h1: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg(r#"{"a":"é","b":[1,2.0]}"#)
        .query(&mut con)
        .unwrap();
    let h2: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg("{ \"b\" : [1, 2.0], \"a\" : \"\\u00e9\" }")
        .query(&mut con)
        .unwrap();
    assert_eq!((h1.as_str(), h2.as_str()), (expected.as_str(), expected.as_str()));
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 1);
}

fn python_hash(text: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import json,hashlib,sys;print(hashlib.sha256(json.dumps(json.loads(sys.argv[1]),sort_keys=True).encode()).hexdigest()[:16])")
        .arg(text)
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn writes_replace_whatever_the_key_held() {
    let server = Server::start();
    let mut con = server.connection();
    redis::cmd("SET").arg(pred_key("a")).arg("old").exec(&mut con).unwrap();
    redis::cmd("RPUSH").arg(pred_key("b")).arg("x").exec(&mut con).unwrap();
    for id in ["a", "b"] {
        redis::cmd("WARGAMING.SETPRED")
            .arg(id)
            .arg(r#"{"new":1}"#)
            .exec(&mut con)
            .unwrap();
        let got: String = redis::cmd("WARGAMING.GETPRED").arg(id).query(&mut con).unwrap();
        assert_eq!(got, r#"{"new":1}"#);
    }
}

#[test]
fn getters_refuse_non_strings_with_wrongtype() {
    let server = Server::start();
    let mut con = server.connection();
    redis::cmd("RPUSH").arg(pred_key("l")).arg("x").exec(&mut con).unwrap();
    redis::cmd("SADD").arg(matrix_key("s")).arg("x").exec(&mut con).unwrap();
    redis::cmd("HSET")
        .arg(pattern_key("0123456789abcdef"))
        .arg("f")
        .arg("v")
        .exec(&mut con)
        .unwrap();
    for (cmd, id) in [
        ("WARGAMING.GETPRED", "l"),
        ("WARGAMING.GETMATRIX", "s"),
        ("WARGAMING.GETPATTERN", "0123456789abcdef"),
    ] {
        let e = error_of(&mut con, cmd, &[id]);
        assert!(e.starts_with("WRONGTYPE "), "{cmd}: {e}");
    }
}

#[test]
fn arity_errors_name_the_command() {
    let server = Server::start();
    let mut con = server.connection();
    for (cmd, args) in [
        ("WARGAMING.SETPRED", vec!["a"]),
        ("WARGAMING.SETMATRIX", vec![]),
        ("WARGAMING.GETPRED", vec![]),
        ("WARGAMING.GETPRED", vec!["a", "b"]),
        ("WARGAMING.GETMATRIX", vec![]),
        ("WARGAMING.GETPATTERN", vec!["a", "b"]),
        ("WARGAMING.HASHPATTERN", vec![]),
        ("WARGAMING.INVALIDATE", vec![]),
        ("WARGAMING.STATS", vec!["RESET", "x"]),
    ] {
        let e = error_of(&mut con, cmd, &args);
        assert_eq!(
            e,
            format!("ERR wrong number of arguments for '{}' command", cmd.to_lowercase()),
            "{cmd} {args:?}"
        );
    }
}

#[test]
fn id_rules_are_enforced_and_named() {
    let server = Server::start();
    let mut con = server.connection();
    let long = "x".repeat(513);
    let cases = [
        ("", "ERR invalid id: must not be empty"),
        (long.as_str(), "ERR invalid id: longer than 512 bytes"),
        ("a{b", "ERR invalid id: must not contain '{' or '}'"),
        ("a}b", "ERR invalid id: must not contain '{' or '}'"),
        ("a\nb", "ERR invalid id: must not contain ASCII control characters"),
        ("a\x7f", "ERR invalid id: must not contain ASCII control characters"),
        ("all", "ERR invalid id: 'ALL' is reserved"),
    ];
    for (id, expected) in cases {
        for cmd in ["WARGAMING.SETPRED", "WARGAMING.SETMATRIX"] {
            assert_eq!(error_of(&mut con, cmd, &[id, "{}"]), expected, "{cmd} {id:?}");
        }
        for cmd in ["WARGAMING.GETPRED", "WARGAMING.GETMATRIX"] {
            assert_eq!(error_of(&mut con, cmd, &[id]), expected, "{cmd} {id:?}");
        }
    }
    assert!(redis::cmd("WARGAMING.SETPRED")
        .arg("x".repeat(512))
        .arg("{}")
        .query::<String>(&mut con)
        .is_ok());
    assert_eq!(
        error_of(&mut con, "WARGAMING.SETPRED", &["a\0b", "{}"]),
        "ERR invalid id: must not contain ASCII control characters"
    );
    for bad in ["0123456789ABCDEF", "0123", "0123456789abcdefa", "zzzzzzzzzzzzzzzz"] {
        assert_eq!(
            error_of(&mut con, "WARGAMING.GETPATTERN", &[bad]),
            "ERR invalid pattern hash: must be 16 lowercase hex digits"
        );
    }
    assert_eq!(
        error_of(&mut con, "WARGAMING.INVALIDATE", &["a", "ALL"]),
        "ERR ALL must come first: WARGAMING.INVALIDATE ALL [PRED|MATRIX|PATTERN]"
    );
    assert_eq!(
        error_of(&mut con, "WARGAMING.INVALIDATE", &["ok", "a{"]),
        "ERR invalid id: must not contain '{' or '}'"
    );
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 1, "only the 512-byte id was written");
}

#[test]
fn option_errors_and_refused_writes_write_nothing() {
    let server = Server::start();
    let mut con = server.connection();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["EX", "0"],
            "ERR invalid expire time: EX/PX must be a positive integer",
        ),
        (
            vec!["PX", "-1"],
            "ERR invalid expire time: EX/PX must be a positive integer",
        ),
        (vec!["EX", "abc"], "ERR value is not an integer or out of range"),
        (vec!["EX", "1.5"], "ERR value is not an integer or out of range"),
        (vec!["EX"], "ERR syntax error"),
        (vec!["EX", "1", "PX", "1000"], "ERR syntax error"),
        (vec!["KEEPTTL"], "ERR syntax error"),
        (vec!["NOSTORE"], "ERR syntax error"),
        (vec!["EX", "9223372036854775807"], "ERR invalid expire time: too large"),
        (vec!["PX", "9223372036854775807"], "ERR invalid expire time: too large"),
    ];
    for (options, expected) in &cases {
        for cmd in ["WARGAMING.SETPRED", "WARGAMING.SETMATRIX"] {
            let mut args = vec!["id", "{}"];
            args.extend(options);
            assert_eq!(error_of(&mut con, cmd, &args), *expected, "{cmd} {options:?}");
        }
        if options != &vec!["NOSTORE"] {
            let mut args = vec!["{}"];
            args.extend(options);
            assert_eq!(
                error_of(&mut con, "WARGAMING.HASHPATTERN", &args),
                *expected,
                "HASHPATTERN {options:?}"
            );
        }
    }
    assert_eq!(
        error_of(&mut con, "WARGAMING.HASHPATTERN", &["{}", "NOSTORE", "EX", "5"]),
        "ERR EX/PX cannot be combined with NOSTORE"
    );
    assert_eq!(
        error_of(&mut con, "WARGAMING.HASHPATTERN", &["{}", "NOSTORE", "NOSTORE"]),
        "ERR syntax error"
    );
    // An existing value survives a refused overwrite.
    redis::cmd("WARGAMING.SETPRED")
        .arg("keep")
        .arg(r#"{"v":1}"#)
        .exec(&mut con)
        .unwrap();
    let before = pttl(&mut con, &pred_key("keep"));
    error_of(&mut con, "WARGAMING.SETPRED", &["keep", "{bad", "EX", "5"]);
    error_of(&mut con, "WARGAMING.SETPRED", &["keep", "{}", "EX", "0"]);
    let got: String = redis::cmd("WARGAMING.GETPRED").arg("keep").query(&mut con).unwrap();
    assert_eq!(got, r#"{"v":1}"#);
    assert!(pttl(&mut con, &pred_key("keep")) <= before);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 1);
    assert_eq!(stat_int(&mut con, "sets"), 1, "refused writes are not counted");
}

#[test]
fn json_values_must_be_one_valid_object_within_the_limit() {
    let server = Server::start();
    let mut con = server.connection();
    for bad in ["[1,2]", "1", "\"s\"", "null", "", "  "] {
        assert_eq!(
            error_of(&mut con, "WARGAMING.SETPRED", &["a", bad]),
            "ERR invalid JSON: the value must be a JSON object",
            "{bad:?}"
        );
    }
    for bad in [
        "{",
        "{\"a\":}",
        "{\"a\":1,}",
        "{'a':1}",
        "{\"a\":NaN}",
        "{} {}",
        "{\"a\":01}",
    ] {
        let e = error_of(&mut con, "WARGAMING.SETPRED", &["a", bad]);
        assert!(e.starts_with("ERR invalid JSON: "), "{bad:?}: {e}");
    }
    let e: redis::RedisError = redis::cmd("WARGAMING.SETPRED")
        .arg("a")
        .arg(&b"{\"a\":\"\xff\"}"[..])
        .query::<String>(&mut con)
        .unwrap_err();
    assert_eq!(error_text(&e), "ERR invalid JSON: not valid UTF-8");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("wargaming.max-json-bytes")
        .arg(10)
        .exec(&mut con)
        .unwrap();
    assert!(redis::cmd("WARGAMING.SETPRED")
        .arg("a")
        .arg(r#"{"a":123}"#)
        .query::<String>(&mut con)
        .is_ok());
    assert_eq!(
        error_of(&mut con, "WARGAMING.SETPRED", &["a", r#"{"a":12345}"#]),
        "ERR JSON value larger than wargaming.max-json-bytes"
    );
    assert_eq!(
        error_of(&mut con, "WARGAMING.HASHPATTERN", &[r#"{"a":12345}"#]),
        "ERR JSON value larger than wargaming.max-json-bytes"
    );
    let got: String = redis::cmd("WARGAMING.GETPRED").arg("a").query(&mut con).unwrap();
    assert_eq!(got, r#"{"a":123}"#);
}

#[test]
fn invalidate_counts_live_keys_only() {
    let server = Server::start();
    let mut con = server.connection();
    for id in ["a", "b", "c"] {
        setpred(&mut con, id, "{}");
    }
    // A key whose TTL passed but that Redis has not reclaimed yet.
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .exec(&mut con)
        .unwrap();
    redis::cmd("WARGAMING.SETPRED")
        .arg("gone")
        .arg("{}")
        .arg("PX")
        .arg(1)
        .exec(&mut con)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE")
        .arg("a")
        .arg("b")
        .arg("a")
        .arg("zz")
        .arg("gone")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let left: Vec<String> = redis::cmd("KEYS").arg("wargaming:*").query(&mut con).unwrap();
    assert_eq!(left, vec![pred_key("c")]);
    // INVALIDATE touches predictions only.
    setmatrix(&mut con, "c", "{}");
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("c").query(&mut con).unwrap();
    assert_eq!(n, 1);
    let exists: i64 = redis::cmd("EXISTS").arg(matrix_key("c")).query(&mut con).unwrap();
    assert_eq!(exists, 1);
    assert_eq!(stat_int(&mut con, "ml_pred_invalidated"), 3);
}

#[test]
fn invalidate_all_deletes_every_prediction_and_nothing_else() {
    let server = Server::start();
    let mut con = server.connection();
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("WARGAMING.SETPRED")
            .arg(format!("apv_{i}"))
            .arg(format!(r#"{{"i":{i}}}"#))
            .ignore();
    }
    for i in 0..50 {
        pipe.cmd("WARGAMING.SETMATRIX").arg(format!("m{i}")).arg("{}").ignore();
        pipe.cmd("SET").arg(format!("other:{i}")).arg("x").ignore();
        pipe.cmd("SET")
            .arg(format!("wargaming:ml_pred:x{i}"))
            .arg("not ours: no hash tag")
            .ignore();
    }
    pipe.exec(&mut con).unwrap();
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
    assert_eq!(n, 5000);
    let left: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(left, 150);
    let preds: Vec<String> = redis::cmd("KEYS").arg("wargaming:ml_pred:{*").query(&mut con).unwrap();
    assert!(preds.is_empty());
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("all").query(&mut con).unwrap();
    assert_eq!(n, 0);
    // Other databases are untouched.
    redis::cmd("SELECT").arg(1).exec(&mut con).unwrap();
    setpred(&mut con, "db1", "{}");
    redis::cmd("SELECT").arg(0).exec(&mut con).unwrap();
    setpred(&mut con, "db0", "{}");
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
    assert_eq!(n, 1);
    redis::cmd("SELECT").arg(1).exec(&mut con).unwrap();
    let got: Option<String> = redis::cmd("WARGAMING.GETPRED").arg("db1").query(&mut con).unwrap();
    assert_eq!(got.as_deref(), Some("{}"));
}

#[test]
fn invalidate_all_inside_multi_and_lua_runs_to_the_end() {
    let server = Server::start();
    let mut con = server.connection();
    for i in 0..100 {
        setpred(&mut con, format!("p{i}"), "{}");
    }
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .cmd("WARGAMING.INVALIDATE")
        .arg("ALL")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 100);
    for i in 0..7 {
        setpred(&mut con, format!("p{i}"), "{}");
    }
    let n: i64 = redis::cmd("EVAL")
        .arg("return redis.call('WARGAMING.INVALIDATE', 'ALL')")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 7);
}

#[test]
fn stats_count_hits_misses_sets_per_kind_and_reset() {
    let server = Server::start();
    let mut con = server.connection();
    setpred(&mut con, "a", "{}");
    setmatrix(&mut con, "m", "{}");
    let hash: String = redis::cmd("WARGAMING.HASHPATTERN").arg("{}").query(&mut con).unwrap();
    redis::cmd("WARGAMING.HASHPATTERN")
        .arg("{}")
        .arg("NOSTORE")
        .exec(&mut con)
        .unwrap();
    for id in ["a", "a", "a", "b"] {
        redis::cmd("WARGAMING.GETPRED").arg(id).exec(&mut con).unwrap();
    }
    redis::cmd("WARGAMING.GETMATRIX").arg("zz").exec(&mut con).unwrap();
    redis::cmd("WARGAMING.GETPATTERN").arg(&hash).exec(&mut con).unwrap();
    // Plain GETs are not the module's business.
    redis::cmd("GET").arg(pred_key("a")).exec(&mut con).unwrap();
    assert_eq!(stat_int(&mut con, "hits"), 4);
    assert_eq!(stat_int(&mut con, "misses"), 2);
    assert!((stat_float(&mut con, "hit_ratio") - 4.0 / 6.0).abs() < 1e-9);
    assert_eq!(stat_int(&mut con, "sets"), 3, "NOSTORE stores nothing");
    assert_eq!(stat_int(&mut con, "ml_pred_hits"), 3);
    assert_eq!(stat_int(&mut con, "ml_pred_misses"), 1);
    assert!((stat_float(&mut con, "ml_pred_hit_ratio") - 0.75).abs() < 1e-9);
    assert_eq!(stat_int(&mut con, "ml_pred_sets"), 1);
    assert_eq!(stat_int(&mut con, "confusion_hits"), 0);
    assert_eq!(stat_int(&mut con, "confusion_misses"), 1);
    assert_eq!(stat_float(&mut con, "confusion_hit_ratio"), 0.0);
    assert_eq!(stat_int(&mut con, "confusion_sets"), 1);
    assert_eq!(stat_int(&mut con, "vuln_pattern_hits"), 1);
    assert_eq!(stat_int(&mut con, "vuln_pattern_sets"), 1);
    let ok: String = redis::cmd("WARGAMING.STATS").arg("reset").query(&mut con).unwrap();
    assert_eq!(ok, "OK");
    for field in ["hits", "misses", "sets", "ml_pred_hits", "vuln_pattern_sets"] {
        assert_eq!(stat_int(&mut con, field), 0, "{field}");
    }
    assert_eq!(stat_float(&mut con, "hit_ratio"), 0.0);
    assert_eq!(error_of(&mut con, "WARGAMING.STATS", &["CLEAR"]), "ERR syntax error");
}

#[test]
fn stats_read_clients_and_memory_from_the_server() {
    let server = Server::start();
    let mut con = server.connection();
    let _others: Vec<redis::Connection> = (0..3).map(|_| server.connection()).collect();
    assert_eq!(stat_int(&mut con, "connected_clients"), 4);
    let used: i64 = stat_int(&mut con, "used_memory");
    assert!(used > 100_000, "{used}");
    let human: String = redis::from_redis_value(&stat(&mut con, "used_memory_human")).unwrap();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut con).unwrap();
    assert!(human.ends_with('M') || human.ends_with('K'), "{human}");
    assert!(info.contains("used_memory_human:"), "{info}");
}

#[test]
fn stats_index_bytes_follow_the_entries() {
    let server = Server::start();
    let mut con = server.connection();
    assert_eq!(stat_int(&mut con, "index_bytes"), 0);
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("WARGAMING.SETPRED")
            .arg(format!("apv-{i:07}"))
            .arg("{}")
            .ignore();
    }
    pipe.exec(&mut con).unwrap();
    let bytes = stat_int(&mut con, "index_bytes");
    // Front coded: a few bytes per id like these, far below the ids' length.
    assert!((20_000..20_000 * 6).contains(&bytes), "{bytes} bytes for 20,000 ids");
    let info: String = redis::cmd("INFO").arg("wargaming").query(&mut con).unwrap();
    assert!(info.contains(&format!("wargaming_index_bytes:{bytes}")), "{info}");
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
    assert_eq!(n, 20_000);
    assert_eq!(stat_int(&mut con, "index_bytes"), 0);
}

#[test]
fn stats_is_a_map_in_resp3_and_a_flat_array_in_resp2() {
    let server = Server::start();
    let mut con2 = server.connection();
    let flat: Value = redis::cmd("WARGAMING.STATS").query(&mut con2).unwrap();
    let Value::Array(items) = flat else {
        panic!("RESP2 reply is not an array: {flat:?}")
    };
    assert_eq!(items.len() % 2, 0);
    assert_eq!(items[0], Value::BulkString(b"hits".to_vec()));
    assert_eq!(items[2], Value::BulkString(b"misses".to_vec()));
    assert_eq!(items[4], Value::BulkString(b"hit_ratio".to_vec()));
    assert_eq!(items[5], Value::BulkString(b"0".to_vec()));
    let mut con3 = server.connection_resp3();
    let map: Value = redis::cmd("WARGAMING.STATS").query(&mut con3).unwrap();
    let Value::Map(pairs) = map else {
        panic!("RESP3 reply is not a map: {map:?}")
    };
    assert_eq!(pairs.len() * 2, items.len());
    assert_eq!(pairs[0], (Value::BulkString(b"hits".to_vec()), Value::Int(0)));
    assert_eq!(pairs[2], (Value::BulkString(b"hit_ratio".to_vec()), Value::Double(0.0)));
    let names: Vec<String> = pairs.iter().map(|(k, _)| redis::from_redis_value(k).unwrap()).collect();
    for field in [
        "hits",
        "misses",
        "hit_ratio",
        "sets",
        "ml_pred_hits",
        "ml_pred_misses",
        "ml_pred_hit_ratio",
        "ml_pred_sets",
        "confusion_hits",
        "confusion_misses",
        "confusion_hit_ratio",
        "confusion_sets",
        "vuln_pattern_hits",
        "vuln_pattern_misses",
        "vuln_pattern_hit_ratio",
        "vuln_pattern_sets",
        "connected_clients",
        "used_memory_human",
        "index_bytes",
    ] {
        assert!(names.iter().any(|n| n == field), "missing {field}");
    }
}

#[test]
fn info_has_a_wargaming_section() {
    let server = Server::start();
    let mut con = server.connection();
    redis::cmd("WARGAMING.GETPRED").arg("x").exec(&mut con).unwrap();
    let info: String = redis::cmd("INFO").arg("wargaming").query(&mut con).unwrap();
    assert!(info.contains("# wargaming"), "{info}");
    assert!(info.contains("wargaming_misses:1"), "{info}");
    assert!(info.contains("wargaming_ml_pred_misses:1"), "{info}");
    let everything: String = redis::cmd("INFO").arg("everything").query(&mut con).unwrap();
    assert!(everything.contains("wargaming_hits:0"), "{everything}");
}

#[test]
fn command_table_declares_flags_and_keys() {
    let server = Server::start();
    let mut con = server.connection();
    let flags_of = |con: &mut redis::Connection, name: &str| -> Vec<String> {
        let info: Vec<Vec<Value>> = redis::cmd("COMMAND").arg("INFO").arg(name).query(con).unwrap();
        redis::from_redis_value(&info[0][2]).unwrap()
    };
    for name in [
        "wargaming.setpred",
        "wargaming.setmatrix",
        "wargaming.hashpattern",
        "wargaming.setpattern",
    ] {
        let flags = flags_of(&mut con, name);
        assert!(
            flags.contains(&"write".to_string()) && flags.contains(&"denyoom".to_string()),
            "{name}: {flags:?}"
        );
    }
    for name in ["wargaming.getpred", "wargaming.getmatrix", "wargaming.getpattern"] {
        let flags = flags_of(&mut con, name);
        assert!(
            flags.contains(&"readonly".to_string()) && flags.contains(&"fast".to_string()),
            "{name}: {flags:?}"
        );
    }
    let flags = flags_of(&mut con, "wargaming.invalidate");
    assert!(
        flags.contains(&"write".to_string()) && !flags.contains(&"denyoom".to_string()),
        "{flags:?}"
    );
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("WARGAMING.SETPRED")
        .arg("apv_1")
        .arg("{}")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, vec!["apv_1"]);
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("WARGAMING.GETMATRIX")
        .arg("v2")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, vec!["v2"]);
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("WARGAMING.INVALIDATE")
        .arg("a")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, vec!["a", "b"]);
    // INVALIDATE ALL and HASHPATTERN declare no key.
    assert!(run(&mut con, "COMMAND", &["GETKEYS", "WARGAMING.INVALIDATE", "ALL"]).is_err());
    assert!(run(&mut con, "COMMAND", &["GETKEYS", "WARGAMING.HASHPATTERN", "{}"]).is_err());
}

#[test]
fn oom_refuses_setters_but_not_invalidate_or_getters() {
    let server = Server::start();
    let mut con = server.connection();
    setpred(&mut con, "a", "{}");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .exec(&mut con)
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .exec(&mut con)
        .unwrap();
    for (cmd, args) in [
        ("WARGAMING.SETPRED", vec!["b", "{}"]),
        ("WARGAMING.HASHPATTERN", vec!["{}"]),
    ] {
        let e = error_of(&mut con, cmd, &args);
        assert!(e.starts_with("OOM "), "{cmd}: {e}");
    }
    let got: String = redis::cmd("WARGAMING.GETPRED").arg("a").query(&mut con).unwrap();
    assert_eq!(got, "{}");
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("a").query(&mut con).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn patternhash_is_read_only_and_agrees_with_hashpattern() {
    let server = Server::start();
    let mut con = server.connection();
    let pattern = r#"{"b": [1, 2.5], "a": "é"}"#;
    let via_hashpattern: String = redis::cmd("WARGAMING.HASHPATTERN")
        .arg(pattern)
        .arg("NOSTORE")
        .query(&mut con)
        .unwrap();
    let via_patternhash: String = redis::cmd("WARGAMING.PATTERNHASH")
        .arg(pattern)
        .query(&mut con)
        .unwrap();
    assert_eq!(via_patternhash, via_hashpattern);
    assert_eq!(via_patternhash, python_hash(pattern));
    let info: Vec<Vec<Value>> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("wargaming.patternhash")
        .query(&mut con)
        .unwrap();
    let flags: Vec<String> = redis::from_redis_value(&info[0][2]).unwrap();
    assert!(
        flags.contains(&"readonly".to_string()) && !flags.contains(&"write".to_string()),
        "{flags:?}"
    );
    assert_eq!(
        error_of(&mut con, "WARGAMING.PATTERNHASH", &["[1]"]),
        "ERR invalid JSON: the value must be a JSON object"
    );
    assert!(
        error_of(&mut con, "WARGAMING.PATTERNHASH", &["{}", "NOSTORE"]).starts_with("ERR wrong number of arguments")
    );
    // Memory full: the write-flagged HASHPATTERN is refused, PATTERNHASH answers.
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .exec(&mut con)
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .exec(&mut con)
        .unwrap();
    assert!(error_of(&mut con, "WARGAMING.HASHPATTERN", &[pattern, "NOSTORE"]).starts_with("OOM"));
    let under_oom: String = redis::cmd("WARGAMING.PATTERNHASH")
        .arg(pattern)
        .query(&mut con)
        .unwrap();
    assert_eq!(under_oom, via_hashpattern);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 0);
}

#[test]
fn stats_count_expiry_and_reset_keeps_key_counts() {
    let server = Server::start();
    let mut con = server.connection();
    setpred(&mut con, "keep", "{}");
    setmatrix(&mut con, "m", "{}");
    redis::cmd("WARGAMING.SETPRED")
        .arg("short")
        .arg("{}")
        .arg("PX")
        .arg(1)
        .exec(&mut con)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // A read reclaims the expired key: Redis fires `expired`.
    let gone: Option<String> = redis::cmd("WARGAMING.GETPRED").arg("short").query(&mut con).unwrap();
    assert_eq!(gone, None);
    assert_eq!(stat_int(&mut con, "ml_pred_expired"), 1);
    assert_eq!(stat_int(&mut con, "expired"), 1);
    assert_eq!(stat_int(&mut con, "ml_pred_keys"), 1);
    assert_eq!(stat_int(&mut con, "confusion_keys"), 1);
    assert_eq!(stat_int(&mut con, "keys"), 2);
    redis::cmd("WARGAMING.INVALIDATE").arg("keep").exec(&mut con).unwrap();
    assert_eq!(stat_int(&mut con, "invalidated"), 1);
    redis::cmd("WARGAMING.STATS").arg("RESET").exec(&mut con).unwrap();
    for field in ["expired", "ml_pred_expired", "invalidated", "evicted", "sets", "misses"] {
        assert_eq!(stat_int(&mut con, field), 0, "{field} is an event counter");
    }
    assert_eq!(stat_int(&mut con, "keys"), 1, "keys is a count, not an event counter");
    assert_eq!(stat_int(&mut con, "confusion_keys"), 1);
    // The configuration and version figures.
    assert_eq!(stat_int(&mut con, "pred_ttl"), 86_400);
    assert_eq!(stat_int(&mut con, "matrix_ttl"), 300);
    assert_eq!(stat_int(&mut con, "pattern_ttl"), 43_200);
    assert_eq!(stat_int(&mut con, "max_json_bytes"), 1_048_576);
    let version: String = redis::from_redis_value(&stat(&mut con, "module_version")).unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn info_shows_the_same_figures_as_stats() {
    let server = Server::start();
    let mut con = server.connection();
    setpred(&mut con, "a", "{}");
    redis::cmd("WARGAMING.GETPRED").arg("a").exec(&mut con).unwrap();
    redis::cmd("WARGAMING.GETMATRIX").arg("x").exec(&mut con).unwrap();
    let fields: Vec<(String, Value)> = redis::cmd("WARGAMING.STATS").query(&mut con).unwrap();
    let info: String = redis::cmd("INFO").arg("wargaming").query(&mut con).unwrap();
    for (name, value) in &fields {
        // Server figures move between the two calls; ratios are rounded in INFO.
        if ["connected_clients", "used_memory", "used_memory_human"].contains(&name.as_str()) {
            continue;
        }
        let line = info
            .lines()
            .find_map(|l| l.strip_prefix(&format!("wargaming_{name}:")))
            .unwrap_or_else(|| panic!("INFO lacks wargaming_{name}:\n{info}"));
        let stat: String = redis::from_redis_value(value).unwrap();
        if name.ends_with("hit_ratio") {
            let (a, b): (f64, f64) = (stat.parse().unwrap(), line.parse().unwrap());
            assert!((a - b).abs() < 1e-6, "{name}: {a} vs {b}");
        } else {
            assert_eq!(line, stat, "{name}");
        }
    }
}
