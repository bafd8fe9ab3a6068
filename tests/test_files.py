"""``write_atomic``: the one atomic file write (mode, fsync, no temp file left, symlinks), on real files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from headroom.memory.files import TEMP_SUFFIX, write_atomic


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(TEMP_SUFFIX))


@pytest.mark.usefixtures("umask_022")
def test_the_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    private = tmp_path / "token"
    write_atomic(private, b"secret")
    assert private.read_bytes() == b"secret" and _mode(private) == 0o600  # the default: owner-only
    shared = tmp_path / "unit.service"
    os.umask(0o077)
    write_atomic(shared, b"[Unit]\n", mode=0o644)
    assert _mode(shared) == 0o644  # not filtered by the umask
    shared.chmod(0o666)
    write_atomic(shared, b"[Unit]\n# again\n", mode=0o644)
    assert _mode(shared) == 0o644  # an existing file's looser mode is reset too


@pytest.mark.usefixtures("umask_022")
def test_mode_none_keeps_the_files_mode_and_gives_a_new_one_the_umask_default(tmp_path: Path) -> None:
    new = tmp_path / "CLAUDE.md"
    write_atomic(new, b"# notes\n", mode=None)
    assert _mode(new) == 0o644
    new.chmod(0o640)
    write_atomic(new, b"# notes, more\n", mode=None)
    assert _mode(new) == 0o640 and new.read_bytes() == b"# notes, more\n"


def test_a_writer_function_streams_into_the_file(tmp_path: Path) -> None:
    def write(handle: IO[bytes]) -> None:
        for i in range(3):
            handle.write(b"%d\n" % i)

    assert write_atomic(tmp_path / "n", write) == tmp_path / "n"
    assert (tmp_path / "n").read_bytes() == b"0\n1\n2\n"


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_happens_before_the_rename_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    """The real ``os.fsync`` runs; the spy records whether the file it synced was still the temp file."""
    target = tmp_path / "state.json"
    synced: list[bool] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(not target.exists() and len(_leftovers(tmp_path)) == 1)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_atomic(target, b"{}", fsync=fsync)
    assert synced == ([True] if fsync else [])
    assert target.read_bytes() == b"{}"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "CLAUDE.md"
    target.write_bytes(b"old\n")

    def half_then_fail(handle: IO[bytes]) -> None:
        handle.write(b"new, half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        write_atomic(target, half_then_fail)
    assert target.read_bytes() == b"old\n" and _leftovers(tmp_path) == []


def test_a_failed_rename_leaves_no_temp_file(tmp_path: Path) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "inside").write_bytes(b"")
    with pytest.raises(OSError):
        write_atomic(folder, b"data")  # a non-empty folder cannot be replaced by a file
    assert _leftovers(tmp_path) == [] and folder.is_dir()


def test_a_missing_folder_is_an_oserror_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "such" / "file", b"x")


def test_through_symlink_replaces_the_linked_file_and_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "CLAUDE.md"
    real.parent.mkdir()
    real.write_bytes(b"mine\n")
    real.chmod(0o640)
    link = tmp_path / "home" / "CLAUDE.md"
    link.parent.mkdir()
    link.symlink_to(real)
    assert write_atomic(link, b"mine, and a lesson\n", mode=None, through_symlink=True) == real
    assert link.is_symlink() and real.read_bytes() == b"mine, and a lesson\n" and _mode(real) == 0o640
    assert _leftovers(real.parent) == [] and _leftovers(link.parent) == []


def test_without_through_symlink_the_link_itself_is_replaced(tmp_path: Path) -> None:
    """A file headroom owns (a token, a pid) is never written through a link someone planted at its path."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"untouched")
    planted = tmp_path / "proxy.json"
    planted.symlink_to(elsewhere)
    write_atomic(planted, b"{}")
    assert not planted.is_symlink() and planted.read_bytes() == b"{}" and _mode(planted) == 0o600
    assert elsewhere.read_bytes() == b"untouched"
