"""JSON text for the daemon's files (event lines, the state file, leaks.json), without the json
package: it imports re, and the two cost the resident daemon about 1 MiB.

dumps: what json.dumps writes with its defaults (ensure_ascii through the C accelerator's
encode_basestring_ascii, floats by repr, NaN/Infinity/-Infinity as json's allow_nan, the same
key rules), plus sort_keys, separators and default. A circular structure is a RecursionError,
not json's ValueError. loads: what json.loads reads (strict: no control characters in
strings), with parse_float and parse_constant; a malformed text raises ValueError. The
parsing is Python, not _json's scanner, whose errors import json.decoder (and so re).
"""
from _json import encode_basestring_ascii as _quote

__all__ = ["dumps", "loads"]

_INF = float("inf")


def _float(o):
    if o != o:
        return "NaN"
    if o == _INF:
        return "Infinity"
    if o == -_INF:
        return "-Infinity"
    return float.__repr__(o)


def dumps(obj, sort_keys=False, separators=None, default=None):
    """One JSON text for obj, as json.dumps(obj, sort_keys=, separators=, default=)."""
    item_sep, key_sep = separators if separators is not None else (", ", ": ")
    parts = []
    put = parts.append

    def key_text(key):
        if isinstance(key, str):
            return key
        if isinstance(key, float):
            return _float(key)
        if key is True:
            return "true"
        if key is False:
            return "false"
        if key is None:
            return "null"
        if isinstance(key, int):
            return int.__repr__(key)
        raise TypeError("keys must be str, int, float, bool or None, not %s" % key.__class__.__name__)

    def encode(o):
        if isinstance(o, str):
            put(_quote(o))
        elif o is None:
            put("null")
        elif o is True:
            put("true")
        elif o is False:
            put("false")
        elif isinstance(o, int):
            put(int.__repr__(o))
        elif isinstance(o, float):
            put(_float(o))
        elif isinstance(o, (list, tuple)):
            put("[")
            first = True
            for item in o:
                if not first:
                    put(item_sep)
                first = False
                encode(item)
            put("]")
        elif isinstance(o, dict):
            put("{")
            first = True
            for key, value in (sorted(o.items()) if sort_keys else o.items()):
                if not first:
                    put(item_sep)
                first = False
                put(_quote(key_text(key)))
                put(key_sep)
                encode(value)
            put("}")
        elif default is not None:
            encode(default(o))
        else:
            raise TypeError("Object of type %s is not JSON serializable" % o.__class__.__name__)

    encode(obj)
    return "".join(parts)


# ------------------------------------------------------------------------------------------
# Reading

_WS = " \t\n\r"
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_CONSTANTS = (("null", None), ("true", True), ("false", False))
_NUMBER_CONSTANTS = ("NaN", "Infinity", "-Infinity")
_DIGITS = "0123456789"


