//! `WARGAMING.INVALIDATE ALL` without stalling the server.
//!
//! A sweep deletes, in slices, the entries the key index (`keyindex.rs`)
//! held when it was accepted: it never visits the rest of the keyspace. A
//! slice runs each time the event loop is about to sleep, bounded by a time
//! budget, so other clients are served between slices; after each slice the
//! loop is woken at once (it would otherwise wait for its next timer). The
//! caller is blocked and gets the exact count when the sweep ends. A sweep
//! stops if the server turns replica or loads a dataset (the ids it did not
//! reach go back to the index), and ends at a FLUSHDB/FLUSHALL of its
//! database.
//!
//! Semantics are those of an instant delete:
//! - The moment ALL is accepted, every existing entry of the kind is
//!   *condemned*: GETs treat it as gone although the key still exists.
//! - Entries written after acceptance (seen through keyspace events, which
//!   module writes fire too) are recorded as survivors and never deleted;
//!   they are in the index again (an overwrite is added back explicitly).
//! - A second ALL while one runs joins the same sweep: it takes what the
//!   index holds now (everything written since the first), the survivors
//!   so far become condemned by it, and it is credited with exactly those. Both
//!   callers get their counts when the sweep ends, as if run one after the
//!   other.
//! - Inside MULTI, Lua or where blocking is denied, the sweep runs to the
//!   end synchronously (still correct, just not sliced).
//!
//! Deletions are native `DEL`s run through the store: replicated as such,
//! firing `del`.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::os::raw::c_int;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_module::{raw, Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};

use crate::idset::IdSet;
use crate::keys::{self, Kind};
use crate::shared::Shared;
use crate::store::{self, api};
use crate::{errors, guard, keyindex, stats};

/// Longest time one slice may hold the event loop.
const SLICE_BUDGET: Duration = Duration::from_millis(2);

type JobId = u64;

/// A blocked caller's handle.
#[derive(Clone, Copy)]
struct BlockedClient(NonNull<raw::RedisModuleBlockedClient>);

// SAFETY: the handle is only passed to RM_UnblockClient, which Redis allows
// from any thread; the sweeps holding it are shared under Redis's lock.
unsafe impl Send for BlockedClient {}

#[derive(Clone, Copy)]
struct Job {
    id: JobId,
    /// Blocked caller; `None` for a synchronous run (MULTI, Lua).
    client: Option<BlockedClient>,
    deleted: u64,
}

/// One sweep per (database, kind).
struct Sweep {
    db: i32,
    kind: Kind,
    /// The ids each job took from the index when accepted, oldest first;
    /// drained a block at a time.
    sources: VecDeque<IdSet>,
    /// Oldest first; `jobs[0]` owns everything not in `written`.
    jobs: Vec<Job>,
    /// Keys written since the sweep began: `None` survives; `Some(job)` was
    /// written before that job was accepted, so that job condemned it.
    written: HashMap<Vec<u8>, Option<JobId>>,
}

// Never held across a call into Redis: such a call may fire an event whose
// handler needs it again.
static SWEEPS: Shared<Vec<Sweep>> = Shared::new(Vec::new());
/// Fast path for GETs and events: is any sweep running at all?
static ACTIVE: AtomicBool = AtomicBool::new(false);
static NEXT_JOB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn with_sweep<R>(db: i32, kind: Kind, f: impl FnOnce(&mut Sweep) -> R) -> Option<R> {
    SWEEPS
        .with(|sweeps| sweeps.iter_mut().find(|s| s.db == db && s.kind == kind).map(f))
        .flatten()
}

impl Sweep {
    /// The job that condemned `name`, or `None` if it survives the sweep.
    fn owner_of(&self, name: &[u8]) -> Option<JobId> {
        match self.written.get(name) {
            Some(owner) => *owner,
            None => self.jobs.first().map(|job| job.id),
        }
    }

    fn credit(&mut self, owner: JobId, deleted: u64) {
        if let Some(job) = self.jobs.iter_mut().find(|job| job.id == owner) {
            job.deleted += deleted;
        }
    }
}

/// Is this existing entry condemned by a running INVALIDATE ALL?
pub fn is_hidden(ctx: &Context, kind: Kind, name: &[u8]) -> bool {
    if !ACTIVE.load(Ordering::Relaxed) {
        return false;
    }
    let db = store::selected_db(ctx);
    with_sweep(db, kind, |sweep| sweep.owner_of(name).is_some()).unwrap_or(false)
}

