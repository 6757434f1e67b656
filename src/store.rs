//! The one path to the keyspace. Every key the module reads, writes or
//! deletes goes through here. Writes run the native `SET ... PXAT` (through
//! RM_Call, replicated); deletions use the key API, so this file does for
//! them what Redis does not do for a module's key-API writes: propagation
//! to replicas and the AOF as `DEL key...`, and the `del` keyspace event.
//!
//! Read paths open keys read-only: closing a key opened for write signals it
//! modified, which would abort other clients' WATCH and send client-side
//! caching invalidations for a mere read.

use std::ffi::CStr;
use std::os::raw::c_int;
use std::ptr::NonNull;

use redis_module::{raw, Context, RedisError, RedisString};

use crate::{args, errors, invalidate, keys};

/// A raw API function, or an internal error if the server lacks it.
macro_rules! api {
    ($name:ident) => {{
        // SAFETY: the pointers are filled once by RedisModule_Init and never change.
        #[allow(unused_unsafe)]
        let function = unsafe { ::redis_module::raw::$name };
        function.ok_or(::redis_module::RedisError::Str($crate::errors::INTERNAL))
    }};
}
pub(crate) use api;

const READ: c_int = raw::REDISMODULE_READ as c_int;
const WRITE: c_int = raw::REDISMODULE_WRITE as c_int;
const KEYTYPE_EMPTY: c_int = raw::REDISMODULE_KEYTYPE_EMPTY as c_int;
const KEYTYPE_STRING: c_int = raw::REDISMODULE_KEYTYPE_STRING as c_int;
const OK: c_int = raw::REDISMODULE_OK as c_int;

/// An open key handle, closed on drop.
struct OpenKey {
    ptr: NonNull<raw::RedisModuleKey>,
}

impl OpenKey {
    /// `None` when a read-only open finds no live key.
    fn open(ctx: &Context, name: &RedisString, mode: c_int) -> Result<Option<Self>, RedisError> {
        let open = api!(RedisModule_OpenKey)?;
        // SAFETY: ctx and name are live for the duration of the call.
        let ptr = unsafe { open(ctx.get_raw(), name.inner, mode) };
        Ok(NonNull::new(ptr.cast::<raw::RedisModuleKey>()).map(|ptr| Self { ptr }))
    }

    fn key_type(&self) -> Result<c_int, RedisError> {
        // SAFETY: the handle is open.
        Ok(unsafe { api!(RedisModule_KeyType)?(self.ptr.as_ptr()) })
    }
}

impl Drop for OpenKey {
    fn drop(&mut self) {
        // SAFETY: the handle is open and closed exactly once.
        if let Some(close) = unsafe { raw::RedisModule_CloseKey } {
            unsafe { close(self.ptr.as_ptr()) };
        }
    }
}

/// A string value read in place; the key stays open while this lives.
pub struct StringValue {
    _key: OpenKey,
    ptr: *const u8,
    len: usize,
}

