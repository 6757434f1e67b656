//! The key namespace: what kinds of entry exist, how their key names are
//! built, and which ids are acceptable. Pure logic, no Redis types.

use crate::errors;

/// Longest accepted id, in bytes.
pub const MAX_ID_LEN: usize = 512;
/// Every key the module touches starts with this.
pub const NAMESPACE: &[u8] = b"wargaming:";

/// The three kinds of cached entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prediction,
    Matrix,
    Pattern,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Prediction, Kind::Matrix, Kind::Pattern];

    /// Key prefix up to and including the opening brace of the hash tag.
    pub const fn prefix(self) -> &'static [u8] {
        match self {
            Kind::Prediction => b"wargaming:ml_pred:{",
            Kind::Matrix => b"wargaming:confusion:{",
            Kind::Pattern => b"wargaming:vuln_pattern:{",
        }
    }

    /// Name used in STATS and INFO fields.
    pub const fn stats_name(self) -> &'static str {
        match self {
            Kind::Prediction => "ml_pred",
            Kind::Matrix => "confusion",
            Kind::Pattern => "vuln_pattern",
        }
    }

    /// Position in per-kind arrays.
    pub const fn index(self) -> usize {
        match self {
            Kind::Prediction => 0,
            Kind::Matrix => 1,
            Kind::Pattern => 2,
        }
    }
}

/// The kind an `INVALIDATE ALL` names: PRED, MATRIX or PATTERN, in any case.
pub fn kind_named(word: &[u8]) -> Option<Kind> {
    [
        (&b"PRED"[..], Kind::Prediction),
        (b"MATRIX", Kind::Matrix),
        (b"PATTERN", Kind::Pattern),
    ]
    .into_iter()
    .find(|(name, _)| word.eq_ignore_ascii_case(name))
    .map(|(_, kind)| kind)
}

/// Checks an apv_id or model_version: 1-512 bytes, no braces (they would
/// break the hash tag), no ASCII control characters, not the word ALL.
pub fn validate_id(id: &[u8]) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err(errors::ID_EMPTY);
    }
    if id.len() > MAX_ID_LEN {
        return Err(errors::ID_TOO_LONG);
    }
    if id.iter().any(|&b| b == b'{' || b == b'}') {
        return Err(errors::ID_BRACE);
    }
    if id.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(errors::ID_CONTROL);
    }
    if id.eq_ignore_ascii_case(b"ALL") {
        return Err(errors::ID_RESERVED);
    }
    Ok(())
}

/// A pattern hash is exactly what HASHPATTERN returns: 16 lowercase hex digits.
pub fn validate_pattern_hash(hash: &[u8]) -> Result<(), &'static str> {
    if hash.len() == 16 && hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(errors::PATTERN_HASH)
    }
}

/// Longest key name: the longest prefix, an id of MAX_ID_LEN bytes, `}`.
const MAX_KEY_LEN: usize = b"wargaming:vuln_pattern:{".len() + MAX_ID_LEN + 1;

/// A key name `wargaming:<kind>:{<id>}`, built on the stack: reads build one
/// per command, and a heap allocation there is measurable.
pub struct KeyName {
    bytes: [u8; MAX_KEY_LEN],
    len: usize,
}

