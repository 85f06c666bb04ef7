"""The package's layering, read from the source: the local peer and the daemon's client share code
only through neutral packages, and the neutral packages depend on neither side."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rtedge"

#: Shared by the daemon and the peer; they import neither side.
NEUTRAL = ("rtedge.rtc", "rtedge.media", "rtedge.protocol")
#: Neutral top-level helpers the peer may use beside the neutral packages.
NEUTRAL_MODULES = ("rtedge.binderr", "rtedge.httpguard", "rtedge.logs", "rtedge.ratelimit")
#: The one module outside the peer allowed to import it: the command line that starts it.
PEER_LAUNCHERS = ("rtedge.cli",)


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every rtedge module ``path`` imports (top level or inside a function), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # ``from rtedge import peer`` names the package in the alias, not the module.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == "rtedge" or name.startswith("rtedge.")]


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _sources(*packages: str) -> list[Path]:
    paths: list[Path] = []
    for package in packages:
        paths += sorted((ROOT / package.replace(".", "/")).rglob("*.py"))
    return paths


def _violations(paths: list[Path], allowed: Callable[[str], bool]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in paths
        for line, name in _imports(path)
        if name != "rtedge" and not allowed(name)
    ]


def test_the_peer_imports_only_itself_and_neutral_code() -> None:
    def allowed(name: str) -> bool:
        # ``from rtedge.peer import x`` also yields ``rtedge.peer.x``; both are the peer's own.
        return _within(name, ("rtedge.peer", *NEUTRAL, *NEUTRAL_MODULES))

    bad = _violations(_sources("rtedge.peer"), allowed)
    assert not bad, (
        "the peer reaches into the daemon: move what both use to rtedge/rtc or rtedge/media\n"
        + "\n".join(bad)
    )


def test_both_sides_do_share_through_the_neutral_packages() -> None:
    """Not vacuous: the walk sees the peer and the daemon import the shared code."""
    peer = {name for path in _sources("rtedge.peer") for _, name in _imports(path)}
    assert {"rtedge.rtc.ice", "rtedge.rtc.jitter", "rtedge.media.dsp", "rtedge.media.face"} <= peer
    daemon = {
        name
        for path in _sources("rtedge.realtime", "rtedge.audio", "rtedge.display")
        for _, name in _imports(path)
    }
    assert {"rtedge.rtc.jitter", "rtedge.media.dsp", "rtedge.media.face"} <= daemon


def test_nothing_but_the_command_line_imports_the_peer() -> None:
    outside = [
        p
        for p in PACKAGE.rglob("*.py")
        if not _within(_module_name(p), ("rtedge.peer", *PEER_LAUNCHERS))
    ]
    bad = _violations(outside, lambda name: not _within(name, ("rtedge.peer",)))
    assert not bad, "the daemon imports the peer:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", NEUTRAL)
def test_neutral_packages_depend_on_neither_side(package: str) -> None:
    def allowed(name: str) -> bool:
        return _within(name, (*NEUTRAL, *NEUTRAL_MODULES, "rtedge.seams"))

    bad = _violations(_sources(package), allowed)
    assert not bad, f"{package} is shared and must stay neutral:\n" + "\n".join(bad)


def test_the_import_reader_sees_every_form(tmp_path: Path) -> None:
    """The walk above must catch nested, aliased and relative imports, or it passes vacuously."""
    text = (
        "import rtedge.realtime.call as c\n"
        "from rtedge import live\n"
        "def f() -> None:\n"
        "    from rtedge.audio.alsa import X\n"
        "from ..display import frames\n"
    )
    tree = tmp_path / "rtedge" / "peer"
    tree.mkdir(parents=True)
    probe = tree / "probe.py"
    probe.write_text(text, encoding="utf-8")
    names = {name for _, name in _imports(probe, tmp_path)}
    assert {"rtedge.realtime.call", "rtedge.live", "rtedge.audio.alsa", "rtedge.display"} <= names
