//! Every error reply the module sends, in one place.
//!
//! Each reply starts with `ERR` (Redis's generic error code) and names the
//! problem; `WRONGTYPE` and `OOM` come from Redis itself. The `CONFIG_*`
//! texts are log lines (module load), not replies.

pub const SYNTAX: &str = "ERR syntax error";
pub const INTERNAL: &str = "ERR internal error in the wargaming module (see the server log)";

// Ids (apv_id, model_version, pattern hash).
pub const ID_EMPTY: &str = "ERR invalid id: must not be empty";
pub const ID_TOO_LONG: &str = "ERR invalid id: longer than 512 bytes";
pub const ID_BRACE: &str = "ERR invalid id: must not contain '{' or '}'";
pub const ID_CONTROL: &str = "ERR invalid id: must not contain ASCII control characters";
pub const ID_RESERVED: &str = "ERR invalid id: 'ALL' is reserved";
pub const PATTERN_HASH: &str = "ERR invalid pattern hash: must be 16 lowercase hex digits";
pub const ALL_ALONE: &str = "ERR ALL must come first: WARGAMING.INVALIDATE ALL [PRED|MATRIX|PATTERN]";

// Expiry options.
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const EXPIRE_NOT_POSITIVE: &str = "ERR invalid expire time: EX/PX must be a positive integer";
pub const EXPIRE_TOO_LARGE: &str = "ERR invalid expire time: too large";
pub const NOSTORE_WITH_TTL: &str = "ERR EX/PX cannot be combined with NOSTORE";

// INVALIDATE ALL, when its sweep cannot go on.
pub const INVALIDATE_REPLICA: &str =
    "ERR INVALIDATE ALL stopped: this server became a replica (its master's data now rules)";
pub const INVALIDATE_LOADING: &str = "ERR INVALIDATE ALL stopped: the server is loading a dataset";

// JSON values.
pub const JSON_TOO_LARGE: &str = "ERR JSON value larger than wargaming.max-json-bytes";
pub const JSON_NOT_UTF8: &str = "ERR invalid JSON: not valid UTF-8";
pub const JSON_NOT_OBJECT: &str = "ERR invalid JSON: the value must be a JSON object";
pub const JSON_LONE_SURROGATE: &str = "ERR invalid JSON: lone surrogate escape (\\ud800-\\udfff without its pair)";
/// Prefix for parser errors; the parser's own message follows.
pub const JSON_INVALID_PREFIX: &str = "ERR invalid JSON: ";

// Patterns.
pub const PATTERN_HASH_MISMATCH: &str =
    "ERR pattern hash mismatch: the hash is not the SHA-256 prefix of the pattern's canonical JSON";

// Configuration (module load arguments).
pub const CONFIG_UNKNOWN: &str = "unknown wargaming load argument";
pub const CONFIG_VALUE: &str = "invalid value for wargaming load argument";