/// A live entry that a running INVALIDATE ALL condemned, about to be
/// overwritten by the module.
pub struct Condemned {
    db: i32,
    kind: Kind,
    owner: JobId,
}

/// Called by the store before it overwrites `name`: the job that condemned
/// the live entry there, if any.
pub fn condemned_live(ctx: &Context, name: &RedisString) -> Option<Condemned> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    let kind = keys::kind_of(name.as_slice())?;
    let db = store::selected_db(ctx);
    let owner = with_sweep(db, kind, |sweep| sweep.owner_of(name.as_slice())).flatten()?;
    matches!(store::exists(ctx, name), Ok(true)).then_some(Condemned { db, kind, owner })
}

/// Called by the store once that overwrite succeeded. The condemned entry
/// was deleted, as far as anyone can tell, the moment INVALIDATE ALL was
/// accepted: its job counts it. (The write's own event made the new value
/// a survivor.) A failed write changes nothing: the entry stays condemned.
pub fn overwritten(condemned: Condemned) {
    with_sweep(condemned.db, condemned.kind, |sweep| sweep.credit(condemned.owner, 1));
}

/// Keyspace event hook: an entry written while a sweep runs survives it.
pub fn on_keyspace_event(ctx: &Context, class: NotifyEvent, event: &str, key: &[u8]) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let writes_value =
        class.contains(NotifyEvent::STRING) || matches!(event, "rename_to" | "copy_to" | "move_to" | "restore");
    let Some(kind) = keys::kind_of(key).filter(|_| writes_value) else {
        return;
    };
    let db = store::selected_db(ctx);
    let sweeping = with_sweep(db, kind, |sweep| {
        sweep.written.insert(key.to_vec(), None);
    });
    if sweeping.is_some() {
        // An overwrite fires no `new`: without this, a condemned entry
        // rewritten during the sweep would be missing from the index.
        keyindex::add(db, key);
    }
}

/// `INVALIDATE ALL`: accept now, reply with the count when the sweep ends.
pub fn all(ctx: &Context, kind: Kind) -> RedisResult {
    let db = store::selected_db(ctx);
    let job = NEXT_JOB.fetch_add(1, Ordering::Relaxed);
    // SAFETY: plain accessor on a live context.
    let flags = unsafe { api!(RedisModule_GetContextFlags)?(ctx.get_raw()) } as u32;
    let synchronous = flags
        & (raw::REDISMODULE_CTX_FLAGS_MULTI
            | raw::REDISMODULE_CTX_FLAGS_LUA
            | raw::REDISMODULE_CTX_FLAGS_DENY_BLOCKING)
        != 0;
    // Everything that can fail comes before blocking the caller.
    let exists = with_sweep(db, kind, |_| ()).is_some();
    let client = if synchronous {
        None
    } else {
        Some(BlockedClient(block(ctx)?))
    };
    let job = Job {
        id: job,
        client,
        deleted: 0,
    };
    // Everything in the index now is condemned by this job.
    let condemned = keyindex::take(db, kind);
    match exists {
        true => {
            let mut condemned = Some(condemned);
            with_sweep(db, kind, |sweep| {
                // Everything that survived so far was written before this job.
                for owner in sweep.written.values_mut() {
                    if owner.is_none() {
                        *owner = Some(job.id);
                    }
                }
                sweep.sources.extend(condemned.take());
                sweep.jobs.push(job);
            });
            if let Some(condemned) = condemned {
                keyindex::put_back(db, kind, condemned);
                return refuse(&job);
            }
        }
        false => {
            let sweep = Sweep {
                db,
                kind,
                sources: VecDeque::from([condemned]),
                jobs: vec![job],
                written: HashMap::new(),
            };
            let mut sweep = Some(sweep);
            SWEEPS.with(|sweeps| sweeps.extend(sweep.take()));
            if let Some(sweep) = sweep {
                sweep
                    .sources
                    .into_iter()
                    .for_each(|ids| keyindex::put_back(db, kind, ids));
                return refuse(&job);
            }
            ACTIVE.store(true, Ordering::Relaxed);
            if !synchronous {
                arm_timer(ctx)?;
            }
        }
    }
    if synchronous {
        let counts = run(ctx, db, kind, None);
        let mine = counts.iter().find(|(id, _)| *id == job.id).map_or(0, |(_, n)| *n);
        return Ok(RedisValue::Integer(i64::try_from(mine).unwrap_or(i64::MAX)));
    }
    Ok(RedisValue::NoReply)
}

