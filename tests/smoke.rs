mod common;
use common::*;

#[test]
fn module_loads_and_answers() {
    let server = Server::start();
    let mut con = server.connection();
    let ok: String = redis::cmd("WARGAMING.SETPRED")
        .arg("a")
        .arg("{}")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    let e = error_of(&mut con, "WARGAMING.SETPRED", &["a{", "{}"]);
    assert_eq!(e, "ERR invalid id: must not contain '{' or '}'");
    let e = error_of(&mut con, "WARGAMING.GETPRED", &[]);
    assert!(e.starts_with("ERR wrong number of arguments"), "{e}");
    redis::cmd("LPUSH").arg(pred_key("l")).arg("x").exec(&mut con).unwrap();
    let e = error_of(&mut con, "WARGAMING.GETPRED", &["l"]);
    assert!(e.starts_with("WRONGTYPE"), "{e}");
}