def loads(text, parse_float=None, parse_constant=None):
    """The value of one JSON text (str, or UTF-8 bytes), as json.loads(text, parse_float=,
    parse_constant=). ValueError when it is not one."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    if text.startswith("\ufeff"):
        raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig)")
    parser = _Parser(text, parse_float or float, parse_constant or float)
    value, end = parser.value(parser.skip(0))
    end = parser.skip(end)
    if end != len(text):
        raise ValueError("Extra data: char %d" % end)
    return value


class _Parser:
    def __init__(self, s, parse_float, parse_constant):
        self.s = s
        self.n = len(s)
        self.parse_float = parse_float
        self.parse_constant = parse_constant

    def skip(self, i):
        s, n = self.s, self.n
        while i < n and s[i] in _WS:
            i += 1
        return i

    def value(self, i):
        s = self.s
        if i >= self.n:
            raise ValueError("Expecting value: char %d" % i)
        c = s[i]
        if c == '"':
            return self.string(i + 1)
        if c == "{":
            return self.object(i + 1)
        if c == "[":
            return self.array(i + 1)
        if c == "-" or c in _DIGITS:
            got = self.number(i)
            if got is not None:
                return got
        for word, value in _CONSTANTS:
            if s.startswith(word, i):
                return value, i + len(word)
        for word in _NUMBER_CONSTANTS:
            if s.startswith(word, i):
                return self.parse_constant(word), i + len(word)
        raise ValueError("Expecting value: char %d" % i)

    def number(self, i):
        s, n = self.s, self.n
        start = i
        if s[i] == "-":
            i += 1
        if i < n and s[i] == "0":
            i += 1
        elif i < n and s[i] in _DIGITS:
            while i < n and s[i] in _DIGITS:
                i += 1
        else:
            return None  # "-Infinity", or nothing
        fraction = False
        if i + 1 < n and s[i] == "." and s[i + 1] in _DIGITS:
            i += 2
            while i < n and s[i] in _DIGITS:
                i += 1
            fraction = True
        if i < n and s[i] in "eE":
            j = i + 1
            if j < n and s[j] in "+-":
                j += 1
            if j < n and s[j] in _DIGITS:
                while j < n and s[j] in _DIGITS:
                    j += 1
                i = j
                fraction = True
        text = s[start:i]
        return (self.parse_float(text) if fraction else int(text)), i

    def string(self, i):
        """From after the opening quote: (the string, the index after the closing one)."""
        s, n = self.s, self.n
        chunks = []
        while True:
            quote = s.find('"', i)
            if quote < 0:
                raise ValueError("Unterminated string starting at: char %d" % (i - 1))
            backslash = s.find("\\", i, quote)
            end = quote if backslash < 0 else backslash
            piece = s[i:end]
            for c in piece:
                if c < " ":
                    raise ValueError("Invalid control character at: char %d" % (i + piece.index(c)))
            chunks.append(piece)
            if backslash < 0:
                return "".join(chunks), quote + 1
            i = backslash + 1
            if i >= n:
                raise ValueError("Unterminated string: char %d" % backslash)
            c = s[i]
            if c != "u":
                if c not in _ESCAPES:
                    raise ValueError("Invalid \\escape: char %d" % backslash)
                chunks.append(_ESCAPES[c])
                i += 1
                continue
            uni = self._hex4(i + 1)
            i += 5
            if 0xD800 <= uni <= 0xDBFF and s.startswith("\\u", i):
                low = self._hex4(i + 2)
                if 0xDC00 <= low <= 0xDFFF:
                    uni = 0x10000 + (((uni - 0xD800) << 10) | (low - 0xDC00))
                    i += 6
            chunks.append(chr(uni))

    def _hex4(self, i):
        digits = self.s[i:i + 4]
        if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError("Invalid \\uXXXX escape: char %d" % (i - 2))
        return int(digits, 16)

    def object(self, i):
        s = self.s
        out = {}
        i = self.skip(i)
        if i < self.n and s[i] == "}":
            return out, i + 1
        while True:
            if i >= self.n or s[i] != '"':
                raise ValueError("Expecting property name enclosed in double quotes: char %d" % i)
            key, i = self.string(i + 1)
            i = self.skip(i)
            if i >= self.n or s[i] != ":":
                raise ValueError("Expecting ':' delimiter: char %d" % i)
            value, i = self.value(self.skip(i + 1))
            out[key] = value
            i = self.skip(i)
            if i < self.n and s[i] == "}":
                return out, i + 1
            if i >= self.n or s[i] != ",":
                raise ValueError("Expecting ',' delimiter: char %d" % i)
            i = self.skip(i + 1)

    def array(self, i):
        s = self.s
        out = []
        i = self.skip(i)
        if i < self.n and s[i] == "]":
            return out, i + 1
        while True:
            value, i = self.value(i)
            out.append(value)
            i = self.skip(i)
            if i < self.n and s[i] == "]":
                return out, i + 1
            if i >= self.n or s[i] != ",":
                raise ValueError("Expecting ',' delimiter: char %d" % i)
            i = self.skip(i + 1)
