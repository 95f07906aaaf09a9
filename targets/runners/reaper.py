"""The parent of user code: `python -m targets.runners.reaper COMMAND...` runs COMMAND and, when
it ends (or this process is told SIGTERM), stops every process it started — those that left its
process group and session with `setsid` included. On Linux it is the subreaper of its descendants
(prctl PR_SET_CHILD_SUBREAPER), so an orphan of theirs becomes its child, not init's, and is found;
elsewhere it stops what it still sees below it. Its exit status is COMMAND's (a death by a signal
is repeated as one)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def stop_descendants() -> None:
    """SIGKILL every process below this one until none is left (orphans keep arriving while their
    parents die), reaping each."""
    import psutil

    me = psutil.Process()
    for _ in range(100):
        below = me.children(recursive=True)
        if not below:
            return
        for process in below:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(below, timeout=2)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def main(argv: list[str] | None = None) -> int:
    command = sys.argv[1:] if argv is None else argv
    if not command:
        print("usage: python -m targets.runners.reaper COMMAND...", file=sys.stderr)
        return 2
    _become_subreaper()

    def stop(signum: int, frame: object) -> None:
        stop_descendants()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    process = subprocess.Popen(command)
    returncode = process.wait()
    stop_descendants()
    sys.stdout.flush()
    if returncode < 0:  # died of a signal: die of it too, so the caller sees the same
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP cannot be handled, nor need to be
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
