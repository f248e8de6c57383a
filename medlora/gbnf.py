"""llama.cpp's GBNF from xgrammar's EBNF: the grammar ``generation.sections_grammar`` writes, translated
exactly or refused, so the llama.cpp backend constrains decoding by the same grammar as the transformers path.
"""

from __future__ import annotations

import re

# llama.cpp turns a repetition bound above this into "unbounded" (MAX_REPETITION_THRESHOLD in llama-grammar.cpp).
GBNF_MAX_REPEAT = 2000
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_CLASS_SYNTAX = '\\"[]-^ '  # written as hex escapes inside a character class
_TOKEN = re.compile(
    r"""(?P<space>[ \t]+)|(?P<newline>\r?\n)|(?P<comment>\#[^\n]*)|(?P<define>::=)
    |(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)|(?P<op>[|()*+?])|(?P<repeat>\{\s*\d+\s*(?:,\s*\d*\s*)?\})
    |(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<klass>\[(?:[^\]\\\n]|\\.)*\])""",
    re.VERBOSE,
)


def _unescape(body: str) -> list[str]:
    """The characters a literal or class body denotes (xgrammar's escapes), one per element."""
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1]
        if esc in _HEX_ESCAPES:
            digits = body[i + 2 : i + 2 + _HEX_ESCAPES[esc]]
            if not re.fullmatch(r"[0-9A-Fa-f]+", digits) or len(digits) != _HEX_ESCAPES[esc]:
                raise ValueError(f"bad escape \\{esc}{digits}")
            out.append(chr(int(digits, 16)))
            i += 2 + len(digits)
        elif esc in _SIMPLE_ESCAPES or esc in "\\\"'[]-^":
            out.append(_SIMPLE_ESCAPES.get(esc, esc))
            i += 2
        else:
            raise ValueError(f"escape \\{esc} has no GBNF equivalent")
    return out


def _gbnf_char(ch: str, syntax: str) -> str:
    """One character as GBNF writes it: printable ASCII as is, anything else or in ``syntax`` as a hex escape."""
    o = ord(ch)
    if 0x20 <= o < 0x7F and ch not in syntax:
        return ch
    return f"\\x{o:02X}" if o < 0x100 else f"\\u{o:04X}" if o < 0x10000 else f"\\U{o:08X}"


def _gbnf_class(token: str) -> str:
    """A character class as a positive GBNF class: a negated one is written as its complement.

    llama.cpp checks a token that ends inside a multi-byte character against every character the bytes could
    still become; for a negated class it refuses the token when any of those is excluded (byte E1 could become
    U+1680, so a class excluding U+1680 refused every character from U+1000 to U+1FFF split across tokens), while
    a positive class admits it when any of them is allowed, which is what xgrammar does.
    """
    body = _unescape(token[1:-1])
    negated = bool(body) and body[0] == "^" and not token.startswith("[\\^")
    chars = body[1:] if negated else body
    ranges, i = [], 0
    while i < len(chars):
        # A bare "-" between two characters is a range, as in xgrammar (escaped dashes are refused earlier).
        if i + 2 < len(chars) and chars[i + 1] == "-":
            ranges.append((ord(chars[i]), ord(chars[i + 2])))
            i += 3
        else:
            ranges.append((ord(chars[i]), ord(chars[i])))
            i += 1
    if negated:
        complement, start = [], 0
        for lo, hi in sorted(ranges):
            if lo > start:
                complement.append((start, lo - 1))
            start = max(start, hi + 1)
        ranges = complement + ([(start, 0x10FFFF)] if start <= 0x10FFFF else [])
    if not ranges:
        raise ValueError(f"character class {token} matches nothing")
    out = [
        _gbnf_char(chr(lo), _CLASS_SYNTAX) + ("" if lo == hi else "-" + _gbnf_char(chr(hi), _CLASS_SYNTAX))
        for lo, hi in ranges
    ]
    return "[" + "".join(out) + "]"


def to_gbnf(ebnf: str) -> str:
    """xgrammar's EBNF (as ``sections_grammar`` writes it) in llama.cpp's GBNF, or ``ValueError``.

    The differences handled: rule names lose ``_`` (GBNF names are ``[a-zA-Z0-9-]``), ``\\0`` and other escapes
    become hex escapes, and a repetition bound llama.cpp would silently drop is refused. Anything else that is
    not plain EBNF (xgrammar's lookaheads, tag dispatch, macros) is refused rather than approximated.
    """
    out, names, pos = [], {}, 0
    while pos < len(ebnf):
        m = _TOKEN.match(ebnf, pos)
        if m is None:
            raise ValueError(f"cannot translate the grammar to GBNF at: {ebnf[pos : pos + 40]!r}")
        pos, kind, text = m.end(), m.lastgroup, m.group()
        if kind == "comment":
            continue
        if kind == "name":
            new = text.replace("_", "-")
            if names.setdefault(new, text) != text:
                raise ValueError(f"rule names {names[new]!r} and {text!r} are both {new!r} in GBNF")
            out.append(new)
        elif kind == "repeat":
            bounds = [int(b) for b in re.findall(r"\d+", text)]
            if max(bounds) > GBNF_MAX_REPEAT:
                raise ValueError(f"repetition {text} exceeds llama.cpp's bound of {GBNF_MAX_REPEAT}")
            out.append(text.replace(" ", ""))
        elif kind == "string":
            out.append('"' + "".join(_gbnf_char(c, '\\"') for c in _unescape(text[1:-1])) + '"')
        elif kind == "klass":
            if re.search(r"(?<!\\)\\-", text):
                raise ValueError(f"escaped dash in a character class is not translated: {text}")
            out.append(_gbnf_class(text))
        else:
            out.append(text)
    return "".join(out)
