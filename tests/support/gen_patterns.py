#!/usr/bin/env python3
"""JSON object texts for WARGAMING.HASHPATTERN, with the hash Python gives each.

    python3 tests/support/gen_patterns.py --seed 1 --count 10000

Prints one JSON line per pattern:

    {"i": 0, "what": "...", "hash": "<16 hex>", "canonical": "...", "text_hex": "..."}

`text_hex` is the UTF-8 of the exact text to send, hex-encoded so that any
byte survives; `hash` is the seed's Python reference,
`sha256(json.dumps(json.loads(text), sort_keys=True).encode()).hexdigest()[:16]`,
and `canonical` the text it hashes (for error messages).

The texts are spelled here, not by json.dumps: random key order (duplicate
keys included), insignificant whitespace (space, tab, CR, LF) between any
tokens, every escape form (short escapes, \\/, \\u in lower, upper and mixed
case, surrogate pairs) for any character, raw UTF-8 from every plane, and
numbers in many spellings. A fixed set of edge cases comes first, then random
patterns up to --count. Nothing generated holds a lone surrogate (the module
refuses those while Python accepts them), nests deeper than 20 levels (the
module stops at 512) or has integers of over 1000 digits (Python
refuses more than 4300).
"""

import argparse
import hashlib
import json
import math
import random
import struct
import sys
from decimal import Decimal

WHITESPACE = " \t\r\n"
SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
MAX_DEPTH = 20

# Characters at the edges of UTF-8 lengths, around the surrogates, at the end
# of the BMP and of Unicode, and a few with special meaning elsewhere.
EDGE_CHARS = [
    0x00, 0x01, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1F, 0x20, 0x22, 0x2F, 0x5C, 0x7E, 0x7F,
    0x80, 0x9F, 0xA0, 0xFF, 0x100, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xF8FF, 0xFDD0, 0xFEFF,
    0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x1F600, 0x1FFFF, 0x20000, 0xE0001, 0xEFFFF, 0xF0000,
    0xFFFFD, 0x100000, 0x10FFFE, 0x10FFFF, 0x2028, 0x2029, 0x0300, 0x200D,
]

# Doubles at the edges: subnormals, the normal boundary, the repr boundary at
# 1e16, powers of two past 2^53, the largest double, and classic roundings.
EDGE_FLOATS = [
    5e-324, 1e-323, 2.225073858507201e-308, 2.2250738585072014e-308, 2.2250738585072014e-307,
    1.7976931348623157e308, 1e308, 9999999999999998.0, 1e16, 1e15, 999999999999999.9,
    1.0000000000000002e16, 1e22, 1e23, 1e21, 0.1 + 0.2, 0.1, 0.2, 0.3, 1 / 3, 2 / 3, 100.0, 1.0,
    1e-05, 1e-4, 0.0001, 0.00011, 1.5, 4.35, 123456789012345680.0, 2.0**53, 2.0**53 + 2, 2.0**63,
    2.0**64, 2.0**-1074, 2.0**-1022, 2.0**1023, 0.0, -0.0, 1e-7, 12345.678, 3.141592653589793,
    2.718281828459045, 1.1, 9.999999999999999e22,
    # Ties: two shortest spellings equally near; Python takes the even digit.
    256457363877070.625, 1801514316094494.25, 1039514241563211.75, 2.0**-25, 2.0**-24,
]

# Number texts that matter by their spelling: overflow, underflow, halfway
# roundings, long mantissas, exponent forms.
EDGE_NUMBER_TEXTS = [
    "1e400", "-1e400", "1E400", "1e+400", "1e-400", "-1e-400", "1E5", "1e+5", "1e5", "1.0e-5",
    "1.0E-5", "1e-5", "0e0", "-0e0", "0E+0", "-0.0", "0.0", "0.000", "1e007", "1E-007", "1.5e0",
    "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
    "-1.7976931348623159e308", "2.4703282292062328e-324", "2.4703282292062327e-324",
    "4.9406564584124654e-324", "2.2250738585072011e-308", "2.2250738585072012e-308",
    "0.1000000000000000055511151231257827021181583404541015625", "9007199254740993.0",
    "9007199254740995.0", "9007199254740993e0", "123456789e-5", "0.30000000000000004",
    "1" + "0" * 400 + ".0", "0." + "0" * 400 + "1", "1" + "0" * 308 + ".5",
    "-0", "0", "1", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616", "9007199254740993",
    "-9007199254740993", "1" + "0" * 100, "-" + "9" * 999, "7" * 1000,
    "1e99999999999999999999", "1e-99999999999999999999", "0e99999999999999999999",
]


