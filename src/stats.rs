//! The module's own counters, and the two ways to read them: the
//! `WARGAMING.STATS` reply and the `# wargaming` INFO section. Both are built
//! from [`fields`], so they always show the same figures.
//!
//! Counters are plain atomics: commands run on Redis's main thread, so
//! relaxed ordering is enough and a read costs nothing.

use std::ffi::CStr;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::{raw, Context, InfoContext, RedisError, RedisResult, RedisValue};

use crate::keys::Kind;
use crate::{config, keycount, store};

/// Event counters of one kind, zeroed by `STATS RESET`.
struct KindCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    invalidated: AtomicU64,
    expired: AtomicU64,
    evicted: AtomicU64,
}

impl KindCounters {
    const fn new() -> Self {
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            sets: AtomicU64::new(0),
            invalidated: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    fn all(&self) -> [&AtomicU64; 6] {
        [
            &self.hits,
            &self.misses,
            &self.sets,
            &self.invalidated,
            &self.expired,
            &self.evicted,
        ]
    }
}

static COUNTERS: [KindCounters; 3] = [KindCounters::new(), KindCounters::new(), KindCounters::new()];

fn counters(kind: Kind) -> &'static KindCounters {
    match kind {
        Kind::Prediction => &COUNTERS[0],
        Kind::Matrix => &COUNTERS[1],
        Kind::Pattern => &COUNTERS[2],
    }
}

pub fn record_hit(kind: Kind) {
    counters(kind).hits.fetch_add(1, Ordering::Relaxed);
}

pub fn record_miss(kind: Kind) {
    counters(kind).misses.fetch_add(1, Ordering::Relaxed);
}

pub fn record_set(kind: Kind) {
    counters(kind).sets.fetch_add(1, Ordering::Relaxed);
}

pub fn record_invalidated(kind: Kind, count: u64) {
    counters(kind).invalidated.fetch_add(count, Ordering::Relaxed);
}

/// An entry Redis removed by itself: TTL passed, or evicted under maxmemory.
pub fn record_removal(kind: Kind, expired: bool) {
    let c = counters(kind);
    if expired { &c.expired } else { &c.evicted }.fetch_add(1, Ordering::Relaxed);
}

