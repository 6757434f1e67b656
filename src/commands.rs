//! Command handlers: parse, validate, call the store, reply. Everything is
//! checked before the keyspace is touched, so a refused write writes nothing.

use std::borrow::Cow;

use redis_module::{Context, NextArg, RedisError, RedisResult, RedisString, RedisValue};

use crate::keys::{self, Kind};
use crate::store::{self, api};
use crate::{args, canonical, cluster, config, errors, guard, invalidate, json, keycount, keyspecs, stats};

fn err(message: Cow<'static, str>) -> RedisError {
    match message {
        Cow::Borrowed(s) => RedisError::Str(s),
        Cow::Owned(s) => RedisError::String(s),
    }
}

/// The arguments after the command name; the options left after the
/// positional ones are read in place with `as_slice`.
fn arguments(args: Vec<RedisString>) -> std::vec::IntoIter<RedisString> {
    let mut args = args.into_iter();
    args.next();
    args
}

/// WARGAMING.SETPRED / SETMATRIX: `<id> <json> [EX seconds | PX milliseconds]`.
pub fn set_entry(ctx: &Context, args: Vec<RedisString>, kind: Kind) -> RedisResult {
    if args.len() < 3 {
        return Err(RedisError::WrongArity);
    }
    let mut args = arguments(args);
    let id = args.next_arg()?;
    let value = args.next_arg()?;
    keys::validate_id(id.as_slice()).map_err(RedisError::Str)?;
    let options =
        args::parse_write_options(args.as_slice().iter().map(RedisString::as_slice), false).map_err(RedisError::Str)?;
    json::validate_object(value.as_slice(), config::max_json_bytes()).map_err(err)?;
    let ttl_ms = args::resolve_ttl_ms(options.ttl_ms, config::default_ttl_secs(kind)).map_err(RedisError::Str)?;
    let key = store::string(ctx, &keys::key_name(kind, id.as_slice()));
    store::set(ctx, &key, &value, ttl_ms)?;
    stats::record_set(kind);
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// WARGAMING.GETPRED / GETMATRIX / GETPATTERN: `<id>`. Replies the stored
/// bytes exactly, or nil; counts a hit or a miss.
pub fn get_entry(ctx: &Context, args: Vec<RedisString>, kind: Kind) -> RedisResult {
    if args.len() != 2 {
        return Err(RedisError::WrongArity);
    }
    let mut args = args.into_iter().skip(1);
    let id = args.next_arg()?;
    match kind {
        Kind::Pattern => keys::validate_pattern_hash(id.as_slice()),
        _ => keys::validate_id(id.as_slice()),
    }
    .map_err(RedisError::Str)?;
    let name = keys::key_name(kind, id.as_slice());
    let key = store::string(ctx, &name);
    let value = match store::get(ctx, &key)? {
        Some(value) if !invalidate::is_hidden(ctx, kind, &name) => value,
        _ => {
            stats::record_miss(kind);
            return Ok(RedisValue::Null);
        }
    };
    stats::record_hit(kind);
    // Reply straight from Redis's buffer (it lives while `value` keeps the
    // key open): one copy, as GET makes.
    reply_bytes(ctx, value.bytes())
}

/// Replies with a bulk string copied from `bytes`, with no allocation.
fn reply_bytes(ctx: &Context, bytes: &[u8]) -> RedisResult {
    // SAFETY: Redis copies the buffer into the reply before returning.
    unsafe { api!(RedisModule_ReplyWithStringBuffer)?(ctx.get_raw(), bytes.as_ptr().cast(), bytes.len()) };
    Ok(RedisValue::NoReply)
}

/// WARGAMING.HASHPATTERN: `<json> [NOSTORE] [EX seconds | PX milliseconds]`.
pub fn hash_pattern(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 2 {
        return Err(RedisError::WrongArity);
    }
    let mut args = arguments(args);
    let pattern = args.next_arg()?;
    let options =
        args::parse_write_options(args.as_slice().iter().map(RedisString::as_slice), true).map_err(RedisError::Str)?;
    let hash = canonical::pattern_hash_hex(pattern.as_slice(), config::max_json_bytes()).map_err(err)?;
    if !options.nostore {
        let name = keys::key_name(Kind::Pattern, &hash);
        // The key is only known now: Redis could not route the command by it.
        if let Some(redirect) = cluster::redirect_for(ctx, &name)? {
            return Err(RedisError::String(redirect));
        }
        store_pattern(ctx, &name, &pattern, options.ttl_ms)?;
    }
    reply_bytes(ctx, &hash)
}

/// WARGAMING.PATTERNHASH: `<json>`. The hash alone, from a read-only
/// command: it runs on replicas and when memory is full, where the
/// write-flagged `HASHPATTERN ... NOSTORE` is refused.
pub fn pattern_hash_only(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 2 {
        return Err(RedisError::WrongArity);
    }
    let pattern = args.into_iter().nth(1).ok_or(RedisError::WrongArity)?;
    let hash = canonical::pattern_hash_hex(pattern.as_slice(), config::max_json_bytes()).map_err(err)?;
    reply_bytes(ctx, &hash)
}

/// WARGAMING.SETPATTERN: `<hash> <json> [EX seconds | PX milliseconds]`.
/// Stores a pattern under a hash the client computed (with NOSTORE): routed
/// by the hash in a cluster, and refused unless it is the pattern's hash.
pub fn set_pattern(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 3 {
        return Err(RedisError::WrongArity);
    }
    let mut args = arguments(args);
    let claimed = args.next_arg()?;
    let pattern = args.next_arg()?;
    keys::validate_pattern_hash(claimed.as_slice()).map_err(RedisError::Str)?;
    let options =
        args::parse_write_options(args.as_slice().iter().map(RedisString::as_slice), false).map_err(RedisError::Str)?;
    let hash = canonical::pattern_hash_hex(pattern.as_slice(), config::max_json_bytes()).map_err(err)?;
    if hash != claimed.as_slice() {
        return Err(RedisError::Str(errors::PATTERN_HASH_MISMATCH));
    }
    store_pattern(ctx, &keys::key_name(Kind::Pattern, &hash), &pattern, options.ttl_ms)?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}

fn store_pattern(ctx: &Context, name: &[u8], pattern: &RedisString, ttl_ms: Option<i64>) -> Result<(), RedisError> {
    let ttl_ms = args::resolve_ttl_ms(ttl_ms, config::default_ttl_secs(Kind::Pattern)).map_err(RedisError::Str)?;
    store::set(ctx, &store::string(ctx, name), pattern, ttl_ms)?;
    stats::record_set(Kind::Pattern);
    Ok(())
}

/// WARGAMING.INVALIDATE: `<apv_id> [apv_id ...]` or `ALL [PRED|MATRIX|PATTERN]`.
pub fn invalidate_command(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let all = args.get(1).is_some_and(|a| a.as_slice().eq_ignore_ascii_case(b"ALL"));
    if ctx.is_keys_position_request() {
        // INVALIDATE ALL declares no key, so a cluster runs it on any node.
        if !all {
            for position in 1..args.len() {
                keyspecs::deleted_key_at(ctx, position);
            }
        }
        return Ok(RedisValue::NoReply);
    }
    if args.len() < 2 {
        return Err(RedisError::WrongArity);
    }
    if all {
        // ALL [PRED | MATRIX | PATTERN]
        let kind = match args.get(2) {
            None => Kind::Prediction,
            Some(word) if args.len() == 3 => {
                keys::kind_named(word.as_slice()).ok_or(RedisError::Str(errors::SYNTAX))?
            }
            Some(_) => return Err(RedisError::Str(errors::SYNTAX)),
        };
        return invalidate::all(ctx, kind);
    }
    let ids: Vec<RedisString> = args.into_iter().skip(1).collect();
    if ids.iter().any(|id| id.as_slice().eq_ignore_ascii_case(b"ALL")) {
        return Err(RedisError::Str(errors::ALL_ALONE));
    }
    for id in &ids {
        keys::validate_id(id.as_slice()).map_err(RedisError::Str)?;
    }
    let names: Vec<RedisString> = ids
        .iter()
        .map(|id| keys::key_name(Kind::Prediction, id.as_slice()))
        // A prediction an INVALIDATE ALL already condemned is gone: the sweep
        // deletes and counts it.
        .filter(|name| !invalidate::is_hidden(ctx, Kind::Prediction, name))
        .map(|name| store::string(ctx, &name))
        .collect();
    let deleted = store::delete(ctx, &names.iter().collect::<Vec<_>>())?;
    stats::record_invalidated(Kind::Prediction, deleted as u64);
    Ok(RedisValue::Integer(i64::try_from(deleted).unwrap_or(i64::MAX)))
}

/// WARGAMING.STATS `[RESET]`.
pub fn stats_command(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    match args.len() {
        1 => stats::reply(ctx),
        2 if args.get(1).is_some_and(|a| a.as_slice().eq_ignore_ascii_case(b"RESET")) => {
            stats::reset();
            Ok(RedisValue::SimpleStringStatic("OK"))
        }
        2 => Err(RedisError::Str(errors::SYNTAX)),
        _ => Err(RedisError::WrongArity),
    }
}

/// Module load: checks the `loadmodule` arguments (a typo or bad value
/// refuses to load) and starts the key counts.
pub fn init(ctx: &Context, args: &[RedisString]) -> redis_module::Status {
    let words: Vec<&[u8]> = args.iter().map(RedisString::as_slice).collect();
    invalidate::init(ctx);
    match config::check_load_args(&words)
        .and_then(|()| keycount::init(ctx))
        .and_then(|()| keyspecs::register(ctx))
    {
        Ok(()) => redis_module::Status::Ok,
        Err(message) => {
            guard::log_warning(&message);
            redis_module::Status::Err
        }
    }
}
