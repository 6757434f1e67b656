//! Keyspace events, WATCH and client-side caching see module writes exactly
//! as they see native SET/DEL, and never see module reads.

mod common;
use std::time::Duration;

use common::*;

/// Collects keyevent notifications (event names and keys) until `quiet`.
fn events_during(server: &Server, flags: &str, action: impl FnOnce(&mut redis::Connection)) -> Vec<(String, String)> {
    let mut con = server.connection();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg(flags)
        .exec(&mut con)
        .unwrap();
    let mut sub = server.connection();
    let mut pubsub = sub.as_pubsub();
    pubsub.psubscribe("__keyevent@0__:*").unwrap();
    action(&mut con);
    // A marker event tells us everything before it has been delivered.
    redis::cmd("SET").arg("zz-marker").arg(1).exec(&mut con).unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut seen = Vec::new();
    loop {
        let msg = pubsub.get_message().unwrap();
        let event = msg.get_channel_name().trim_start_matches("__keyevent@0__:").to_string();
        let key: String = msg.get_payload().unwrap();
        if key == "zz-marker" {
            break;
        }
        seen.push((event, key));
    }
    seen
}

#[test]
fn setpred_fires_what_set_ex_fires() {
    let server = Server::start();
    let native = events_during(&server, "KEA", |con| {
        redis::cmd("SET")
            .arg(pred_key("n"))
            .arg("{}")
            .arg("EX")
            .arg(100)
            .exec(con)
            .unwrap();
        redis::cmd("SET")
            .arg(pred_key("n"))
            .arg("{}")
            .arg("EX")
            .arg(100)
            .exec(con)
            .unwrap();
    });
    let module = events_during(&server, "KEA", |con| {
        redis::cmd("WARGAMING.SETPRED").arg("m").arg("{}").exec(con).unwrap();
        redis::cmd("WARGAMING.SETPRED")
            .arg("m")
            .arg("{}")
            .arg("EX")
            .arg(100)
            .exec(con)
            .unwrap();
    });
    let names = |events: &[(String, String)]| events.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>();
    assert_eq!(names(&native), vec!["set", "expire", "set", "expire"]);
    assert_eq!(names(&module), names(&native));
    assert!(module.iter().all(|(_, k)| k == &pred_key("m")), "{module:?}");
    // With `n`, key creation is announced once, like a native SET.
    let created = events_during(&server, "KEAn", |con| {
        setmatrix(con, "fresh", "{}");
    });
    assert_eq!(names(&created), vec!["new", "set", "expire"]);
    // An overwrite is no creation, for the module as for SET.
    let overwritten = events_during(&server, "KEAn", |con| {
        setmatrix(con, "fresh", r#"{"v":2}"#);
        redis::cmd("SET")
            .arg(matrix_key("fresh"))
            .arg("{}")
            .arg("EX")
            .arg(9)
            .exec(con)
            .unwrap();
    });
    assert_eq!(names(&overwritten), vec!["set", "expire", "set", "expire"]);
}

#[test]
fn invalidate_fires_del_like_native_del() {
    let server = Server::start();
    let mut con = server.connection();
    for id in ["a", "b", "c"] {
        setpred(&mut con, id, "{}");
    }
    let events = events_during(&server, "KEA", |con| {
        redis::cmd("WARGAMING.INVALIDATE")
            .arg("a")
            .arg("missing")
            .arg("b")
            .exec(con)
            .unwrap();
        redis::cmd("WARGAMING.INVALIDATE").arg("ALL").exec(con).unwrap();
    });
    assert_eq!(
        events,
        vec![
            ("del".to_string(), pred_key("a")),
            ("del".to_string(), pred_key("b")),
            ("del".to_string(), pred_key("c")),
        ]
    );
}

#[test]
fn reads_fire_no_event() {
    let server = Server::start();
    let mut con = server.connection();
    setpred(&mut con, "a", "{}");
    let events = events_during(&server, "KEA", |con| {
        redis::cmd("WARGAMING.GETPRED").arg("a").exec(con).unwrap();
        redis::cmd("WARGAMING.GETPRED").arg("nope").exec(con).unwrap();
        redis::cmd("WARGAMING.HASHPATTERN")
            .arg("{}")
            .arg("NOSTORE")
            .exec(con)
            .unwrap();
        redis::cmd("WARGAMING.STATS").exec(con).unwrap();
    });
    assert!(events.is_empty(), "{events:?}");
}

/// Runs `interfere` between WATCH and EXEC; returns whether EXEC ran.
fn exec_survives(server: &Server, key: &str, interfere: impl FnOnce(&mut redis::Connection)) -> bool {
    let mut watcher = server.connection();
    let mut other = server.connection();
    redis::cmd("WATCH").arg(key).exec(&mut watcher).unwrap();
    interfere(&mut other);
    let result: Option<(String,)> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("side")
        .arg(1)
        .query(&mut watcher)
        .unwrap();
    result.is_some()
}

#[test]
fn writes_abort_watch_and_reads_do_not() {
    let server = Server::start();
    let mut con = server.connection();
    setpred(&mut con, "w", "{}");
    let key = pred_key("w");
    assert!(exec_survives(&server, &key, |c| {
        redis::cmd("WARGAMING.GETPRED").arg("w").exec(c).unwrap();
    }));
    assert!(exec_survives(&server, &pred_key("absent"), |c| {
        redis::cmd("WARGAMING.INVALIDATE").arg("absent").exec(c).unwrap();
    }));
    assert!(!exec_survives(&server, &key, |c| {
        redis::cmd("WARGAMING.SETPRED")
            .arg("w")
            .arg(r#"{"v":2}"#)
            .exec(c)
            .unwrap();
    }));
    assert!(!exec_survives(&server, &key, |c| {
        redis::cmd("WARGAMING.INVALIDATE").arg("w").exec(c).unwrap();
    }));
    setpred(&mut con, "w", "{}");
    assert!(!exec_survives(&server, &key, |c| {
        redis::cmd("WARGAMING.INVALIDATE").arg("ALL").exec(c).unwrap();
    }));
}

/// Turns on tracking (extra CLIENT TRACKING arguments), reads `t` with
/// GETPRED, lets `change` run on another connection, and returns the keys
/// the tracking connection was told to drop.
fn invalidations(server: &Server, tracking: &[&str], change: impl FnOnce(&mut redis::Connection)) -> Vec<String> {
    let mut con = server.connection_resp3();
    let mut writer = server.connection();
    redis::cmd("WARGAMING.SETPRED")
        .arg("t")
        .arg("{}")
        .exec(&mut writer)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    con.set_push_sender(tx);
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg(tracking)
        .exec(&mut con)
        .unwrap();
    redis::cmd("WARGAMING.GETPRED").arg("t").exec(&mut con).unwrap();
    change(&mut writer);
    // Any reply lets the connection read what was pushed before it.
    redis::cmd("PING").exec(&mut con).unwrap();
    let mut keys = Vec::new();
    while let Ok(push) = rx.recv_timeout(Duration::from_millis(200)) {
        assert_eq!(push.kind, redis::PushKind::Invalidate, "{push:?}");
        let lists: Vec<Vec<String>> = push.data.iter().map(|v| redis::from_redis_value(v).unwrap()).collect();
        keys.extend(lists.into_iter().flatten());
    }
    keys
}

#[test]
fn client_side_caching_hears_of_module_writes() {
    let server = Server::start();
    // Default mode remembers the declared key (the id).
    let set = invalidations(&server, &[], |c| {
        redis::cmd("WARGAMING.SETPRED")
            .arg("t")
            .arg(r#"{"v":2}"#)
            .exec(c)
            .unwrap();
    });
    assert_eq!(set, vec!["t"]);
    let deleted = invalidations(&server, &[], |c| {
        redis::cmd("WARGAMING.INVALIDATE").arg("ALL").exec(c).unwrap();
    });
    assert_eq!(deleted, vec!["t"]);
    // Broadcasting mode with a prefix hears of the real keys.
    let bcast = invalidations(&server, &["BCAST", "PREFIX", "wargaming:"], |c| {
        redis::cmd("WARGAMING.INVALIDATE").arg("t").exec(c).unwrap();
    });
    assert!(bcast.contains(&pred_key("t")), "{bcast:?}");
    // Reads invalidate nothing.
    let read = invalidations(&server, &[], |c| {
        redis::cmd("WARGAMING.GETPRED").arg("t").exec(c).unwrap();
    });
    assert!(read.is_empty(), "{read:?}");
}
