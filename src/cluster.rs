//! Redis Cluster: where a key computed by the server belongs.
//!
//! Commands named by an id declare it as their key, so Redis itself
//! redirects them (the hash tag makes the id's slot the key's slot). A
//! storing HASHPATTERN cannot declare its key: the hash only exists once the
//! server computed it. Before storing, it asks here; a slot this node does
//! not serve gets a `MOVED` redirect to the owner, never a misplaced key.

use redis_module::{raw, Context, RedisError, RedisValue};

use crate::keys;
use crate::store::api;

/// `Some(error)` when `key` belongs to another node (or to none).
pub fn redirect_for(ctx: &Context, key: &[u8]) -> Result<Option<String>, RedisError> {
    // SAFETY: plain accessor on a live context.
    let flags = unsafe { api!(RedisModule_GetContextFlags)?(ctx.get_raw()) } as u32;
    if flags & raw::REDISMODULE_CTX_FLAGS_CLUSTER == 0 {
        return Ok(None);
    }
    let slot = i64::from(keys::cluster_slot(key));
    // The node name is REDISMODULE_NODE_ID_LEN bytes with no terminating
    // NUL (another field follows it in memory): read exactly that many.
    // SAFETY: Redis owns the name for the life of the process.
    let me = unsafe { api!(RedisModule_GetMyClusterID)?() };
    let me = if me.is_null() {
        Vec::new()
    } else {
        unsafe { std::slice::from_raw_parts(me.cast::<u8>(), raw::REDISMODULE_NODE_ID_LEN as usize) }.to_vec()
    };
    let RedisValue::Array(ranges) = ctx.call("CLUSTER", &["SLOTS"])? else {
        return Ok(Some(format!("CLUSTERDOWN Hash slot {slot} not served")));
    };
    for range in ranges {
        let RedisValue::Array(fields) = range else { continue };
        let mut fields = fields.into_iter();
        let (Some(RedisValue::Integer(start)), Some(RedisValue::Integer(end)), Some(RedisValue::Array(master))) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !(start..=end).contains(&slot) {
            continue;
        }
        let mut master = master.into_iter();
        let (Some(ip), Some(RedisValue::Integer(port)), Some(id)) = (master.next(), master.next(), master.next())
        else {
            continue;
        };
        if bytes(&id) == me {
            return Ok(None);
        }
        return Ok(Some(format!(
            "MOVED {slot} {}:{port}",
            String::from_utf8_lossy(&bytes(&ip))
        )));
    }
    Ok(Some(format!("CLUSTERDOWN Hash slot {slot} not served")))
}

fn bytes(value: &RedisValue) -> Vec<u8> {
    match value {
        RedisValue::SimpleString(s) | RedisValue::BulkString(s) => s.as_bytes().to_vec(),
        RedisValue::StringBuffer(b) => b.clone(),
        RedisValue::SimpleStringStatic(s) => s.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}
