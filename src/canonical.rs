//! The pattern hash, byte-identical to the seed's Python:
//! `sha256(json.dumps(json.loads(t), sort_keys=True).encode()).hexdigest()[:16]`.
//! Pure logic, no Redis types.
//!
//! Python's canonical text: separators `", "` and `": "`, keys sorted by code
//! point, ASCII-only strings, integers exact at any size, floats as
//! `repr(float)`. A single-pass parser writes that text as it reads the
//! input: no tree, integers copied as text (never through a double), each
//! object's members sorted in place once it closes.

use std::borrow::Cow;
use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::errors;
use crate::json::starts_with_object;

/// Length of the hash in hex digits.
pub const HASH_HEX_LEN: usize = 16;

/// Deepest nesting of objects and arrays accepted. Python stops near 1000
/// (its recursion limit); the parser recurses, so the stack stays bounded.
pub const MAX_DEPTH: usize = 512;

/// Hash of a pattern: the first 16 lowercase hex digits of the SHA-256 of
/// its canonical text.
pub fn pattern_hash(text: &[u8], max_bytes: usize) -> Result<String, Cow<'static, str>> {
    pattern_hash_hex(text, max_bytes).map(|hex| String::from_utf8_lossy(&hex).into_owned())
}

/// [`pattern_hash`] as ASCII bytes, with no allocation (the command path).
pub fn pattern_hash_hex(text: &[u8], max_bytes: usize) -> Result<[u8; HASH_HEX_LEN], Cow<'static, str>> {
    with_canonical(text, max_bytes, hash_bytes)
}

/// SHA-256 prefix of an already canonical text.
pub fn hash_canonical(canonical: &str) -> String {
    String::from_utf8_lossy(&hash_bytes(canonical.as_bytes())).into_owned()
}

fn hash_bytes(canonical: &[u8]) -> [u8; HASH_HEX_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(canonical);
    let mut hex = [0u8; HASH_HEX_LEN];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.iter()) {
        for (digit, nibble) in pair.iter_mut().zip([byte >> 4, byte & 0xf]) {
            *digit = HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
        }
    }
    hex
}

/// `json.dumps(json.loads(text), sort_keys=True)` for a JSON object text.
/// Refuses what RFC 8259 refuses, escaped lone surrogates, and nesting
/// deeper than [`MAX_DEPTH`].
pub fn canonical_text(text: &[u8], max_bytes: usize) -> Result<String, Cow<'static, str>> {
    // The canonical text is ASCII.
    with_canonical(text, max_bytes, |bytes| String::from_utf8_lossy(bytes).into_owned())
}

/// The canonical text being written: bytes, all ASCII.
#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn push_str(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
    }

    fn push(&mut self, ascii: char) {
        let mut buf = [0u8; 4];
        self.push_str(ascii.encode_utf8(&mut buf));
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// Appends `text[range]`, a token of the input. Tokens are short: when
    /// 16 bytes can be read from its start, they are appended as one
    /// fixed-size move (no call to memcpy) and the excess cut off again.
    fn token(&mut self, text: &[u8], range: Range<usize>) {
        let len = range.len();
        if len <= 16 {
            if let Some(block) = text.get(range.start..).and_then(|rest| rest.first_chunk::<16>()) {
                let end = self.0.len() + len;
                self.0.extend_from_slice(block);
                self.0.truncate(end);
                return;
            }
        }
        self.extend(text.get(range).unwrap_or_default());
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn capacity(&self) -> usize {
        self.0.capacity()
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn get(&self, range: Range<usize>) -> Option<&[u8]> {
        self.0.get(range)
    }
}

/// Working buffers, kept between calls: hashing a pattern then allocates
/// nothing once they have grown to the usual size.
#[derive(Default)]
struct Buffers {
    out: Out,
    keys: Vec<u8>,
    members: Vec<Member>,
    /// Sort order of one object's members: key prefix and position in one
    /// integer (see `sort_members`).
    order: Vec<u64>,
    scratch: Out,
}

/// Buffers larger than this are not kept for the next call.
const KEEP_CAPACITY: usize = 64 * 1024;

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

/// Canonicalises `text` and hands the canonical text to `finish`.
fn with_canonical<R>(text: &[u8], max_bytes: usize, finish: impl FnOnce(&[u8]) -> R) -> Result<R, Cow<'static, str>> {
    if text.len() > max_bytes {
        return Err(errors::JSON_TOO_LARGE.into());
    }
    // UTF-8 is checked where it matters, as the parser meets non-ASCII
    // bytes (a text that parses is valid UTF-8); a refused text is checked
    // whole, so that invalid UTF-8 is always the reason given.
    let refusal = |reason: Cow<'static, str>| match std::str::from_utf8(text) {
        Ok(_) => reason,
        Err(_) => errors::JSON_NOT_UTF8.into(),
    };
    if !starts_with_object(text) {
        return Err(refusal(errors::JSON_NOT_OBJECT.into()));
    }
    BUFFERS.with(|cell| {
        // Re-entry cannot happen (nothing here calls back), but never panic.
        let mut fresh = Buffers::default();
        let mut kept = cell.try_borrow_mut().ok();
        let buffers = kept.as_deref_mut().unwrap_or(&mut fresh);
        buffers.out.clear();
        buffers.keys.clear();
        buffers.members.clear();
        let mut parser = Parser {
            bytes: text,
            pos: 0,
            depth: 0,
            buffers,
        };
        let result = parser
            .document()
            .map(|()| finish(parser.buffers.out.as_bytes()))
            .map_err(|failure| refusal(*failure));
        for capacity in [
            parser.buffers.out.capacity(),
            parser.buffers.scratch.capacity(),
            parser.buffers.keys.capacity(),
            parser.buffers.members.capacity() * std::mem::size_of::<Member>(),
            parser.buffers.order.capacity() * std::mem::size_of::<u64>(),
        ] {
            if capacity > KEEP_CAPACITY {
                *parser.buffers = Buffers::default();
                break;
            }
        }
        result
    })
}

/// One member of an object being written: where its decoded key is and
/// where its canonical `"key": value` text is (in `out`).
struct Member {
    /// The key's first 8 bytes, big-endian, zero-padded: most comparisons
    /// end here; equal prefixes compare the whole keys.
    prefix: u64,
    /// Where the decoded key is: a key written without escapes is its own
    /// decoded form, read from `out`; others are decoded into `keys`.
    key_in_out: bool,
    key: Range<usize>,
    text: Range<usize>,
}

