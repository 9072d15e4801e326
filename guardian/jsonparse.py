"""The JSON parser behind guardian.jsontext.loads (see there), in a module of its own: the
writer is the daemon's for every event, the parser only for a leak state file at start and for
the commands that read the event log.
"""

__all__ = ["loads"]

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
