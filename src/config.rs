//! Module configuration: `wargaming.pred-ttl`, `wargaming.matrix-ttl`,
//! `wargaming.pattern-ttl` (seconds) and `wargaming.max-json-bytes`.
//!
//! Registered through Redis 7's module config API (see `lib.rs`), so they are
//! set by `loadmodule` arguments, `redis.conf` lines and `CONFIG SET`, with
//! Redis checking the ranges. The values live in atomics read on every write.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::errors;
use crate::keys::Kind;

/// A numeric config: name (without the `wargaming.` prefix), value, range.
pub struct NumericConfig {
    pub name: &'static str,
    pub value: &'static AtomicI64,
    pub default: i64,
    pub min: i64,
    pub max: i64,
}

/// Ten years: longer TTLs are surely a typo, and stay far from overflow.
const MAX_TTL_SECS: i64 = 10 * 365 * 24 * 3600;
/// Redis's own limit on a string value.
const MAX_JSON_BYTES: i64 = 512 * 1024 * 1024;

pub static PRED_TTL: AtomicI64 = AtomicI64::new(86_400);
pub static MATRIX_TTL: AtomicI64 = AtomicI64::new(300);
pub static PATTERN_TTL: AtomicI64 = AtomicI64::new(43_200);
pub static MAX_JSON: AtomicI64 = AtomicI64::new(1_048_576);

pub const PRED_TTL_CONFIG: NumericConfig = NumericConfig {
    name: "pred-ttl",
    value: &PRED_TTL,
    default: 86_400,
    min: 1,
    max: MAX_TTL_SECS,
};
pub const MATRIX_TTL_CONFIG: NumericConfig = NumericConfig {
    name: "matrix-ttl",
    value: &MATRIX_TTL,
    default: 300,
    min: 1,
    max: MAX_TTL_SECS,
};
pub const PATTERN_TTL_CONFIG: NumericConfig = NumericConfig {
    name: "pattern-ttl",
    value: &PATTERN_TTL,
    default: 43_200,
    min: 1,
    max: MAX_TTL_SECS,
};
pub const MAX_JSON_CONFIG: NumericConfig = NumericConfig {
    name: "max-json-bytes",
    value: &MAX_JSON,
    default: 1_048_576,
    min: 2,
    max: MAX_JSON_BYTES,
};

pub const ALL: [NumericConfig; 4] = [PRED_TTL_CONFIG, MATRIX_TTL_CONFIG, PATTERN_TTL_CONFIG, MAX_JSON_CONFIG];

/// Default TTL of a kind, in seconds.
pub fn default_ttl_secs(kind: Kind) -> i64 {
    match kind {
        Kind::Prediction => PRED_TTL.load(Ordering::Relaxed),
        Kind::Matrix => MATRIX_TTL.load(Ordering::Relaxed),
        Kind::Pattern => PATTERN_TTL.load(Ordering::Relaxed),
    }
}

/// Largest accepted JSON value, in bytes.
pub fn max_json_bytes() -> usize {
    usize::try_from(MAX_JSON.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
}

/// Checks `loadmodule` arguments before Redis sees them: `name value` pairs
/// of known configs with in-range integer values. The crate would otherwise
/// ignore a typo and silently register an out-of-range default.
pub fn check_load_args(args: &[&[u8]]) -> Result<(), String> {
    let mut words = args.iter();
    while let Some(name) = words.next() {
        let config = ALL
            .iter()
            .find(|c| c.name.as_bytes() == *name)
            .ok_or_else(|| format!("{}: {}", errors::CONFIG_UNKNOWN, String::from_utf8_lossy(name)))?;
        words
            .next()
            .and_then(|v| crate::args::parse_strict_i64(v))
            .filter(|v| (config.min..=config.max).contains(v))
            .ok_or_else(|| {
                format!(
                    "{} {} (an integer from {} to {})",
                    errors::CONFIG_VALUE,
                    config.name,
                    config.min,
                    config.max
                )
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_args_are_checked() {
        assert!(check_load_args(&[]).is_ok());
        assert!(check_load_args(&[b"pred-ttl", b"3600", b"max-json-bytes", b"100"]).is_ok());
        assert!(check_load_args(&[b"pred-ttl"]).is_err());
        assert!(check_load_args(&[b"pred-ttl", b"0"]).is_err());
        assert!(check_load_args(&[b"pred-ttl", b"abc"]).is_err());
        assert!(check_load_args(&[b"pred_ttl", b"5"]).is_err());
    }

    #[test]
    fn defaults_match_the_seed() {
        assert_eq!(default_ttl_secs(Kind::Prediction), 86_400);
        assert_eq!(default_ttl_secs(Kind::Matrix), 300);
        assert_eq!(default_ttl_secs(Kind::Pattern), 43_200);
        assert_eq!(max_json_bytes(), 1_048_576);
    }
}