class Speller:
    """Spells a value as JSON text with one case's choice of variety."""

    def __init__(self, rng):
        self.rng = rng
        self.ws_level = rng.choice([0, 0, 1, 1, 2, 3])
        self.escape_rate = rng.choice([0.0, 0.0, 0.1, 0.3, 0.7, 1.0])
        self.short_rate = rng.choice([0.0, 0.5, 1.0, 1.0])
        self.slash_rate = rng.choice([0.0, 0.5, 1.0])
        self.hex_case = rng.choice(["lower", "upper", "mixed"])
        self.shuffle = rng.random() < 0.8

    def ws(self):
        if self.ws_level == 0:
            return ""
        if self.ws_level == 1 and self.rng.random() < 0.7:
            return ""
        n = self.rng.randint(0, 2 if self.ws_level < 3 else 6)
        return "".join(self.rng.choice(WHITESPACE) for _ in range(n))

    def hex4(self, unit):
        digits = "%04x" % unit
        if self.hex_case == "upper":
            digits = digits.upper()
        elif self.hex_case == "mixed":
            digits = "".join(d.upper() if self.rng.random() < 0.5 else d for d in digits)
        return "\\u" + digits

    def u_escape(self, ch):
        code = ord(ch)
        if code < 0x10000:
            return self.hex4(code)
        code -= 0x10000
        return self.hex4(0xD800 + (code >> 10)) + self.hex4(0xDC00 + (code & 0x3FF))

    def char(self, ch):
        if ch in SHORT_ESCAPES:
            return SHORT_ESCAPES[ch] if self.rng.random() < self.short_rate else self.u_escape(ch)
        if ord(ch) < 0x20:
            return self.u_escape(ch)
        if ch == "/" and self.rng.random() < self.slash_rate:
            return "\\/"
        if self.rng.random() < self.escape_rate:
            return self.u_escape(ch)
        return ch

    def string(self, text):
        return '"' + "".join(self.char(ch) for ch in text) + '"'

    def value(self, node):
        kind = node[0]
        if kind in ("lit", "num"):
            return node[1]
        if kind == "str":
            return self.string(node[1])
        if kind == "arr":
            if not node[1]:
                return "[" + self.ws() + "]"
            items = [self.ws() + self.value(item) + self.ws() for item in node[1]]
            return "[" + ",".join(items) + "]"
        if kind == "obj":
            entries = list(node[1])
            if self.shuffle:
                self.rng.shuffle(entries)
            if not entries:
                return "{" + self.ws() + "}"
            parts = [
                self.ws() + self.string(key) + self.ws() + ":" + self.ws() + self.value(value) + self.ws()
                for key, value in entries
            ]
            return "{" + ",".join(parts) + "}"
        if kind == "raw":  # already spelled
            return node[1]
        raise ValueError(kind)

    def document(self, node):
        return self.ws() + self.value(node) + self.ws()


def random_char(rng):
    pick = rng.random()
    if pick < 0.35:
        return chr(rng.randint(0x20, 0x7E))
    if pick < 0.45:
        return chr(rng.choice(EDGE_CHARS))
    if pick < 0.52:
        return chr(rng.randint(0, 0x1F))
    if pick < 0.6:
        return chr(rng.randint(0x80, 0x7FF))
    if pick < 0.75:
        return chr(rng.choice([rng.randint(0x800, 0xD7FF), rng.randint(0xE000, 0xFFFF)]))
    plane = rng.randint(1, 16)
    return chr(plane * 0x10000 + rng.randint(0, 0xFFFF))


def random_string(rng, max_len=10):
    return "".join(random_char(rng) for _ in range(rng.randint(0, max_len)))


def float_spellings(value):
    """Texts JSON-parsing to exactly `value` (finite), in several forms."""
    text = repr(value)
    sign, digits, exponent = Decimal(text).as_tuple()
    s = "-" if sign else ""
    ds = "".join(map(str, digits))
    # value == int(ds) * 10**exponent
    point = len(ds) + exponent  # position of the decimal point in ds
    out = {text, f"{s}{ds}e{exponent}", f"{s}{ds}E{exponent:+d}", f"{s}{ds}.000e{exponent}"}
    out.add(f"{s}{ds[0]}.{ds[1:] or '0'}e{point - 1}")
    out.add(f"{s}{ds[0]}.{ds[1:]}0000E+{point - 1}".replace("E+-", "E-"))
    out.add(f"{s}0.{ds}e{point}")
    out.add(str(Decimal(value)))  # the exact value, up to 767 digits
    if -30 < point <= 40:
        if point <= 0:
            out.add(f"{s}0.{'0' * -point}{ds}")
        elif point >= len(ds):
            out.add(f"{s}{ds}{'0' * (point - len(ds))}.0")
        else:
            out.add(f"{s}{ds[:point]}.{ds[point:]}00")
    return sorted(t for t in out if is_float_text(t))


