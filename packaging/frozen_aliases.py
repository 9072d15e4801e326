"""The codec alias table the frozen guardian starts with: the standard library's, less the
aliases of codecs the build leaves out (frozen_excludes.py).

Python imports encodings.aliases while it starts, before any guardian code. Its table names
326 aliases of 424 distinct codec names; the build keeps 32 codecs, and 121 of the aliases point
at one of them. Every name in the table is interned: it goes into the interpreter's table of
interned strings, which doubles when full and never shrinks. With the whole table, the frozen
floor left room for about 1,650 more names, and the modules `guardian run` holds take about
1,780: the table doubled (to 16,384 slots, 207 KiB written at once) during the
daemon's imports. Without the aliases of left-out codecs the floor has room for 2,200, and
420 are left once the daemon's modules are in (`guardian-floor --interned-headroom`;
bench/modcost.py reports both, tests/packaging/test_frozen.py keeps at least 100).

A lookup behaves as before: an alias of a bundled codec resolves as it did, and one of a
left-out codec fails with LookupError as it did (its module was not there to import).

    trim_base_library(src, dst, optimize, recode)
                                  copy PyInstaller's base_library.zip with encodings/aliases.pyc
                                  holding the kept table (and every .pyc through recode);
                                  returns (kept, dropped)
    table_of(pyc)                 the table an encodings/aliases.pyc defines
"""
import importlib.util
import marshal
import struct
import zipfile

ALIASES_PYC = "encodings/aliases.pyc"
# Not codecs: the package and the table itself.
NOT_CODECS = {"__init__", "aliases"}


def bundled_codecs(names):
    """The codec modules among a base_library.zip's file names (encodings/<codec>.pyc)."""
    codecs = set()
    for name in names:
        if name.startswith("encodings/") and name.endswith(".pyc") and name.count("/") == 1:
            codec = name[len("encodings/"):-len(".pyc")]
            if codec not in NOT_CODECS:
                codecs.add(codec)
    return codecs


def kept_aliases(aliases, codecs):
    """The entries of an alias table whose codec is in codecs, in the table's order."""
    return {alias: codec for alias, codec in aliases.items() if codec in codecs}


def aliases_source(kept):
    """encodings/aliases.py with the given table and nothing else (no docstring: -OO)."""
    lines = ["# The standard library's table, less the aliases of codecs left out of this build.\n",
             "aliases = {\n"]
    lines += ["    %r: %r,\n" % (alias, codec) for alias, codec in kept.items()]
    lines.append("}\n")
    return "".join(lines)


def table_of(pyc):
    """The `aliases` table an encodings/aliases.pyc defines (compiled by this interpreter)."""
    if pyc[:4] != importlib.util.MAGIC_NUMBER:
        raise SystemExit("frozen_aliases: %s was compiled by another Python than this one" % ALIASES_PYC)
    namespace = {"__name__": "encodings.aliases"}
    exec(marshal.loads(pyc[16:]), namespace)  # the standard library's own module: a dict literal
    return namespace["aliases"]


def _pyc(source, optimize):
    """A .pyc as PyInstaller writes base_library.zip's: hash-based, the source not checked."""
    code = compile(source, "encodings/aliases.py", "exec", optimize=optimize)
    return importlib.util.MAGIC_NUMBER + struct.pack("<I", 0b01) + b"\0" * 8 + marshal.dumps(code)


def trim_base_library(src, dst, optimize=2, recode=None):
    """Copy the zip src to dst with the alias table trimmed to its codecs; (kept, dropped).
    recode, if given, takes {name: .pyc bytes} and gives them back as they should be written
    (frozen_code.pycs_without_columns)."""
    with zipfile.ZipFile(src) as zin:
        infos = zin.infolist()
        names = [info.filename for info in infos]
        if ALIASES_PYC not in names:
            raise SystemExit("frozen_aliases: %s has no %s" % (src, ALIASES_PYC))
        table = table_of(zin.read(ALIASES_PYC))
        kept = kept_aliases(table, bundled_codecs(names))
        data = {info.filename: zin.read(info) for info in infos}
    data[ALIASES_PYC] = _pyc(aliases_source(kept), optimize)
    if recode is not None:
        data.update(recode({name: pyc for name, pyc in data.items() if name.endswith(".pyc")}))
    with zipfile.ZipFile(dst, "w") as zout:
        for info in infos:
            zout.writestr(info, data[info.filename])  # the same ZipInfo: name, timestamp, compression
    return len(kept), len(table) - len(kept)
