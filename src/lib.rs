//! `wargaming`: the wargaming service's ML-result cache, enforced inside
//! Redis. This file only registers; see `commands.rs` for what each command
//! does and `store.rs` for how the keyspace is touched.

// No panics inside Redis: a panic aborts the server (tests may use them).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

pub mod args;
pub mod canonical;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod errors;
pub mod guard;
pub mod idset;
pub mod invalidate;
pub mod json;
pub mod keycount;
pub mod keyindex;
pub mod keys;
pub mod keyspecs;
pub mod shared;
pub mod stats;
pub mod store;

use redis_module::configuration::ConfigurationFlags;
use redis_module::{redis_module, AclCategory, Context, InfoContext, RedisResult, RedisString, Status};

use keys::Kind;

// Unit tests and fuzz targets run outside Redis: they need the system allocator.
#[cfg(not(any(test, feature = "system-alloc")))]
type Allocator = redis_module::alloc::RedisAlloc;
#[cfg(not(any(test, feature = "system-alloc")))]
const ALLOCATOR: Allocator = redis_module::alloc::RedisAlloc;
#[cfg(any(test, feature = "system-alloc"))]
type Allocator = std::alloc::System;
#[cfg(any(test, feature = "system-alloc"))]
const ALLOCATOR: Allocator = std::alloc::System;

fn setpred(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, |ctx, args| commands::set_entry(ctx, args, Kind::Prediction))
}
fn getpred(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, |ctx, args| commands::get_entry(ctx, args, Kind::Prediction))
}
fn setmatrix(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, |ctx, args| commands::set_entry(ctx, args, Kind::Matrix))
}
fn getmatrix(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, |ctx, args| commands::get_entry(ctx, args, Kind::Matrix))
}
fn hashpattern(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, commands::hash_pattern)
}
fn patternhash(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, commands::pattern_hash_only)
}
fn setpattern(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, commands::set_pattern)
}
fn getpattern(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, |ctx, args| commands::get_entry(ctx, args, Kind::Pattern))
}
fn invalidate(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, commands::invalidate_command)
}
fn stats(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guard::command(ctx, args, commands::stats_command)
}
fn info(ctx: &InfoContext, for_crash_report: bool) {
    guard::callback("INFO", || stats::info(ctx, for_crash_report));
}
fn on_keyspace_event(ctx: &Context, class: redis_module::NotifyEvent, event: &str, key: &[u8]) {
    guard::callback("keyspace event", || {
        keycount::on_keyspace_event(ctx, event, key);
        keyindex::on_keyspace_event(ctx, event, key);
        invalidate::on_keyspace_event(ctx, class, event, key);
    });
}
fn init(ctx: &Context, args: &[RedisString]) -> Status {
    commands::init(ctx, args)
}

// Command flags: setters may be refused when memory is full, deletions never
// are; readers are fast. Key positions: first key 1 for the commands named by
// an id; HASHPATTERN and STATS declare none. ACL categories: the `wargaming`
// category is optional (a 7.0 server would refuse to load a module that sets
// a mandatory one; it skips optional ones).
redis_module! {
    name: "wargaming",
    version: 1,
    allocator: (Allocator, ALLOCATOR),
    data_types: [],
    // Redis 7.2+ only; 7.0 skips it with a warning.
    acl_categories: [
        "wargaming",
    ],
    init: init,
    info: info,
    commands: [
        ["wargaming.setpred", setpred, "write deny-oom", 1, 1, 1, "", "wargaming"],
        ["wargaming.getpred", getpred, "readonly fast", 1, 1, 1, "", "wargaming"],
        ["wargaming.setmatrix", setmatrix, "write deny-oom", 1, 1, 1, "", "wargaming"],
        ["wargaming.getmatrix", getmatrix, "readonly fast", 1, 1, 1, "", "wargaming"],
        ["wargaming.hashpattern", hashpattern, "write deny-oom", 0, 0, 0, "", "wargaming"],
        ["wargaming.patternhash", patternhash, "readonly", 0, 0, 0, "", "wargaming"],
        ["wargaming.setpattern", setpattern, "write deny-oom", 1, 1, 1, "", "wargaming"],
        ["wargaming.getpattern", getpattern, "readonly fast", 1, 1, 1, "", "wargaming"],
        ["wargaming.invalidate", invalidate, "write getkeys-api", 1, -1, 1, "", "wargaming"],
        ["wargaming.stats", stats, "readonly", 0, 0, 0, "", "wargaming"],
    ],
    event_handlers: [
        [@STRING @GENERIC @NEW @LOADED @EXPIRED @EVICTED: on_keyspace_event],
    ],
    configurations: [
        i64: [
            [config::PRED_TTL_CONFIG.name, config::PRED_TTL_CONFIG.value, config::PRED_TTL_CONFIG.default,
             config::PRED_TTL_CONFIG.min, config::PRED_TTL_CONFIG.max, ConfigurationFlags::DEFAULT, None],
            [config::MATRIX_TTL_CONFIG.name, config::MATRIX_TTL_CONFIG.value, config::MATRIX_TTL_CONFIG.default,
             config::MATRIX_TTL_CONFIG.min, config::MATRIX_TTL_CONFIG.max, ConfigurationFlags::DEFAULT, None],
            [config::PATTERN_TTL_CONFIG.name, config::PATTERN_TTL_CONFIG.value, config::PATTERN_TTL_CONFIG.default,
             config::PATTERN_TTL_CONFIG.min, config::PATTERN_TTL_CONFIG.max, ConfigurationFlags::DEFAULT, None],
            [config::MAX_JSON_CONFIG.name, config::MAX_JSON_CONFIG.value, config::MAX_JSON_CONFIG.default,
             config::MAX_JSON_CONFIG.min, config::MAX_JSON_CONFIG.max, ConfigurationFlags::DEFAULT, None],
        ],
        string: [],
        bool: [],
        enum: [],
        module_args_as_configuration: true,
    ]
}
