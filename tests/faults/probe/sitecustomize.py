"""An observation probe loaded into the real daemon process by the fault suite and the soak.

Python imports ``sitecustomize`` at start-up from ``sys.path``; the fault suite puts this
directory first on the daemon's ``PYTHONPATH`` and sets ``RTEDGE_PROBE_SOCKET``. Without that
variable this module does nothing. With it, one thread serves JSON lines on that AF_UNIX socket:

- ``{"op": "stats"}`` -> ``{"tasks": n, "task_names": {...}, "threads": n, "thread_names": [...]}``:
  ``/status`` has the task count too, but not the names, nor the threads.
- ``{"op": "tracemalloc", "action": "start"}`` then ``{"op": "tracemalloc"}``: the Python
  allocations that grew most since the previous call (for finding what a soak's RSS growth is).
- ``{"op": "gpio", "pin": 17, "edges": [["low", 0.01], ["high", 0.01], ...]}``: drives gpiozero's
  mock pin (``GPIOZERO_PIN_FACTORY=mock``) from this thread, as the real GPIO library's thread
  would on a Pi, sleeping the given seconds after each edge. Answers ``{"edges": n}``.
- ``{"op": "modules", "prefix": "openai"}`` -> ``{"modules": [...]}``: that package's modules in
  ``sys.modules`` now (the daemon must run without ``openai``).

Nothing in the daemon is replaced: the probe only reads the running loop's task set and pushes
edges through the pin factory the daemon itself opened.
"""

from __future__ import annotations

import os

if os.environ.get("RTEDGE_PROBE_SOCKET"):
    import asyncio
    import collections
    import json
    import socket
    import sys
    import threading
    import time
    from typing import Any

    _loop: list[asyncio.AbstractEventLoop] = []

    def _find_loop() -> asyncio.AbstractEventLoop | None:
        """The running loop, found on the stack of the thread running it (a scan of every
        object with ``gc.get_objects()`` would cost tens of MB of RSS that the allocator keeps,
        spoiling the very figure being measured)."""
        if _loop and not _loop[0].is_closed():
            return _loop[0]
        for frame in sys._current_frames().values():
            f: Any = frame
            while f is not None:
                if f.f_code.co_name in ("_run_once", "run_forever"):
                    obj = f.f_locals.get("self")
                    if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running():
                        _loop[:] = [obj]
                        return obj
                f = f.f_back
        return None

    def _stats() -> dict[str, Any]:
        loop = _find_loop()
        names: collections.Counter[str] = collections.Counter()
        if loop is not None:
            for _ in range(5):
                try:
                    tasks = asyncio.all_tasks(loop)
                    break
                except RuntimeError:  # the set changed while being copied: try again
                    time.sleep(0.01)
            else:
                tasks = set()
            for task in tasks:
                coro = task.get_coro()
                qual = getattr(coro, "__qualname__", None) or type(coro).__name__
                names[qual] += 1
        threads = [t.name for t in threading.enumerate() if t.name != "rtedge-probe"]
        return {
            "tasks": sum(names.values()) if loop is not None else None,
            "task_names": dict(names),
            "threads": len(threads),
            "thread_names": sorted(threads),
        }

    def _gpio(req: dict[str, Any]) -> dict[str, Any]:
        from gpiozero import Device

        factory = Device.pin_factory
        if factory is None:
            return {"error": "no pin factory yet"}
        pin = factory.pin(int(req.get("pin", 17)))
        n = 0
        for level, pause in req["edges"]:
            if level == "low":
                pin.drive_low()
            else:
                pin.drive_high()
            n += 1
            if pause:
                time.sleep(float(pause))
        return {"edges": n}

    _snap: list[Any] = []

    def _tracemalloc(req: dict[str, Any]) -> dict[str, Any]:
        """``start``; then ``diff``: the allocations that grew most since the last call."""
        import tracemalloc

        if req.get("action") == "start":
            tracemalloc.start(int(req.get("frames", 10)))
            _snap[:] = [tracemalloc.take_snapshot()]
            return {"started": True}
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        stats = snap.compare_to(_snap[0], "traceback" if req.get("tb") else "lineno")
        _snap[:] = [snap]
        top = [
            {"size_kb": round(st.size_diff / 1024, 1), "count": st.count_diff,
             "where": [str(f) for f in st.traceback.format()[-6:]]}
            for st in stats[: int(req.get("top", 15))]
        ]  # fmt: skip
        return {"traced_kb": round(tracemalloc.get_traced_memory()[0] / 1024), "top": top}

    def _serve(path: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
            # bound under another name and renamed once listening: the rig waits for the path
            # to exist, and a path that exists before listen() refuses the connection
            srv.bind(path + ".new")
            srv.listen(4)
            os.replace(path + ".new", path)
            while True:
                conn, _ = srv.accept()
                with conn, conn.makefile("rwb") as fh:
                    for line in fh:
                        try:
                            req = json.loads(line)
                            op = req.get("op")
                            if op == "stats":
                                out = _stats()
                            elif op == "gpio":
                                out = _gpio(req)
                            elif op == "tracemalloc":
                                out = _tracemalloc(req)
                            elif op == "modules":  # which of these are imported right now
                                prefix = str(req.get("prefix", ""))
                                out = {
                                    "modules": sorted(
                                        m for m in list(sys.modules) if m.split(".")[0] == prefix
                                    )
                                }
                            else:
                                out = {"error": f"unknown op {op!r}"}
                        except Exception as exc:  # report, never kill the probe
                            out = {"error": repr(exc)}
                        fh.write(json.dumps(out).encode() + b"\n")
                        fh.flush()

    threading.Thread(
        target=_serve, args=(os.environ["RTEDGE_PROBE_SOCKET"],), name="rtedge-probe", daemon=True
    ).start()
