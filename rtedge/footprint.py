"""Tables that libraries build at import for paths the daemon never takes, left unbuilt.

A Pi Zero 2 W has 512 MB for the system, the browser of a kiosk and rtedge; issue 12 asks the
daemon to stay within 1.15x the RSS of a bare aiortc client. What is deferred here keeps the
library's behaviour: the table is built the first time anyone asks for it. Measured (issue 12,
``scripts/bench_protocol.py`` and the README): about 0.4 MB for the MIME tables.
"""

from __future__ import annotations

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
