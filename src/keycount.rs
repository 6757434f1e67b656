//! Exact number of live entries per kind and database, kept up to date from
//! keyspace and server events, so `STATS` and `INFO` answer in constant time
//! with no SCAN on the request path.
//!
//! What changes a key count, and what tells us (Redis 7.0):
//! - `new` (+1): every key creation, module key-API writes and AOF replay
//!   included; `loaded` (+1): each key an RDB load brings (restart, DEBUG
//!   RELOAD, a replica's full sync).
//! - `del`, `expired`, `evicted`, `rename_from`, `move_from` (-1); on a
//!   replica, the master's expiries and evictions arrive as `del`.
//! - FLUSHDB/FLUSHALL (and the flush before a reload or full sync): the
//!   FlushDB server event; SWAPDB: the SwapDB server event.
//! - RENAME, COPY ... REPLACE and RESTORE ... REPLACE onto an existing key
//!   delete it without any event. We also count every key of the database
//!   (`total`), so after `rename_to`/`copy_to`/`restore` a total above
//!   RM_DbSize reveals the silent deletion, of a key with the target's name.
//!
//! Callbacks only update counters: writing to the keyspace from a
//! notification callback is unsafe on 7.0.

use std::ffi::c_void;
use std::os::raw::c_int;

use redis_module::{raw, Context};

use crate::keys::{self, Kind};
use crate::shared::Shared;
use crate::{guard, stats, store};

/// Per database: entries of each kind, then all keys.
type DbCounts = [i64; 4];
const TOTAL: usize = 3;

static COUNTS: Shared<Vec<DbCounts>> = Shared::new(Vec::new());

fn update(db: i32, f: impl FnOnce(&mut DbCounts)) {
    let Ok(db) = usize::try_from(db) else { return };
    COUNTS.with(|counts| {
        if counts.len() <= db {
            counts.resize(db + 1, [0; 4]);
        }
        if let Some(entry) = counts.get_mut(db) {
            f(entry);
        }
    });
}

fn add(db: i32, kind: Option<Kind>, delta: i64) {
    update(db, |c| {
        if let Some(kind) = kind {
            if let Some(n) = c.get_mut(kind.index()) {
                *n += delta;
            }
        }
        if let Some(total) = c.get_mut(TOTAL) {
            *total += delta;
        }
    });
}

/// Live entries of `kind` in database `db`.
pub fn keys(db: i32, kind: Kind) -> i64 {
    let db = usize::try_from(db).unwrap_or(usize::MAX);
    COUNTS
        .with(|c| c.get(db).and_then(|d| d.get(kind.index()).copied()))
        .flatten()
        .unwrap_or(0)
}

/// Live entries of `kind` in every database.
pub fn keys_everywhere(kind: Kind) -> i64 {
    COUNTS
        .with(|c| c.iter().filter_map(|d| d.get(kind.index())).sum())
        .unwrap_or(0)
}

/// Keyspace event hook.
/// Runs for every key event in the server (every SET, EXPIRE...): the
/// events that change no count return before any other work.
pub fn on_keyspace_event(ctx: &Context, event: &str, key: &[u8]) {
    let delta = match event {
        "new" | "loaded" => 1,
        "del" | "rename_from" | "move_from" | "expired" | "evicted" => -1,
        "rename_to" | "copy_to" | "restore" => 0,
        _ => return,
    };
    let kind = keys::kind_of(key);
    let db = store::selected_db(ctx);
    if delta == 0 {
        return reconcile(ctx, db, kind);
    }
    add(db, kind, delta);
    if let (Some(kind), "expired" | "evicted") = (kind, event) {
        stats::record_removal(kind, event == "expired");
    }
}

