//! The pattern hash, byte-identical to the seed's Python:
//! `sha256(json.dumps(json.loads(t), sort_keys=True).encode()).hexdigest()[:16]`.
//! Pure logic, no Redis types.
//!
//! Python's canonical text: separators `", "` and `": "`, keys sorted by code
//! point, ASCII-only strings, integers exact at any size, floats as
//! `repr(float)`. serde_json is built with `arbitrary_precision`, so numbers
//! arrive as their source text and integers never pass through a double.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

use crate::errors;
use crate::json::{invalid_json, starts_with_object};

/// Length of the hash in hex digits.
pub const HASH_HEX_LEN: usize = 16;

/// Hash of a pattern: the first 16 lowercase hex digits of the SHA-256 of
/// its canonical text.
pub fn pattern_hash(text: &[u8], max_bytes: usize) -> Result<String, Cow<'static, str>> {
    let canonical = canonical_text(text, max_bytes)?;
    Ok(hash_canonical(&canonical))
}

/// SHA-256 prefix of an already canonical text.
pub fn hash_canonical(canonical: &str) -> String {
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(HASH_HEX_LEN);
    for byte in digest.iter().take(HASH_HEX_LEN / 2) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// `json.dumps(json.loads(text), sort_keys=True)` for a JSON object text.
pub fn canonical_text(text: &[u8], max_bytes: usize) -> Result<String, Cow<'static, str>> {
    if text.len() > max_bytes {
        return Err(errors::JSON_TOO_LARGE.into());
    }
    let text = std::str::from_utf8(text).map_err(|_| errors::JSON_NOT_UTF8)?;
    if !starts_with_object(text) {
        return Err(errors::JSON_NOT_OBJECT.into());
    }
    let value: Json = serde_json::from_str(text).map_err(invalid_json)?;
    let mut out = String::with_capacity(text.len());
    write_value(&mut out, &value);
    Ok(out)
}

/// serde_json's private marker key. With `arbitrary_precision` its parser
/// hands every number to the visitor as a one-entry map
/// `{"$serde_json::private::Number": "<source text>"}`.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// A parsed JSON value. Not `serde_json::Value`: its visitor takes any object
/// whose first key is the marker for a number, so `{"a": {"<marker>": "1"}}`
/// would read as `{"a": 1}` (the same hash as a different pattern) and
/// `{"<marker>": "1"}` as the bare number `1`, where Python sees objects.
enum Json {
    Null,
    Bool(bool),
    /// A number's source text.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// A map keeps the last value of a repeated key.
    Object(BTreeMap<String, Json>),
    /// A string handed over as an owned `String`. serde_json does that only
    /// for the text of a number inside its marker map: strings of the JSON
    /// text arrive borrowed or copied (`visit_borrowed_str` / `visit_str`).
    /// That is what tells a number from a real object using the marker key.
    NumberText(String),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    // Integers that fit 64 bits come as such; every other number as its text.
    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(value.to_string()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(value.to_string()))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::NumberText(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value()? {
                // serde_json's number map: its only entry.
                Json::NumberText(text) if key == NUMBER_TOKEN && object.is_empty() => {
                    return Ok(Json::Number(text));
                }
                value => {
                    object.insert(key, value);
                }
            }
        }
        Ok(Json::Object(object))
    }
}

fn write_value(out: &mut String, value: &Json) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Number(number) => write_number(out, number),
        Json::String(string) | Json::NumberText(string) => write_string(out, string),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Json::Object(map) => write_object(out, map),
    }
}

/// A BTreeMap iterates keys in UTF-8 byte order, which is code point order,
/// as Python sorts them; a repeated key kept its last value.
fn write_object(out: &mut String, map: &BTreeMap<String, Json>) {
    out.push('{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(out, key);
        out.push_str(": ");
        write_value(out, value);
    }
    out.push('}');
}

/// Integers verbatim (`-0` becomes `0`, as Python's int does); anything
/// with a fraction or exponent is a double written as `repr(float)`.
fn write_number(out: &mut String, text: &str) {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        // The grammar was checked by the parser; Rust's parse is correctly rounded.
        let value: f64 = text.parse().unwrap_or(f64::NAN);
        write_float(out, value);
    } else if text == "-0" {
        out.push('0');
    } else {
        out.push_str(text);
    }
}

/// Python's `repr(float)`: shortest round-trip digits; plain notation when
/// the decimal exponent is in -4..16, else `d.ddde±XX`.
pub fn write_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if value == 0.0 {
        out.push_str(if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.2345e-5".
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    if (-4..16).contains(&exponent) {
        write_plain(out, &digits, exponent);
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        );
    }
}

