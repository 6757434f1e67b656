//! Test harness: real `redis-server` processes on loopback, each in its own
//! temporary directory, on a free port, stopped when dropped.
//!
//! `REDIS_SERVER` picks the server binary (default `redis-server` on PATH);
//! `WARGAMING_MODULE` the module (default `target/release/libwargaming.so`,
//! built by `make test`).

#![allow(dead_code)] // each test file uses part of the harness

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to answer PING after start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub fn module_path() -> PathBuf {
    let path = std::env::var_os("WARGAMING_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/libwargaming.so"));
    assert!(
        path.exists(),
        "module not built at {} (run `make build`)",
        path.display()
    );
    path
}

pub fn server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// How to start a server.
#[derive(Clone)]
pub struct Config {
    /// Load the module (with these `loadmodule` arguments).
    pub module: Option<Vec<String>>,
    /// Extra `redis.conf` lines.
    pub lines: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            module: Some(Vec::new()),
            lines: Vec::new(),
        }
    }
}

impl Config {
    pub fn without_module() -> Self {
        Self {
            module: None,
            lines: Vec::new(),
        }
    }

    pub fn module_args(mut self, args: &[&str]) -> Self {
        self.module = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn line(mut self, line: &str) -> Self {
        self.lines.push(line.to_string());
        self
    }
}

pub struct Server {
    pub port: u16,
    pub dir: TempDir,
    pub config: Config,
    child: Option<Child>,
}

impl Server {
    /// A server with the module loaded and default settings.
    pub fn start() -> Server {
        Server::with(Config::default())
    }

    pub fn with(config: Config) -> Server {
        Server::try_with(config).unwrap_or_else(|log| panic!("redis-server did not start:\n{log}"))
    }

