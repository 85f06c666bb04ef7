"""Key and config files a person may get wrong (issue 14, row 9), through the real CLI: each is
a one-line config error (exit 78) saying what the path is, within seconds, never the key."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rtedge.secretfile import FileProblem, read_secret, read_small_file
from tests.test_cli import rtedge

KEY = "sk-proj-NEVER-PRINT-THIS-0123456789"


def config_with_key_file(tmp_path: Path, key_path: Path) -> Path:
    cfg = tmp_path / "rtedge.toml"
    cfg.write_text(f'[realtime]\napi_key_file = "{key_path}"\n')
    return cfg


def make_fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return fifo


def make_loop(tmp_path: Path) -> Path:
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (make_fifo, "is a FIFO"),
        (lambda _: Path("/dev/zero"), "is a device"),
        (lambda p: p, "is a directory"),
        (make_loop, "is a symlink loop"),
        (lambda p: p / "missing", "not found"),
    ],
)
def test_bad_key_paths_are_named(tmp_path: Path, make: object, expected: str) -> None:
    key_path = make(tmp_path)  # type: ignore[operator]
    t0 = time.monotonic()
    out = rtedge("check", "--config", str(config_with_key_file(tmp_path, key_path)))
    elapsed = time.monotonic() - t0
    assert out.returncode == 78, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr
    assert lines[0].startswith("rtedge: config error: realtime.api_key_file: ")
    assert elapsed < 30  # a FIFO no longer hangs, /dev/zero is not read


def test_key_with_a_line_break_inside_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text(f"{KEY[:10]}\r\n{KEY[10:]}\r\n")
    key.chmod(0o600)
    out = rtedge("check", "--config", str(config_with_key_file(tmp_path, key)))
    assert out.returncode == 78
    assert "control characters" in out.stderr and KEY[:10] not in out.stderr
    # The same from the environment.
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    out = rtedge("check", "--config", str(cfg), env={"RTEDGE_REALTIME__API_KEY": "sk-a\nb"})
    assert out.returncode == 78 and "realtime.api_key: holds control characters" in out.stderr


def test_trailing_crlf_is_trimmed_and_a_readable_key_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "key"
    key.write_text(KEY + "\r\n")
    key.chmod(0o666)
    assert read_secret(key) == KEY
    assert "readable by group and others" in caplog.text and KEY not in caplog.text
    caplog.clear()
    key.chmod(0o600)
    assert read_secret(key) == KEY
    assert caplog.text == ""


def test_big_files_are_refused_without_reading(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with big.open("wb") as fh:
        fh.truncate(50 << 20)  # sparse: 50 MB that costs nothing
    with pytest.raises(FileProblem, match="larger than"):
        read_small_file(big, 1024)
    out = rtedge("check", "--config", str(big))
    assert out.returncode == 78 and "config file is larger than" in out.stderr


def test_config_path_problems_are_named(tmp_path: Path) -> None:
    out = rtedge("check", "--config", str(tmp_path))
    assert out.returncode == 78 and "config file is a directory" in out.stderr
    out = rtedge("check", "--config", str(tmp_path / "nope.toml"))
    assert out.returncode == 78 and "config file not found" in out.stderr
    out = rtedge("check", "--config", str(make_fifo(tmp_path)))
    assert out.returncode == 78 and "config file is a FIFO" in out.stderr


def test_bad_credential_file_is_a_config_error(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "realtime.api_key").mkdir()  # a directory where the credential should be
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    out = rtedge("check", "--config", str(cfg), env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert out.returncode == 78, out.stderr
    assert "realtime.api_key is a directory" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