/// The reply to a job that could not be started (the sweeps' state was in
/// use, which cannot happen): a blocked caller gets it through the unblock.
fn refuse(job: &Job) -> RedisResult {
    match job.client {
        Some(_) => {
            unblock(job, Err(errors::INTERNAL));
            Ok(RedisValue::NoReply)
        }
        None => Err(RedisError::Str(errors::INTERNAL)),
    }
}

/// Runs a slice of every running sweep; the budget is shared. A server
/// that became a replica, or is loading a dataset, stops every sweep: the
/// keys it would delete now are its master's or the loaded ones.
fn pump(ctx: &Context) {
    // SAFETY: plain accessor on the callback's context.
    let flags = unsafe { raw::RedisModule_GetContextFlags }.map_or(0, |f| unsafe { f(ctx.get_raw()) }) as u32;
    if flags & raw::REDISMODULE_CTX_FLAGS_SLAVE != 0 {
        abandon_all(errors::INVALIDATE_REPLICA);
        return;
    }
    if flags & raw::REDISMODULE_CTX_FLAGS_LOADING != 0 {
        abandon_all(errors::INVALIDATE_LOADING);
        return;
    }
    let running: Vec<(i32, Kind)> = SWEEPS
        .with(|sweeps| sweeps.iter().map(|s| (s.db, s.kind)).collect())
        .unwrap_or_default();
    let deadline = Instant::now() + SLICE_BUDGET;
    for (db, kind) in running {
        // SAFETY: plain setter on the callback's temporary client.
        let selected = unsafe { raw::RedisModule_SelectDb }.map(|select| unsafe { select(ctx.get_raw(), db) });
        if selected == Some(raw::REDISMODULE_OK as c_int) {
            run(ctx, db, kind, Some(deadline));
        }
    }
}

/// Slices run just before the event loop sleeps, once per iteration, right
/// after clients were served; callers are unblocked in that same pass.
/// (Redis 7.0 fires module timers at most every millisecond: slices run by
/// a timer would leave the loop idle between them.)
static BEFORE_SLEEP: AtomicBool = AtomicBool::new(false);
/// One keep-awake timer at a time.
static TIMER_ARMED: AtomicBool = AtomicBool::new(false);

/// Subscribes to the event loop's before-sleep event (Redis 7.0+).
pub fn init(ctx: &Context) {
    let event = raw::RedisModuleEvent {
        id: raw::REDISMODULE_EVENT_EVENTLOOP,
        dataver: 1,
    };
    let subscribed = unsafe { raw::RedisModule_SubscribeToServerEvent }
        // SAFETY: the callback matches RedisModuleEventCallback.
        .map(|subscribe| unsafe { subscribe(ctx.get_raw(), event, Some(on_event_loop)) });
    BEFORE_SLEEP.store(subscribed == Some(raw::REDISMODULE_OK as c_int), Ordering::Relaxed);
}

extern "C" fn on_event_loop(ctx: *mut raw::RedisModuleCtx, _eid: raw::RedisModuleEvent, subevent: u64, _: *mut c_void) {
    if subevent != raw::REDISMODULE_SUBEVENT_EVENTLOOP_BEFORE_SLEEP || !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    guard::callback("invalidate slice", || {
        pump(&Context::new(ctx));
        if ACTIVE.load(Ordering::Relaxed) {
            wake_event_loop();
        }
    });
}

/// Makes the event loop's next wait return at once, so the next slice
/// follows as soon as waiting clients are served (Redis 7.0+; without it
/// the keep-awake timer still ends the wait within a millisecond).
fn wake_event_loop() {
    extern "C" fn nothing(_: *mut c_void) {}
    if let Some(add) = unsafe { raw::RedisModule_EventLoopAddOneShot } {
        // SAFETY: the callback ignores its argument.
        unsafe { add(Some(nothing), std::ptr::null_mut()) };
    }
}

/// While a sweep runs, a 1 ms timer keeps the event loop from sleeping
/// until the next server cron (and does the slices itself if the
/// before-sleep event is unavailable).
fn arm_timer(ctx: &Context) -> Result<(), RedisError> {
    if TIMER_ARMED.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    let create = api!(RedisModule_CreateTimer)?;
    // SAFETY: the callback ignores its data.
    unsafe { create(ctx.get_raw(), 1, Some(on_timer), std::ptr::null_mut()) };
    Ok(())
}

