"""Boot a kernel in QEMU, run one command in it, and tear everything down.

A run owns a temporary directory (job file, console log, sockets), one virtiofsd per share
and QEMU. Each process is the leader of its own session and dies with us (PR_SET_PDEATHSIG);
on every way out (success, failure, timeout, Ctrl-C) the runner kills each session with
SIGKILL, reaps it and removes the directory.

The root share's virtiofsd runs in a mount namespace whose mounts are all read-only
(mount_setattr(AT_RECURSIVE)), so the host's files stay untouched even if the guest remounts
its root writable.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO

from lab.errors import LabError, UsageError
from lab.vm import guest, qemu
from lab.vm.kernels import GUEST_PACKAGES, Kernel, KernelCache

log = logging.getLogger(__name__)

DEFAULT_MEM_MIB = 1024
DEFAULT_CPUS = 2
BOOT_TIMEOUT = {"kvm": 60.0, "tcg": 180.0}  # QEMU start to the command's start
SHUTDOWN_GRACE = 15.0  # after the status: time the guest has to power off
CONSOLE_TAIL = 40  # lines of the kernel's console shown with an error

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
PR_SET_PDEATHSIG = 1
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_mount_setattr = 442  # x86_64 and every other architecture since 5.12
VIRTIOFSD_PID_DIR = "/run/virtiofsd"


class VmError(LabError):
    """The VM failed (did not boot, crashed); not the guest command failing. The CLI exits
    with 125 then, as env(1) does when it cannot run the command."""

    exit_code = 125

    def __init__(self, message: str, console_tail: str = ""):
        self.console_tail = console_tail
        super().__init__(message + (f"\n--- guest console (last lines) ---\n{console_tail}"
                                    if console_tail else ""))


class VmSetupError(VmError):
    """The VM could not be started (virtiofsd or QEMU refused): the host's fault, not the
    guest's or the accelerator's."""


class VmTimeout(VmError):
    """The run took longer than its timeout (exit code 124, as timeout(1))."""

    exit_code = 124


class VmCommandError(LabError):
    """The guest command exited non-zero (raised by run(check=True))."""

    def __init__(self, result: VmResult):
        self.result = result
        super().__init__(f"guest command {result.argv!r} exited with {result.returncode}")


@dataclasses.dataclass
class VmResult:
    """How a command ran in the VM. Times from a TCG run are emulated: never compare them with
    native ones (`accel` says which)."""

    argv: list[str]
    returncode: int  # as subprocess: -N when killed by signal N
    stdout: bytes | str | None  # None when streamed to a file
    stderr: bytes | str | None
    accel: str  # "kvm" or "tcg"
    kernel: str  # the guest's `uname -r`
    kernel_version: str  # its Debian package version
    cpus: int
    mem_mib: int
    boot_seconds: float  # QEMU started -> the command started (host clock)
    guest_uptime_at_start: float  # the guest's CLOCK_BOOTTIME when the command started
    command_seconds: float  # the command started -> its status arrived (host clock)
    total_seconds: float  # run() called -> everything torn down
    host_memory_kib: int  # PSS of QEMU and virtiofsd, sampled when the command finished
    init_messages: list[str] = dataclasses.field(default_factory=list)

    @property
    def emulated(self) -> bool:
        return self.accel != "kvm"

    def check_returncode(self) -> None:
        if self.returncode != 0:
            raise VmCommandError(self)

    def summary(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("stdout", "stderr", "argv", "init_messages"):
            d.pop(k)
        return d


# --- processes ---------------------------------------------------------------------------------

def _die_with_parent() -> None:
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _mount_setattr(path: bytes, flags: int, attr_set: int = 0, attr_clr: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    if _libc.syscall(ctypes.c_long(SYS_mount_setattr), ctypes.c_long(AT_FDCWD), path,
                     ctypes.c_uint(flags), ctypes.byref(attr),
                     ctypes.c_size_t(ctypes.sizeof(attr))) != 0:
        raise OSError(ctypes.get_errno(), "mount_setattr", path)


def _virtiofsd_world(read_only_except: str | None) -> Callable[[], None]:
    """A preexec function for virtiofsd: a private copy of the mount tree with a tmpfs on its
    pid-file directory (it never removes its pid files: they would pile up in the host's /run).
    With READ_ONLY_EXCEPT, every mount is read-only but that directory (virtiofsd's socket)."""
    keep = os.fsencode(read_only_except) if read_only_except else None
    pid_dir = os.fsencode(VIRTIOFSD_PID_DIR)

    def setup() -> None:
        _die_with_parent()
        if _libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        if _libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None) != 0:
            raise OSError(ctypes.get_errno(), "make / a slave mount")
        if keep is not None:
            if _libc.mount(keep, keep, None, MS_BIND, None) != 0:  # to exempt it below
                raise OSError(ctypes.get_errno(), "bind", keep)
            _mount_setattr(b"/", AT_RECURSIVE, attr_set=MOUNT_ATTR_RDONLY)
            _mount_setattr(keep, 0, attr_clr=MOUNT_ATTR_RDONLY)
        if _libc.mount(b"tmpfs", pid_dir, b"tmpfs", 0, b"mode=0700") != 0:
            raise OSError(ctypes.get_errno(), "mount tmpfs", pid_dir)

    return setup


class _Process:
    """A child in its own session; killed as a group, reaped with its resource usage."""

    def __init__(self, name: str, argv: list[str], log_path: str,
                 preexec: Callable[[], None] = _die_with_parent):
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as out:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=preexec, close_fds=True)
        self.pid = self.popen.pid
        self.pidfd = os.pidfd_open(self.pid)
        self.maxrss_kib = 0

    def alive(self) -> bool:
        return self.popen.returncode is None and self.popen.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def reap(self) -> None:
        if self.popen.returncode is None:
            try:
                _, status, usage = os.wait4(self.pid, 0)
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                self.maxrss_kib = usage.ru_maxrss
            except ChildProcessError:
                self.popen.wait()
        # Whatever it forked (virtiofsd's sandboxed child) is in its session: gone too.
        self.kill()
        os.close(self.pidfd)

    def output_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:]).strip()
        except OSError:
            return ""