/// Digits `d1d2d3...` times 10^exponent in plain notation, with at least one
/// digit after the point.
fn write_plain(out: &mut String, digits: &str, exponent: i32) {
    if exponent < 0 {
        out.push_str("0.");
        for _ in 0..(-exponent - 1) {
            out.push('0');
        }
        out.push_str(digits);
        return;
    }
    let point = usize::try_from(exponent).unwrap_or(0) + 1;
    if digits.len() > point {
        let (whole, fraction) = digits.split_at(point);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else {
        out.push_str(digits);
        for _ in digits.len()..point {
            out.push('0');
        }
        out.push_str(".0");
    }
}

/// Python's `ensure_ascii` string encoding.
fn write_string(out: &mut String, string: &str) {
    out.push('"');
    for ch in string.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn canon(text: &str) -> String {
        canonical_text(text.as_bytes(), MAX).expect("valid object")
    }

    fn float(value: f64) -> String {
        let mut out = String::new();
        write_float(&mut out, value);
        out
    }

    #[test]
    fn layout_matches_python() {
        assert_eq!(canon("{}"), "{}");
        assert_eq!(
            canon(r#"{"b":1,"a":[1,2,{}],"c":{"z":null,"y":true}}"#),
            r#"{"a": [1, 2, {}], "b": 1, "c": {"y": true, "z": null}}"#
        );
        assert_eq!(canon(r#"{"a":[]}"#), r#"{"a": []}"#);
        assert_eq!(canon(r#"{"a":1,"a":2}"#), r#"{"a": 2}"#);
    }

    #[test]
    fn keys_sort_by_code_point() {
        assert_eq!(
            canon("{\"\u{e9}\":1,\"z\":2,\"\u{1F600}\":3,\"\u{ffff}\":4,\"Z\":5}"),
            r#"{"Z": 5, "z": 2, "\u00e9": 1, "\uffff": 4, "\ud83d\ude00": 3}"#
        );
    }

    #[test]
    fn strings_are_ascii_escaped() {
        assert_eq!(
            canon(r#"{"s":"a\"b\\c\/d\n\r\t\b\f\u0001\u001f\u007f é"}"#),
            r#"{"s": "a\"b\\c/d\n\r\t\b\f\u0001\u001f\u007f \u00e9"}"#
        );
        assert_eq!(canon(r#"{"s":"\ud83d\ude00"}"#), r#"{"s": "\ud83d\ude00"}"#);
    }

    #[test]
    fn integers_stay_exact() {
        assert_eq!(
            canon(r#"{"n":123456789012345678901234567890}"#),
            r#"{"n": 123456789012345678901234567890}"#
        );
        assert_eq!(canon(r#"{"n":-0}"#), r#"{"n": 0}"#);
        assert_eq!(canon(r#"{"n":-17}"#), r#"{"n": -17}"#);
    }

    #[test]
    fn floats_are_python_repr() {
        let cases: [(f64, &str); 18] = [
            (100.0, "100.0"),
            (1.5, "1.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (1e22, "1e+22"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-2.5e-7, "-2.5e-07"),
            (123.456, "123.456"),
        ];
        for (value, expected) in cases {
            assert_eq!(float(value), expected, "{value:e}");
        }
        assert_eq!(
            canon(r#"{"f":1e400,"g":-1e400,"h":1E2,"i":-0.0}"#),
            r#"{"f": Infinity, "g": -Infinity, "h": 100.0, "i": -0.0}"#
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            canonical_text(b"[1]", MAX),
            Err(errors::JSON_NOT_OBJECT.into())
        );
        assert_eq!(
            canonical_text(br#"{"s":"\ud800"}"#, MAX),
            Err(errors::JSON_LONE_SURROGATE.into())
        );
        assert_eq!(
            canonical_text(br#"{"s":"\udc00x"}"#, MAX),
            Err(errors::JSON_LONE_SURROGATE.into())
        );
        assert!(canonical_text(b"{\"a\":1", MAX).is_err());
        // Deeper than serde_json's recursion limit (128): refused, not a stack overflow.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let refusal = canonical_text(deep.as_bytes(), usize::MAX).expect_err("too deep");
        assert!(refusal.contains("recursion limit"), "{refusal}");
    }

    #[test]
    fn known_hashes_from_python() {
        // python3 -c 'import json,hashlib;print(hashlib.sha256(json.dumps({"a":1},sort_keys=True).encode()).hexdigest()[:16])'
        assert_eq!(
            pattern_hash(br#"{"a":1}"#, MAX).as_deref(),
            Ok("f9d86028c6e0d64e")
        );
        assert_eq!(pattern_hash(b"{}", MAX).as_deref(), Ok("44136fa355b3678a"));
    }
}