extern "C" fn on_timer(ctx: *mut raw::RedisModuleCtx, _data: *mut c_void) {
    let ctx = Context::new(ctx);
    guard::callback("invalidate timer", || {
        TIMER_ARMED.store(false, Ordering::Relaxed);
        if !BEFORE_SLEEP.load(Ordering::Relaxed) {
            pump(&ctx);
        }
        if ACTIVE.load(Ordering::Relaxed) {
            if let Err(e) = arm_timer(&ctx) {
                guard::log_warning(&format!("cannot re-arm the invalidation timer: {e}"));
            }
        }
    });
}

/// SWAPDB: a sweep follows its data (and the ids it holds) to the other
/// database.
pub fn on_swapdb(first: i32, second: i32) {
    SWEEPS.with(|sweeps| {
        for sweep in sweeps.iter_mut() {
            if sweep.db == first {
                sweep.db = second;
            } else if sweep.db == second {
                sweep.db = first;
            }
        }
    });
}

/// Advances the sweep until the deadline (or the end, without one), a
/// block of ids at a time. When it ends, unblocks every caller and returns
/// each job's count.
fn run(ctx: &Context, db: i32, kind: Kind, deadline: Option<Instant>) -> Vec<(JobId, u64)> {
    let mut name = Vec::new();
    loop {
        // Taken out while its names are made (no borrow may span a Redis call).
        let Some(source) = with_sweep(db, kind, |s| s.sources.pop_front()) else {
            return Vec::new();
        };
        let Some(mut source) = source else {
            delete_condemned_written(ctx, db, kind);
            return finish(db, kind);
        };
        let mut batch: Vec<RedisString> = Vec::new();
        let drained = source.drain_block(|id| {
            name.clear();
            name.extend_from_slice(kind.prefix());
            name.extend_from_slice(id);
            name.push(b'}');
            batch.push(store::string(ctx, &name));
        });
        if drained {
            with_sweep(db, kind, |s| s.sources.push_front(source));
        }
        delete_batch(ctx, db, kind, &batch);
        // The end is reached in this same slice, so that no job can join
        // between the last deletion and the replies.
        if drained && deadline.is_some_and(|d| Instant::now() >= d) {
            return Vec::new();
        }
    }
}

/// Deletes the condemned keys of a batch and credits their jobs: one
/// native `DEL` per job. On a cluster node (each id is its own hash tag,
/// so a `DEL` would carry one key, and RM_Call refuses keys of a slot being
/// migrated), or if Redis refuses the `DEL`, key by key through the store.
fn delete_batch(ctx: &Context, db: i32, kind: Kind, batch: &[RedisString]) {
    let owners: Vec<Option<JobId>> = with_sweep(db, kind, |sweep| {
        batch.iter().map(|name| sweep.owner_of(name.as_slice())).collect()
    })
    .unwrap_or_default();
    let mut condemned: Vec<(JobId, &RedisString)> = batch
        .iter()
        .zip(owners)
        .filter_map(|(name, owner)| owner.map(|owner| (owner, name)))
        .collect();
    condemned.sort_by_key(|(owner, _)| *owner);
    let native = !store::cluster_enabled(ctx);
    for group in condemned.chunk_by(|a, b| a.0 == b.0) {
        let Some(&(owner, _)) = group.first() else { continue };
        let names: Vec<&RedisString> = group.iter().map(|(_, name)| *name).collect();
        let natively = if native {
            store::delete_natively(ctx, &names).ok()
        } else {
            None
        };
        let deleted = match natively {
            Some(deleted) => deleted,
            None => match store::delete(ctx, &names) {
                Ok(deleted) => deleted as u64,
                Err(e) => {
                    guard::log_warning(&format!("cannot delete condemned keys: {e}"));
                    0
                }
            },
        };
        with_sweep(db, kind, |sweep| {
            for name in &names {
                sweep.written.remove(name.as_slice());
            }
            sweep.credit(owner, deleted);
        });
    }
}

