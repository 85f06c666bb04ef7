"""What rtedge leaves unbuilt to save memory (issue 12) stays unbuilt, and nothing is lost by it.

Each check runs in a fresh interpreter: import state is per process, and this test process has
long since imported gpiozero, aiohttp.web and mimetypes for other tests."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import base_env


def fresh(code: str) -> dict[str, object]:
    """Runs ``code`` in a new interpreter; it prints one JSON object as its last line."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_aiohttp_web_builds_no_global_mime_table_yet_guess_type_reads_the_system_files() -> None:
    r = fresh(
        "import json, mimetypes\n"
        "from rtedge.footprint import defer_mime_tables\n"
        "defer_mime_tables()\n"
        "from aiohttp import web\n"
        "from aiohttp.web_fileresponse import CONTENT_TYPES\n"
        "before = mimetypes._db is None\n"
        "aiohttp_own = CONTENT_TYPES.guess_type('a.html')[0]\n"
        "guess = mimetypes.guess_type('a.webm')[0]\n"
        "print(json.dumps({'before': before, 'after': mimetypes._db is not None,\n"
        "  'aiohttp': aiohttp_own, 'guess': guess, 'files': [f for f in mimetypes.knownfiles\n"
        "  if __import__('os').path.isfile(f)]}))"
    )
    assert r["before"] is True, "aiohttp.web's import built the global MIME table"
    assert r["aiohttp"] == "text/html"  # aiohttp's own table is intact
    assert r["guess"] == "video/webm"
    assert r["after"] is True  # the first module-level call built it, from the system's files
    assert r["files"], "no mime.types on this machine: the test would not see them read"


def test_the_cli_defers_the_mime_table_before_its_parser_imports_aiohttp_web() -> None:
    r = fresh(
        "import json, sys, mimetypes\n"
        "from rtedge.cli import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps({'web': 'aiohttp.web' in sys.modules, 'db': mimetypes._db is None}))"
    )
    assert r == {"web": True, "db": True}


def test_gpio_classes_load_without_the_rest_of_gpiozero() -> None:
    r = fresh(
        "import json, sys\n"
        "from rtedge.controls.gpio import gpio_class\n"
        "Button = gpio_class('input_devices', 'Button')\n"
        "PWMLED = gpio_class('output_devices', 'PWMLED')\n"
        "from gpiozero.pins.mock import MockFactory, MockPWMPin\n"
        "f = MockFactory(pin_class=MockPWMPin)\n"
        "b = Button(17, pin_factory=f)\n"
        "led = PWMLED(18, pin_factory=f)\n"
        "f.pin(17).drive_low()\n"
        "led.value = 0.5\n"
        "state = {'pressed': b.is_pressed, 'led': f.pin(18).state,\n"
        "  'mods': sorted(m for m in sys.modules if m.startswith('gpiozero'))}\n"
        "from gpiozero import Device, LEDBoard\n"  # anyone else in the process: the full package
        "state['full'] = Device is sys.modules['gpiozero.devices'].Device and\\\n"
        "  'gpiozero.boards' in sys.modules\n"
        "print(json.dumps(state))"
    )
    assert r["pressed"] is True
    assert r["led"] == 0.5
    mods = r["mods"]
    assert isinstance(mods, list)
    for unused in ("gpiozero.boards", "gpiozero.spi_devices", "gpiozero.internal_devices"):
        assert unused not in mods
    assert r["full"] is True


def test_gpio_uses_a_gpiozero_that_is_already_fully_imported() -> None:
    r = fresh(
        "import json, sys, gpiozero\n"
        "from rtedge.controls.gpio import gpio_class\n"
        "print(json.dumps({'same': gpio_class('input_devices', 'Button') is gpiozero.Button}))"
    )
    assert r["same"] is True
