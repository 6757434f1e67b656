//! Option parsing for the write commands: `EX seconds`, `PX milliseconds`,
//! `NOSTORE`. Pure logic over byte slices, no Redis types; the command
//! handlers pull arguments with the crate's `NextArg` and hand the rest here.

use crate::errors;

/// Options of a write command, after parsing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// TTL asked for with EX/PX, in milliseconds; `None` means the config default.
    pub ttl_ms: Option<i64>,
    /// HASHPATTERN only: compute the hash, store nothing.
    pub nostore: bool,
}

/// Parses `[EX seconds | PX milliseconds]` (and `NOSTORE` where allowed).
/// Option names are case-insensitive; an option given twice, EX with PX,
/// an unknown word or a missing value is a syntax error.
pub fn parse_write_options<'a, I>(mut args: I, allow_nostore: bool) -> Result<WriteOptions, &'static str>
where
    I: Iterator<Item = &'a [u8]>,
{
    let mut options = WriteOptions::default();
    while let Some(word) = args.next() {
        if word.eq_ignore_ascii_case(b"EX") || word.eq_ignore_ascii_case(b"PX") {
            if options.ttl_ms.is_some() {
                return Err(errors::SYNTAX);
            }
            let value = args.next().ok_or(errors::SYNTAX)?;
            let amount = parse_strict_i64(value).ok_or(errors::NOT_INTEGER)?;
            if amount <= 0 {
                return Err(errors::EXPIRE_NOT_POSITIVE);
            }
            let ms = if word.eq_ignore_ascii_case(b"EX") {
                amount.checked_mul(1000).ok_or(errors::EXPIRE_TOO_LARGE)?
            } else {
                amount
            };
            options.ttl_ms = Some(ms);
        } else if allow_nostore && word.eq_ignore_ascii_case(b"NOSTORE") {
            if options.nostore {
                return Err(errors::SYNTAX);
            }
            options.nostore = true;
        } else {
            return Err(errors::SYNTAX);
        }
    }
    if options.nostore && options.ttl_ms.is_some() {
        return Err(errors::NOSTORE_WITH_TTL);
    }
    Ok(options)
}

/// The TTL to apply: the one asked for, else the config default (seconds).
pub fn resolve_ttl_ms(asked_ms: Option<i64>, default_secs: i64) -> Result<i64, &'static str> {
    match asked_ms {
        Some(ms) => Ok(ms),
        None => default_secs.checked_mul(1000).ok_or(errors::EXPIRE_TOO_LARGE),
    }
}

/// Absolute expiry in unix milliseconds, refusing overflow as `SET` does.
pub fn expire_at_ms(now_ms: i64, ttl_ms: i64) -> Result<i64, &'static str> {
    now_ms.checked_add(ttl_ms).ok_or(errors::EXPIRE_TOO_LARGE)
}

/// Integer parsing as strict as Redis's `string2ll`: optional `-`, digits,
/// no `+`, no spaces, no leading zeros, no overflow.
pub fn parse_strict_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let first = *digits.first()?;
    if !first.is_ascii_digit() || (first == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let mut value: i64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        let d = i64::from(digit - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(d)?
        } else {
            value.checked_add(d)?
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str], nostore: bool) -> Result<WriteOptions, &'static str> {
        parse_write_options(words.iter().map(|w| w.as_bytes()), nostore)
    }

    #[test]
    fn no_options_means_default_ttl() {
        assert_eq!(parse(&[], false), Ok(WriteOptions::default()));
    }

    #[test]
    fn ex_and_px_are_case_insensitive() {
        assert_eq!(parse(&["ex", "10"], false).map(|o| o.ttl_ms), Ok(Some(10_000)));
        assert_eq!(parse(&["Px", "1500"], false).map(|o| o.ttl_ms), Ok(Some(1500)));
    }

    #[test]
    fn bad_expiries_are_refused() {
        assert_eq!(parse(&["EX", "0"], false), Err(errors::EXPIRE_NOT_POSITIVE));
        assert_eq!(parse(&["PX", "-5"], false), Err(errors::EXPIRE_NOT_POSITIVE));
        assert_eq!(parse(&["EX", "ten"], false), Err(errors::NOT_INTEGER));
        assert_eq!(parse(&["EX", "1.5"], false), Err(errors::NOT_INTEGER));
        assert_eq!(parse(&["EX"], false), Err(errors::SYNTAX));
        assert_eq!(parse(&["EX", "1", "PX", "1"], false), Err(errors::SYNTAX));
        assert_eq!(parse(&["EX", "1", "EX", "1"], false), Err(errors::SYNTAX));
        assert_eq!(parse(&["KEEPTTL"], false), Err(errors::SYNTAX));
        assert_eq!(
            parse(&["EX", "9223372036854775807"], false),
            Err(errors::EXPIRE_TOO_LARGE)
        );
    }

    #[test]
    fn nostore_only_where_allowed() {
        assert_eq!(parse(&["NOSTORE"], false), Err(errors::SYNTAX));
        assert_eq!(parse(&["nostore"], true).map(|o| o.nostore), Ok(true));
        assert_eq!(parse(&["NOSTORE", "NOSTORE"], true), Err(errors::SYNTAX));
        assert_eq!(parse(&["NOSTORE", "EX", "5"], true), Err(errors::NOSTORE_WITH_TTL));
        assert_eq!(parse(&["EX", "5"], true).map(|o| o.ttl_ms), Ok(Some(5000)));
    }

    #[test]
    fn ttl_resolution_prefers_the_asked_value() {
        assert_eq!(resolve_ttl_ms(Some(1234), 86400), Ok(1234));
        assert_eq!(resolve_ttl_ms(None, 86400), Ok(86_400_000));
        assert_eq!(expire_at_ms(1_000, 500), Ok(1_500));
        assert_eq!(expire_at_ms(i64::MAX - 1, 500), Err(errors::EXPIRE_TOO_LARGE));
    }

    #[test]
    fn integers_are_parsed_like_redis() {
        assert_eq!(parse_strict_i64(b"0"), Some(0));
        assert_eq!(parse_strict_i64(b"42"), Some(42));
        assert_eq!(parse_strict_i64(b"-42"), Some(-42));
        assert_eq!(parse_strict_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_strict_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"1e3",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_strict_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