impl Member {
    /// `buffer[key]` is the decoded key.
    fn new(buffer: &[u8], key_in_out: bool, key: Range<usize>, text: Range<usize>) -> Member {
        // Eight bytes read at once when the buffer has them (a short key is
        // followed by more text), the bytes past the key masked off.
        let kept = u64::MAX.checked_shr(8 * key.len().min(8) as u32).unwrap_or(0);
        let prefix = match buffer.get(key.start..).and_then(|rest| rest.first_chunk::<8>()) {
            Some(word) => u64::from_be_bytes(*word) & !kept,
            None => buffer
                .get(key.clone())
                .unwrap_or_default()
                .iter()
                .zip((0..8).rev())
                .fold(0, |acc, (&b, i)| acc | u64::from(b) << (8 * i)),
        };
        Member {
            prefix,
            key_in_out,
            key,
            text,
        }
    }
}

/// Why a text was refused. Boxed so that the parser's results, returned
/// many times per pattern, are one register wide.
type Failure = Box<Cow<'static, str>>;

fn lone_surrogate() -> Failure {
    Box::new(Cow::Borrowed(errors::JSON_LONE_SURROGATE))
}

struct Parser<'a, 'b> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// `out`: the canonical text so far. `keys`: decoded keys of the objects
    /// still open (UTF-8 byte order is code point order, Python's sort
    /// order). `members`: members of the objects still open, innermost last.
    buffers: &'b mut Buffers,
}

