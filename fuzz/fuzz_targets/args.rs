//! Argument checks on arbitrary words: `args::parse_write_options`,
//! `keys::validate_id`, `key_name`, `kind_of`, `id_of`. Never panic; an
//! accepted TTL is positive; every refusal is an `ERR` message; a valid id
//! makes a key that maps back to its kind, its id and its slot.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wargaming::args::{parse_strict_i64, parse_write_options, resolve_ttl_ms};
use wargaming::keys::{cluster_slot, id_of, key_name, kind_of, validate_id, validate_pattern_hash, Kind, MAX_ID_LEN};

/// A one-byte word below `WORDS.len()` stands for that word, so the fuzzer
/// reaches the option logic without guessing the spellings.
const WORDS: [&[u8]; 14] = [
    b"EX",
    b"ex",
    b"PX",
    b"pX",
    b"NOSTORE",
    b"NoStore",
    b"0",
    b"1",
    b"-1",
    b"9223372036854775",
    b"9223372036854776",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"ALL",
];

fuzz_target!(|input: (bool, Vec<Vec<u8>>)| {
    let (allow_nostore, raw) = input;
    let words: Vec<Vec<u8>> = raw
        .into_iter()
        .map(|word| match word.as_slice() {
            [index] if usize::from(*index) < WORDS.len() => WORDS[usize::from(*index)].to_vec(),
            _ => word,
        })
        .collect();

    match parse_write_options(words.iter().map(Vec::as_slice), allow_nostore) {
        Ok(options) => {
            if let Some(ttl) = options.ttl_ms {
                assert!(ttl > 0, "accepted TTL {ttl}");
            }
            if options.nostore {
                assert!(allow_nostore);
                assert_eq!(options.ttl_ms, None);
            }
            let ttl = resolve_ttl_ms(options.ttl_ms, 86_400).expect("a default of a day fits");
            assert!(ttl > 0);
        }
        Err(message) => assert!(message.starts_with("ERR "), "{message}"),
    }

    for word in &words {
        let _ = kind_of(word);
        let _ = id_of(word);
        let _ = cluster_slot(word);
        if let Some(value) = parse_strict_i64(word) {
            assert_eq!(value.to_string().as_bytes(), word.as_slice(), "not strict");
        }
        match validate_id(word) {
            Ok(()) => {
                assert!(!word.is_empty() && word.len() <= MAX_ID_LEN);
                for kind in Kind::ALL {
                    let key = key_name(kind, word);
                    assert_eq!(kind_of(&key), Some(kind));
                    assert_eq!(id_of(&key), Some(word.as_slice()));
                    assert_eq!(cluster_slot(&key), cluster_slot(word));
                }
            }
            Err(message) => {
                assert!(message.starts_with("ERR "), "{message}");
                assert!(validate_pattern_hash(word).is_err(), "a pattern hash is a valid id");
            }
        }
    }
});
