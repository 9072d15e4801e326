"""Source lines for a traceback of the frozen guardian.

Its build keeps the code objects' tables of line numbers out of memory (packaging/frozen_code.py:
about 95 KiB of the resident daemon), each saying "no line", and puts the real tables in
linetables.marshal beside this module: zlib-compressed marshal data, {file: {(first line,
function name): [(code units, table), ...]}}. guardian.logger asks here, once per traceback,
for the frames without a line; the file is read then, and nothing of it is kept. Never raises: a line it cannot find is
None. Outside the frozen build every code object has its own table, and nothing asks.
"""
import marshal
import os

TABLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "linetables.marshal")
MAX_TABLES_BYTES = 4 << 20  # a bigger file is not the build's


def lines_of(frames, path=None):
    """frames, (code, lasti, line) each, with the lines that are None found in the build's
    tables (at path, else TABLES), read once: the line of the instruction at byte offset lasti
    (a traceback's tb_lasti) of code; None where there is none."""
    try:
        import zlib  # here: an interpreter built without it (Buildroot's python3 may be) still prints

        with open(path or TABLES, "rb") as f:
            data = f.read(MAX_TABLES_BYTES + 1)
        if len(data) > MAX_TABLES_BYTES:
            return list(frames)
        tables = marshal.loads(zlib.decompress(data))
    except Exception:  # a missing or garbled file
        return list(frames)
    out = []
    for code, lasti, line in frames:
        if line is None:
            try:
                line = _line(tables, code, lasti)
            except Exception:  # a code object it does not know, a garbled entry
                pass
        out.append((code, lasti, line))
    return out


def _line(tables, code, lasti):
    found = tables[code.co_filename][(code.co_firstlineno, code.co_name)]
    if len(found) > 1:  # two functions of one name on one line (lambdas, comprehensions)
        units = len(code.co_code) // 2
        found = [entry for entry in found if entry[0] == units] or found
    for start, end, line in code.replace(co_linetable=found[0][1]).co_lines():
        if start <= lasti < end:
            return line
    return None
