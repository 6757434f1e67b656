//! A Redis Cluster on loopback: one `redis-server` per node (each with the
//! module, in its own temp dir, on a free port), joined with
//! `redis-cli --cluster create`, killed when dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::Value;

use super::{free_port, Config, Server};

/// How long the cluster may take to form, fail over or settle.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const SLOTS: usize = 16384;

pub struct Cluster {
    pub nodes: Vec<Server>,
    down: HashSet<u16>,
}

/// One node as a slot map names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeRef {
    pub port: u16,
    pub id: String,
}

/// A range of slots and who serves it, as `CLUSTER SLOTS` tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub master: NodeRef,
    pub replicas: Vec<NodeRef>,
}

/// The slot map every node agrees on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotMap {
    pub ranges: Vec<SlotRange>,
}

impl SlotMap {
    /// Port of the master serving each slot.
    pub fn owners(&self) -> Vec<u16> {
        let mut owners = vec![0u16; SLOTS];
        for range in &self.ranges {
            for slot in range.start..=range.end {
                owners[usize::from(slot)] = range.master.port;
            }
        }
        owners
    }

    pub fn owner_of(&self, slot: u16) -> &NodeRef {
        &self
            .ranges
            .iter()
            .find(|r| (r.start..=r.end).contains(&slot))
            .unwrap_or_else(|| panic!("slot {slot} not served"))
            .master
    }

    /// Masters that serve slots, by port.
    pub fn masters(&self) -> Vec<NodeRef> {
        let mut masters: Vec<NodeRef> = self.ranges.iter().map(|r| r.master.clone()).collect();
        masters.sort();
        masters.dedup();
        masters
    }

    /// Replicas of each master (port to ports).
    pub fn replicas(&self) -> BTreeMap<u16, Vec<u16>> {
        let mut out: BTreeMap<u16, Vec<u16>> = BTreeMap::new();
        for range in &self.ranges {
            let entry = out.entry(range.master.port).or_default();
            for replica in &range.replicas {
                if !entry.contains(&replica.port) {
                    entry.push(replica.port);
                }
            }
        }
        out
    }

    fn covered(&self) -> usize {
        self.ranges
            .iter()
            .map(|r| usize::from(r.end) - usize::from(r.start) + 1)
            .sum()
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn node_ref(value: &Value) -> Option<NodeRef> {
    let Value::Array(fields) = value else { return None };
    let port = match fields.get(1)? {
        Value::Int(port) => u16::try_from(*port).ok()?,
        _ => return None,
    };
    Some(NodeRef {
        port,
        id: text(fields.get(2)?)?,
    })
}

/// Parses a `CLUSTER SLOTS` reply, sorted by slot, replicas sorted.
pub fn parse_slots(reply: &Value) -> Result<SlotMap, String> {
    let Value::Array(ranges) = reply else {
        return Err(format!("CLUSTER SLOTS replied {reply:?}"));
    };
    let mut out = Vec::new();
    for range in ranges {
        let parsed = (|| {
            let Value::Array(fields) = range else { return None };
            let (Value::Int(start), Value::Int(end)) = (fields.first()?, fields.get(1)?) else {
                return None;
            };
            let master = node_ref(fields.get(2)?)?;
            let mut replicas = fields.iter().skip(3).map(node_ref).collect::<Option<Vec<_>>>()?;
            replicas.sort();
            Some(SlotRange {
                start: u16::try_from(*start).ok()?,
                end: u16::try_from(*end).ok()?,
                master,
                replicas,
            })
        })();
        out.push(parsed.ok_or_else(|| format!("unexpected CLUSTER SLOTS entry {range:?}"))?);
    }
    out.sort_by_key(|r| r.start);
    Ok(SlotMap { ranges: out })
}

/// The slot map one node serves to clients: masters from `CLUSTER SLOTS`
/// (what cluster clients route by), replicas from `CLUSTER NODES` (7.0
/// caches the `CLUSTER SLOTS` reply, and lists a new replica there only
/// seconds after the replica synced).
pub fn slots_via(con: &mut redis::Connection) -> Result<SlotMap, String> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(con)
        .map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
    let mut map = parse_slots(&reply)?;
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(con)
        .map_err(|e| format!("CLUSTER NODES: {e}"))?;
    // <id> <ip:port@cport[,hostname]> <flags> <master id|-> ...
    let replicas: Vec<(String, NodeRef)> = nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (id, addr, flags, master) = (fields.first()?, fields.get(1)?, fields.get(2)?, fields.get(3)?);
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"slave") || flags.iter().any(|f| matches!(*f, "fail" | "noaddr" | "handshake")) {
                return None;
            }
            let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
            Some((
                master.to_string(),
                NodeRef {
                    port,
                    id: id.to_string(),
                },
            ))
        })
        .collect();
    for range in &mut map.ranges {
        range.replicas = replicas
            .iter()
            .filter(|(master, _)| *master == range.master.id)
            .map(|(_, node)| node.clone())
            .collect();
        range.replicas.sort();
    }
    Ok(map)
}

