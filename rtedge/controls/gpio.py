"""gpiozero device classes imported from their own modules, without the package's ``__init__``.

Why: ``gpiozero/__init__.py`` imports every device family (boards with their pin tables, SPI
ADCs, tones, internal devices, fonts...) to offer them as ``gpiozero.X``. rtedge uses a
``Button`` and a ``PWMLED``; importing the whole package costs the daemon about 0.45 MB of RSS
for classes it never builds (measured in a call, issue 12), on a device that may have 512 MB.

How: the ``gpiozero`` package module is created from its spec without running ``__init__``, so
``gpiozero.input_devices`` and the pin factories (found by gpiozero itself through its entry
points, as before) import only what they need. Anyone in the same process who later asks the
package for a name it would have exported (``from gpiozero import Device``) gets the full
``__init__`` run in place, so the package behaves as if imported normally.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_lock = threading.RLock()
_loading = False


def _complete(module: ModuleType, spec: Any) -> None:
    """Run the real ``gpiozero/__init__.py`` in ``module`` (once)."""
    global _loading
    with _lock:
        if module.__dict__.get("__rtedge_partial__") is not True or _loading:
            return
        _loading = True
        try:
            spec.loader.exec_module(module)
            module.__dict__["__rtedge_partial__"] = False
        finally:
            _loading = False


def _package() -> ModuleType:
    """``gpiozero`` as it is in ``sys.modules``, or a package module whose ``__init__`` has not
    run (it completes itself at the first name it lacks)."""
    with _lock:
        module = sys.modules.get("gpiozero")
        if module is not None:
            return module
        spec = importlib.util.find_spec("gpiozero")
        if spec is None or spec.loader is None:
            raise ImportError("gpiozero is not installed")
        module = importlib.util.module_from_spec(spec)
        module.__dict__["__rtedge_partial__"] = True

        def __getattr__(name: str) -> Any:  # PEP 562: only names the module does not have
            if name.startswith("__") and name.endswith("__") and name != "__all__":
                raise AttributeError(name)
            _complete(module, spec)
            try:
                return module.__dict__[name]
            except KeyError:
                raise AttributeError(f"module 'gpiozero' has no attribute {name!r}") from None

        module.__dict__["__getattr__"] = __getattr__
        sys.modules["gpiozero"] = module
        return module


def gpio_class(module: str, name: str) -> Any:
    """The class ``name`` from ``gpiozero.<module>``, e.g. ``gpio_class("input_devices",
    "Button")``, importing only that module and what it imports."""
    _package()
    return getattr(importlib.import_module(f"gpiozero.{module}"), name)
