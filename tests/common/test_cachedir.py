"""Cache directories are published whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from senseops_common.cachedir import locked, staged_directory


def test_staged_directory_replaces_the_target_in_one_rename(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with staged_directory(target) as staging:
        assert not (staging / "old.bin").exists() and staging.parent == tmp_path
        (staging / "new.bin").write_text("new")
        assert not (target / "new.bin").exists()  # invisible until the block succeeds
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging left behind


def test_failed_build_leaves_the_target_and_no_staging(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with pytest.raises(RuntimeError), staged_directory(target) as staging:
        (staging / "half.bin").write_text("half")
        raise RuntimeError("download failed")
    assert sorted(p.name for p in target.iterdir()) == ["old.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_locked_creates_its_lock_file_and_is_reentrant_across_blocks(tmp_path: Path) -> None:
    lock = tmp_path / "deep" / "x.lock"
    with locked(lock):
        assert lock.exists()
    with locked(lock):  # released after the first block
        pass
