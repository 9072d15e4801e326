"""Standard-library modules left out of the frozen guardian.

PyInstaller follows every import it can see, including those in functions the guardian
never calls (shutil -> bz2, lzma; random -> hashlib -> libcrypto; encodings -> CJK
codecs). Everything listed here is never imported when the guardian runs: measured with
every subcommand (run with a reload, status, check, --version), and guarded by
tests/packaging/test_frozen.py, which fails when a guardian module imports one of them.
Where the standard library imports one of these, it does so inside try/except
ImportError (shutil, zipfile, tarfile) or in functions the guardian does not call.

What the biggest entries save, unpacked (x86_64): hashlib's libcrypto 4.7 MB,
unicodedata 1.1 MB, the CJK codecs 1.0 MB, _decimal 0.4 MB, lzma and bz2 0.4 MB.
"""

EXCLUDES = [
    # hashing and crypto: libcrypto alone is the size of libpython
    "hashlib", "_hashlib", "_blake2", "_md5", "_sha1", "_sha256", "_sha3", "hmac",
    "ssl", "_ssl", "secrets",
    # compression the guardian never reads (zlib stays: the bootloader needs it)
    "bz2", "_bz2", "lzma", "_lzma", "gzip", "tarfile", "zipapp",
    # text and numbers it never handles
    "unicodedata", "stringprep", "_multibytecodec",
    "_codecs_cn", "_codecs_hk", "_codecs_iso2022", "_codecs_jp", "_codecs_kr", "_codecs_tw",
    "decimal", "_decimal", "_pydecimal", "fractions", "statistics", "_statistics",
    "csv", "_csv", "pprint", "calendar", "_strptime", "quopri", "base64",
    # serialisation it does not use (state is JSON)
    "pickle", "_pickle", "_compat_pickle", "pickletools", "shelve", "dbm",
    "xml", "pyexpat", "_elementtree", "plistlib", "xmlrpc", "sqlite3", "_sqlite3",
    # network protocols, mail, web
    "email", "http", "urllib.request", "urllib.response", "mailbox", "smtplib",
    "ftplib", "imaplib", "poplib", "nntplib", "telnetlib", "webbrowser", "mimetypes",
    # frameworks and tools
    "asyncio", "concurrent", "multiprocessing", "_multiprocessing", "tkinter",
    "_tkinter", "curses", "_curses", "readline", "unittest", "doctest", "pdb", "pydoc",
    "pydoc_data", "tracemalloc", "_threading_local", "py_compile", "compileall",
    "getopt", "lib2to3", "distutils", "setuptools", "pkg_resources", "venv", "ensurepip",
    "idlelib", "turtle", "turtledemo", "test",
    # the libc calls come from guardian._rest (which the build requires); and PyInstaller's
    # bootstrap imports ctypes whenever the archive has it: 0.4 MiB resident, libffi mapped
    "ctypes", "_ctypes",
]

# Codecs kept: what Python needs to start, and the single-byte locales a board might set
# (LANG=...ISO-8859-x); CJK, Mac, EBCDIC and DOS code pages go (about 450 kB).
KEEP_ENCODINGS = {
    "aliases", "ascii", "charmap", "latin_1", "raw_unicode_escape", "unicode_escape",
    "utf_8", "utf_8_sig", "utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be",
    "utf_32_le", "cp1252", "koi8_r", "koi8_u",
    "cp437",  # zipfile decodes names with it (PyInstaller reads base_library.zip)
}
KEEP_ENCODING_PREFIXES = ("iso8859_",)


def unused_encodings():
    """encodings.<codec> for every codec of this Python's library that is not kept."""
    import encodings
    import pkgutil

    return sorted(
        "encodings." + m.name
        for m in pkgutil.iter_modules(encodings.__path__)
        if m.name not in KEEP_ENCODINGS and not m.name.startswith(KEEP_ENCODING_PREFIXES)
    )


# Excluded, yet imported at run time by the standard library inside try/except ImportError
# (shutil and zipfile probe for them at import): their absence only disables bz2 and xz
# archives, which the guardian never reads.
PROBED = {"bz2", "_bz2", "lzma", "_lzma"}

# Excluded, yet named by a guardian module: guardian.kernel.libc_fallback falls back to ctypes where
# guardian._rest is not built, which a frozen build never is (build-frozen.sh fails without it).
FALLBACK = {"ctypes", "ctypes.util"}

# Standard-library modules bench/modcost.py imports in the frozen floor (guardian-floor
# --import ...): in the floor's archive whether or not the guardian uses them.
MODCOST_STDLIB = [
    "typing", "dataclasses", "inspect", "logging", "json", "re", "socket", "_socket",
    "subprocess", "threading", "argparse", "tomllib", "enum", "collections",
    "functools", "struct", "select", "signal",
]
