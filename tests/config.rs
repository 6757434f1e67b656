//! Module configs: load arguments, redis.conf lines, CONFIG SET/GET, ranges.

mod common;
use common::*;

fn config_get(con: &mut redis::Connection, name: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(con).unwrap();
    assert_eq!(pair.len(), 2, "{name}: {pair:?}");
    pair[1].clone()
}

fn pttl_after_set(con: &mut redis::Connection, cmd: &str, key: &str) -> i64 {
    redis::cmd(cmd).arg("id").arg("{}").exec(con).unwrap();
    redis::cmd("PTTL").arg(key).query(con).unwrap()
}

#[test]
fn defaults_are_the_seeds_ttls() {
    let server = Server::start();
    let mut con = server.connection();
    assert_eq!(config_get(&mut con, "wargaming.pred-ttl"), "86400");
    assert_eq!(config_get(&mut con, "wargaming.matrix-ttl"), "300");
    assert_eq!(config_get(&mut con, "wargaming.pattern-ttl"), "43200");
    assert_eq!(config_get(&mut con, "wargaming.max-json-bytes"), "1048576");
}

#[test]
fn load_arguments_set_the_configs() {
    let server = Server::with(Config::default().module_args(&[
        "pred-ttl",
        "3600",
        "matrix-ttl",
        "60",
        "pattern-ttl",
        "7",
        "max-json-bytes",
        "4096",
    ]));
    let mut con = server.connection();
    assert_eq!(config_get(&mut con, "wargaming.pred-ttl"), "3600");
    assert_eq!(config_get(&mut con, "wargaming.max-json-bytes"), "4096");
    let ttl = pttl_after_set(&mut con, "WARGAMING.SETPRED", &pred_key("id"));
    assert!((3_599_000..=3_600_000).contains(&ttl), "{ttl}");
    let ttl = pttl_after_set(&mut con, "WARGAMING.SETMATRIX", &matrix_key("id"));
    assert!((59_000..=60_000).contains(&ttl), "{ttl}");
    let hash: String = redis::cmd("WARGAMING.HASHPATTERN").arg("{}").query(&mut con).unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(pattern_key(&hash)).query(&mut con).unwrap();
    assert!((6_000..=7_000).contains(&ttl), "{ttl}");
}

#[test]
fn redis_conf_lines_set_the_configs() {
    let server = Server::with(
        Config::default()
            .line("wargaming.pred-ttl 120")
            .line("wargaming.pattern-ttl 30"),
    );
    let mut con = server.connection();
    assert_eq!(config_get(&mut con, "wargaming.pred-ttl"), "120");
    assert_eq!(config_get(&mut con, "wargaming.pattern-ttl"), "30");
    let ttl = pttl_after_set(&mut con, "WARGAMING.SETPRED", &pred_key("id"));
    assert!((119_000..=120_000).contains(&ttl), "{ttl}");
}

#[test]
fn config_set_changes_later_writes_and_refuses_bad_values() {
    let server = Server::start();
    let mut con = server.connection();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("wargaming.pred-ttl")
        .arg(90)
        .exec(&mut con)
        .unwrap();
    assert_eq!(config_get(&mut con, "wargaming.pred-ttl"), "90");
    let ttl = pttl_after_set(&mut con, "WARGAMING.SETPRED", &pred_key("id"));
    assert!((89_000..=90_000).contains(&ttl), "{ttl}");
    for (name, bad) in [
        ("wargaming.pred-ttl", "0"),
        ("wargaming.matrix-ttl", "-5"),
        ("wargaming.pattern-ttl", "abc"),
        ("wargaming.pred-ttl", "315360001"),
        ("wargaming.max-json-bytes", "1"),
        ("wargaming.max-json-bytes", "536870913"),
    ] {
        let e = error_of(&mut con, "CONFIG", &["SET", name, bad]);
        assert!(e.starts_with("ERR"), "{name}={bad}: {e}");
    }
    assert_eq!(config_get(&mut con, "wargaming.pred-ttl"), "90");
    assert_eq!(config_get(&mut con, "wargaming.max-json-bytes"), "1048576");
    assert_eq!(config_get(&mut con, "wargaming.matrix-ttl"), "300");
}

#[test]
fn bad_load_arguments_refuse_to_load() {
    for args in [
        &["pred-ttl", "0"][..],
        &["pred-ttl"],
        &["pred_ttl", "5"],
        &["max-json-bytes", "lots"],
    ] {
        // Our own check names the argument; the crate's integer parse may refuse first.
        let result = Server::try_with(Config::default().module_args(args));
        let log = match result {
            Ok(_) => panic!("{args:?} loaded"),
            Err(log) => log,
        };
        assert!(
            log.contains("<wargaming>") && log.contains("initialization failed"),
            "{args:?}: {log}"
        );
    }
}
