//! An AOF restart brings keys and their exact expiry times back, with the
//! module loaded and without it: the AOF holds standard commands only.

mod common;
use common::*;

fn snapshot(con: &mut redis::Connection) -> Vec<(String, Vec<u8>, i64)> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v: Vec<u8> = redis::cmd("GET").arg(&k).query(con).unwrap();
            let t: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(con).unwrap();
            (k, v, t)
        })
        .collect()
}

#[test]
fn aof_restart_restores_keys_and_expiry_with_and_without_the_module() {
    let aof = |c: Config| c.line("appendonly yes").line("appendfsync always");
    let mut server = Server::with(aof(Config::default()));
    let mut con = server.connection();
    for i in 0..20 {
        redis::cmd("WARGAMING.SETPRED")
            .arg(format!("apv_{i}"))
            .arg(format!(r#"{{"i":{i}}}"#))
            .exec(&mut con)
            .unwrap();
    }
    redis::cmd("WARGAMING.SETPRED")
        .arg("short")
        .arg("{}")
        .arg("PX")
        .arg(3_600_000)
        .exec(&mut con)
        .unwrap();
    setmatrix(&mut con, "v9", r#"{"fp":0}"#);
    redis::cmd("WARGAMING.HASHPATTERN")
        .arg(r#"{"x":[1,2]}"#)
        .exec(&mut con)
        .unwrap();
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE")
        .arg("apv_0")
        .arg("apv_1")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let before = snapshot(&mut con);
    assert_eq!(before.len(), 21);
    assert!(before.iter().all(|(_, _, t)| *t > 0));

    server.restart(aof(Config::default()));
    let mut con = server.connection();
    assert_eq!(snapshot(&mut con), before, "with the module");

    server.restart(aof(Config::without_module()));
    let mut con = server.connection();
    assert_eq!(snapshot(&mut con), before, "without the module");

    // INVALIDATE ALL deletions are in the AOF too.
    server.restart(aof(Config::default()));
    let mut con = server.connection();
    let n: i64 = redis::cmd("WARGAMING.INVALIDATE").arg("ALL").query(&mut con).unwrap();
    assert_eq!(n, 19);
    let after = snapshot(&mut con);
    assert_eq!(after.len(), 2);
    server.restart(aof(Config::without_module()));
    let mut con = server.connection();
    assert_eq!(snapshot(&mut con), after);
    server.assert_no_crash();
}
