import subprocess

from harness.records.provenance import git_commit, utc_now_iso


def test_outside_a_checkout_the_commit_is_null(tmp_path):
    assert git_commit(tmp_path) == (None, None)


def test_inside_a_checkout_commit_and_dirty_flag(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "first")
    commit, dirty = git_commit(tmp_path)
    assert commit is not None and len(commit) == 40 and dirty is False
    (tmp_path / "a.txt").write_text("two")
    assert git_commit(tmp_path) == (commit, True)


def test_utc_time_is_iso_with_z():
    stamp = utc_now_iso()
    assert stamp.endswith("Z") and "T" in stamp
