"""File-system failures become rnnedge errors naming the file; the CLI shows one line.

Permission tests use /proc (refuses new entries even to root, which the CI may run as) and
monkeypatched OS calls (a full disk cannot be made on demand).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnedge
from rnnedge.errors import BundleError
from rnnedge.runtime.bundle import read_bundle, write_bundle

UNWRITABLE = Path("/proc/rnnedge-test.rnnedge")


@pytest.fixture
def bundle(zoo_bundle, tmp_path):
    copy = tmp_path / "gru.rnnedge"
    shutil.copytree(zoo_bundle("gru")[0], copy)
    return copy


def _parts(bundle: Path):
    b = read_bundle(bundle)
    return b.manifest, b.files


def test_writing_where_no_directory_can_be_made(bundle) -> None:
    manifest, files = _parts(bundle)
    with pytest.raises(BundleError, match=f"{UNWRITABLE}: cannot write the bundle here"):
        write_bundle(UNWRITABLE, manifest, files)


def test_writing_under_a_file(bundle, tmp_path) -> None:
    manifest, files = _parts(bundle)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(BundleError, match=r"plain/m\.rnnedge: cannot write the bundle here"):
        write_bundle(tmp_path / "plain" / "m.rnnedge", manifest, files)


def test_a_full_disk_fails_cleanly(bundle, tmp_path, monkeypatch) -> None:
    manifest, files = _parts(bundle)

    def no_space(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("rnnedge.runtime.bundle.os.fsync", no_space)
    out = tmp_path / "out" / "m.rnnedge"
    with pytest.raises(BundleError, match=r"m\.rnnedge: writing the bundle failed \(No space"):
        write_bundle(out, manifest, files)
    assert list(out.parent.iterdir()) == []  # no half bundle, no temporary directory


def test_a_written_bundle_is_readable_by_others(bundle, tmp_path) -> None:
    """mkdtemp makes 0700 directories; a bundle gets the umask's usual permissions."""
    manifest, files = _parts(bundle)
    umask = os.umask(0o022)
    try:
        out = write_bundle(tmp_path / "m.rnnedge", manifest, files)
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o755


def test_a_bundle_path_that_is_a_file(tmp_path) -> None:
    (tmp_path / "x.rnnedge").write_text("not a directory")
    with pytest.raises(BundleError, match=r"x\.rnnedge: is a file, not a bundle directory"):
        rnnedge.load(tmp_path / "x.rnnedge")


@pytest.mark.parametrize("name", ["a" * 5000, "nul\0byte"])
def test_a_bad_bundle_path(name) -> None:
    with pytest.raises(BundleError, match=r"cannot open the bundle|no such bundle directory"):
        rnnedge.load(name)


def test_an_unreadable_file_is_named(bundle, monkeypatch) -> None:
    real = Path.read_bytes

    def denied(self):
        if self.name == "weights.npz":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(BundleError, match=r"weights\.npz: cannot read it \(Permission denied\)"):
        rnnedge.load(bundle)


def test_a_manifest_file_name_too_long_for_the_file_system(bundle) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"]["x" * 5000] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="cannot read it"):
        rnnedge.load(bundle)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnedge", *args], capture_output=True, text=True, timeout=300
    )


def _one_line(r: subprocess.CompletedProcess, pattern: str, code: int = 1) -> None:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "error:" in last and pattern in last, r.stderr


def test_cli_file_errors_are_one_line(bundle, tmp_path) -> None:
    xs = tmp_path / "xs.npy"
    np.save(xs, np.zeros((3, 1, 1, 8), np.float32))
    _one_line(
        _cli("run", str(bundle), "--input", str(xs), "--output", "/proc/ys.npy"),
        "--output /proc/ys.npy: cannot write it",
        code=2,  # a usage error, found before the run
    )
    (tmp_path / "dir.npy").mkdir()
    _one_line(
        _cli("run", str(bundle), "--input", str(xs), "--output", str(tmp_path / "dir.npy")),
        "dir.npy: cannot write it (Is a directory)",
        code=2,
    )
    _one_line(_cli("inspect", str(xs)), "xs.npy: is a file, not a bundle directory")
    r = _cli("--debug", "inspect", str(xs))
    assert r.returncode == 1 and "Traceback" in r.stderr
