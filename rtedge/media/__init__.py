"""Media code shared by the daemon and the local peer: sample conversion and levels (``dsp``), the
built-in avatar face (``face``) and RGB/JPEG pictures (``jpeg``). No I/O, no event loop."""
