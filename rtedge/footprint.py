"""Tables that libraries build at start-up for paths the daemon never takes, left unbuilt or let go.

A Pi Zero 2 W has 512 MB for the system, the browser of a kiosk and rtedge; issue 12 asks the
daemon to stay within 1.15x the RSS of a bare aiortc client. Each step here keeps a library's
behaviour (the table is built, or re-read, the first time anyone asks for it); only memory that
nothing reads is not held. Measured in a call (``scripts/bench_protocol.py``): about 0.4 MB for
the MIME tables and 0.2 MB for the cached source lines.
"""

from __future__ import annotations

import linecache
import mimetypes


def defer_mime_tables() -> None:
    """Call before ``aiohttp.web`` is imported: its ``web_fileresponse`` builds
    ``mimetypes.MimeTypes()`` at import, and the standard library's constructor reads
    ``/etc/mime.types`` (about 0.4 MB of dicts) into the module's global database as a side
    effect, though aiohttp's own instance only uses the built-in defaults. rtedge serves no files;
    marking the module initialised skips that side effect, and the module-level functions
    (``mimetypes.guess_type`` and the like) still read the files at their first call, because
    they check for the missing database, not the flag."""
    if mimetypes._db is None and not mimetypes.inited:  # type: ignore[attr-defined]
        mimetypes.inited = True


def drop_source_lines() -> int:
    """Forget cached source lines of files on disk; returns how many files were dropped.

    pydantic reads the settings models' source to take field docstrings as descriptions
    (``use_attribute_docstrings``) and leaves each whole file in ``linecache`` (about 0.2 MB of
    strings). A traceback reads a file again when it needs it. Entries with no file behind them
    (code generated at run time, e.g. by attrs, registered with no mtime) stay: they could not be
    read again."""
    dropped = 0
    for name, entry in list(linecache.cache.items()):
        if len(entry) == 4 and entry[1] is not None:
            del linecache.cache[name]
            dropped += 1
    return dropped
