"""JSON text for the daemon's files (event lines, the state file, leaks.json), without the json
package: it imports re, and the two cost the resident daemon about 1 MiB.

dumps: what json.dumps writes with its defaults (ensure_ascii through the C accelerator's
encode_basestring_ascii, or guardian._rest's copy of it; floats by repr, NaN/Infinity/-Infinity
as json's allow_nan, the same key rules), plus sort_keys, separators and default. A circular
structure is a RecursionError, not json's ValueError. loads: what json.loads reads (strict: no control characters in
strings), with parse_float and parse_constant; a malformed text raises ValueError. The
parsing is Python (guardian.jsonparse, imported by the first loads), not _json's scanner, whose
errors import json.decoder (and so re).
"""
try:  # the extension's copy: the daemon then does not hold _json (~50 KiB resident)
    from guardian._rest import json_quote as _quote
except ImportError:
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


def loads(text, parse_float=None, parse_constant=None):
    """The value of one JSON text (str, or UTF-8 bytes), as json.loads(text, parse_float=,
    parse_constant=). ValueError when it is not one. The parser (guardian.jsonparse) is imported
    at the first call: the daemon reads JSON only at start (a leak state file), and a board
    without one never holds it."""
    from guardian.jsonparse import loads as parse

    return parse(text, parse_float, parse_constant)