impl Parser<'_, '_> {
    /// The whole text: one value, whitespace around it.
    fn document(&mut self) -> Result<(), Failure> {
        self.skip_whitespace();
        self.value()?;
        self.skip_whitespace();
        if self.pos < self.bytes.len() {
            return Err(self.error("trailing characters"));
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, pos: usize) -> Option<u8> {
        self.bytes.get(pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// An error in serde_json's words, with line and column.
    fn error(&self, what: &str) -> Failure {
        let before = self.bytes.get(..self.pos).unwrap_or_default();
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        Box::new(Cow::Owned(format!(
            "{}{what} at line {line} column {column}",
            errors::JSON_INVALID_PREFIX
        )))
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), Failure> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn value(&mut self) -> Result<(), Failure> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string(false).map(drop),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected value")),
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    fn enter(&mut self) -> Result<(), Failure> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, word: &'static str) -> Result<(), Failure> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            self.buffers.out.push_str(word);
            Ok(())
        } else {
            Err(self.error("expected ident"))
        }
    }

    fn array(&mut self) -> Result<(), Failure> {
        self.enter()?;
        self.buffers.out.push('[');
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_whitespace();
                self.value()?;
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.buffers.out.push_str(", ");
                    }
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `]`")),
                }
            }
        }
        self.buffers.out.push(']');
        self.depth -= 1;
        Ok(())
    }

    fn object(&mut self) -> Result<(), Failure> {
        self.enter()?;
        let start = self.buffers.out.len();
        let first_member = self.buffers.members.len();
        let first_key = self.buffers.keys.len();
        self.buffers.out.push('{');
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.error("key must be a string"));
                }
                if self.buffers.members.len() > first_member {
                    self.buffers.out.push_str(", ");
                }
                let key_start = self.buffers.keys.len();
                let text_start = self.buffers.out.len();
                let key_in_out = self.string(true)?;
                let key = if key_in_out {
                    text_start + 1..self.buffers.out.len() - 1
                } else {
                    key_start..self.buffers.keys.len()
                };
                self.skip_whitespace();
                self.expect(b':', "expected `:`")?;
                self.buffers.out.push_str(": ");
                self.skip_whitespace();
                self.value()?;
                let key_buffer = if key_in_out {
                    self.buffers.out.as_bytes()
                } else {
                    &self.buffers.keys
                };
                let member = Member::new(key_buffer, key_in_out, key, text_start..self.buffers.out.len());
                self.buffers.members.push(member);
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `}`")),
                }
            }
        }
        self.buffers.out.push('}');
        self.sort_members(start, first_member);
        self.buffers.members.truncate(first_member);
        self.buffers.keys.truncate(first_key);
        self.depth -= 1;
        Ok(())
    }

    /// Rewrites the object that begins at `start` with its members in key
    /// order, a repeated key keeping its last value, as a Python dict does.
    fn sort_members(&mut self, start: usize, first_member: usize) {
        let Buffers {
            out,
            keys,
            members,
            order,
            scratch,
        } = &mut *self.buffers;
        let members = members.get(first_member..).unwrap_or_default();
        let key = |m: &Member| {
            let bytes = if m.key_in_out { out.as_bytes() } else { keys.as_slice() };
            bytes.get(m.key.clone()).unwrap_or_default()
        };
        // An entry of `order`: the key prefix in the high bits, the member's
        // position in the low `position_bits`.
        let position_bits = u64::BITS - (members.len() as u64).leading_zeros();
        let position_mask = u64::MAX.checked_shr(u64::BITS - position_bits).unwrap_or(0);
        let member = |entry: &u64| members.get((*entry & position_mask) as usize);
        let full_key = |entry: &u64| member(entry).map(key).unwrap_or_default();
        let same_prefix = |a: &u64, b: &u64| a & !position_mask == b & !position_mask;
        if members
            .windows(2)
            .all(|pair| matches!(pair, [a, b] if a.prefix < b.prefix || (a.prefix == b.prefix && key(a) < key(b))))
        {
            return; // already sorted, no repeats: written as is
        }
        // Sort (prefix, position) pairs packed in single integers, cheap to
        // compare and move. Members sharing a prefix are then ordered by
        // their whole key, repeats by position, so the last of a repeated
        // key comes last.
        order.clear();
        order.extend(
            members
                .iter()
                .enumerate()
                .map(|(i, m)| m.prefix & !position_mask | i as u64),
        );
        order.sort_unstable();
        for run in order.chunk_by_mut(same_prefix) {
            if run.len() > 1 {
                run.sort_unstable_by(|a, b| full_key(a).cmp(full_key(b)).then(a.cmp(b)));
            }
        }
        // Write the object again, in order, into `scratch`, then put it back.
        scratch.clear();
        scratch.push('{');
        let mut written = 0;
        for (i, entry) in order.iter().enumerate() {
            let repeated = order
                .get(i + 1)
                .is_some_and(|next| same_prefix(next, entry) && full_key(next) == full_key(entry));
            let Some(member) = member(entry).filter(|_| !repeated) else {
                continue;
            };
            if written > 0 {
                scratch.push_str(", ");
            }
            scratch.extend(out.get(member.text.clone()).unwrap_or_default());
            written += 1;
        }
        scratch.push('}');
        // Swapping is cheap when the object is all there is so far (the
        // outermost one); otherwise copy the rewritten object back.
        if start == 0 {
            std::mem::swap(out, scratch);
        } else {
            out.truncate(start);
            out.extend(scratch.as_bytes());
        }
    }

    /// Integers verbatim (`-0` becomes `0`, as Python's int does); anything
    /// with a fraction or exponent is a double written as `repr(float)`.
    fn number(&mut self) -> Result<(), Failure> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let whole_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(self.error("invalid number")),
        }
        let whole = self.bytes.get(whole_start..self.pos).unwrap_or_default();
        let mut float = false;
        let mut fraction: &[u8] = &[];
        if self.peek() == Some(b'.') {
            self.pos += 1;
            float = true;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            let fraction_start = self.pos;
            self.skip_digits();
            fraction = self.bytes.get(fraction_start..self.pos).unwrap_or_default();
        }
        if !matches!(self.peek(), Some(b'e' | b'E')) && is_python_repr(whole, fraction) {
            // The commonest float spelling is Python's already: copy it.
            self.buffers.out.token(self.bytes, start..self.pos);
            return Ok(());
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            float = true;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.skip_digits();
        }
        // Sign, digits, point and exponent: ASCII.
        let text = std::str::from_utf8(self.bytes.get(start..self.pos).unwrap_or_default()).unwrap_or_default();
        if float {
            if let Some(decimal) = Decimal::exact(text) {
                // Few enough digits: they are the shortest repr already.
                write_repr(
                    &mut self.buffers.out,
                    decimal.negative,
                    decimal.digits(),
                    decimal.exponent,
                );
            } else {
                // Rust's parse is correctly rounded, as Python's float() is.
                write_float(&mut self.buffers.out, text.parse().unwrap_or(f64::NAN));
            }
        } else if text == "-0" {
            self.buffers.out.push('0');
        } else {
            self.buffers.out.token(self.bytes, start..self.pos);
        }
        Ok(())
    }

    fn skip_digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    /// A string, written as Python's `ensure_ascii` writes it. True when it
    /// needed no escaping (its output is the input token); otherwise a key
    /// is also decoded into `keys`.
    #[inline(always)]
    fn string(&mut self, key: bool) -> Result<bool, Failure> {
        let open = self.pos;
        let run_end = open + 1 + plain_ascii_run(self.bytes.get(open + 1..).unwrap_or_default());
        if self.peek_at(run_end) == Some(b'"') {
            // Nothing to escape (the usual case): the token is its own output.
            self.pos = run_end + 1;
            self.buffers.out.token(self.bytes, open..self.pos);
            return Ok(true);
        }
        self.pos += 1; // the opening quote
        self.escaped_string(key).map(|()| false)
    }

    /// The rest of a string that has characters to escape.
    #[inline(never)]
    fn escaped_string(&mut self, key: bool) -> Result<(), Failure> {
        self.buffers.out.push('"');
        loop {
            // Printable ASCII other than a quote or a backslash stands for itself.
            let run_start = self.pos;
            self.pos += plain_ascii_run(self.bytes.get(run_start..).unwrap_or_default());
            let run = self.bytes.get(run_start..self.pos).unwrap_or_default();
            self.buffers.out.extend(run);
            if key {
                self.buffers.keys.extend_from_slice(run);
            }
            let ch = match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') if !key && self.verbatim_escape() => {
                    // Python writes this escape exactly as it was written.
                    self.buffers.out.token(self.bytes, self.pos..self.pos + 6);
                    self.pos += 6;
                    continue;
                }
                Some(b'\\') => self.escape()?,
                Some(0..=0x1f) => {
                    return Err(self.error("control character (\\u0000-\\u001F) found while parsing a string"))
                }
                None => return Err(self.error("EOF while parsing a string")),
                Some(first) => {
                    // DEL or the start of a UTF-8 sequence.
                    let width = match first {
                        0x7f => 1,
                        0xc2..=0xdf => 2,
                        0xe0..=0xef => 3,
                        0xf0..=0xf4 => 4,
                        _ => 0,
                    };
                    // Not UTF-8: the reason `with_canonical` gives anyway,
                    // as it re-checks every refused text whole.
                    let ch = self
                        .bytes
                        .get(self.pos..self.pos + width)
                        .and_then(|sequence| std::str::from_utf8(sequence).ok())
                        .and_then(|sequence| sequence.chars().next())
                        .ok_or_else(|| Box::new(Cow::Borrowed(errors::JSON_NOT_UTF8)))?;
                    self.pos += width;
                    ch
                }
            };
            write_char(&mut self.buffers.out, ch);
            if key {
                let mut buf = [0u8; 4];
                self.buffers.keys.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
        }
        self.buffers.out.push('"');
        Ok(())
    }

    /// The character an escape stands for; `pos` is at the backslash.
    fn escape(&mut self) -> Result<char, Failure> {
        self.pos += 1;
        let code = self.peek().ok_or_else(|| self.error("EOF while parsing a string"))?;
        self.pos += 1;
        Ok(match code {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{08}',
            b'f' => '\u{0c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xd800..=0xdbff => {
                        // A high surrogate must be followed by an escaped low one.
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(lone_surrogate());
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(lone_surrogate());
                        }
                        let code_point = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                        char::from_u32(code_point).ok_or_else(lone_surrogate)?
                    }
                    0xdc00..=0xdfff => return Err(lone_surrogate()),
                    _ => char::from_u32(unit).ok_or_else(lone_surrogate)?,
                }
            }
            _ => return Err(self.error("invalid escape")),
        })
    }

    /// Whether the escape at `pos` is `\uXXXX` written as Python writes it:
    /// lowercase hex, a character Python escapes that way (control
    /// characters without a short form, DEL and above) and no surrogate.
    fn verbatim_escape(&self) -> bool {
        let Some([b'\\', b'u', digits @ ..]) = self.bytes.get(self.pos..).and_then(|rest| rest.first_chunk::<6>())
        else {
            return false;
        };
        let mut unit = 0u32;
        for &digit in digits {
            let value = match digit {
                b'0'..=b'9' => digit - b'0',
                b'a'..=b'f' => digit - b'a' + 10,
                _ => return false,
            };
            unit = unit << 4 | u32::from(value);
        }
        matches!(unit, 0..=0x07 | 0x0b | 0x0e..=0x1f | 0x7f..=0xd7ff | 0xe000..=0xffff)
    }

    fn hex4(&mut self) -> Result<u32, Failure> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("EOF while parsing a string"))?;
        let digits = std::str::from_utf8(digits).map_err(|_| self.error("invalid escape"))?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("invalid escape"));
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid escape"))
    }
}

