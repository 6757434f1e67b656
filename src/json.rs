//! Checks on cached values: one JSON object, valid RFC 8259 JSON, within the
//! size limit. Values are stored exactly as sent; this only says yes or no.
//! Pure logic, no Redis types.

use std::borrow::Cow;

use serde::de::IgnoredAny;

use crate::errors;

/// Accepts exactly one JSON object (surrounding whitespace allowed) of at
/// most `max_bytes` bytes. Validation skips over values with an explicit
/// stack, not recursion, so any nesting depth is safe.
pub fn validate_object(text: &[u8], max_bytes: usize) -> Result<(), Cow<'static, str>> {
    if text.len() > max_bytes {
        return Err(errors::JSON_TOO_LARGE.into());
    }
    // serde_json skips string contents without decoding them when it only
    // validates, so check the encoding of the whole text up front.
    let text = std::str::from_utf8(text).map_err(|_| errors::JSON_NOT_UTF8)?;
    if !starts_with_object(text.as_bytes()) {
        return Err(errors::JSON_NOT_OBJECT.into());
    }
    serde_json::from_str::<IgnoredAny>(text).map_err(invalid_json)?;
    Ok(())
}

/// The first significant character opens an object.
pub fn starts_with_object(text: &[u8]) -> bool {
    text.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) == Some(&b'{')
}

/// Turns a parser error into a reply naming the problem and where it is.
/// (Validation skips string contents, so an escaped lone surrogate is
/// accepted here: the value is stored as sent.)
fn invalid_json(error: serde_json::Error) -> Cow<'static, str> {
    Cow::Owned(format!("{}{}", errors::JSON_INVALID_PREFIX, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn objects_are_accepted() {
        for ok in [
            &b"{}"[..],
            b" {\"a\": 1} ",
            b"{\"nested\": {\"list\": [1, 2.5, -3e10, true, false, null, \"s\"]}}",
            "{\"unicode\": \"caf\u{e9} \u{1F600}\"}".as_bytes(),
            b"{\"big\": 123456789012345678901234567890}",
        ] {
            assert_eq!(validate_object(ok, MAX), Ok(()), "{}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn non_objects_are_refused() {
        for bad in [&b"[]"[..], b"1", b"\"s\"", b"null", b"", b"   "] {
            assert_eq!(validate_object(bad, MAX), Err(errors::JSON_NOT_OBJECT.into()));
        }
    }

    #[test]
    fn invalid_json_is_refused_with_the_reason() {
        for bad in [
            &b"{"[..],
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{'a':1}",
            b"{\"a\":NaN}",
            b"{\"a\":01}",
            b"{} {}",
            b"{\"a\":\"\x01\"}",
        ] {
            let err = validate_object(bad, MAX).expect_err("must refuse");
            assert!(err.starts_with("ERR invalid JSON: "), "{err}");
        }
    }

    #[test]
    fn invalid_utf8_and_size_are_refused() {
        assert_eq!(
            validate_object(b"{\"a\":\"\xff\"}", MAX),
            Err(errors::JSON_NOT_UTF8.into())
        );
        assert_eq!(validate_object(b"{\"a\":1}", 5), Err(errors::JSON_TOO_LARGE.into()));
        assert_eq!(validate_object(b"{\"a\":1}", 7), Ok(()));
    }

    #[test]
    fn deep_nesting_is_validated_without_recursion() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(validate_object(deep.as_bytes(), usize::MAX), Ok(()));
        let unbalanced = format!("{{\"a\":{}}}", "[".repeat(100_000));
        assert!(validate_object(unbalanced.as_bytes(), usize::MAX).is_err());
    }
}
