//! ACL users restricted to the module's commands.
//!
//! - A user granted only the nine WARGAMING.* commands (`~*`) can read and
//!   write every kind, and gets NOPERM for GET/SET/DEL/KEYS/FLUSHALL.
//! - Key patterns apply to the key a command *declares*, and our commands
//!   declare the id, not `wargaming:<kind>:{id}`: `~wargaming:*` refuses
//!   every id-named call (while HASHPATTERN, STATS and INVALIDATE ALL, which
//!   declare no key, still run), `~apv_*` confines a user to ids starting
//!   with `apv_` across kinds. Native commands see the real keys.
//! - The optional `wargaming` ACL category exists from Redis 7.2 on; 7.0
//!   skips it and still loads the module.

mod common;
use common::*;
use redis::Value;

const MODULE_COMMANDS: [&str; 10] = [
    "wargaming.patternhash",
    "wargaming.setpred",
    "wargaming.getpred",
    "wargaming.setmatrix",
    "wargaming.getmatrix",
    "wargaming.hashpattern",
    "wargaming.setpattern",
    "wargaming.getpattern",
    "wargaming.invalidate",
    "wargaming.stats",
];
const PATTERN: &str = r#"{"cwe":"CWE-79","sink":"innerHTML"}"#;
const PATTERN_HASH: &str = "85a523a3a0b67d0e";

fn acl_setuser(con: &mut redis::Connection, user: &str, rules: &[&str]) {
    let mut c = redis::cmd("ACL");
    c.arg("SETUSER").arg(user).arg("reset").arg("on").arg(">pw");
    for r in rules {
        c.arg(*r);
    }
    c.exec(con)
        .unwrap_or_else(|e| panic!("ACL SETUSER {user} {rules:?}: {e}"));
}

fn module_grants() -> Vec<String> {
    MODULE_COMMANDS.iter().map(|c| format!("+{c}")).collect()
}

fn login(server: &Server, user: &str) -> redis::Connection {
    let url = format!("redis://{user}:pw@127.0.0.1:{}/", server.port);
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("login as {user}: {e}"))
}

fn ok(con: &mut redis::Connection, name: &str, args: &[&str]) -> Value {
    run(con, name, args).unwrap_or_else(|e| panic!("{name} {args:?}: {e}"))
}

fn noperm(con: &mut redis::Connection, name: &str, args: &[&str]) {
    let e = error_of(con, name, args);
    assert!(e.starts_with("NOPERM"), "{name} {args:?}: {e}");
}