def is_float_text(text):
    try:
        json.loads(text)
    except ValueError:
        return False
    return "." in text or "e" in text or "E" in text


def random_double(rng):
    pick = rng.random()
    if pick < 0.4:
        while True:
            value = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
            if math.isfinite(value):
                return value
    if pick < 0.5:
        return struct.unpack("<d", struct.pack("<Q", rng.getrandbits(52)))[0] * rng.choice([1, -1])
    if pick < 0.6:
        # Few fraction bits: the exact value is short, and often a tie.
        return math.ldexp(rng.randint(2**52, 2**53 - 1), rng.randint(-14, 3)) * rng.choice([1, -1])
    if pick < 0.8:
        return rng.randint(-10**6, 10**6) * 10.0 ** rng.randint(-25, 25)
    return rng.choice(EDGE_FLOATS) * rng.choice([1, -1])


def random_number(rng):
    pick = rng.random()
    if pick < 0.25:
        return str(rng.randint(-1000, 1000))
    if pick < 0.35:
        return str(rng.randint(-(2**64), 2**64))
    if pick < 0.42:
        n = rng.randint(20, 300 if rng.random() < 0.9 else 1000)
        return rng.choice(["", "-"]) + str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(n - 1))
    if pick < 0.45:
        return "-0"
    if pick < 0.55:
        return rng.choice(EDGE_NUMBER_TEXTS)
    if pick < 0.65:
        # Random decimal text: correctly rounded parsing on both sides.
        digits = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 24)))
        cut = rng.randint(1, len(digits))
        frac = "." + (digits[cut:] or "0")
        return rng.choice(["", "-"]) + digits[:cut] + frac + rng.choice(["e", "E"]) + rng.choice(["", "+", "-"]) + str(rng.randint(0, 330))
    return rng.choice(float_spellings(random_double(rng)))


def random_value(rng, depth):
    pick = rng.random()
    if depth <= 0:
        pick = pick * 0.75
    if pick < 0.08:
        return ("lit", rng.choice(["true", "false", "null"]))
    if pick < 0.35:
        return ("num", random_number(rng))
    if pick < 0.75:
        return ("str", random_string(rng))
    if pick < 0.87:
        return ("arr", [random_value(rng, depth - 1) for _ in range(rng.randint(0, 5))])
    return random_object(rng, depth - 1)


def random_key(rng, keys):
    pick = rng.random()
    if keys and pick < 0.1:
        return rng.choice(keys)  # a duplicate: the last one wins
    if pick < 0.3:
        return rng.choice(["a", "b", "A", "", "id", "a\x00", "ab", "\u00e9", "\uffff", "\U00010000", "\ue000"])
    return random_string(rng, 6)


def random_object(rng, depth):
    entries, keys = [], []
    for _ in range(rng.randint(0, 6)):
        key = random_key(rng, keys)
        keys.append(key)
        entries.append((key, random_value(rng, depth)))
    return ("obj", entries)


def deep(rng, levels, leaf):
    node = leaf
    for level in range(levels):
        if rng.random() < 0.5:
            node = ("arr", [node] + ([("num", "1")] if level % 3 == 0 else []))
        else:
            node = ("obj", [("k%d" % level, node), ("z", ("lit", "null"))])
    return node