impl StringValue {
    pub fn bytes(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: Redis's string buffer stays valid while the key is open
        // and nothing writes to it in between.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Creates a key name (or any argument) from bytes, NUL bytes included.
pub fn string(ctx: &Context, bytes: &[u8]) -> RedisString {
    RedisString::create_from_slice(ctx.get_raw(), bytes)
}

/// Reads a string key read-only. `None` when it does not exist (or its TTL
/// passed); `WRONGTYPE` when it holds something else.
pub fn get(ctx: &Context, name: &RedisString) -> Result<Option<StringValue>, RedisError> {
    let Some(key) = OpenKey::open(ctx, name, READ)? else {
        return Ok(None);
    };
    match key.key_type()? {
        KEYTYPE_EMPTY => Ok(None),
        KEYTYPE_STRING => {
            let mut len = 0usize;
            let dma = api!(RedisModule_StringDMA)?;
            // SAFETY: the key is open read-only; DMA in READ mode does not modify it.
            let ptr = unsafe { dma(key.ptr.as_ptr(), &mut len, READ) };
            Ok(Some(StringValue {
                _key: key,
                ptr: ptr.cast::<u8>(),
                len,
            }))
        }
        _ => Err(RedisError::WrongType),
    }
}

/// Does `name` hold a live key? Opens it read-only.
pub fn exists(ctx: &Context, name: &RedisString) -> Result<bool, RedisError> {
    Ok(match OpenKey::open(ctx, name, READ)? {
        Some(key) => key.key_type()? != KEYTYPE_EMPTY,
        None => false,
    })
}

/// Stores `value` under `name` until an absolute expiry, replacing whatever
/// the key held: by running `SET name value PXAT <abs>` itself through
/// RM_Call with replication on. Redis then does exactly what the native
/// command does (events `new` on creation, `set`, `expire`; WATCH; client
/// tracking; `SET ... PXAT` to replicas and the AOF). The key API would cost
/// as much here and differ in details: its RM_StringSet deletes and re-adds
/// an existing key, announcing it as `new`.
pub fn set(ctx: &Context, name: &RedisString, value: &RedisString, ttl_ms: i64) -> Result<(), RedisError> {
    // SAFETY: plain clock read.
    let now_ms = unsafe { api!(RedisModule_Milliseconds)?() };
    let expire_at = args::expire_at_ms(now_ms, ttl_ms).map_err(RedisError::Str)?;
    let condemned = invalidate::condemned_live(ctx, name);
    let call = api!(RedisModule_Call)?;
    // SAFETY: "!Esscl" = replicate, errors as replies, then two module
    // strings, a C string and a long long, matching the arguments.
    let reply = unsafe {
        call(
            ctx.get_raw(),
            c"SET".as_ptr(),
            c"!Esscl".as_ptr(),
            name.inner,
            value.inner,
            c"PXAT".as_ptr(),
            expire_at,
        )
    };
    let failed = reply.is_null()
        || unsafe { raw::RedisModule_CallReplyType.map_or(0, |f| f(reply)) } == raw::REDISMODULE_REPLY_ERROR as c_int;
    if !reply.is_null() {
        if let Some(free) = unsafe { raw::RedisModule_FreeCallReply } {
            unsafe { free(reply) };
        }
    }
    if failed {
        return Err(RedisError::Str(errors::INTERNAL));
    }
    if let Some(condemned) = condemned {
        invalidate::overwritten(condemned);
    }
    signal_declared_key(ctx, name)
}

/// Deletes the live keys among `names`, propagates one `DEL` of those that
/// existed and fires `del` for each, as `DEL` does. Returns how many existed.
pub fn delete(ctx: &Context, names: &[&RedisString]) -> Result<usize, RedisError> {
    let mut deleted: Vec<&RedisString> = Vec::with_capacity(names.len());
    for &name in names {
        if delete_quietly(ctx, name)? {
            deleted.push(name);
        }
    }
    announce_deleted(ctx, &deleted)?;
    Ok(deleted.len())
}

/// Deletes one key if it is live, without propagating or notifying: callers
/// batch those with [`announce_deleted`]. A missing key is never opened
/// writable, so it signals nothing (native `DEL` of a missing key does not).
fn delete_quietly(ctx: &Context, name: &RedisString) -> Result<bool, RedisError> {
    // The read-only open also reclaims a key whose TTL passed: it is not live.
    if !exists(ctx, name)? {
        return Ok(false);
    }
    let Some(key) = OpenKey::open(ctx, name, READ | WRITE)? else {
        return Ok(false);
    };
    if key.key_type()? == KEYTYPE_EMPTY {
        return Ok(false);
    }
    // SAFETY: the key is open for write.
    Ok(unsafe { api!(RedisModule_DeleteKey)?(key.ptr.as_ptr()) } == OK)
}

/// Deletes `names` with one native `DEL`, which Redis runs as for a client:
/// expired keys reclaimed (not counted), `del` events, WATCH, tracking, the
/// command replicated as is. For bulk deletion: no key handle per key, and a
/// name already gone is left alone. Not for cluster nodes: there RM_Call
/// refuses keys of several slots, or of a slot being migrated, where
/// [`delete`] does not. Returns how many keys were deleted; an error if
/// Redis refused the command (nothing was deleted then).
pub fn delete_natively(ctx: &Context, names: &[&RedisString]) -> Result<u64, RedisError> {
    if names.is_empty() {
        return Ok(0);
    }
    let argv: Vec<*mut raw::RedisModuleString> = names.iter().map(|name| name.inner).collect();
    let call = api!(RedisModule_Call)?;
    // SAFETY: "!Ev" = replicate, errors as replies, then an array of module
    // strings and its length, matching the arguments.
    let reply = unsafe {
        call(
            ctx.get_raw(),
            c"DEL".as_ptr(),
            c"!Ev".as_ptr(),
            argv.as_ptr(),
            argv.len(),
        )
    };
    let Some(reply) = NonNull::new(reply) else {
        return Err(RedisError::Str(errors::INTERNAL));
    };
    // SAFETY: the reply is live until freed below.
    let deleted = unsafe {
        match raw::RedisModule_CallReplyType.map_or(0, |f| f(reply.as_ptr())) {
            t if t == raw::REDISMODULE_REPLY_INTEGER as c_int => {
                raw::RedisModule_CallReplyInteger.map(|f| f(reply.as_ptr()))
            }
            _ => None,
        }
    };
    if let Some(free) = unsafe { raw::RedisModule_FreeCallReply } {
        // SAFETY: freed exactly once.
        unsafe { free(reply.as_ptr()) };
    }
    let deleted = deleted.ok_or(RedisError::Str(errors::INTERNAL))?;
    for name in names {
        // The keys are deleted: a failed signal must not make them uncounted.
        let _ = signal_declared_key(ctx, name);
    }
    Ok(u64::try_from(deleted).unwrap_or(0))
}

/// Is this a cluster node?
pub fn cluster_enabled(ctx: &Context) -> bool {
    // SAFETY: plain accessor on a live context.
    let flags = unsafe { raw::RedisModule_GetContextFlags }.map_or(0, |f| unsafe { f(ctx.get_raw()) }) as u32;
    flags & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0
}

/// Propagates `DEL name...` and fires `del` for each deleted key.
fn announce_deleted(ctx: &Context, deleted: &[&RedisString]) -> Result<(), RedisError> {
    if deleted.is_empty() {
        return Ok(());
    }
    let argv: Vec<*mut raw::RedisModuleString> = deleted.iter().map(|name| name.inner).collect();
    let replicate = api!(RedisModule_Replicate)?;
    // SAFETY: "v" takes an array of module strings and its length.
    unsafe { replicate(ctx.get_raw(), c"DEL".as_ptr(), c"v".as_ptr(), argv.as_ptr(), argv.len()) };
    for name in deleted {
        signal_declared_key(ctx, name)?;
        notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"del", name)?;
    }
    Ok(())
}

/// Client-side caching (default mode) remembers the keys a command
/// *declares*, and our commands declare the id, not `wargaming:<kind>:{id}`.
/// So a change to the key is signalled for the id too, or a client that
/// cached a GETPRED reply would never hear that it changed.
fn signal_declared_key(ctx: &Context, name: &RedisString) -> Result<(), RedisError> {
    let Some(id) = keys::id_of(name.as_slice()) else {
        return Ok(());
    };
    let id = string(ctx, id);
    // SAFETY: both strings are live for the call.
    unsafe { api!(RedisModule_SignalModifiedKey)?(ctx.get_raw(), id.inner) };
    Ok(())
}

fn notify(ctx: &Context, class: c_int, event: &CStr, name: &RedisString) -> Result<(), RedisError> {
    // SAFETY: the event name is a static C string; the key name is live.
    unsafe { api!(RedisModule_NotifyKeyspaceEvent)?(ctx.get_raw(), class, event.as_ptr(), name.inner) };
    Ok(())
}

/// A keyspace scan cursor (RM_Scan) over the selected database.
struct ScanCursor(NonNull<raw::RedisModuleScanCursor>);

impl ScanCursor {
    fn new() -> Result<Self, RedisError> {
        // SAFETY: creates a fresh cursor, destroyed on drop.
        let cursor = unsafe { api!(RedisModule_ScanCursorCreate)?() };
        NonNull::new(cursor).map(Self).ok_or(RedisError::Str(errors::INTERNAL))
    }
}

impl Drop for ScanCursor {
    fn drop(&mut self) {
        // SAFETY: destroyed exactly once.
        if let Some(destroy) = unsafe { raw::RedisModule_ScanCursorDestroy } {
            unsafe { destroy(self.0.as_ptr()) };
        }
    }
}

/// One RM_Scan step: `visit` sees the name of each key in one bucket.
/// Returns false once the scan is complete. Every key present for the whole
/// scan is seen at least once. `visit` must not touch the keyspace (deleting
/// other keys during a step is unsafe): collect names, act after the step.
fn scan_step<F: FnMut(&[u8])>(ctx: &Context, cursor: &ScanCursor, visit: &mut F) -> bool {
    extern "C" fn trampoline<F: FnMut(&[u8])>(
        _ctx: *mut raw::RedisModuleCtx,
        name: *mut raw::RedisModuleString,
        _key: *mut raw::RedisModuleKey,
        data: *mut std::ffi::c_void,
    ) {
        // No unwinding across Redis's frames.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: data is the closure passed below, alive for the call.
            let visit = unsafe { &mut *data.cast::<F>() };
            visit(RedisString::string_as_slice(name));
        }));
    }
    let Some(scan) = (unsafe { raw::RedisModule_Scan }) else {
        return false;
    };
    // SAFETY: the closure outlives the call; the cursor is live.
    unsafe {
        scan(
            ctx.get_raw(),
            cursor.0.as_ptr(),
            Some(trampoline::<F>),
            (visit as *mut F).cast(),
        ) != 0
    }
}

/// Visits every key name of the selected database in one go (for counting
/// at load time, not for request paths).
pub fn scan_all<F: FnMut(&[u8])>(ctx: &Context, mut visit: F) {
    if let Ok(cursor) = ScanCursor::new() {
        while scan_step(ctx, &cursor, &mut visit) {}
    }
}

/// The database the calling client (or timer) has selected.
pub fn selected_db(ctx: &Context) -> i32 {
    // SAFETY: plain accessor on a live context.
    unsafe { raw::RedisModule_GetSelectedDb }.map_or(0, |f| unsafe { f(ctx.get_raw()) })
}