    /// Starts a server that may fail to start; returns its log on failure.
    /// A port taken between choosing it and binding it (another test's
    /// server) is retried on a fresh one.
    pub fn try_with(config: Config) -> Result<Server, String> {
        let dir = tempfile::Builder::new()
            .prefix("wargaming-test-")
            .tempdir()
            .expect("temp dir");
        let mut server = Server {
            port: 0,
            dir,
            config,
            child: None,
        };
        let mut attempts = 0;
        loop {
            match server.launch() {
                Err(log) if log.contains("Address already in use") && attempts < 5 => {
                    attempts += 1;
                    server.port = 0;
                }
                other => return other.map(|()| server),
            }
        }
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("redis.conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn write_conf(&mut self) {
        let mut conf = vec![
            "bind 127.0.0.1".to_string(),
            format!("port {}", self.port),
            format!("dir {}", self.dir.path().display()),
            format!("logfile {}", self.log_path().display()),
            "save \"\"".to_string(),
            "appendonly no".to_string(),
            "repl-diskless-sync-delay 0".to_string(),
            "enable-debug-command yes".to_string(),
        ];
        if let Some(args) = &self.config.module {
            conf.push(format!("loadmodule {} {}", module_path().display(), args.join(" ")));
        }
        conf.extend(self.config.lines.iter().cloned());
        fs::write(self.conf_path(), conf.join("\n") + "\n").expect("write redis.conf");
    }

    /// (Re)starts the process with the current config, on a fresh free port
    /// the first time and on the same port afterwards.
    fn launch(&mut self) -> Result<(), String> {
        if self.port == 0 {
            self.port = free_port();
        }
        self.write_conf();
        let child = Command::new(server_binary())
            .arg(self.conf_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", server_binary()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}\n{}", self.log()));
                }
            }
            if let Ok(mut con) = self.try_connection() {
                let ready: redis::RedisResult<String> = redis::cmd("PING").query(&mut con);
                if ready.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {READY_TIMEOUT:?}\n{}", self.log()));
            }
            sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn try_connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(5))
    }

    /// A RESP2 connection.
    pub fn connection(&self) -> redis::Connection {
        self.try_connection().expect("connect")
    }

    /// A RESP3 connection.
    pub fn connection_resp3(&self) -> redis::Connection {
        let url = format!("{}?protocol=resp3", self.url());
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connect resp3")
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the process (SIGKILL when `hard`, else SHUTDOWN NOSAVE via SIGTERM).
    pub fn stop(&mut self, hard: bool) {
        if let Some(mut child) = self.child.take() {
            let signal = if hard { "-KILL" } else { "-TERM" };
            let _ = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Restarts on the same port and directory, with a possibly new config.
    pub fn restart(&mut self, config: Config) {
        self.stop(false);
        self.config = config;
        self.launch()
            .unwrap_or_else(|log| panic!("redis-server did not restart:\n{log}"));
    }

    /// Restarts after a `kill -9`.
    pub fn crash_and_restart(&mut self) {
        self.stop(true);
        self.launch()
            .unwrap_or_else(|log| panic!("redis-server did not restart:\n{log}"));
    }

    /// Panics if the log shows a crash report.
    pub fn assert_no_crash(&self) {
        let log = self.log();
        for sign in [
            "REDIS BUG REPORT",
            "crashed by signal",
            "panicked at",
            "ASSERTION FAILED",
            // The module's panic barrier caught a bug.
            "bug caught",
        ] {
            assert!(!log.contains(sign), "server log shows a crash ({sign}):\n{log}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// One field of `INFO <section>`.
pub fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_string()
}

/// A numeric field of `INFO <section>`.
pub fn info_int(con: &mut redis::Connection, section: &str, field: &str) -> i64 {
    info_field(con, section, field)
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number"))
}

/// One figure of `WARGAMING.STATS`.
pub fn stat(con: &mut redis::Connection, field: &str) -> redis::Value {
    let fields: Vec<(String, redis::Value)> = redis::cmd("WARGAMING.STATS").query(con).expect("STATS");
    fields
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no STATS field {field}"))
}

pub fn stat_int(con: &mut redis::Connection, field: &str) -> i64 {
    redis::from_redis_value(&stat(con, field)).expect("an integer figure")
}

/// Every key a full `SCAN MATCH pattern` returns, sorted, once each.
pub fn scan_match(con: &mut redis::Connection, pattern: &str) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(con)
        .expect("SCAN")
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `WARGAMING.SETPRED id json`, which must succeed.
pub fn setpred(con: &mut redis::Connection, id: impl redis::ToRedisArgs, json: &str) {
    redis::cmd("WARGAMING.SETPRED")
        .arg(id)
        .arg(json)
        .exec(con)
        .expect("SETPRED");
}

pub fn setmatrix(con: &mut redis::Connection, version: impl redis::ToRedisArgs, json: &str) {
    redis::cmd("WARGAMING.SETMATRIX")
        .arg(version)
        .arg(json)
        .exec(con)
        .expect("SETMATRIX");
}

fn replication_offset(server: &Server) -> i64 {
    info_int(&mut server.connection(), "replication", "master_repl_offset")
}

/// Waits until the replica has processed everything the master has sent
/// so far, whoever wrote it (WAIT only covers the calling connection's own
/// writes, not a sweep's deletions or other clients' writes).
pub fn wait_replica_synced(master: &Server, replica: &Server) {
    let target = replication_offset(master);
    wait_for("replica to catch up with the master", Duration::from_secs(60), || {
        replication_offset(replica) >= target
    });
}

/// Waits until `check` holds, or panics after `timeout` with `what`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20));
    }
}

/// `redis::cmd(name)` with byte-string arguments.
pub fn cmd(name: &str, args: &[&[u8]]) -> redis::Cmd {
    let mut c = redis::cmd(name);
    for a in args {
        c.arg(*a);
    }
    c
}

/// Runs a command and returns the raw reply (errors as `Err`).
pub fn run(con: &mut redis::Connection, name: &str, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut c = redis::cmd(name);
    for a in args {
        c.arg(*a);
    }
    c.query(con)
}

/// Runs a command that must fail; returns the full error text
/// (code and message, as redis-cli would show it).
pub fn error_of(con: &mut redis::Connection, name: &str, args: &[&str]) -> String {
    match run(con, name, args) {
        Ok(v) => panic!("{name} {args:?} succeeded with {v:?}"),
        Err(e) => error_text(&e),
    }
}

pub fn error_text(e: &redis::RedisError) -> String {
    let code = e.code().unwrap_or("");
    let detail = e.detail().unwrap_or("");
    format!("{code} {detail}").trim().to_string()
}

/// Key name of a prediction, as the module lays it out.
pub fn pred_key(id: &str) -> String {
    format!("wargaming:ml_pred:{{{id}}}")
}

pub fn matrix_key(id: &str) -> String {
    format!("wargaming:confusion:{{{id}}}")
}

pub fn pattern_key(hash: &str) -> String {
    format!("wargaming:vuln_pattern:{{{hash}}}")
}
pub mod cluster;
