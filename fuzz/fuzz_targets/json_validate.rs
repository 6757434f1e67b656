//! `json::validate_object` on arbitrary bytes: never panics, and accepts
//! exactly what `serde_json::from_slice::<Value>` reads as an object, for
//! texts nested at most 100 deep (serde_json stops at 128; the module's
//! validation has no limit).
//!
//! Two differences are known and allowed, both where the module is right:
//! `Value` refuses a lone surrogate escape (`"\ud800"`, which JSON's grammar
//! allows and Python accepts), and reads an object whose key is serde_json's
//! private number marker as a number (or refuses it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wargaming::canonical::canonical_text;
use wargaming::errors;
use wargaming::json::validate_object;

/// Deepest nesting of arrays and objects, counted outside strings.
fn depth(data: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in data {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fuzz_target!(|data: &[u8]| {
    let ours = validate_object(data, usize::MAX);
    if let Err(message) = &ours {
        assert!(message.starts_with("ERR "), "{message}");
    }
    if !data.is_empty() {
        assert_eq!(
            validate_object(data, data.len() - 1),
            Err(errors::JSON_TOO_LARGE.into())
        );
        assert_eq!(validate_object(data, data.len()).is_ok(), ours.is_ok());
    }
    if depth(data) > 100 {
        return;
    }
    let reference = serde_json::from_slice::<Value>(data);
    let reference_ok = matches!(&reference, Ok(value) if value.is_object());
    match (ours.is_ok(), reference_ok) {
        (true, true) | (false, false) => {}
        (false, true) => panic!("refused, but serde_json reads an object: {ours:?}"),
        (true, false) => {
            // The pattern parser does not use `Value`: it reads the marker key
            // as a key, and names lone surrogates.
            let pattern = canonical_text(data, usize::MAX);
            let lone_surrogate = matches!(&pattern, Err(e) if e == errors::JSON_LONE_SURROGATE);
            assert!(
                pattern.is_ok() || lone_surrogate,
                "accepted, but serde_json says {reference:?} and the pattern parser {pattern:?}"
            );
        }
    }
});