def fixed_cases(rng):
    """(what, node or raw text) pairs covering every listed edge on purpose."""
    cases = []
    # Every plane, raw and escaped.
    for plane in range(17):
        base = plane * 0x10000
        chars = [base + 0x41 if plane else 0x41, base + 0xFFFD, base + 0xFFFF, base + rng.randint(0, 0xFFFF)]
        text = "".join(chr(c) for c in chars if not 0xD800 <= c <= 0xDFFF)
        cases.append((f"plane {plane}", ("obj", [("p", ("str", text)), (text, ("num", str(plane)))])))
    for code in EDGE_CHARS:
        ch = chr(code)
        cases.append((f"edge char U+{code:04X}", ("obj", [("c", ("str", "x" + ch + "y")), (ch, ("str", ch))])))
    for code in list(range(0x20)) + [0x7F]:
        ch = chr(code)
        for spelled in {"\\u%04x" % code, "\\u%04X" % code, SHORT_ESCAPES.get(ch, "\\u%04x" % code)}:
            cases.append((f"control U+{code:04X} as {spelled}", ("raw", '{"c":"<' + spelled + '>"}')))
    for escape in ['\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"]:
        cases.append((f"short escape {escape}", ("raw", '{"' + escape + '":"' + escape * 3 + '"}')))
    # \u spellings of ordinary characters, both cases, in keys and values.
    cases.append(("u-escaped ASCII", ("raw", '{"\\u0061":"\\u0041\\u0062c\\u007E\\u007e","a\\u0020b":1}')))
    cases.append(("u-escaped Latin-1 and BMP", ("raw", '{"k":"\\u00e9\\u00E9\\u20ac\\u20AC\\uFFFF\\uffff\\uFeFf"}')))
    cases.append(("surrogate pairs", ("raw", '{"k":"\\ud83d\\ude00\\uD83D\\uDE00\\uDBFF\\uDFFF\\ud800\\udc00"}')))
    cases.append(("surrogate pair and raw", ("raw", '{"\\ud800\\udc00":"\U00010000", "\U0010ffff":"\\udbff\\udfff"}')))
    # Keys whose code point order differs from UTF-16 order.
    cases.append(("code point order", ("obj", [(chr(c), ("num", str(i))) for i, c in enumerate(
        [0xFFFF, 0x10000, 0xE000, 0xD7FF, 0xFF61, 0x1F600, 0x7F, 0x80, 0x41, 0x61, 0x10FFFF])])))
    cases.append(("prefix keys", ("obj", [("ab", ("num", "1")), ("a", ("num", "2")), ("a\x00", ("num", "3")), ("", ("num", "4"))])))
    # Numbers.
    for text in EDGE_NUMBER_TEXTS:
        cases.append((f"number {text[:40]}", ("obj", [("n", ("num", text)), ("l", ("arr", [("num", text)]))])))
    for value in EDGE_FLOATS:
        for sign in (1, -1):
            for text in float_spellings(value * sign):
                cases.append((f"float {text[:40]}", ("obj", [("f", ("num", text))])))
    # Duplicate keys, also spelled differently: the last value wins.
    cases.append(("duplicates", ("raw", '{"a":1,"b":2,"a":3}')))
    cases.append(("duplicates spelled apart", ("raw", '{"a":1,"\\u0061":[2],"\\u0041":3,"A":{"x":1,"x":{}}}')))
    cases.append(("duplicate astral", ("raw", '{"\\ud83d\\ude00":1,"\U0001F600":2}')))
    # Whitespace.
    cases.append(("all whitespace", ("raw", ' \t\r\n{ \t\r\n"a" \t\r\n: \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ } ] \t\r\n} \t\r\n')))
    cases.append(("empty containers", ("raw", '{"a":[ ],"b":{\n},"c":[[]],"d":[{}]}')))
    cases.append(("empty object", ("raw", "{}")))
    cases.append(("empty object spaced", ("raw", "\n{\r\n\t}\n")))
    cases.append(("literals", ("raw", '{"t":true,"f":false,"n":null,"l":[true,false,null]}')))
    # Nesting up to the generator's limit.
    for levels in (5, 10, 19):
        cases.append((f"nesting {levels}", ("obj", [("d", deep(rng, levels, ("str", "leaf")))])))
    cases.append(("arrays 19 deep", ("raw", '{"a":' + "[" * 19 + "1" + "]" * 19 + "}")))
    cases.append(("objects 19 deep", ("raw", '{"a":' + '{"b":' * 19 + "1" + "}" * 19 + "}")))
    # serde_json's number marker key is an ordinary key.
    for raw in ['{"$serde_json::private::Number":"1"}', '{"a":{"$serde_json::private::Number":"1"}}',
                '{"a":{"\\u0024serde_json::private::Number":"1.5"}}', '{"$serde_json::private::Number":2.5e3}',
                '{"$serde_json::private::RawValue":"{}"}']:
        cases.append(("serde marker key", ("raw", raw)))
    return cases


def reference(text):
    canonical = json.dumps(json.loads(text), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16], canonical


def check_text(text):
    value = json.loads(text)
    assert isinstance(value, dict), text
    # Nothing the module refuses: no lone surrogate survives decoding.
    text.encode("utf-8")
    dumped = json.dumps(value, ensure_ascii=False)
    dumped.encode("utf-8")  # raises on a lone surrogate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--count", type=int, default=10000)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cases = fixed_cases(rng)
    out = sys.stdout
    for i in range(args.count):
        if i < len(cases):
            what, node = cases[i]
        else:
            what, node = "random", random_object(rng, rng.randint(0, 6))
        text = Speller(rng).document(node)
        check_text(text)
        hash_, canonical = reference(text)
        line = {"i": i, "what": what, "hash": hash_, "canonical": canonical, "text_hex": text.encode("utf-8").hex()}
        out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