/// `STATS RESET`: zero every event counter (not the key counts).
pub fn reset() {
    for c in &COUNTERS {
        for counter in c.all() {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// One reported figure.
pub enum Figure {
    Int(i64),
    Ratio(f64),
    Text(String),
}

fn int(value: u64) -> Figure {
    Figure::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

fn ratio(hits: u64, misses: u64) -> Figure {
    let total = hits + misses;
    Figure::Ratio(if total == 0 { 0.0 } else { hits as f64 / total as f64 })
}

/// The module's own figures: totals, then per kind.
fn counter_fields(db: Option<i32>) -> Vec<(String, Figure)> {
    const NAMES: [&str; 6] = ["hits", "misses", "sets", "invalidated", "expired", "evicted"];
    let per_kind: Vec<(Kind, [u64; 6], i64)> = Kind::ALL
        .iter()
        .map(|&kind| {
            let counts = counters(kind).all().map(|c| c.load(Ordering::Relaxed));
            let keys = db.map_or_else(|| keycount::keys_everywhere(kind), |db| keycount::keys(db, kind));
            (kind, counts, keys)
        })
        .collect();
    let mut totals = [0u64; 6];
    for (_, counts, _) in &per_kind {
        for (total, count) in totals.iter_mut().zip(counts) {
            *total += count;
        }
    }
    let total_keys = per_kind.iter().map(|(_, _, keys)| keys).sum::<i64>();

    let mut out = Vec::new();
    let mut push_group = |prefix: &str, counts: &[u64; 6], keys: i64| {
        let [hits, misses, ..] = *counts;
        for (i, (name, count)) in NAMES.iter().zip(counts).enumerate() {
            out.push((format!("{prefix}{name}"), int(*count)));
            if i == 1 {
                out.push((format!("{prefix}hit_ratio"), ratio(hits, misses)));
            }
        }
        out.push((format!("{prefix}keys"), Figure::Int(keys)));
    };
    push_group("", &totals, total_keys);
    for (kind, counts, keys) in &per_kind {
        push_group(&format!("{}_", kind.stats_name()), counts, *keys);
    }
    out
}

/// Every figure, in reply order: totals, then per kind, then server
/// figures. `keys` counts the live entries of database `db`, or of every
/// database when `None` (INFO has no selected database).
pub fn fields(db: Option<i32>) -> Vec<(String, Figure)> {
    let mut out = counter_fields(db);
    let clients = Section::read(c"clients");
    let memory = Section::read(c"memory");
    let clients_int = |field: &CStr| clients.as_ref().map_or(0, |s| s.int(field));
    out.push((
        "connected_clients".to_string(),
        Figure::Int(clients_int(c"connected_clients")),
    ));
    out.push((
        "used_memory".to_string(),
        Figure::Int(memory.as_ref().map_or(0, |s| s.int(c"used_memory"))),
    ));
    out.push((
        "used_memory_human".to_string(),
        Figure::Text(
            memory
                .as_ref()
                .map_or_else(String::new, |s| s.text(c"used_memory_human")),
        ),
    ));
    // The module's own memory beside the entries: the key index.
    out.push((
        "index_bytes".to_string(),
        Figure::Int(i64::try_from(crate::keyindex::heap_bytes()).unwrap_or(i64::MAX)),
    ));
    for (field, kind) in [
        ("pred_ttl", Kind::Prediction),
        ("matrix_ttl", Kind::Matrix),
        ("pattern_ttl", Kind::Pattern),
    ] {
        out.push((field.to_string(), Figure::Int(config::default_ttl_secs(kind))));
    }
    out.push((
        "max_json_bytes".to_string(),
        Figure::Int(i64::try_from(config::max_json_bytes()).unwrap_or(i64::MAX)),
    ));
    out.push((
        "module_version".to_string(),
        Figure::Text(env!("CARGO_PKG_VERSION").to_string()),
    ));
    out
}

/// One `INFO` section, read through the module API once and freed on drop.
/// The context may be null (it only serves automatic memory), so INFO
/// callbacks can use it.
struct Section(std::ptr::NonNull<raw::RedisModuleServerInfoData>);

impl Section {
    fn read(name: &CStr) -> Option<Section> {
        // SAFETY: null context is allowed; the data is freed on drop.
        let data = unsafe { raw::RedisModule_GetServerInfo?(std::ptr::null_mut(), name.as_ptr()) };
        std::ptr::NonNull::new(data).map(Section)
    }

    fn int(&self, field: &CStr) -> i64 {
        let mut err = 0;
        // SAFETY: the data is live while self is.
        unsafe { raw::RedisModule_ServerInfoGetFieldSigned.map_or(0, |f| f(self.0.as_ptr(), field.as_ptr(), &mut err)) }
    }

    fn text(&self, field: &CStr) -> String {
        // SAFETY: the returned C string lives as long as the data.
        let ptr: *const c_char = unsafe {
            raw::RedisModule_ServerInfoGetFieldC.map_or(std::ptr::null(), |f| f(self.0.as_ptr(), field.as_ptr()))
        };
        if ptr.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
        }
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        // SAFETY: freed exactly once.
        if let Some(free) = unsafe { raw::RedisModule_FreeServerInfo } {
            unsafe { free(std::ptr::null_mut(), self.0.as_ptr()) };
        }
    }
}

/// `WARGAMING.STATS`: a map in RESP3, a flat field-value array in RESP2.
pub fn reply(ctx: &Context) -> RedisResult {
    let raw_ctx = ctx.get_raw();
    let fields = fields(Some(store::selected_db(ctx)));
    let reply_map = unsafe { raw::RedisModule_ReplyWithMap }.ok_or(RedisError::Str(crate::errors::INTERNAL))?;
    // SAFETY: a map header followed by exactly 2 * len replies.
    unsafe {
        reply_map(raw_ctx, fields.len() as std::os::raw::c_long);
        for (name, figure) in &fields {
            raw::RedisModule_ReplyWithStringBuffer.map(|f| f(raw_ctx, name.as_ptr().cast(), name.len()));
            match figure {
                Figure::Int(v) => raw::RedisModule_ReplyWithLongLong.map(|f| f(raw_ctx, *v)),
                Figure::Ratio(v) => raw::RedisModule_ReplyWithDouble.map(|f| f(raw_ctx, *v)),
                Figure::Text(v) => {
                    raw::RedisModule_ReplyWithStringBuffer.map(|f| f(raw_ctx, v.as_ptr().cast(), v.len()))
                }
            };
        }
    }
    Ok(RedisValue::NoReply)
}

/// The `# wargaming` INFO section (fields prefixed `wargaming_` by Redis).
#[allow(deprecated)] // the builder cannot name the section after the module alone
/// In a crash report only the module's own counters are added: asking the
/// server for INFO while it is crashing is best avoided.
pub fn info(ctx: &InfoContext, for_crash_report: bool) {
    // No name: Redis titles the section with the module name, `# wargaming`.
    ctx.add_info_section(None);
    let fields = if for_crash_report {
        counter_fields(None)
    } else {
        fields(None)
    };
    for (name, figure) in fields {
        match figure {
            Figure::Int(v) => ctx.add_info_field_long_long(&name, v),
            Figure::Ratio(v) => ctx.add_info_field_str(&name, &format!("{v:.6}")),
            Figure::Text(v) => ctx.add_info_field_str(&name, &v),
        };
    }
}
