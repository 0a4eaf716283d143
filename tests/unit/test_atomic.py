"""The one atomic-write helper: same-folder temporary file, fsync of file and folder, mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentd import atomic
from agentd.atomic import replace_synced, write_atomically


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


class Trace:
    """Record the real fsync and replace calls (they still run) in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str, int]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            info = os.fstat(fd)
            kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
            self.events.append(("fsync", kind, stat.S_IMODE(info.st_mode)))
            real_fsync(fd)

        def replace(src: str | Path, dst: str | Path) -> None:
            self.events.append(("replace", str(Path(src).parent), 0))
            self.sources.append(Path(src))
            real_replace(src, dst)

        self.sources: list[Path] = []
        monkeypatch.setattr(atomic.os, "fsync", fsync)
        monkeypatch.setattr(atomic.os, "replace", replace)


def test_writes_through_a_synced_file_in_the_same_folder_then_syncs_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: None
) -> None:
    trace = Trace(monkeypatch)
    target = tmp_path / "out" / "report.md"
    write_atomically(target, "héllo\n", mode=0o640)
    assert target.read_bytes() == "héllo\n".encode()
    # the file is synced (already at its final mode), renamed from the same folder,
    # then the folder is synced so the rename survives a power cut
    assert trace.events == [
        ("fsync", "file", 0o640),
        ("replace", str(target.parent), 0),
        ("fsync", "dir", stat.S_IMODE(target.parent.stat().st_mode)),
    ]
    assert trace.sources[0].name.startswith(".report.md.")
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.md"]


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640])
def test_mode_is_set_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "f"
    for mask in (0o077, 0o000, 0o027):
        old = os.umask(mask)
        try:
            write_atomically(target, b"x", mode=mode)
        finally:
            os.umask(old)
        assert stat.S_IMODE(target.stat().st_mode) == mode


def test_replacing_keeps_readers_of_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_atomically(target, "old\n")
    with target.open() as reader:
        write_atomically(target, "new\n")
        assert reader.read() == "old\n"  # the old inode, untouched
    assert target.read_text() == "new\n"


def test_a_failure_before_the_rename_leaves_the_target_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    target.write_text("old\n")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_atomically(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_a_target_that_cannot_be_replaced_is_left_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        write_atomically(target, "text")
    assert (target / "keep").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_missing_folder_gets_the_folder_mode(tmp_path: Path, umask: None) -> None:
    target = tmp_path / "a" / "f"
    write_atomically(target, "x", folder_mode=0o750)
    # the umask (077 here) still applies to the new folder, as with mkdir
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


def test_replace_synced_syncs_the_file_before_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp, target = tmp_path / ".db.tmp", tmp_path / "db"
    tmp.write_bytes(b"copy")
    trace = Trace(monkeypatch)
    replace_synced(tmp, target)
    assert [e[:2] for e in trace.events] == [
        ("fsync", "file"),
        ("replace", str(tmp_path)),
        ("fsync", "dir"),
    ]
    assert target.read_bytes() == b"copy" and not tmp.exists()


def test_without_replace_an_existing_file_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "test_learned.py"
    write_atomically(target, "first", replace=False)
    with pytest.raises(FileExistsError):
        write_atomically(target, "second", replace=False)
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["test_learned.py"], "a temporary file lingers"