/// Whether `whole.fraction` (digits, no exponent) is already how Python's
/// repr writes its double: at most 15 significant digits (so the nearest
/// double prints back as them, see [`Decimal`]), a decimal exponent in
/// -4..16 (plain notation) and no trailing zero after the point but a lone
/// `.0`. An empty `fraction` is an integer, not a float.
fn is_python_repr(whole: &[u8], fraction: &[u8]) -> bool {
    let Some(&last) = fraction.last() else {
        return false;
    };
    if fraction == b"0" {
        return whole.len() <= 15;
    }
    if last == b'0' {
        return false;
    }
    if whole == b"0" {
        let zeros = fraction.iter().take_while(|&&b| b == b'0').count();
        zeros <= 3 && fraction.len() - zeros <= 15
    } else {
        whole.len() + fraction.len() <= 15
    }
}

/// Python's `repr(float)`: shortest round-trip digits; plain notation when
/// the decimal exponent is in -4..16, else `d.ddde±XX`.
fn write_float(out: &mut Out, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if value == 0.0 {
        out.push_str(if value.is_sign_negative() { "-0.0" } else { "0.0" });
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
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if let Some(even) = tie_to_even(value.abs(), &digits, exponent) {
        digits = even;
    }
    write_repr(out, sign == "-", &digits, exponent);
}

/// Python's layout for the significant `digits` of a double times
/// 10^`exponent` (of the first digit): plain when the exponent is in -4..16,
/// else `d.ddde±XX`.
fn write_repr(out: &mut Out, negative: bool, digits: &str, exponent: i32) {
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exponent) {
        write_plain(out, digits, exponent);
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        // At least two digits.
        let magnitude = exponent.unsigned_abs();
        if magnitude >= 100 {
            out.push_str(&magnitude.to_string());
        } else {
            out.push(digit(magnitude / 10));
            out.push(digit(magnitude % 10));
        }
    }
}

/// The decimal digit `value` (0..=9).
fn digit(value: u32) -> char {
    char::from_digit(value % 10, 10).unwrap_or('0')
}

/// A JSON number with at most 15 significant digits and a normal, finite
/// magnitude. Any two such decimals are further apart than two doubles can
/// be close, so the double nearest to it prints back as these very digits:
/// Python's repr needs no float arithmetic for it.
struct Decimal {
    negative: bool,
    digits: [u8; 15],
    len: usize,
    /// Decimal exponent of the first significant digit.
    exponent: i32,
}

/// An exponent of a few digits ([+-]digits); larger ones take the slow path.
fn small_exponent(text: &[u8]) -> Option<i32> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 6 {
        return None;
    }
    let mut value: i32 = 0;
    for &d in digits {
        value = value * 10 + i32::from(d.checked_sub(b'0').filter(|d| *d < 10)?);
    }
    Some(if negative { -value } else { value })
}

