//! Key specs for the command table, set through the raw RM_SetCommandInfo
//! (Redis 7.0 has it; the crate's `#[command]` macro needs 7.2).
//!
//! Why: from the legacy first/last/step positions alone, Redis 7.0 marks
//! every key as read-write (`RW access update`), so a read-only ACL user
//! (`%R~...`) could not run GETPRED. These specs say what each command does
//! to its key: getters read (RO), setters overwrite (OW), INVALIDATE deletes.

use std::ffi::CStr;
use std::mem::size_of;
use std::os::raw::c_int;

use redis_module::{raw, Context};

const RO_ACCESS: u32 = raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS;
const OW_UPDATE: u32 = raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE;
const RW_DELETE: u32 = raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_DELETE;

/// Commands named by a key at position 1: (name, key flags, last key).
const SPECS: [(&CStr, u32, c_int); 7] = [
    (c"wargaming.getpred", RO_ACCESS, 0),
    (c"wargaming.getmatrix", RO_ACCESS, 0),
    (c"wargaming.getpattern", RO_ACCESS, 0),
    (c"wargaming.setpred", OW_UPDATE, 0),
    (c"wargaming.setmatrix", OW_UPDATE, 0),
    (c"wargaming.setpattern", OW_UPDATE, 0),
    // Every argument is an id, except in INVALIDATE ALL: "variable flags"
    // makes Redis ask the key-position callback (see deleted_key_at).
    (
        c"wargaming.invalidate",
        RW_DELETE | raw::REDISMODULE_CMD_KEY_VARIABLE_FLAGS,
        -1,
    ),
];

/// A key spec: one key range starting at argument 1.
fn spec(flags: u32, lastkey: c_int) -> raw::RedisModuleCommandKeySpec {
    raw::RedisModuleCommandKeySpec {
        notes: std::ptr::null(),
        flags: u64::from(flags),
        begin_search_type: raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX,
        bs: raw::RedisModuleCommandKeySpec__bindgen_ty_1 {
            index: raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos: 1 },
        },
        find_keys_type: raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE,
        fk: raw::RedisModuleCommandKeySpec__bindgen_ty_2 {
            range: raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
                lastkey,
                keystep: 1,
                limit: 0,
            },
        },
    }
}

/// The array terminator: a zeroed spec (begin search type "invalid").
fn end() -> raw::RedisModuleCommandKeySpec {
    raw::RedisModuleCommandKeySpec {
        notes: std::ptr::null(),
        flags: 0,
        begin_search_type: raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INVALID,
        bs: raw::RedisModuleCommandKeySpec__bindgen_ty_1 {
            index: raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos: 0 },
        },
        find_keys_type: raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_OMITTED,
        fk: raw::RedisModuleCommandKeySpec__bindgen_ty_2 {
            range: raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
                lastkey: 0,
                keystep: 0,
                limit: 0,
            },
        },
    }
}

/// Sets the key specs of every command named by a key.
pub fn register(ctx: &Context) -> Result<(), String> {
    let (Some(get_command), Some(set_info)) = (unsafe { raw::RedisModule_GetCommand }, unsafe {
        raw::RedisModule_SetCommandInfo
    }) else {
        return Err("this Redis has no RM_SetCommandInfo".to_string());
    };
    // redismodule.h defines this as a static in the header; the sizes let
    // Redis read our structs whatever its own version of them.
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: size_of::<raw::RedisModuleCommandArg>(),
    };
    for (name, flags, lastkey) in SPECS {
        let mut specs = [spec(flags, lastkey), end()];
        let info = raw::RedisModuleCommandInfo {
            version: &version,
            summary: std::ptr::null(),
            complexity: std::ptr::null(),
            since: std::ptr::null(),
            history: std::ptr::null_mut(),
            tips: std::ptr::null(),
            arity: 0,
            key_specs: specs.as_mut_ptr(),
            args: std::ptr::null_mut(),
        };
        // SAFETY: the command exists (registered before init); Redis copies
        // what it needs from `info` during the call.
        let command = unsafe { get_command(ctx.get_raw(), name.as_ptr()) };
        if command.is_null() || unsafe { set_info(command, &info) } != raw::REDISMODULE_OK as c_int {
            return Err(format!("cannot set the key specs of {}", name.to_string_lossy()));
        }
    }
    Ok(())
}

/// Key-position callback of INVALIDATE: argument `position` is a key it
/// deletes.
pub fn deleted_key_at(ctx: &Context, position: usize) {
    let position = c_int::try_from(position).unwrap_or(c_int::MAX);
    // SAFETY: only called while Redis asks for key positions, with a
    // position inside the argument list.
    unsafe {
        if let Some(with_flags) = raw::RedisModule_KeyAtPosWithFlags {
            with_flags(ctx.get_raw(), position, RW_DELETE as c_int);
        } else if let Some(plain) = raw::RedisModule_KeyAtPos {
            plain(ctx.get_raw(), position);
        }
    }
}