/// (major, minor) of the running server.
fn version(con: &mut redis::Connection) -> (u32, u32) {
    let info: String = redis::cmd("INFO").arg("server").query(con).unwrap();
    let v = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .expect("redis_version")
        .trim()
        .to_string();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn a_user_granted_only_the_module_commands_uses_them_and_nothing_else() {
    let server = Server::start();
    let mut admin = server.connection();
    let mut rules = vec!["~*".to_string(), "-@all".to_string()];
    rules.extend(module_grants());
    acl_setuser(
        &mut admin,
        "cache",
        &rules.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut con = login(&server, "cache");

    assert_eq!(ok(&mut con, "WARGAMING.SETPRED", &["apv_1", r#"{"v":1}"#]), Value::Okay);
    assert_eq!(
        ok(&mut con, "WARGAMING.SETPRED", &["apv_2", "{}", "EX", "60"]),
        Value::Okay
    );
    assert_eq!(
        ok(&mut con, "WARGAMING.GETPRED", &["apv_1"]),
        Value::BulkString(br#"{"v":1}"#.to_vec())
    );
    assert_eq!(ok(&mut con, "WARGAMING.SETMATRIX", &["model-v2", "{}"]), Value::Okay);
    assert_eq!(
        ok(&mut con, "WARGAMING.GETMATRIX", &["model-v2"]),
        Value::BulkString(b"{}".to_vec())
    );
    assert_eq!(
        ok(&mut con, "WARGAMING.HASHPATTERN", &[PATTERN]),
        Value::BulkString(PATTERN_HASH.as_bytes().to_vec())
    );
    assert_eq!(
        ok(&mut con, "WARGAMING.SETPATTERN", &[PATTERN_HASH, PATTERN]),
        Value::Okay
    );
    assert_eq!(
        ok(&mut con, "WARGAMING.GETPATTERN", &[PATTERN_HASH]),
        Value::BulkString(PATTERN.as_bytes().to_vec())
    );
    assert!(matches!(ok(&mut con, "WARGAMING.STATS", &[]), Value::Array(_)));
    assert_eq!(ok(&mut con, "WARGAMING.INVALIDATE", &["apv_1", "apv_9"]), Value::Int(1));
    assert_eq!(ok(&mut con, "WARGAMING.INVALIDATE", &["ALL"]), Value::Int(1));
    assert_eq!(ok(&mut con, "WARGAMING.STATS", &["RESET"]), Value::Okay);

    // Nothing else, on the module's keys or any other.
    let pattern_key = pattern_key(PATTERN_HASH);
    for (name, args) in [
        ("GET", vec![pattern_key.as_str()]),
        ("GET", vec!["other"]),
        ("SET", vec!["wargaming:ml_pred:{apv_1}", "{}"]),
        ("SET", vec!["other", "1"]),
        ("DEL", vec![pattern_key.as_str()]),
        ("KEYS", vec!["*"]),
        ("SCAN", vec!["0"]),
        ("FLUSHALL", vec![]),
        ("FLUSHDB", vec![]),
        ("CONFIG", vec!["SET", "wargaming.pred-ttl", "1"]),
        ("MODULE", vec!["LIST"]),
        ("EVAL", vec!["return redis.call('GET', KEYS[1])", "1", "x"]),
        ("WATCH", vec!["apv_1"]),
    ] {
        noperm(&mut con, name, &args);
    }
    // The refused calls changed nothing.
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut admin).unwrap();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, vec![matrix_key("model-v2"), pattern_key.clone()]);
    server.assert_no_crash();
}

#[test]
fn key_patterns_apply_to_the_declared_id_not_the_real_key() {
    let server = Server::start();
    let mut admin = server.connection();
    let grants = module_grants();
    let with = |patterns: &[&str], extra: &[&str]| -> Vec<String> {
        let mut rules: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        rules.push("-@all".to_string());
        rules.extend(grants.iter().cloned());
        rules.extend(extra.iter().map(|e| e.to_string()));
        rules
    };
    let set = |admin: &mut redis::Connection, user: &str, rules: Vec<String>| {
        acl_setuser(admin, user, &rules.iter().map(String::as_str).collect::<Vec<_>>());
    };
    set(&mut admin, "prefixed", with(&["~wargaming:*"], &["+get"]));
    set(&mut admin, "tenant", with(&["~apv_*"], &[]));
    ok(&mut admin, "WARGAMING.SETPRED", &["apv_1", "{}"]);
    ok(&mut admin, "WARGAMING.SETPRED", &["other", "{}"]);

    // `~wargaming:*` matches every real key, but no id: id-named calls are refused.
    let mut con = login(&server, "prefixed");
    noperm(&mut con, "WARGAMING.SETPRED", &["apv_2", "{}"]);
    noperm(&mut con, "WARGAMING.GETPRED", &["apv_1"]);
    noperm(&mut con, "WARGAMING.SETMATRIX", &["model-v2", "{}"]);
    noperm(&mut con, "WARGAMING.GETMATRIX", &["model-v2"]);
    noperm(&mut con, "WARGAMING.GETPATTERN", &[PATTERN_HASH]);
    noperm(&mut con, "WARGAMING.SETPATTERN", &[PATTERN_HASH, PATTERN]);
    noperm(&mut con, "WARGAMING.INVALIDATE", &["apv_1"]);
    // ... while the calls that declare no key run, and write keys.
    assert_eq!(
        ok(&mut con, "WARGAMING.HASHPATTERN", &[PATTERN]),
        Value::BulkString(PATTERN_HASH.as_bytes().to_vec())
    );
    assert!(matches!(ok(&mut con, "WARGAMING.STATS", &[]), Value::Array(_)));
    // An id that itself matches the pattern passes, whatever the real key.
    assert_eq!(ok(&mut con, "WARGAMING.SETPRED", &["wargaming:x", "{}"]), Value::Okay);
    // Native commands check the real key.
    assert_eq!(
        ok(&mut con, "GET", &[&pred_key("apv_1")]),
        Value::BulkString(b"{}".to_vec())
    );
    noperm(&mut con, "GET", &["other"]);
    noperm(&mut con, "GET", &["apv_1"]);
    noperm(&mut con, "SET", &[&pred_key("apv_1"), "{}"]);

    // `~apv_*` confines a user to ids starting with apv_, in every kind.
    let mut con = login(&server, "tenant");
    assert_eq!(ok(&mut con, "WARGAMING.SETPRED", &["apv_3", "{}"]), Value::Okay);
    assert_eq!(
        ok(&mut con, "WARGAMING.GETPRED", &["apv_1"]),
        Value::BulkString(b"{}".to_vec())
    );
    assert_eq!(ok(&mut con, "WARGAMING.SETMATRIX", &["apv_m", "{}"]), Value::Okay);
    noperm(&mut con, "WARGAMING.SETPRED", &["other", "{}"]);
    noperm(&mut con, "WARGAMING.GETPRED", &["other"]);
    noperm(&mut con, "WARGAMING.SETPRED", &["wargaming:x", "{}"]);
    // One refused id refuses the whole call: nothing is deleted.
    noperm(&mut con, "WARGAMING.INVALIDATE", &["apv_1", "other"]);
    assert_eq!(ok(&mut con, "WARGAMING.INVALIDATE", &["apv_3"]), Value::Int(1));
    noperm(&mut con, "GET", &[&pred_key("apv_1")]);

    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut admin).unwrap();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            matrix_key("apv_m"),
            pred_key("apv_1"),
            pred_key("other"),
            pred_key("wargaming:x"),
            pattern_key(PATTERN_HASH),
        ]
    );

    // INVALIDATE ALL declares no key either: a user confined to some ids
    // still deletes every prediction.
    assert_eq!(ok(&mut con, "WARGAMING.INVALIDATE", &["ALL"]), Value::Int(3));

    // The key specs say what each command does to its key: read-only key
    // permission is enough for the getters, and only for them; write-only
    // permission is enough for the setters and INVALIDATE.
    set(&mut admin, "reader", with(&["%R~*"], &[]));
    let mut con = login(&server, "reader");
    ok(&mut con, "WARGAMING.GETPRED", &["apv_1"]);
    ok(&mut con, "WARGAMING.GETMATRIX", &["m"]);
    noperm(&mut con, "WARGAMING.SETPRED", &["apv_1", "{}"]);
    noperm(&mut con, "WARGAMING.INVALIDATE", &["apv_1"]);
    assert!(matches!(ok(&mut con, "WARGAMING.STATS", &[]), Value::Array(_)));
    set(&mut admin, "writer", with(&["%W~*"], &[]));
    let mut con = login(&server, "writer");
    ok(&mut con, "WARGAMING.SETPRED", &["apv_w", "{}"]);
    ok(&mut con, "WARGAMING.INVALIDATE", &["apv_w"]);
    noperm(&mut con, "WARGAMING.GETPRED", &["apv_1"]);
    server.assert_no_crash();
}

#[test]
fn the_wargaming_acl_category_exists_from_redis_7_2() {
    let server = Server::start();
    let mut con = server.connection();
    let modules: Vec<Vec<Value>> = redis::cmd("MODULE").arg("LIST").query(&mut con).unwrap();
    assert!(
        modules
            .iter()
            .any(|m| m.get(1) == Some(&Value::BulkString(b"wargaming".to_vec()))),
        "module not loaded: {modules:?}"
    );
    let categories: Vec<String> = redis::cmd("ACL").arg("CAT").query(&mut con).unwrap();
    let (major, minor) = version(&mut con);
    eprintln!("server {major}.{minor}");
    if (major, minor) >= (7, 2) {
        assert!(categories.iter().any(|c| c == "wargaming"), "{categories:?}");
        let mut listed: Vec<String> = redis::cmd("ACL").arg("CAT").arg("wargaming").query(&mut con).unwrap();
        listed.iter_mut().for_each(|c| c.make_ascii_lowercase());
        listed.sort();
        let mut expected = MODULE_COMMANDS.map(String::from).to_vec();
        expected.sort();
        assert_eq!(listed, expected);
        acl_setuser(&mut con, "cat", &["~*", "+@wargaming"]);
        let mut user = login(&server, "cat");
        assert_eq!(ok(&mut user, "WARGAMING.SETPRED", &["apv_1", "{}"]), Value::Okay);
        assert_eq!(ok(&mut user, "WARGAMING.INVALIDATE", &["ALL"]), Value::Int(1));
        noperm(&mut user, "GET", &[&pred_key("apv_1")]);
        noperm(&mut user, "FLUSHALL", &[]);
    } else {
        assert!(!categories.iter().any(|c| c == "wargaming"), "{categories:?}");
        assert!(run(&mut con, "ACL", &["CAT", "wargaming"]).is_err());
        let e = error_of(&mut con, "ACL", &["SETUSER", "cat", "+@wargaming"]);
        assert!(e.starts_with("ERR"), "{e}");
        // Grants by command name work without the category.
        let mut rules = vec!["~*".to_string()];
        rules.extend(module_grants());
        acl_setuser(&mut con, "cat", &rules.iter().map(String::as_str).collect::<Vec<_>>());
        let mut user = login(&server, "cat");
        assert_eq!(ok(&mut user, "WARGAMING.SETPRED", &["apv_1", "{}"]), Value::Okay);
    }
    server.assert_no_crash();
}
