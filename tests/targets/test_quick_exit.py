"""Ending a process without the interpreter's teardown (the `speedproof` script and its worker
processes): exit handlers run, buffered output is written, a working thread is waited for, and
output that cannot be written shows in the exit code as in a normal exit."""

import os
import subprocess
import sys
import textwrap

IMPORT = "from targets.quick_exit import exit_quickly"
# standard output buffered as it is by default (PYTHONUNBUFFERED would write each print at once)
BUFFERED = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}


def _quick_exit_child(body: str) -> subprocess.CompletedProcess[str]:
    script = f"import atexit, sys, threading, time\n{IMPORT}\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=BUFFERED)


def test_a_quick_exit_runs_the_exit_handlers_and_flushes_what_was_printed():
    completed = _quick_exit_child("""
        atexit.register(lambda: print("handler ran", file=sys.stderr))
        print("buffered output", end="")  # stdout is a pipe: block-buffered until the exit flushes it
        exit_quickly(3)
    """)
    assert completed.returncode == 3
    assert completed.stdout == "buffered output"
    assert completed.stderr == "handler ran\n"


def test_a_quick_exit_waits_for_a_thread_that_is_still_working():
    completed = _quick_exit_child("""
        def finish():
            time.sleep(0.2)
            print("thread finished")
        threading.Thread(target=finish).start()
        exit_quickly(0)
    """)
    assert completed.returncode == 0
    assert completed.stdout == "thread finished\n"


def test_a_quick_exit_whose_output_cannot_be_written_says_so_in_its_exit_code():
    # the reader of the pipe is gone before the child's exit flushes what it printed: Python's own
    # exit returns 120 then too
    script = f"import sys\n{IMPORT}\nsys.stdin.readline()\nprint('x')\nexit_quickly(0)"
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=BUFFERED,
    )
    assert process.stdout is not None and process.stdin is not None
    process.stdout.close()
    process.stdin.write(b"go\n")
    process.stdin.close()
    assert process.wait(timeout=60) == 120