/// After a command that may have overwritten its target silently.
fn reconcile(ctx: &Context, db: i32, kind: Option<Kind>) {
    // SAFETY: plain accessor on a live context (the event's database).
    let actual = unsafe { raw::RedisModule_DbSize }.map_or(0, |f| unsafe { f(ctx.get_raw()) });
    let actual = i64::try_from(actual).unwrap_or(i64::MAX);
    let counted = COUNTS
        .with(|c| usize::try_from(db).ok().and_then(|db| c.get(db)?.get(TOTAL).copied()))
        .flatten();
    let drift = counted.unwrap_or(0) - actual;
    if drift == 1 {
        add(db, kind, -1); // the silently replaced target
    } else if drift != 0 {
        update(db, |c| {
            if let Some(total) = c.get_mut(TOTAL) {
                *total = actual;
            }
        });
    }
}

extern "C" fn on_flush(_ctx: *mut raw::RedisModuleCtx, _eid: raw::RedisModuleEvent, subevent: u64, data: *mut c_void) {
    guard::callback("flush event", || {
        if subevent != raw::REDISMODULE_SUBEVENT_FLUSHDB_END || data.is_null() {
            return;
        }
        // SAFETY: Redis passes a RedisModuleFlushInfo with this event.
        let info = unsafe { &*data.cast::<raw::RedisModuleFlushInfo>() };
        crate::invalidate::on_flush(info.dbnum);
        crate::keyindex::on_flush(info.dbnum);
        if info.dbnum < 0 {
            COUNTS.with(|c| c.clear());
        } else {
            update(info.dbnum, |c| *c = [0; 4]);
        }
    });
}

extern "C" fn on_swapdb(
    _ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    _subevent: u64,
    data: *mut c_void,
) {
    guard::callback("swapdb event", || {
        if data.is_null() {
            return;
        }
        // SAFETY: Redis passes a RedisModuleSwapDbInfo with this event.
        let info = unsafe { &*data.cast::<raw::RedisModuleSwapDbInfo>() };
        let (a, b) = (info.dbnum_first, info.dbnum_second);
        crate::invalidate::on_swapdb(a, b);
        crate::keyindex::on_swapdb(a, b);
        let high = a.max(b);
        update(high, |_| ()); // make room for both
        COUNTS.with(|c| {
            if let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b)) {
                if a < c.len() && b < c.len() {
                    c.swap(a, b);
                }
            }
        });
    });
}

/// Subscribes to the server events, and counts what is already there (the
/// module may be loaded into a running server with data).
pub fn init(ctx: &Context) -> Result<(), String> {
    let subscribe = unsafe { raw::RedisModule_SubscribeToServerEvent }.ok_or("no server events")?;
    for (id, callback) in [
        (
            raw::REDISMODULE_EVENT_FLUSHDB,
            on_flush as unsafe extern "C" fn(_, _, _, _),
        ),
        (raw::REDISMODULE_EVENT_SWAPDB, on_swapdb),
    ] {
        let event = raw::RedisModuleEvent { id, dataver: 1 };
        // SAFETY: the callbacks match RedisModuleEventCallback.
        if unsafe { subscribe(ctx.get_raw(), event, Some(callback)) } != raw::REDISMODULE_OK as c_int {
            return Err(format!("cannot subscribe to server event {id}"));
        }
    }
    count_existing(ctx);
    Ok(())
}

fn count_existing(ctx: &Context) {
    let (Some(select), Some(dbsize)) = (unsafe { raw::RedisModule_SelectDb }, unsafe { raw::RedisModule_DbSize })
    else {
        return;
    };
    let mut db = 0;
    // SAFETY: SelectDb refuses ids beyond `databases`; the load context has a client.
    while unsafe { select(ctx.get_raw(), db) } == raw::REDISMODULE_OK as c_int {
        if unsafe { dbsize(ctx.get_raw()) } > 0 {
            let mut counted: DbCounts = [0; 4];
            store::scan_all(ctx, |name: &[u8]| {
                crate::keyindex::add(db, name);
                if let Some(kind) = keys::kind_of(name) {
                    if let Some(n) = counted.get_mut(kind.index()) {
                        *n += 1;
                    }
                }
                if let Some(total) = counted.get_mut(TOTAL) {
                    *total += 1;
                }
            });
            update(db, |c| *c = counted);
        }
        db += 1;
    }
    unsafe { select(ctx.get_raw(), 0) };
}
