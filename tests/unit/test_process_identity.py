"""A recorded process (pid and start time) counts as running until it exits: a zombie, whose
status its parent has not collected yet (init, for a `lab up` that has exited, may take
seconds), has exited, and `lab down` does not wait for it."""

import os
import signal
import subprocess

from lab.state import process_running, process_start_time


def test_a_zombie_is_not_running():
    proc = subprocess.Popen(["sleep", "60"])
    try:
        start = process_start_time(proc.pid)
        assert process_running(proc.pid, start)
        assert not process_running(proc.pid, start + 1)       # another process, same pid
        os.kill(proc.pid, signal.SIGKILL)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)   # exited, not collected
        assert process_start_time(proc.pid) == start             # still in /proc ...
        assert not process_running(proc.pid, start)              # ... but not running
    finally:
        proc.kill()
        proc.wait()
    assert not process_running(proc.pid, start)
