//! The panic barrier. A Rust panic that unwinds into Redis aborts
//! `redis-server` and every client's data with it, and the crate's
//! `extern "C"` wrappers do not catch it. Every entry point (commands,
//! timers, INFO, scan and keyspace callbacks) runs its body through here: a
//! bug becomes an `ERR` reply and a line in the server log instead.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::{Context, RedisError, RedisResult, RedisString};

use crate::errors;

/// Runs a command handler; a panic becomes an error reply.
pub fn command(
    ctx: &Context,
    args: Vec<RedisString>,
    handler: fn(&Context, Vec<RedisString>) -> RedisResult,
) -> RedisResult {
    catch_unwind(AssertUnwindSafe(|| handler(ctx, args))).unwrap_or_else(|payload| {
        log_panic("command", payload.as_ref());
        Err(RedisError::Str(errors::INTERNAL))
    })
}

/// Runs a callback that has no reply (timer, event, INFO); a panic is logged.
pub fn callback<F: FnOnce()>(what: &str, body: F) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        log_panic(what, payload.as_ref());
    }
}

fn log_panic(what: &str, payload: &(dyn Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    log_warning(&format!("bug caught in {what}: {message}"));
}

/// Logs a warning. RedisModule_Log takes a printf format and the crate
/// passes the message as that format, so `%` must be escaped (and NUL,
/// which the crate's CString conversion would panic on, replaced).
pub fn log_warning(message: &str) {
    let safe = message.replace('%', "%%").replace('\0', "\\0");
    redis_module::logging::log_warning(format!("<wargaming> {safe}"));
}
