"""The kernel VM runner, booting real guests: what the guest sees (its kernel, netkit, netem as a
module, the host's files read-only, a writable share, bpffs, loopback, our Python), and that
exit codes and output pass through and nothing is left running on any way out.

Checks are batched into few boots: each costs seconds under emulation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import vm

from sigint import with_sigint

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable  # the repo's .venv python: the guest must run it from the same path


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found.append(f"{pid}: {cmdline[:200]}")
    return found


def assert_nothing_left(rundir: Path) -> None:
    assert processes_mentioning(str(rundir)) == []
    assert processes_mentioning(f"-name lab-vm-{os.getpid()} ") == []
    assert list(rundir.iterdir()) == [], "the run directory was not removed"


GUEST_CHECKS = r"""
out=$1
uname -r > $out/uname
ip link add lab-nk0 type netkit mode l3 peer name lab-nk1 && ip -d link show lab-nk0 > $out/netkit
tc qdisc add dev lo root netem delay 1ms && tc qdisc show dev lo > $out/qdisc
grep -w sch_netem /proc/modules > $out/modules
touch {repo}/.lab-vm-write-probe 2> $out/repo-write
stat -f -c %T /sys/fs/bpf > $out/bpffs
{python} -c '
import socket, pyroute2
s = socket.create_server(("127.0.0.1", 0))
c = socket.create_connection(s.getsockname())
c.sendall(b"ping"); print(s.accept()[0].recv(4).decode())' > $out/loopback
echo "$LAB_VM $LAB_VM_ACCEL" > $out/env
# Read-only on the host's side too: even a guest that remounts its root cannot write.
mount -o remount,rw / && touch {repo}/.lab-vm-write-probe 2> $out/repo-write-remounted
echo to-stdout
echo to-stderr >&2
"""


def test_guest_sees_its_kernel_netkit_netem_and_the_host_files(kernel, tmp_path, rundir):
    out = tmp_path / "out"
    script = tmp_path / "checks.sh"
    script.write_text(GUEST_CHECKS.format(repo=REPO, python=PYTHON))
    # The script is read through the writable share: the guest's /tmp is its own.
    out.mkdir()
    (out / "checks.sh").write_text(script.read_text())

    r = vm.run(["sh", str(out / "checks.sh"), str(out)], kernel=kernel.release, shares=[out],
               cwd=str(REPO), timeout=300, text=True)

    assert (r.returncode, r.stdout, r.stderr) == (0, "to-stdout\n", "to-stderr\n")
    assert r.kernel == kernel.release
    assert (out / "uname").read_text().strip() == kernel.release
    assert "netkit mode l3" in (out / "netkit").read_text()
    assert "qdisc netem" in (out / "qdisc").read_text()
    assert (out / "modules").read_text().startswith("sch_netem ")
    assert "Read-only file system" in (out / "repo-write").read_text()
    assert "Read-only file system" in (out / "repo-write-remounted").read_text()
    assert not (REPO / ".lab-vm-write-probe").exists()
    assert (out / "bpffs").read_text().strip() == "bpf_fs"
    assert (out / "loopback").read_text().strip() == "ping"
    assert (out / "env").read_text().split() == ["1", r.accel]
    assert r.accel in ("kvm", "tcg")
    assert r.boot_seconds > 0 and r.host_memory_kib > 0
    assert_nothing_left(rundir)


def test_a_working_directory_in_tmp_stays_visible_and_read_only(kernel, tmp_path, rundir):
    # A checkout in /tmp (a CI runner's clone) is hidden by the guest's own /tmp otherwise.
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "marker").write_text("host file\n")
    r = vm.run(["sh", "-c", "cat marker; pwd; touch new 2>&1 || echo refused"],
               kernel=kernel.release, cwd=str(work), timeout=300, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["host file", str(work)]
    assert "Read-only file system" in r.stdout and lines[-1] == "refused"
    assert not (work / "new").exists()
    assert_nothing_left(rundir)


def test_a_failing_command_fails_the_run_with_its_code_and_output(kernel, rundir):
    with pytest.raises(vm.VmCommandError) as e:
        vm.run(["sh", "-c", "echo out; echo err >&2; exit 7"], kernel=kernel.release,
               cwd="/", timeout=300, check=True)
    r = e.value.result
    assert (r.returncode, r.stdout, r.stderr) == (7, b"out\n", b"err\n")
    assert_nothing_left(rundir)


def test_a_kernel_panic_is_an_error_not_a_hang(kernel, rundir):
    with pytest.raises(vm.VmError) as e:
        vm.run(["sh", "-c", "echo c > /proc/sysrq-trigger; sleep 1000"], kernel=kernel.release,
               cwd="/", timeout=300)
    assert not isinstance(e.value, vm.VmTimeout)
    assert "while running the command: Kernel panic" in str(e.value)
    assert "sysrq triggered crash" in e.value.console_tail
    assert_nothing_left(rundir)


def lab_vm(*args: str, tmpdir: Path, stdout=subprocess.PIPE) -> subprocess.Popen:
    # SIGINT at its default action, as from a terminal, whatever this test inherited.
    env = dict(os.environ, TMPDIR=str(tmpdir))
    return subprocess.Popen(with_sigint("default", [PYTHON, "-m", "lab", "vm", *args]),
                            cwd=REPO, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)


def test_cli_passes_a_signal_death_on_as_128_plus_the_signal(kernel, rundir):
    proc = lab_vm("--kernel", kernel.release, "--", "sh", "-c", "echo out; kill -TERM $$",
                  tmpdir=rundir)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert stdout == "out\n"
    assert_nothing_left(rundir)


def test_cli_netkit_in_the_newest_7x(kernel, rundir):
    # Issue 13's first check, as typed: `lab vm --kernel 7.3 -- ip link add type netkit`
    # (7: the newest 7.x, 7.3 today; 7.x comes in the split packaging).
    proc = lab_vm("--kernel", "7", "--", "sh", "-c",
                  "ip link add type netkit && ip -o link show type netkit && uname -r",
                  tmpdir=rundir)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    *links, release = stdout.splitlines()
    assert len(links) == 2 and release.startswith("7."), stdout  # the pair, in a 7.x guest
    assert_nothing_left(rundir)


def test_cli_timeout_is_an_error_and_leaves_nothing(kernel, rundir):
    # A command that never stops writing must time out as well as one that sleeps.
    proc = lab_vm("--kernel", kernel.release, "--timeout", "20", "--", "yes",
                  tmpdir=rundir, stdout=subprocess.DEVNULL)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 124, stderr
    assert "timed out" in stderr
    assert_nothing_left(rundir)


def test_cli_interrupted_leaves_nothing(kernel, rundir):
    proc = lab_vm("--kernel", kernel.release, "--", "sh", "-c", "echo started; sleep 1000",
                  tmpdir=rundir)
    try:
        assert proc.stdout.readline() == "started\n"
        assert processes_mentioning(str(rundir)), "the VM should be running now"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    # Killed processes can take a moment to be reaped by init if they were reparented.
    end = time.monotonic() + 5
    while processes_mentioning(str(rundir)) and time.monotonic() < end:
        time.sleep(0.1)
    assert_nothing_left(rundir)


def test_cli_lists_kernels(kernel):
    proc = subprocess.run([PYTHON, "-m", "lab", "vm", "--list"], cwd=REPO, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(kernel.release + " "))
    assert "cached" in line