def _pss_kib(pid: int) -> int:
    """PSS of PID and its descendants (shared guest RAM is counted once across them)."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                total += sum(_pss_kib(int(c)) for c in f.read().split())
    except (OSError, ValueError):
        pass
    return total


# --- the accelerator ---------------------------------------------------------------------------

def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def detect_accel(cache: KernelCache, kernel: Kernel, qemu_path: str) -> tuple[str, str]:
    """("kvm" | "tcg", why). KVM counts only if a guest really boots with it: some hosts
    offer a /dev/kvm that QEMU cannot use (nested or PVM-only). The verdict is cached per
    host boot, QEMU binary and guest kernel."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    st = os.stat(qemu_path)
    key = f"{_boot_id()} {qemu_path}:{st.st_size}:{int(st.st_mtime)} {kernel.release}"
    path = os.path.join(cache.root, "accel.json")
    verdicts: dict[str, dict[str, str]] = {}  # one per guest kernel (a matrix alternates)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        with open(path, encoding="utf-8") as f:
            verdicts = {k: v for k, v in json.load(f).items() if k.startswith(_boot_id())}
        if key in verdicts:
            return verdicts[key]["accel"], verdicts[key]["why"]
    try:
        result = run(["true"], kernel=kernel, accel="kvm", cwd="/", env={}, timeout=60,
                     cache=cache)
        verdict = ("kvm", "a probe guest booted with KVM") if result.returncode == 0 else (
            "tcg", f"the KVM probe guest's command failed ({result.returncode})")
    except VmSetupError:
        raise
    except VmError as e:
        first = str(e).splitlines()[0]
        verdict = ("tcg", f"KVM does not boot a guest here: {first}")
    if verdict[0] == "tcg":
        log.warning("lab vm: %s; using TCG emulation (slower, and its timings are emulated)",
                    verdict[1])
    os.makedirs(cache.root, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache.root, prefix=".part-")
    verdicts[key] = {"accel": verdict[0], "why": verdict[1]}
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(verdicts, f)
    os.rename(tmp, path)
    return verdict


# --- the control channel -----------------------------------------------------------------------