/// `INFO <section>` as a field map.
pub fn info(con: &mut redis::Connection, section: &str) -> HashMap<String, String> {
    let text: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

impl Cluster {
    /// 3 masters with one replica each.
    pub fn start() -> Cluster {
        Cluster::start_with(3, 1)
    }

    pub fn start_with(masters: usize, replicas: usize) -> Cluster {
        let nodes: Vec<Server> = (0..masters * (1 + replicas))
            .map(|_| {
                // The bus port defaults to port + 10000, which may be taken
                // or beyond 65535 for an ephemeral port: pick one.
                Server::with(
                    Config::default()
                        .line("cluster-enabled yes")
                        .line("cluster-config-file nodes.conf")
                        .line("cluster-node-timeout 2000")
                        .line(&format!("cluster-port {}", free_port()))
                        .line("appendonly no")
                        .line("save \"\""),
                )
            })
            .collect();
        let cluster = Cluster {
            nodes,
            down: HashSet::new(),
        };
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster.redis_cli(&refs);
        cluster.wait_settled();
        cluster
    }

    /// Ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|n| n.port)
            .filter(|p| !self.down.contains(p))
            .collect()
    }

    pub fn server(&self, port: u16) -> &Server {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// A plain (non-cluster) connection to one node.
    pub fn direct(&self, port: u16) -> redis::Connection {
        self.server(port).connection()
    }

    /// A cluster client seeded with every live node.
    pub fn client(&self) -> ClusterClient {
        let seeds: Vec<String> = self
            .live_ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect();
        ClusterClient::builder(seeds)
            .connection_timeout(Duration::from_secs(5))
            .response_timeout(Duration::from_secs(30))
            .build()
            .expect("cluster client")
    }

    pub fn connection(&self) -> ClusterConnection {
        self.client().get_connection().expect("cluster connection")
    }

    /// Kills a node with SIGKILL; it stays down.
    pub fn kill(&mut self, port: u16) {
        let index = self
            .nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        self.nodes[index].stop(true);
        self.down.insert(port);
    }

    pub fn node_id(&self, port: u16) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.direct(port))
            .expect("CLUSTER MYID")
    }

    /// The slot map as one node sees it.
    pub fn slot_map_of(&self, port: u16) -> Result<SlotMap, String> {
        let mut con = try_connect(self.server(port)).map_err(|e| format!("{port}: {e}"))?;
        slots_via(&mut con).map_err(|e| format!("{port}: {e}"))
    }

    /// The agreed slot map (call after [`Cluster::wait_settled`]).
    pub fn slot_map(&self) -> SlotMap {
        self.settled().unwrap_or_else(|e| panic!("cluster not settled: {e}"))
    }

    /// `Ok(map)` when every live node reports `cluster_state:ok` and the same
    /// slot map covering every slot with live masters, and every live replica
    /// of a live master has its link up and no sync in progress.
    pub fn settled(&self) -> Result<SlotMap, String> {
        let live = self.live_ports();
        let mut agreed: Option<SlotMap> = None;
        for &port in &live {
            let mut con = try_connect(self.server(port)).map_err(|e| format!("{port}: {e}"))?;
            let state: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut con)
                .map_err(|e| format!("{port}: CLUSTER INFO: {e}"))?;
            if !state.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(format!("{port}: cluster_state is not ok"));
            }
            let map = slots_via(&mut con).map_err(|e| format!("{port}: {e}"))?;
            match &agreed {
                None => agreed = Some(map),
                Some(first) if *first != map => {
                    return Err(format!("{port} disagrees on the slot map:\n{first:?}\n{map:?}"));
                }
                Some(_) => {}
            }
        }
        let map = agreed.ok_or("no live node")?;
        if map.covered() != SLOTS {
            return Err(format!("{} slots covered", map.covered()));
        }
        for range in &map.ranges {
            if !live.contains(&range.master.port) {
                return Err(format!(
                    "slots {}-{} on dead {}",
                    range.start, range.end, range.master.port
                ));
            }
        }
        let masters: HashSet<u16> = map.masters().iter().map(|m| m.port).collect();
        for &port in &live {
            let mut con = try_connect(self.server(port)).map_err(|e| format!("{port}: {e}"))?;
            let replication = info(&mut con, "replication");
            let role = replication.get("role").map(String::as_str);
            match role {
                Some("master") => {}
                Some("slave") => {
                    let master_port: u16 = replication
                        .get("master_port")
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_default();
                    if masters.contains(&master_port)
                        && (replication.get("master_link_status").map(String::as_str) != Some("up")
                            || replication.get("master_sync_in_progress").map(String::as_str) != Some("0"))
                    {
                        return Err(format!("replica {port} of {master_port} not in sync yet"));
                    }
                    // Every node must know the replica (CLUSTER NODES).
                    if masters.contains(&master_port)
                        && !map.replicas().get(&master_port).is_some_and(|r| r.contains(&port))
                    {
                        return Err(format!("replica {port} of {master_port} not in the slot map yet"));
                    }
                }
                other => return Err(format!("{port}: role {other:?}")),
            }
        }
        Ok(map)
    }

    /// Waits until [`Cluster::settled`] holds; returns the agreed map.
    pub fn wait_settled(&self) -> SlotMap {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            match self.settled() {
                Ok(map) => return map,
                Err(why) if Instant::now() > deadline => {
                    panic!("cluster did not settle within {SETTLE_TIMEOUT:?}: {why}")
                }
                Err(_) => sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Waits until every live replica has processed everything its master
    /// had written when this was called.
    pub fn wait_replicas_caught_up(&self) {
        let mut targets: Vec<(u16, i64)> = Vec::new();
        for port in self.live_ports() {
            let replication = info(&mut self.direct(port), "replication");
            if replication.get("role").map(String::as_str) == Some("master") {
                let offset = replication["master_repl_offset"].parse().expect("master_repl_offset");
                targets.push((port, offset));
            }
        }
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        for port in self.live_ports() {
            loop {
                let replication = info(&mut self.direct(port), "replication");
                if replication.get("role").map(String::as_str) != Some("slave") {
                    break;
                }
                let master_port: u16 = replication["master_port"].parse().expect("master_port");
                let Some(&(_, target)) = targets.iter().find(|(p, _)| *p == master_port) else {
                    break;
                };
                let offset: i64 = replication["slave_repl_offset"].parse().expect("slave_repl_offset");
                if offset >= target {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {port} stuck at offset {offset} < {target}"
                );
                sleep(Duration::from_millis(20));
            }
        }
    }

    /// Runs `redis-cli <args>`; panics unless it exits 0. Returns stdout
    /// without terminal colour codes.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        let output = Command::new(redis_cli_binary())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli: {e}"));
        let stdout = strip_ansi(&String::from_utf8_lossy(&output.stdout));
        assert!(
            output.status.success(),
            "redis-cli {args:?} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `redis-cli --cluster call 127.0.0.1:<any> <command...> --cluster-only-masters`,
    /// split per node: port to reply lines.
    pub fn call_on_masters(&self, command: &[&str]) -> BTreeMap<u16, Vec<String>> {
        let entry = format!("127.0.0.1:{}", self.live_ports()[0]);
        let mut args = vec!["--cluster", "call", entry.as_str()];
        args.extend_from_slice(command);
        args.push("--cluster-only-masters");
        parse_cluster_call(&self.redis_cli(&args))
    }

    /// Panics if any live node's log shows a crash.
    pub fn assert_no_crash(&self) {
        for node in &self.nodes {
            node.assert_no_crash();
        }
    }
}

pub fn redis_cli_binary() -> String {
    std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_string())
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `--cluster call` prints `>>> Calling ...`, then per node
/// `127.0.0.1:<port>: <first line of the reply>` and the reply's other lines.
pub fn parse_cluster_call(output: &str) -> BTreeMap<u16, Vec<String>> {
    let mut out: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    let mut current: Option<u16> = None;
    for line in output.lines() {
        if line.starts_with(">>> ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("127.0.0.1:") {
            if let Some((port, first)) = rest.split_once(": ") {
                if let Ok(port) = port.parse::<u16>() {
                    out.insert(port, vec![first.to_string()]);
                    current = Some(port);
                    continue;
                }
            }
        }
        if let Some(port) = current {
            if !line.is_empty() {
                out.entry(port).or_default().push(line.to_string());
            }
        }
    }
    out
}

/// A connection, or the error (for nodes that may be going down).
pub fn try_connect(server: &Server) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(server.url())?.get_connection_with_timeout(Duration::from_secs(5))
}
