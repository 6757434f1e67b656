//! `canonical_text` on arbitrary bytes: never panics; accepts what serde_json
//! reads as an object (up to serde_json's nesting limit); and whatever it
//! accepts comes out as ASCII text that parses back to the same value
//! (numbers compared as numbers: integers exactly, doubles bit for bit)
//! and canonicalises to itself.

#![no_main]

use std::collections::BTreeMap;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use wargaming::canonical::{canonical_text, hash_canonical, pattern_hash};
use wargaming::json::validate_object;
use wargaming::keys::validate_pattern_hash;

/// serde_json's marker key: with `arbitrary_precision` it hands a number over
/// as the map `{"$serde_json::private::Number": "<text>"}`.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// A JSON value as Python's `json.loads` sees it.
#[derive(Debug, PartialEq)]
enum Tree {
    Null,
    Bool(bool),
    /// Exact decimal text, `-0` as `0`.
    Int(String),
    /// The bits of the double (so `-0.0` differs from `0.0`).
    Float(u64),
    Str(String),
    Array(Vec<Tree>),
    /// Last value of a repeated key.
    Object(BTreeMap<String, Tree>),
    /// A number's text inside serde_json's marker map (an owned string:
    /// strings of the JSON text arrive borrowed or copied).
    NumberText(String),
}

fn number(text: &str) -> Tree {
    if text.contains(['.', 'e', 'E']) {
        let value: f64 = text.parse().expect("serde_json checked the grammar");
        Tree::Float(value.to_bits())
    } else if text.trim_start_matches('-').bytes().all(|b| b == b'0') {
        Tree::Int("0".to_string())
    } else {
        Tree::Int(text.to_string())
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Tree, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Tree, E> {
        Ok(number(&value.to_string()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Tree, E> {
        Ok(number(&value.to_string()))
    }

    fn visit_str<E>(self, value: &str) -> Result<Tree, E> {
        Ok(Tree::Str(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Tree, E> {
        Ok(Tree::NumberText(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut object = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value()? {
                Tree::NumberText(text) if key == NUMBER_TOKEN && object.is_empty() => return Ok(number(&text)),
                value => {
                    object.insert(key, value);
                }
            }
        }
        Ok(Tree::Object(object))
    }
}

/// Python writes an overflowed double as `Infinity`, which is not JSON:
/// spell it `1e999` (a double that overflows the same way) to read it back.
fn infinity_as_number(canonical: &str) -> String {
    let mut out = String::with_capacity(canonical.len());
    let mut rest = canonical;
    let mut in_string = false;
    while let Some(ch) = rest.chars().next() {
        if !in_string && rest.starts_with("Infinity") {
            out.push_str("1e999");
            rest = &rest["Infinity".len()..];
            continue;
        }
        if in_string && ch == '\\' {
            out.push_str(&rest[..2]);
            rest = &rest[2..];
            continue;
        }
        if ch == '"' {
            in_string = !in_string;
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The reference: serde_json (nesting limit 128; the module allows more).
    let reference = serde_json::from_slice::<Tree>(data);
    let too_deep = matches!(&reference, Err(e) if e.to_string().contains("recursion limit"));
    let canonical = match canonical_text(data, usize::MAX) {
        Ok(canonical) => canonical,
        Err(message) => {
            assert!(message.starts_with("ERR "), "{message}");
            if let Ok(Tree::Object(_)) = reference {
                panic!("refused ({message}), but serde_json reads an object");
            }
            return;
        }
    };
    assert!(canonical.is_ascii(), "{canonical}");
    assert!(canonical.starts_with('{') && canonical.ends_with('}'), "{canonical}");
    assert!(
        validate_object(data, usize::MAX).is_ok(),
        "a pattern must also be a valid value"
    );
    let hash = pattern_hash(data, usize::MAX).expect("same text");
    assert_eq!(hash, hash_canonical(&canonical));
    assert!(validate_pattern_hash(hash.as_bytes()).is_ok(), "{hash}");

    let readable = infinity_as_number(&canonical);
    match reference {
        Ok(input) => {
            let output: Tree = serde_json::from_str(&readable)
                .unwrap_or_else(|e| panic!("canonical text does not parse ({e}): {canonical}"));
            assert_eq!(input, output, "{canonical}");
        }
        Err(e) => assert!(too_deep, "accepted, but serde_json says {e}"),
    }
    let again = canonical_text(readable.as_bytes(), usize::MAX).expect("canonical text is accepted");
    assert_eq!(again, canonical, "not idempotent");
});