impl std::ops::Deref for KeyName {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// `wargaming:<kind>:{<id>}`. The id must have been validated (an id longer
/// than MAX_ID_LEN is cut, never overflows).
pub fn key_name(kind: Kind, id: &[u8]) -> KeyName {
    let mut name = KeyName {
        bytes: [0; MAX_KEY_LEN],
        len: 0,
    };
    for part in [kind.prefix(), id, b"}"] {
        let room = name.bytes.get_mut(name.len..).unwrap_or_default();
        let n = part.len().min(room.len());
        if let (Some(dst), Some(src)) = (room.get_mut(..n), part.get(..n)) {
            dst.copy_from_slice(src);
        }
        name.len += n;
    }
    name
}

/// The kind of a key name, if it is one the module would have written.
pub fn kind_of(key: &[u8]) -> Option<Kind> {
    if !key.starts_with(NAMESPACE) || key.last() != Some(&b'}') {
        return None;
    }
    Kind::ALL.into_iter().find(|kind| key.starts_with(kind.prefix()))
}

/// The id inside a key name the module would have written.
pub fn id_of(key: &[u8]) -> Option<&[u8]> {
    kind_and_id(key).map(|(_, id)| id)
}

/// The kind and the id of a key name the module would have written.
pub fn kind_and_id(key: &[u8]) -> Option<(Kind, &[u8])> {
    let kind = kind_of(key)?;
    Some((kind, key.get(kind.prefix().len()..key.len() - 1)?))
}

/// CRC16 (XMODEM) as Redis Cluster uses it for key slots.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Redis Cluster slot of a key, honouring `{hash tags}`.
pub fn cluster_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = key.get(open + 1..)?;
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| rest.get(..close)).flatten()
    });
    crc16(tagged.unwrap_or(key)) & 0x3fff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_rules() {
        assert!(validate_id(b"apv_001").is_ok());
        assert!(validate_id("CVE-2024-1234/é".as_bytes()).is_ok());
        assert!(validate_id(&[b'a'; 512]).is_ok());
        assert_eq!(validate_id(b""), Err(errors::ID_EMPTY));
        assert_eq!(validate_id(&[b'a'; 513]), Err(errors::ID_TOO_LONG));
        assert_eq!(validate_id(b"a{b"), Err(errors::ID_BRACE));
        assert_eq!(validate_id(b"a}b"), Err(errors::ID_BRACE));
        assert_eq!(validate_id(b"a\nb"), Err(errors::ID_CONTROL));
        assert_eq!(validate_id(b"a\0b"), Err(errors::ID_CONTROL));
        assert_eq!(validate_id(b"a\x7fb"), Err(errors::ID_CONTROL));
        assert_eq!(validate_id(b"all"), Err(errors::ID_RESERVED));
        assert_eq!(validate_id(b"aLl"), Err(errors::ID_RESERVED));
        assert!(validate_id(b"ALLx").is_ok());
    }

    #[test]
    fn kinds_are_named_in_any_case() {
        assert_eq!(kind_named(b"pred"), Some(Kind::Prediction));
        assert_eq!(kind_named(b"Matrix"), Some(Kind::Matrix));
        assert_eq!(kind_named(b"PATTERN"), Some(Kind::Pattern));
        assert_eq!(kind_named(b"patterns"), None);
        assert_eq!(kind_named(b""), None);
    }

    #[test]
    fn pattern_hashes_are_16_lowercase_hex() {
        assert!(validate_pattern_hash(b"0123456789abcdef").is_ok());
        assert!(validate_pattern_hash(b"0123456789ABCDEF").is_err());
        assert!(validate_pattern_hash(b"0123456789abcde").is_err());
        assert!(validate_pattern_hash(b"0123456789abcdefa").is_err());
        assert!(validate_pattern_hash(b"0123456789abcdeg").is_err());
    }

    #[test]
    fn key_names_round_trip_to_their_kind() {
        for kind in Kind::ALL {
            let key = key_name(kind, b"x");
            assert_eq!(kind_of(&key), Some(kind));
        }
        assert_eq!(&*key_name(Kind::Prediction, b"a1"), b"wargaming:ml_pred:{a1}");
        let longest = key_name(Kind::Pattern, &[b'x'; MAX_ID_LEN]);
        assert_eq!(longest.len(), b"wargaming:vuln_pattern:{".len() + MAX_ID_LEN + 1);
        assert!(longest.ends_with(b"x}"));
        assert_eq!(kind_of(b"wargaming:other:{x}"), None);
        assert_eq!(kind_of(b"wargaming:ml_pred:{x"), None);
        assert_eq!(kind_of(b"ml_pred:{x}"), None);
        assert_eq!(id_of(b"wargaming:confusion:{v1}"), Some(&b"v1"[..]));
        assert_eq!(id_of(b"wargaming:confusion:{}"), Some(&b""[..]));
        assert_eq!(id_of(b"wargaming:other:{v1}"), None);
    }

    #[test]
    fn slot_of_key_is_slot_of_id() {
        // Known values from CLUSTER KEYSLOT.
        assert_eq!(cluster_slot(b"foo"), 12182);
        assert_eq!(cluster_slot(b"123456789"), 0x31c3 & 0x3fff);
        for id in [&b"apv_001"[..], b"x", b"model-v2.1"] {
            assert_eq!(cluster_slot(&key_name(Kind::Prediction, id)), cluster_slot(id));
        }
        // Empty tag: whole key hashed.
        assert_eq!(cluster_slot(b"{}foo"), crc16(b"{}foo") & 0x3fff);
    }
}
