"""A run's temporary folder: made the temp folder of the run, removed afterwards; folders of runs
whose process is gone (or whose pid now belongs to another process) are stale."""

import os
import tempfile
from pathlib import Path

from targets.scratch import RUN_FOLDER_PREFIX, remove_stale_run_folders, run_scratch, stale_run_folders


def test_the_run_folder_is_the_temp_folder_while_the_run_lasts(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEEDPROOF_SYSTEM_TMPDIR", str(tmp_path))
    with run_scratch() as root:
        assert root.parent == tmp_path and root.name.startswith(f"{RUN_FOLDER_PREFIX}{os.getpid()}-")
        assert Path(tempfile.mkdtemp()).parent == root and os.environ["TMPDIR"] == str(root)
        assert stale_run_folders(tmp_path) == []  # its own process is alive
    assert not root.exists() and os.environ.get("SPEEDPROOF_SYSTEM_TMPDIR") == str(tmp_path)


def test_folders_of_dead_or_reused_pids_are_stale(tmp_path):
    dead = tmp_path / f"{RUN_FOLDER_PREFIX}999999999-1-abc"
    reused = tmp_path / f"{RUN_FOLDER_PREFIX}{os.getpid()}-1-abc"  # this pid, another start time
    other = tmp_path / "speedproof-cache-of-someone"
    for folder in (dead, reused, other):
        (folder / "inside").mkdir(parents=True)
    assert sorted(stale_run_folders(tmp_path)) == sorted([dead, reused])
    assert remove_stale_run_folders(tmp_path) == 2
    assert [entry.name for entry in tmp_path.iterdir()] == [other.name]