impl Decimal {
    fn exact(text: &str) -> Option<Decimal> {
        let bytes = text.as_bytes();
        let (negative, bytes) = match bytes.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, bytes),
        };
        let (mantissa, written_exponent) = match bytes.iter().position(|&b| b == b'e' || b == b'E') {
            Some(e) => {
                let (mantissa, rest) = bytes.split_at_checked(e)?;
                (mantissa, small_exponent(rest.get(1..)?)?)
            }
            None => (bytes, 0),
        };
        // Index of the decimal point (or the end): digits before it have
        // place point-1-index, digits after it point-index.
        let point = mantissa.iter().position(|&b| b == b'.').unwrap_or(mantissa.len());
        let is_significant = |&b: &u8| b != b'0' && b != b'.';
        // Zero keeps its sign in Python (-0.0): the general path handles it.
        let first = mantissa.iter().position(is_significant)?;
        let last = mantissa.iter().rposition(is_significant)?;
        let mut decimal = Decimal {
            negative,
            digits: [b'0'; 15],
            len: 0,
            exponent: 0,
        };
        for &digit in mantissa.get(first..=last)?.iter().filter(|&&b| b != b'.') {
            *decimal.digits.get_mut(decimal.len)? = digit;
            decimal.len += 1;
        }
        let place = if first < point { point - 1 - first } else { 0 };
        let place = i32::try_from(place).ok()? - i32::try_from(first.saturating_sub(point)).ok()?;
        decimal.exponent = place.checked_add(written_exponent)?;
        // Normal doubles only (subnormals have fewer significant bits), and
        // nothing near the overflow to infinity.
        (-307..=307).contains(&decimal.exponent).then_some(decimal)
    }

    fn digits(&self) -> &str {
        std::str::from_utf8(self.digits.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

/// Python's repr and Rust's `{:e}` both give the shortest digits that read
/// back as the same double, the nearest such to its exact value; when two
/// are equally near, Python (David Gay's dtoa) takes the one ending in an
/// even digit and Rust the larger: 256457363877070.625 is
/// `256457363877070.62` in Python, `...070.63` in Rust. Returns Python's
/// digits when they differ from `digits` (Rust's, for `value` > 0 =
/// `d.ddd` times 10^`exponent`).
///
/// A tie needs the exact value to have one digit more than the shortest
/// form, ending in 5; the two candidates are then a unit apart in the last
/// digit, and that unit is at most an ulp. That needs 16 digits or more for
/// a normal double (an ulp is over 2^-53 of the value); a subnormal's exact
/// value has hundreds of digits, so it never ties.
fn tie_to_even(value: f64, digits: &str, exponent: i32) -> Option<String> {
    let len = digits.len();
    if len < 16 {
        return None;
    }
    // Every double's exact decimal value has at most 767 significant digits.
    let exact = format!("{value:.800e}");
    let (mantissa, exact_exponent) = exact.split_once('e')?;
    if exact_exponent.parse::<i32>().ok()? != exponent {
        return None;
    }
    let exact_digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exact_digits = exact_digits.trim_end_matches('0');
    if exact_digits.len() != len + 1 || !exact_digits.ends_with('5') {
        return None;
    }
    // The candidates: the exact digits cut to `len`, and that plus one unit.
    let below = &exact_digits[..len];
    let above = (below.parse::<u64>().ok()? + 1).to_string();
    let even = if below.ends_with(['0', '2', '4', '6', '8']) {
        below.to_string()
    } else {
        above
    };
    if even == digits || even.len() != len {
        return None;
    }
    // Only if it reads back as the same double (at a power of two, the gap
    // below is half the gap above).
    let (first, rest) = even.split_at(1);
    let reads_back: f64 = format!("{first}.{rest}e{exponent}").parse().ok()?;
    (reads_back == value).then(|| even.trim_end_matches('0').to_string())
}

/// Digits `d1d2d3...` times 10^exponent in plain notation, with at least one
/// digit after the point.
fn write_plain(out: &mut Out, digits: &str, exponent: i32) {
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

/// Length of the leading run of bytes that stand for themselves in a JSON
/// string and in Python's output: printable ASCII but `"` and backslash.
/// Eight bytes at a time while no byte in the word needs a look.
fn plain_ascii_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut done = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Below 0x20, 0x7f or above, a quote, a backslash. Each test can
        // also flag bytes after a flagged one (borrows), never before it:
        // the lowest flag is the first byte that needs a look.
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let high = (x.wrapping_add(ONES) | x) & HIGHS;
        let flags = control | high | has_zero(x ^ (ONES * u64::from(b'"'))) | has_zero(x ^ (ONES * u64::from(b'\\')));
        if flags != 0 {
            return done + (flags.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let rest = bytes.get(done..).unwrap_or_default();
    done + rest
        .iter()
        .position(|&b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')
        .unwrap_or(rest.len())
}

/// One character as Python's `ensure_ascii` writes it.
fn write_char(out: &mut Out, ch: char) {
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
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    let nibble = usize::from((*unit >> shift) & 0xf);
                    out.push(char::from(HEX.get(nibble).copied().unwrap_or(b'0')));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    const MAX: usize = 1 << 20;

    fn canon(text: &str) -> String {
        canonical_text(text.as_bytes(), MAX).expect("valid object")
    }

    fn float(value: f64) -> String {
        let mut out = Out::default();
        write_float(&mut out, value);
        String::from_utf8(out.0).expect("ASCII")
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

    /// Two shortest spellings equally near the exact value: Python takes
    /// the even last digit (Rust's `{:e}` took the larger one). Expected
    /// values from Python's `repr`.
    #[test]
    #[allow(clippy::excessive_precision)] // the exact values of the doubles
    fn float_ties_go_to_the_even_digit() {
        let cases: [(f64, &str); 8] = [
            (256457363877070.625, "256457363877070.62"),
            (1801514316094494.25, "1801514316094494.2"),
            (-1039514241563211.75, "-1039514241563211.8"),
            (2.98023223876953125e-8, "2.9802322387695312e-08"), // 2^-25
            (5.9604644775390625e-8, "5.960464477539063e-08"),   // 2^-24
            (847254783909480.75, "847254783909480.8"),
            // Not ties: one digit more than the shortest, but not ending in 5.
            (256457363877070.5, "256457363877070.5"),
            (0.30000000000000004, "0.30000000000000004"),
        ];
        for (value, expected) in cases {
            assert_eq!(float(value), expected, "{value:e}");
        }
        assert_eq!(canon(r#"{"f":256457363.87707062E6}"#), r#"{"f": 256457363877070.62}"#);
        let text = br#"{"f":256457363877070.625}"#;
        assert_eq!(
            hash_canonical(&canonical_text(text, MAX).expect("valid")),
            hash_canonical(r#"{"f": 256457363877070.62}"#)
        );
    }

    #[test]
    fn short_decimals_take_the_fast_path_and_agree_with_the_slow_one() {
        for text in [
            "0.582058",
            "1.5e-07",
            "100.0",
            "1E2",
            "-2.50",
            "0.0001",
            "0.00001",
            "123456789012345.0",
            "1e15",
            "1e16",
            "12345.6789e-3",
            "0.000123400",
            "9.99999999999999e307",
            "1e-307",
            "-1.5E+20",
            "7e22",
        ] {
            let decimal = Decimal::exact(text).unwrap_or_else(|| panic!("{text} has a fast path"));
            let mut fast = Out::default();
            write_repr(&mut fast, decimal.negative, decimal.digits(), decimal.exponent);
            assert_eq!(
                fast.as_bytes(),
                float(text.parse().expect("a number")).as_bytes(),
                "{text}"
            );
        }
        for text in [
            "0.0",
            "-0.0",
            "0e5",
            "1.0000000000000002",
            "1e308",
            "1e-320",
            "0.30000000000000004",
        ] {
            assert!(Decimal::exact(text).is_none(), "{text} needs the slow path");
        }
    }

    #[test]
    fn floats_copied_verbatim_are_what_repr_writes() {
        for (whole, fraction, verbatim) in [
            ("0", "582058", true),
            ("0", "0", true),
            ("100", "0", true),
            ("0", "0001", true),
            ("0", "00001", false),
            ("2", "50", false),
            ("0", "000", false),
            ("123456789012345", "0", true),
            ("1234567890123456", "0", false),
            ("12345678901234", "5", true),
            ("123456789012345", "5", false),
            ("0", "123456789012345", true),
            ("0", "1234567890123456", false),
        ] {
            assert_eq!(
                is_python_repr(whole.as_bytes(), fraction.as_bytes()),
                verbatim,
                "{whole}.{fraction}"
            );
        }
        assert!(!is_python_repr(b"12", b""), "an integer is not a float");
        // Every plain decimal the check lets through is its own repr.
        let mut rng = Rng(0x5eed_f10a7);
        let mut copied = 0;
        for _ in 0..200_000 {
            let digits = |rng: &mut Rng, n: usize| {
                (0..n)
                    .map(|_| char::from(b'0' + rng.below(10) as u8))
                    .collect::<String>()
            };
            let whole = match rng.below(3) {
                0 => "0".to_string(),
                _ => {
                    let n = rng.below(17);
                    format!("{}{}", 1 + rng.below(9), digits(&mut rng, n))
                }
            };
            let fraction_len = 1 + rng.below(17);
            let fraction = digits(&mut rng, fraction_len);
            let text = format!("{}{whole}.{fraction}", if rng.chance(30) { "-" } else { "" });
            if is_python_repr(whole.as_bytes(), fraction.as_bytes()) {
                copied += 1;
                assert_eq!(float(text.parse().expect("a number")), text);
            }
        }
        assert!(copied > 10_000, "only {copied} cases took the verbatim path");
    }

    #[test]
    fn refusals() {
        assert_eq!(canonical_text(b"[1]", MAX), Err(errors::JSON_NOT_OBJECT.into()));
        assert_eq!(
            canonical_text(br#"{"s":"\ud800"}"#, MAX),
            Err(errors::JSON_LONE_SURROGATE.into())
        );
        assert_eq!(
            canonical_text(br#"{"s":"\udc00x"}"#, MAX),
            Err(errors::JSON_LONE_SURROGATE.into())
        );
        assert!(canonical_text(b"{\"a\":1", MAX).is_err());
        // Deeper than MAX_DEPTH: refused, not a stack overflow.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let refusal = canonical_text(deep.as_bytes(), usize::MAX).expect_err("too deep");
        assert!(refusal.contains("recursion limit"), "{refusal}");
    }

    #[test]
    fn invalid_utf8_is_the_reason_wherever_it_is() {
        let not_utf8 = Err(Cow::Borrowed(errors::JSON_NOT_UTF8));
        for text in [
            &b"{\"s\":\"\xff\"}"[..],
            b"{\"s\":\"\xc3\"}",
            b"{\"s\":\"\xc0\xaf\"}",
            b"{\"s\":\"\xed\xa0\x80\"}",
            b"{\"s\":\"\xf4\x90\x80\x80\"}",
            b"{\"s\":\"\xe2\x82",
            b"{\"\x80\":1}",
            b"{\"a\":1}\xff",
            b"{\"a\":\xff}",
            b"{\"a\":1,,\"b\":\"\xff\"}",
            b"\xff{}",
            b"[\xff]",
        ] {
            assert_eq!(canonical_text(text, MAX), not_utf8, "{}", text.escape_ascii());
        }
        assert_eq!(
            canonical_text("{\"\u{e9}\":\"\u{20ac}\u{1F600}\u{7f}\"}".as_bytes(), MAX).as_deref(),
            Ok(r#"{"\u00e9": "\u20ac\ud83d\ude00\u007f"}"#)
        );
    }

    #[test]
    fn members_sharing_prefixes_sort_by_whole_key_and_the_last_repeat_wins() {
        let stems = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh\u{e9}",
            "zzzzzzzzzzzzzz",
        ];
        let mut rng = Rng(0x50_27ed);
        for round in 0..400 {
            let members = 1 + rng.below(if round % 10 == 0 { 700 } else { 40 });
            let mut text = String::from("{");
            let mut expected = std::collections::BTreeMap::new();
            for i in 0..members {
                let stem = rng.pick(&stems);
                let spread = if rng.chance(50) { 3 } else { 300 };
                let key = format!("{stem}{}", rng.below(spread));
                let escaped = key.replace('\u{e9}', "\\u00e9");
                let _ = write!(text, "{}\"{escaped}\":{i}", if i > 0 { "," } else { "" });
                expected.insert(key, i);
            }
            text.push('}');
            let members: Vec<String> = expected
                .iter()
                .map(|(key, value)| format!("\"{}\": {value}", key.replace('\u{e9}', "\\u00e9")))
                .collect();
            assert_eq!(canon(&text), format!("{{{}}}", members.join(", ")), "{text}");
        }
    }

    #[test]
    fn known_hashes_from_python() {
        // python3 -c 'import json,hashlib;print(hashlib.sha256(json.dumps({"a":1},sort_keys=True).encode()).hexdigest()[:16])'
        assert_eq!(pattern_hash(br#"{"a":1}"#, MAX).as_deref(), Ok("f9d86028c6e0d64e"));
        assert_eq!(pattern_hash(b"{}", MAX).as_deref(), Ok("44136fa355b3678a"));
    }

    /// serde_json's number marker key is an ordinary key here, as in Python.
    /// (`serde_json::Value` read `{"a": {"<marker>": "1"}}` as `{"a": 1}`,
    /// so two different patterns shared a hash.)
    #[test]
    fn number_marker_key_is_an_ordinary_key() {
        let cases = [
            (
                r#"{"a":{"$serde_json::private::Number":"1"}}"#,
                r#"{"a": {"$serde_json::private::Number": "1"}}"#,
            ),
            (
                r#"{"$serde_json::private::Number":"1"}"#,
                r#"{"$serde_json::private::Number": "1"}"#,
            ),
            (
                r#"{"$serde_json::private::Number":"x"}"#,
                r#"{"$serde_json::private::Number": "x"}"#,
            ),
            (
                r#"{"\u0024serde_json::private::Number":"1.50"}"#,
                r#"{"$serde_json::private::Number": "1.50"}"#,
            ),
            (
                r#"{"$serde_json::private::Number":5}"#,
                r#"{"$serde_json::private::Number": 5}"#,
            ),
            (
                r#"{"$serde_json::private::Number":1.5E3}"#,
                r#"{"$serde_json::private::Number": 1500.0}"#,
            ),
            (
                r#"{"$serde_json::private::Number":-0,"b":[-0.0]}"#,
                r#"{"$serde_json::private::Number": 0, "b": [-0.0]}"#,
            ),
            (
                r#"{"b":2,"$serde_json::private::Number":"1"}"#,
                r#"{"$serde_json::private::Number": "1", "b": 2}"#,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(canon(text), expected, "{text}");
        }
        // From Python (see `known_hashes_from_python`).
        let nested = br#"{"a":{"$serde_json::private::Number":"1"}}"#;
        assert_eq!(pattern_hash(nested, MAX).as_deref(), Ok("666f9061752fb920"));
        let top = br#"{"$serde_json::private::Number":"1"}"#;
        assert_eq!(pattern_hash(top, MAX).as_deref(), Ok("ea263084701fe754"));
    }

    /// Numbers of every size and spelling still arrive as numbers.
    #[test]
    fn numbers_of_every_path_are_numbers() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("18446744073709551615", "18446744073709551615"),
            ("18446744073709551616", "18446744073709551616"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("-9223372036854775809", "-9223372036854775809"),
            ("1e99999999999999999999", "Infinity"),
            ("-1e99999999999999999999", "-Infinity"),
            ("1e-99999999999999999999", "0.0"),
            ("0e99999999999999999999", "0.0"),
            ("-0E-0", "-0.0"),
            ("4.9406564584124654e-324", "5e-324"),
            ("2.4703282292062328e-324", "5e-324"),
            ("2.4703282292062327e-324", "0.0"),
        ];
        for (number, expected) in cases {
            let text = format!(r#"{{"n":{number},"l":[{number}]}}"#);
            let want = format!(r#"{{"l": [{expected}], "n": {expected}}}"#);
            assert_eq!(canon(&text), want, "{number}");
        }
    }

    // ---- Property tests: spellings of one value share its hash. ----

    /// SplitMix64: small, deterministic, good enough to pick test cases.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n` (n > 0; the bias is irrelevant here).
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }

        fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                items.swap(i, self.below(i + 1));
            }
        }
    }

    /// A JSON value as the generator builds it; numbers keep their text.
    #[derive(Clone, Debug)]
    enum Gen {
        Literal(&'static str),
        Number(String),
        Str(String),
        Array(Vec<Gen>),
        /// Keys are distinct, so any order means the same object.
        Object(Vec<(String, Gen)>),
    }

    /// Characters worth escaping in every way: controls, quotes, DEL,
    /// Latin-1, the ends of the BMP around the surrogates, astral planes.
    fn gen_char(rng: &mut Rng) -> char {
        const EDGES: [u32; 16] = [
            0x00, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1f, 0x22, 0x2f, 0x5c, 0x7f, 0xd7ff, 0xe000, 0xfffe, 0xffff, 0x10ffff,
        ];
        let code = match rng.below(8) {
            0 | 1 => 0x20 + rng.below(0x5f) as u32,
            2 => rng.pick(&EDGES),
            3 => rng.below(0x20) as u32,
            4 => 0x80 + rng.below(0x780) as u32,
            5 => 0x800 + rng.below(0xd800 - 0x800) as u32,
            6 => 0xe000 + rng.below(0x2000) as u32,
            _ => 0x10000 + rng.below(0x10_0000) as u32,
        };
        char::from_u32(code).expect("not a surrogate")
    }

    fn gen_string(rng: &mut Rng) -> String {
        let len = rng.below(8);
        (0..len).map(|_| gen_char(rng)).collect()
    }

    fn gen_number(rng: &mut Rng) -> String {
        match rng.below(6) {
            0 => (rng.next() as i64).to_string(),
            1 => format!("-{}{:020}", 1 + rng.below(9), rng.next()),
            2 => "-0".to_string(),
            3 => format!("{:e}", f64::from_bits(rng.next() >> 2)),
            4 => format!("{:?}", (rng.next() % 1_000_000) as f64 / 1000.0),
            _ => rng
                .pick(&["1e400", "-1e400", "5e-324", "1E16", "1.0e-5", "-0.0"])
                .to_string(),
        }
    }

    fn gen_value(rng: &mut Rng, depth: usize) -> Gen {
        let kinds = if depth == 0 { 4 } else { 6 };
        match rng.below(kinds) {
            0 => Gen::Literal(rng.pick(&["true", "false", "null"])),
            1 => Gen::Number(gen_number(rng)),
            2 | 3 => Gen::Str(gen_string(rng)),
            4 => Gen::Array((0..rng.below(4)).map(|_| gen_value(rng, depth - 1)).collect()),
            _ => gen_object(rng, depth - 1),
        }
    }

    fn gen_object(rng: &mut Rng, depth: usize) -> Gen {
        let mut entries: Vec<(String, Gen)> = Vec::new();
        for _ in 0..rng.below(6) {
            let key = gen_string(rng);
            if entries.iter().all(|(k, _)| *k != key) {
                entries.push((key, gen_value(rng, depth)));
            }
        }
        Gen::Object(entries)
    }

    /// How to spell a value: each knob off gives the plain spelling.
    #[derive(Clone, Copy)]
    struct Style {
        shuffle_keys: bool,
        whitespace: bool,
        escapes: bool,
    }

    const PLAIN: Style = Style {
        shuffle_keys: false,
        whitespace: false,
        escapes: false,
    };

    fn ws(rng: &mut Rng, style: Style, out: &mut String) {
        if style.whitespace {
            for _ in 0..rng.below(4) {
                out.push(rng.pick(&[' ', '\t', '\r', '\n']));
            }
        }
    }

    fn hex4(rng: &mut Rng, unit: u16, out: &mut String) {
        let _ = if rng.chance(50) {
            write!(out, "\\u{unit:04x}")
        } else if rng.chance(50) {
            write!(out, "\\u{unit:04X}")
        } else {
            // Mixed case, digit by digit.
            out.push_str("\\u");
            for shift in [12, 8, 4, 0] {
                let digit = format!("{:x}", (unit >> shift) & 0xf);
                if rng.chance(50) {
                    out.push_str(&digit.to_uppercase());
                } else {
                    out.push_str(&digit);
                }
            }
            Ok(())
        };
    }

    fn spell_string(rng: &mut Rng, style: Style, text: &str, out: &mut String) {
        out.push('"');
        for ch in text.chars() {
            let short = match ch {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                '\u{08}' => Some("\\b"),
                '\u{0c}' => Some("\\f"),
                '/' if style.escapes && rng.chance(50) => Some("\\/"),
                _ => None,
            };
            let must_escape = ch < ' ' || ch == '"' || ch == '\\';
            if !style.escapes {
                match short {
                    Some(escape) => out.push_str(escape),
                    None if must_escape => {
                        let _ = write!(out, "\\u{:04x}", ch as u32);
                    }
                    None => out.push(ch),
                }
            } else if short.is_some() && rng.chance(50) {
                out.push_str(short.unwrap_or_default());
            } else if must_escape || short.is_some() || rng.chance(50) {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units).iter() {
                    hex4(rng, *unit, out);
                }
            } else {
                out.push(ch);
            }
        }
        out.push('"');
    }

    fn spell(rng: &mut Rng, style: Style, value: &Gen, out: &mut String) {
        match value {
            Gen::Literal(text) => out.push_str(text),
            Gen::Number(text) => out.push_str(text),
            Gen::Str(text) => spell_string(rng, style, text, out),
            Gen::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    ws(rng, style, out);
                    if i > 0 {
                        out.push(',');
                        ws(rng, style, out);
                    }
                    spell(rng, style, item, out);
                }
                ws(rng, style, out);
                out.push(']');
            }
            Gen::Object(entries) => {
                let mut order: Vec<&(String, Gen)> = entries.iter().collect();
                if style.shuffle_keys {
                    rng.shuffle(&mut order);
                }
                out.push('{');
                for (i, (key, item)) in order.into_iter().enumerate() {
                    ws(rng, style, out);
                    if i > 0 {
                        out.push(',');
                        ws(rng, style, out);
                    }
                    spell_string(rng, style, key, out);
                    ws(rng, style, out);
                    out.push(':');
                    ws(rng, style, out);
                    spell(rng, style, item, out);
                }
                ws(rng, style, out);
                out.push('}');
            }
        }
    }

    fn spelled(rng: &mut Rng, style: Style, value: &Gen) -> String {
        let mut out = String::new();
        ws(rng, style, &mut out);
        spell(rng, style, value, &mut out);
        ws(rng, style, &mut out);
        out
    }

    /// Every spelling `style` allows hashes like the plain one, and
    /// canonicalising the canonical text again changes nothing.
    fn check_spellings(seed: u64, style: Style, cases: usize) {
        let mut rng = Rng(seed);
        for case in 0..cases {
            let value = gen_object(&mut rng, 4);
            let plain = spelled(&mut rng, PLAIN, &value);
            let expected =
                canonical_text(plain.as_bytes(), MAX).unwrap_or_else(|e| panic!("case {case}: {e}\n{plain:?}"));
            // Python writes overflowed doubles as `Infinity`, which is not JSON.
            match canonical_text(expected.as_bytes(), MAX) {
                Ok(again) => assert_eq!(again, expected, "not idempotent: {plain}"),
                Err(_) => assert!(expected.contains("Infinity"), "{expected}"),
            }
            for _ in 0..3 {
                let other = spelled(&mut rng, style, &value);
                let got =
                    canonical_text(other.as_bytes(), MAX).unwrap_or_else(|e| panic!("case {case}: {e}\n{other:?}"));
                assert_eq!(got, expected, "case {case} (seed {seed}):\n{other:?}\n{plain:?}");
                assert_eq!(
                    pattern_hash(other.as_bytes(), MAX).as_deref(),
                    Ok(&*hash_canonical(&expected))
                );
            }
        }
    }

    #[test]
    fn key_order_never_changes_the_hash() {
        let style = Style {
            shuffle_keys: true,
            ..PLAIN
        };
        check_spellings(0x6b65_7973, style, 3000);
    }

    #[test]
    fn whitespace_never_changes_the_hash() {
        let style = Style {
            whitespace: true,
            ..PLAIN
        };
        check_spellings(0x7773_7061_6365, style, 3000);
    }

    #[test]
    fn escape_spellings_never_change_the_hash() {
        let style = Style { escapes: true, ..PLAIN };
        check_spellings(0x6573_6361_7065, style, 3000);
    }

    #[test]
    fn all_spellings_together_never_change_the_hash() {
        let style = Style {
            shuffle_keys: true,
            whitespace: true,
            escapes: true,
        };
        check_spellings(0x616c_6c21, style, 2000);
    }

    /// Spellings of one double (exponent case and sign, padding zeros,
    /// shifted point) give one text, and one distinct from the integer.
    #[test]
    fn float_spellings_never_change_the_hash() {
        let mut rng = Rng(0x0066_6c6f_6174);
        for _ in 0..3000 {
            let value = match rng.below(3) {
                0 => f64::from_bits(rng.next() & !(0x7ff << 52) | ((rng.next() % 0x7ff) << 52)),
                1 => f64::from_bits(rng.next() % 0x0010_0000_0000_0000), // subnormal
                _ => (rng.next() % 100_000) as f64 * 10f64.powi(rng.below(40) as i32 - 20),
            };
            let sci = format!("{value:e}");
            let (mantissa, exponent) = sci.split_once('e').expect("{:e} has an e");
            let exponent: i32 = exponent.parse().expect("exponent");
            let (sign, mantissa) = match mantissa.strip_prefix('-') {
                Some(rest) => ("-", rest),
                None => ("", mantissa),
            };
            let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
            let shifted = exponent - (digits.len() as i32 - 1);
            let spellings = [
                sci.clone(),
                format!("{value:E}"),
                format!("{value:?}"),
                format!(
                    "{sign}{mantissa}{}e+{exponent}",
                    if mantissa.contains('.') { "000" } else { ".000" }
                )
                .replace("e+-", "e-"),
                format!("{sign}{digits}E{shifted}"),
                format!("{sign}{digits}.0e{shifted}"),
                format!("{sign}0.{digits}e{}", exponent + 1),
            ];
            let expected = canon(&format!("{{\"f\":{}}}", spellings[0]));
            assert!(
                expected.contains('.') || expected.contains('e') || expected.contains("Inf"),
                "{expected}"
            );
            for spelling in &spellings {
                let got = canon(&format!("{{\"f\":{spelling}}}"));
                assert_eq!(got, expected, "{spelling} vs {}", spellings[0]);
            }
        }
    }
}