/// At the end: keys written during the sweep and condemned by a later job
/// that are still there. The later job's ids hold them, so normally none.
fn delete_condemned_written(ctx: &Context, db: i32, kind: Kind) {
    let condemned: Vec<RedisString> = with_sweep(db, kind, |sweep| {
        sweep
            .written
            .iter()
            .filter(|(_, owner)| owner.is_some())
            .map(|(name, _)| store::string(ctx, name))
            .collect()
    })
    .unwrap_or_default();
    delete_batch(ctx, db, kind, &condemned);
}

/// Ends the sweep: unblocks every waiting caller with its count.
fn finish(db: i32, kind: Kind) -> Vec<(JobId, u64)> {
    let sweep = SWEEPS
        .with(|sweeps| {
            let index = sweeps.iter().position(|s| s.db == db && s.kind == kind)?;
            let sweep = sweeps.swap_remove(index);
            ACTIVE.store(!sweeps.is_empty(), Ordering::Relaxed);
            Some(sweep)
        })
        .flatten();
    let Some(sweep) = sweep else {
        return Vec::new();
    };
    let mut counts = Vec::with_capacity(sweep.jobs.len());
    for job in &sweep.jobs {
        stats::record_invalidated(kind, job.deleted);
        counts.push((job.id, job.deleted));
        unblock(job, Ok(job.deleted));
    }
    counts
}

/// Stops every sweep; waiting callers get `error`.
fn abandon_all(error: &'static str) {
    let sweeps = SWEEPS.with(std::mem::take).unwrap_or_default();
    ACTIVE.store(false, Ordering::Relaxed);
    for sweep in sweeps {
        // What was not deleted is still there: its ids go back to the index.
        for ids in sweep.sources {
            keyindex::put_back(sweep.db, sweep.kind, ids);
        }
        for job in &sweep.jobs {
            stats::record_invalidated(sweep.kind, job.deleted);
            unblock(job, Err(error));
        }
    }
}

/// FLUSHDB/FLUSHALL (also before a full sync or a reload): every entry a
/// sweep condemned is gone, so its callers get their counts now; it must
/// not go on to delete what is written or loaded next.
pub fn on_flush(dbnum: i32) {
    let flushed: Vec<(i32, Kind)> = SWEEPS
        .with(|sweeps| {
            sweeps
                .iter()
                .filter(|s| dbnum < 0 || s.db == dbnum)
                .map(|s| (s.db, s.kind))
                .collect()
        })
        .unwrap_or_default();
    for (db, kind) in flushed {
        finish(db, kind);
    }
}

/// Replies to a blocked caller (if any) with its outcome.
fn unblock(job: &Job, outcome: Result<u64, &'static str>) {
    let Some(BlockedClient(client)) = job.client else {
        return;
    };
    let outcome = Box::into_raw(Box::new(outcome));
    // SAFETY: each blocked client is unblocked exactly once; the outcome
    // is freed by free_outcome after reply_outcome reads it.
    if let Some(unblock) = unsafe { raw::RedisModule_UnblockClient } {
        unsafe { unblock(client.as_ptr(), outcome.cast()) };
    }
}

fn block(ctx: &Context) -> Result<NonNull<raw::RedisModuleBlockedClient>, RedisError> {
    let block = api!(RedisModule_BlockClient)?;
    // SAFETY: callbacks match the API's signatures; no timeout.
    let client = unsafe { block(ctx.get_raw(), Some(reply_outcome), None, Some(free_outcome), 0) };
    NonNull::new(client).ok_or(RedisError::Str(errors::INTERNAL))
}

extern "C" fn reply_outcome(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let context = Context::new(ctx);
    let mut status = raw::REDISMODULE_OK as c_int;
    guard::callback("invalidate reply", || {
        // SAFETY: the private data is the Box given to UnblockClient.
        let outcome = unsafe { raw::RedisModule_GetBlockedClientPrivateData.map(|f| f(ctx)) }
            .and_then(|p| NonNull::new(p.cast::<Result<u64, &'static str>>()))
            .map_or(Err(errors::INTERNAL), |p| unsafe { *p.as_ptr() });
        let reply = outcome
            .map(|n| RedisValue::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
            .map_err(RedisError::Str);
        status = context.reply(reply) as c_int;
    });
    status
}

extern "C" fn free_outcome(_ctx: *mut raw::RedisModuleCtx, data: *mut c_void) {
    if !data.is_null() {
        // SAFETY: data came from Box::into_raw in unblock.
        drop(unsafe { Box::from_raw(data.cast::<Result<u64, &'static str>>()) });
    }
}