class _Frames:
    """Splits the control stream into (type, payload) frames (see init.c)."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= 5:
            (length,) = struct.unpack_from("<I", self.buf, 1)
            if len(self.buf) < 5 + length:
                break
            out.append((chr(self.buf[0]), bytes(self.buf[5:5 + length])))
            del self.buf[:5 + length]
        return out


def _frame(kind: str, payload: bytes = b"") -> bytes:
    return kind.encode() + struct.pack("<I", len(payload)) + payload


def _read_console(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    # Firmware's terminal escapes are noise in an error message.
    return "".join(c for c in text if c == "\n" or c == "\t" or c.isprintable()).rstrip()


_CRASH_MARKERS = ("Kernel panic", "lab-vm-init: fatal:", "BUG:", "Oops:", "double fault",
                  "general protection fault")


def _crash_line(console: str) -> str:
    for marker in _CRASH_MARKERS:
        for line in console.splitlines():
            if marker in line:
                return line
    return ""


def _crash_reason(console: str) -> str:
    line = _crash_line(console)
    return line.split("] ", 1)[-1].strip() if line else ""


def _console_tail(console: str, lines: int = CONSOLE_TAIL) -> str:
    """The last LINES of the console; a crash line printed before them (a panic followed by a
    long stack trace, or by a busy host's RCU stall reports) is kept at the top."""
    tail = console.splitlines()[-lines:]
    crash = _crash_line(console)
    if crash and crash not in tail:
        tail = [crash, "..."] + tail
    return "\n".join(tail)


# --- the run -----------------------------------------------------------------------------------

def run(argv: Sequence[str], *, kernel: str | Kernel | None = None,
        env: Mapping[str, str] | None = None, cwd: str | None = None,
        timeout: float | None = None, shares: Sequence[str] = (),
        visible: Sequence[str] = (), mem_mib: int = DEFAULT_MEM_MIB, cpus: int = DEFAULT_CPUS, accel: str = "auto",
        tcg_threads: str = "single", stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None, text: bool = False, check: bool = False,
        boot_timeout: float | None = None, quiet_kernel: bool = True,
        cache: KernelCache | None = None, nics: Sequence[qemu.Nic] = (),
        hostname: str = "lab-vm") -> VmResult:
    """Run ARGV in a VM booting KERNEL (a version such as "6.12", a release, or None for the
    newest cloud kernel), and return how it went.

    Like subprocess.run: ENV (default: ours) and CWD (default: ours) for the command; its
    stdout/stderr are captured, or streamed to the binary files STDOUT/STDERR; TEXT decodes
    them; CHECK raises VmCommandError on a non-zero exit; TIMEOUT (seconds, boot included)
    raises VmTimeout. SHARES are host directories the guest may write (created if missing,
    mounted at the same paths); everything else of the host is visible read-only, except
    /tmp, /run and /var, which are the guest's own tmpfs: there, CWD and the directories in
    VISIBLE (a checkout and its virtualenv in /tmp) stay visible, read-only. The command sees
    LAB_VM=1 and LAB_VM_ACCEL=kvm|tcg in its environment. NICS: virtio NICs wired to other
    guests (qemu.Nic), eth0 first, their driver loaded before the command runs; HOSTNAME:
    the guest's.
    """
    if not argv:
        raise UsageError("no command to run in the VM")
    if os.geteuid() != 0:
        raise UsageError("lab vm needs root (virtiofsd shares the host's files)")
    cache = cache or KernelCache()
    k = kernel if isinstance(kernel, Kernel) else cache.kernel(kernel)
    k.expose_config()  # kernels cached before this was done at install time
    qemu_path = qemu.find_qemu()
    daemon = qemu.find_virtiofsd()
    packages = [cache.guest_package(name) for name in GUEST_PACKAGES]
    init = guest.build_init(cache.root)

    if accel == "auto":
        accel, why = detect_accel(cache, k, qemu_path)
        log.info("lab vm: accelerator %s (%s)", accel, why)
    elif accel not in ("kvm", "tcg"):
        raise UsageError(f"unknown accelerator {accel!r} (auto, kvm or tcg)")
    if tcg_threads not in ("multi", "single"):
        raise UsageError(f"tcg_threads must be multi or single, not {tcg_threads!r}")

    share_objs = []
    for i, path in enumerate(shares):
        os.makedirs(path, exist_ok=True)
        share_objs.append(guest.Share(f"lab-rw{i}", os.path.realpath(path)))
    cwd = os.path.realpath(cwd or os.getcwd())
    keep = guest.kept_visible([cwd, *visible], share_objs)
    command_env = dict(os.environ if env is None else env)
    command_env.update(LAB_VM="1", LAB_VM_ACCEL=accel)

    t0 = time.monotonic()
    deadline = t0 + timeout if timeout is not None else None
    boot_deadline = t0 + (boot_timeout or BOOT_TIMEOUT[accel])
    rundir = tempfile.mkdtemp(prefix="lab-vm-")
    procs: list[_Process] = []
    listener = session = None
    try:
        job = os.path.join(rundir, "job")
        with open(job, "wb") as f:
            f.write(guest.encode_job(guest.setup_records(
                k, packages, share_objs, keep=keep, hostname=hostname,
                modules=guest.NIC_MODULES if nics else ()), list(argv), command_env, cwd))
        fs_sockets = _start_virtiofsd(daemon, share_objs, rundir, procs)
        ctl_path = os.path.join(rundir, "ctl.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(ctl_path)
        listener.listen(1)
        spec = qemu.MachineSpec(
            kernel_image=k.image, init=init, job=job, accel=accel, mem_mib=mem_mib, cpus=cpus,
            console_log=os.path.join(rundir, "console.log"), ctl_socket=ctl_path,
            fs_sockets=fs_sockets, tcg_threads=tcg_threads, quiet=quiet_kernel,
            name=f"lab-vm-{os.getpid()}", nics=nics)
        started = time.monotonic()
        vm = _Process("qemu", qemu.qemu_argv(spec, qemu_path), os.path.join(rundir, "qemu.log"))
        procs.append(vm)
        session = _Session(vm, procs, listener, spec.console_log, stdout, stderr)
        session.loop(boot_deadline, deadline)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            with contextlib.suppress(Exception):
                p.reap()
        for s in (session and session.conn, listener):
            if s is not None:
                s.close()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("lab vm: run directory kept: %s", rundir)
        else:
            shutil.rmtree(rundir, ignore_errors=True)

    uptime, _, release = session.ready.partition(" ")
    out = bytes(session.out) if stdout is None else None
    err = bytes(session.err) if stderr is None else None
    if text:
        out = out.decode("utf-8", "replace") if out is not None else None
        err = err.decode("utf-8", "replace") if err is not None else None
    result = VmResult(
        argv=list(argv), returncode=session.returncode, stdout=out, stderr=err, accel=accel,
        kernel=release, kernel_version=k.version, cpus=cpus, mem_mib=mem_mib,
        boot_seconds=round(session.ready_at - started, 3),
        guest_uptime_at_start=float(uptime),
        command_seconds=round(session.status_at - session.ready_at, 3),
        total_seconds=round(time.monotonic() - t0, 3), host_memory_kib=session.memory_kib,
        init_messages=session.messages)
    if check:
        result.check_returncode()
    return result


def _start_virtiofsd(daemon: qemu.Virtiofsd, shares: Sequence[guest.Share], rundir: str,
                     procs: list[_Process]) -> list[tuple[str, str]]:
    """One virtiofsd per share, the root (read-only) first; (tag, socket) once all listen."""
    os.makedirs(VIRTIOFSD_PID_DIR, mode=0o700, exist_ok=True)
    fs_sockets = []
    for tag, source in [(qemu.ROOT_TAG, "/")] + [(s.tag, s.path) for s in shares]:
        sock = os.path.join(rundir, f"{tag}.sock")
        procs.append(_Process(f"virtiofsd ({source})", qemu.virtiofsd_argv(daemon, sock, source),
                              os.path.join(rundir, f"{tag}.log"),
                              _virtiofsd_world(rundir if source == "/" else None)))
        fs_sockets.append((tag, sock))
    for (_, sock), proc in zip(fs_sockets, procs, strict=True):
        _wait_for_socket(sock, proc)
    return fs_sockets


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def _wait_for_socket(path: str, proc: _Process, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if not proc.alive():
            raise VmSetupError(f"{proc.name} exited before it listened:\n{proc.output_tail()}")
        if time.monotonic() > end:
            raise VmSetupError(f"{proc.name} did not create {path} within {timeout:.0f} s")
        time.sleep(0.005)


class _Session:
    """The host end of the control channel, from QEMU's start to the guest's status."""

    def __init__(self, vm: _Process, procs: list[_Process], listener: socket.socket,
                 console_log: str, stdout: BinaryIO | None, stderr: BinaryIO | None):
        self.vm, self.procs, self.listener, self.console_log = vm, procs, listener, console_log
        self.sinks = {"O": stdout, "E": stderr}
        self.out, self.err = bytearray(), bytearray()
        self.conn: socket.socket | None = None
        self.frames = _Frames()
        self.ready = ""
        self.ready_at = self.status_at = 0.0
        self.returncode: int | None = None
        self.messages: list[str] = []
        self.memory_kib = 0

    def _fail(self, message: str, cls=VmError) -> VmError:
        console = _read_console(self.console_log)
        reason = _crash_reason(console)
        return cls(message + (f": {reason}" if reason else ""), _console_tail(console))

    def loop(self, boot_deadline: float, deadline: float | None) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, "accept")
        for p in self.procs:
            sel.register(p.pidfd, selectors.EVENT_READ, p)
        try:
            while self.returncode is None:
                now = time.monotonic()
                limits = [d for d in (deadline, None if self.ready else boot_deadline) if d]
                wait = max(0.0, min(limits) - now) if limits else None
                events = sel.select(wait)
                # Checked on every turn: a guest that never stops writing must time out too.
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._fail("the VM timed out", VmTimeout)
                if not self.ready and time.monotonic() >= boot_deadline:
                    raise self._fail("the guest did not start the command in time", VmTimeout)
                for key, _ in events:
                    if key.data == "accept":
                        self.conn, _ = self.listener.accept()
                        sel.unregister(self.listener)
                        sel.register(self.conn, selectors.EVENT_READ, "ctl")
                    elif key.data == "ctl":
                        data = self.conn.recv(1 << 16)
                        if not data:
                            sel.unregister(self.conn)
                        for kind, payload in self.frames.feed(data):
                            self._handle(kind, payload)
                    elif isinstance(key.data, _Process):
                        self._exited(key.data, sel)
            self._wait_for_poweroff()
        finally:
            sel.close()

    def _exited(self, proc: _Process, sel: selectors.BaseSelector) -> None:
        sel.unregister(proc.pidfd)
        if proc is not self.vm:
            # virtiofsd leaves when QEMU goes away: then QEMU's exit is the story.
            if _readable(self.vm.pidfd, 1.0):
                sel.unregister(self.vm.pidfd)
                proc = self.vm
            else:
                raise VmError(f"{proc.name} exited during the run:\n{proc.output_tail()}")
        # QEMU is gone; take what it had already sent, then explain.
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.setblocking(False)
                while data := self.conn.recv(1 << 16):
                    for kind, payload in self.frames.feed(data):
                        self._handle(kind, payload)
        if self.returncode is not None:
            return
        qemu_said = proc.output_tail(5)
        where = "while running the command" if self.ready else "before the command started"
        raise self._fail(f"the VM stopped {where}"
                         + (f" (QEMU: {qemu_said.splitlines()[-1]})" if qemu_said else ""))

    def _handle(self, kind: str, payload: bytes) -> None:
        if kind in "OE":
            sink = self.sinks[kind]
            if sink is None:
                (self.out if kind == "O" else self.err).extend(payload)
            else:
                sink.write(payload)
                sink.flush()
        elif kind == "R":
            self.ready = payload.decode()
            self.ready_at = time.monotonic()
        elif kind == "L":
            message = payload.decode("utf-8", "replace")
            self.messages.append(message)
            log.warning("lab vm: guest init: %s", message)
        elif kind == "S":
            self.status_at = time.monotonic()
            self.memory_kib = sum(_pss_kib(p.pid) for p in self.procs)
            what, _, number = payload.decode().partition(" ")
            self.returncode = int(number) if what == "exit" else -int(number)
            self._ack()
        elif kind == "F":
            self._ack()
            raise self._fail(f"the guest's init failed: {payload.decode('utf-8', 'replace')}")
        else:
            raise VmError(f"unknown frame {kind!r} from the guest")

    def _ack(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.sendall(_frame("A"))

    def _wait_for_poweroff(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.vm.pidfd, selectors.EVENT_READ)
        try:
            if not sel.select(SHUTDOWN_GRACE):
                log.warning("lab vm: the guest did not power off within %.0f s; killed",
                            SHUTDOWN_GRACE)
        finally:
            sel.close()
