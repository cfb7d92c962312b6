"""The VM runner's command lines, guest set-up and control protocol, without booting anything."""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import struct

import pytest

from lab import commands as cli
from lab.errors import UsageError
from lab.vm import guest, kernels, qemu, runner


def spec(**kw) -> qemu.MachineSpec:
    base = dict(kernel_image="/cache/kernels/R/vmlinux", init="/cache/init/x/lab-vm-init",
                job="/tmp/lab-vm-1/job", accel="tcg", mem_mib=512, cpus=2,
                console_log="/tmp/lab-vm-1/console.log", ctl_socket="/tmp/lab-vm-1/ctl.sock",
                fs_sockets=[("lab-root", "/tmp/lab-vm-1/root.sock"),
                            ("lab-rw0", "/tmp/lab-vm-1/rw0.sock")])
    base.update(kw)
    return qemu.MachineSpec(**base)


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == option]


# --- QEMU --------------------------------------------------------------------------------------

def test_tcg_uses_the_cpu_model_that_boots_reliably():
    argv = qemu.qemu_argv(spec(accel="tcg"))
    assert option_values(argv, "-accel") == ["tcg,thread=single"]
    assert option_values(argv, "-cpu") == ["qemu64,-cx16"]
    argv = qemu.qemu_argv(spec(accel="tcg", tcg_threads="multi"))
    assert option_values(argv, "-accel") == ["tcg,thread=multi"]


def test_kvm_uses_the_host_cpu():
    argv = qemu.qemu_argv(spec(accel="kvm"))
    assert option_values(argv, "-accel") == ["kvm"]
    assert option_values(argv, "-cpu") == ["host"]


def test_unknown_accelerator():
    with pytest.raises(ValueError):
        qemu.qemu_argv(spec(accel="hvf"))


def test_guest_memory_is_a_shared_memfd_of_the_asked_size():
    argv = qemu.qemu_argv(spec(mem_mib=768, cpus=3))
    assert option_values(argv, "-object") == [
        "memory-backend-memfd,id=mem,size=768M,share=on"]
    assert option_values(argv, "-m") == ["768M"]
    assert option_values(argv, "-smp") == ["3"]
    assert "memory-backend=mem" in option_values(argv, "-machine")[0]


def test_nothing_but_what_we_ask_for():
    argv = qemu.qemu_argv(spec())
    assert {"-nodefaults", "-no-user-config", "-no-reboot"} <= set(argv)
    assert option_values(argv, "-display") == ["none"]
    assert "-netdev" not in argv and "-monitor" not in argv


def test_one_vhost_user_fs_device_per_share_in_order():
    argv = qemu.qemu_argv(spec())
    assert option_values(argv, "-chardev")[2:] == [
        "socket,id=fs0,path=/tmp/lab-vm-1/root.sock", "socket,id=fs1,path=/tmp/lab-vm-1/rw0.sock"]
    devices = [d for d in option_values(argv, "-device") if d.startswith("vhost-user-fs-pci")]
    assert devices == ["vhost-user-fs-pci,chardev=fs0,tag=lab-root",
                       "vhost-user-fs-pci,chardev=fs1,tag=lab-rw0"]


def test_control_port_and_console():
    argv = qemu.qemu_argv(spec())
    chardevs = option_values(argv, "-chardev")
    assert "file,id=console,path=/tmp/lab-vm-1/console.log" in chardevs
    assert "socket,id=ctl,path=/tmp/lab-vm-1/ctl.sock" in chardevs
    assert option_values(argv, "-serial") == ["chardev:console"]
    assert f"virtserialport,chardev=ctl,name={qemu.CTL_PORT}" in option_values(argv, "-device")


def test_kernel_command_line():
    argv = qemu.qemu_argv(spec())
    assert option_values(argv, "-kernel") == ["/cache/kernels/R/vmlinux"]
    params = option_values(argv, "-append")[0].split()
    assert {"rootfstype=virtiofs", f"root={qemu.ROOT_TAG}", "ro", "console=ttyS0",
            "panic=-1", "quiet"} <= set(params)
    # init and its job come last: everything after "--" is init's argv.
    assert params[-3:] == ["init=/cache/init/x/lab-vm-init", "--", "/tmp/lab-vm-1/job"]
    loud = option_values(qemu.qemu_argv(spec(quiet=False)), "-append")[0].split()
    assert "quiet" not in loud


def test_kernel_command_line_refuses_spaces():
    with pytest.raises(UsageError, match="space"):
        qemu.kernel_cmdline(spec(job="/tmp/a dir/job"))


# --- virtiofsd ---------------------------------------------------------------------------------

def test_virtiofsd_c_flavour():
    d = qemu.Virtiofsd("/usr/lib/qemu/virtiofsd", "c")
    argv = qemu.virtiofsd_argv(d, "/run/x.sock", "/")
    assert argv[0] == "/usr/lib/qemu/virtiofsd"
    assert "--socket-path=/run/x.sock" in argv
    opts = option_values(argv, "-o")
    assert {"source=/", "sandbox=chroot", "announce_submounts"} <= set(opts)
    # pivot_root works only into a directory below /.
    assert "sandbox=namespace" in option_values(qemu.virtiofsd_argv(d, "/s", "/srv/out"), "-o")


def test_virtiofsd_rust_flavour():
    d = qemu.Virtiofsd("/usr/libexec/virtiofsd", "rust")
    argv = qemu.virtiofsd_argv(d, "/run/x.sock", "/srv/out")
    assert option_values(argv, "--shared-dir") == ["/srv/out"]
    assert option_values(argv, "--socket-path") == ["/run/x.sock"]
    assert option_values(argv, "--sandbox") == ["namespace"]
    assert option_values(qemu.virtiofsd_argv(d, "/s", "/"), "--sandbox") == ["chroot"]


# --- the guest's set-up ------------------------------------------------------------------------

@pytest.fixture
def kernel(tmp_path) -> kernels.Kernel:
    release = "6.12.95+deb12-cloud-amd64"
    k = kernels.Kernel(release, "6.12.95-1~bpo12+1", str(tmp_path / "var/cache/kernels" / release))
    os.makedirs(k.modules)
    with open(os.path.join(k.modules, "modules.dep"), "w") as f:
        f.write("kernel/fs/overlayfs/overlay.ko.xz:\nkernel/net/sched/sch_netem.ko.xz:\n")
    return k


@pytest.fixture
def iproute2(tmp_path) -> kernels.GuestPackage:
    root = tmp_path / "var/cache/packages/iproute2_6.15"
    for rel in ("bin/ip", "sbin/tc", "usr/share/doc/iproute2/README"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    for rel in ("bin/ip", "sbin/tc"):
        os.chmod(root / rel, 0o755)
    return kernels.GuestPackage("iproute2", "6.15.0-1", str(root))


def _mounts(records):
    return [r for r in records if r[0] == "mount"]


def _index(records, pred):
    return next(i for i, r in enumerate(records) if pred(r))


def test_setup_mounts_the_essentials(kernel, iproute2):
    records = guest.setup_records(kernel, [iproute2], [guest.Share("lab-rw0", "/tmp/out")])
    targets = {r[3]: r for r in _mounts(records)}
    for target, fstype in [("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "devtmpfs"),
                           ("/sys/fs/bpf", "bpf"), ("/tmp", "tmpfs"), ("/run", "tmpfs"),
                           ("/var", "tmpfs"), ("/tmp/out", "virtiofs")]:
        assert targets[target][1] == fstype, target
    assert targets["/tmp/out"][2] == "lab-rw0"
    assert ("hostname", "lab-vm") in records


def test_setup_order(kernel, iproute2):
    records = guest.setup_records(kernel, [iproute2], [guest.Share("lab-rw0", "/tmp/out")])
    var = _index(records, lambda r: r[:4] == ("mount", "tmpfs", "tmpfs", "/var"))
    tmp = _index(records, lambda r: r[:4] == ("mount", "tmpfs", "tmpfs", "/tmp"))
    run = _index(records, lambda r: r[:4] == ("mount", "tmpfs", "tmpfs", "/run"))
    share = _index(records, lambda r: r[:2] == ("mount", "virtiofs"))
    binds = [i for i, r in enumerate(records) if r[0] == "mount" and "bind" in r[5]]
    assert binds
    # Bind sources live in the cache: bound before tmpfs hides them; the modules view and the
    # package binds land on /run's tmpfs or on the root, so /run comes first.
    assert all(run < i < var and i < tmp for i in binds)
    assert share > max(var, tmp)
    assert _index(records, lambda r: r[:4] == ("mount", "proc", "proc", "/proc")) == 0


def test_a_kept_directory_is_bound_aside_before_the_tmpfs_and_back_after(kernel, iproute2):
    records = guest.setup_records(kernel, [iproute2], [], keep=["/tmp/ci/repo", "/run/x"])
    run = _index(records, lambda r: r[:4] == ("mount", "tmpfs", "tmpfs", "/run"))
    last_tmpfs = max(i for i, r in enumerate(records) if r[:2] == ("mount", "tmpfs")
                     and r[3] in guest.TMPFS_DIRS)
    for n, path in enumerate(["/tmp/ci/repo", "/run/x"]):
        hold = f"{guest.KEEP_HOLD}/{n}"
        aside = records.index(("mount", "", path, hold, "", "bind,ro,mkdir"))
        back = records.index(("mount", "", hold, path, "", "bind,ro,mkdir"))
        assert aside < run and back > last_tmpfs
    # /dev/shm, where they are held, is there before the first of them.
    shm = _index(records, lambda r: r[:4] == ("mount", "tmpfs", "tmpfs", "/dev/shm"))
    assert shm < records.index(("mount", "", "/tmp/ci/repo", f"{guest.KEEP_HOLD}/0", "",
                                "bind,ro,mkdir"))


def test_setup_binds_only_programs_the_host_has(kernel, iproute2, monkeypatch, tmp_path):
    # A merged-/usr host that has ip but not tc.
    real_realpath, real_isfile = os.path.realpath, os.path.isfile
    merged = {"/bin/ip": "/usr/bin/ip", "/sbin/tc": "/usr/sbin/tc"}
    monkeypatch.setattr(os.path, "realpath", lambda p: merged.get(p) or real_realpath(p))
    monkeypatch.setattr(os.path, "isfile", lambda p: p == "/usr/bin/ip" or (
        p.startswith(str(tmp_path)) and real_isfile(p)))
    records = guest.setup_records(kernel, [iproute2], [])
    binds = [r for r in _mounts(records) if "bind" in r[5] and r[3].startswith("/usr/")]
    assert [(r[2], r[3]) for r in binds] == [(iproute2.root + "/bin/ip", "/usr/bin/ip")]
    assert "ro" in binds[0][5].split(",")


def test_modules_on_a_host_with_lib_modules(kernel, tmp_path):
    lib = tmp_path / "usr/lib"
    (lib / "modules").mkdir(parents=True)
    records = guest.setup_records(kernel, [], [], host_lib=str(lib))
    assert ("mount", "tmpfs", "tmpfs", str(lib / "modules"), "mode=0755", "") in records
    assert ("symlink", f"{guest.MODULES_VIEW}/{kernel.release}",
            str(lib / "modules" / kernel.release)) in records
    assert not any(r[0] == "insmod" for r in records)


def test_modules_on_a_host_without_lib_modules(kernel, tmp_path):
    lib = tmp_path / "usr/lib"
    lib.mkdir(parents=True)
    records = guest.setup_records(kernel, [], [], host_lib=str(lib))
    insmod = _index(records, lambda r: r[0] == "insmod")
    overlay = _index(records, lambda r: r[:2] == ("mount", "overlay"))
    assert records[insmod] == ("insmod", os.path.join(kernel.modules,
                                                      "kernel/fs/overlayfs/overlay.ko.xz"))
    assert insmod < overlay
    assert records[overlay][3:] == (str(lib), f"lowerdir={guest.LIB_TOP}:{lib}", "ro")
    assert ("symlink", guest.MODULES_VIEW, f"{guest.LIB_TOP}/modules") in records


def test_hidden_by_tmpfs():
    assert guest.hidden_by_tmpfs("/tmp/x")
    assert guest.hidden_by_tmpfs("/var/lib/y")
    assert guest.hidden_by_tmpfs("/run")
    assert not guest.hidden_by_tmpfs("/work/repo")
    assert not guest.hidden_by_tmpfs("/tmpfoo")
    assert not guest.hidden_by_tmpfs("/tmp/out/sub", [guest.Share("t", "/tmp/out")])


def test_kept_visible_are_the_hidden_paths_once_each():
    kept = guest.kept_visible(["/work/repo", "/tmp/ci/repo/.venv", "/tmp/ci/repo", "/run/x",
                               "/tmp/out/sub"], [guest.Share("t", "/tmp/out")])
    assert kept == ["/run/x", "/tmp/ci/repo"]


def test_job_encoding_round_trip():
    setup = [("mount", "tmpfs", "tmpfs", "/tmp", "mode=1777", "nosuid"), ("hostname", "h")]
    data = guest.encode_job(setup, ["sh", "-c", "echo 'a b'\n"], {"A": "1", "B": "x=y"}, "/w")
    assert data.endswith(b"\0")
    assert guest.decode_job(data) == [
        guest.JOB_MAGIC, "mount", "tmpfs", "tmpfs", "/tmp", "mode=1777", "nosuid",
        "hostname", "h", "cwd", "/w", "env", "A=1", "env", "B=x=y",
        "arg", "sh", "arg", "-c", "arg", "echo 'a b'\n"]


def test_job_encoding_refuses_what_cannot_pass():
    with pytest.raises(UsageError, match="NUL"):
        guest.encode_job([], ["echo", "a\0b"], {}, "/")
    with pytest.raises(UsageError, match="environment variable name"):
        guest.encode_job([], ["true"], {"A=B": "1"}, "/")


def test_init_builds(tmp_path):
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler")
    binary = guest.build_init(str(tmp_path))
    assert os.access(binary, os.X_OK)
    with open(binary, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    assert guest.build_init(str(tmp_path)) == binary  # cached by source hash


# --- kernel image ------------------------------------------------------------------------------

def _bzimage(payload: bytes, setup_sects: int = 3) -> bytes:
    image = bytearray((setup_sects + 1) * 512 + 64)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<II", image, 0x248, 64, len(payload))
    return bytes(image) + payload + b"trailer"


@pytest.mark.parametrize("compress", [lambda d: lzma.compress(d, format=lzma.FORMAT_XZ),
                                      gzip.compress])
def test_extract_vmlinux(compress):
    elf = b"\x7fELF" + bytes(range(256)) * 4
    assert kernels.extract_vmlinux(_bzimage(compress(elf))) == elf


def test_extract_vmlinux_gives_up_cleanly():
    assert kernels.extract_vmlinux(b"\0" * 4096) is None  # not a bzImage
    assert kernels.extract_vmlinux(_bzimage(b"BZh9 something else")) is None
    assert kernels.extract_vmlinux(_bzimage(gzip.compress(b"not an ELF"))) is None


@pytest.mark.parametrize("release,wanted,ok", [
    ("6.12.95+deb12-cloud-amd64", None, True),
    ("6.12.95+deb12-cloud-amd64", "6.12", True),
    ("6.12.95+deb12-cloud-amd64", "6.12.", True),
    ("6.12.95+deb12-cloud-amd64", "6.12.95", True),
    ("6.12.95+deb12-cloud-amd64", "6.12.95+deb12-cloud-amd64", True),
    ("6.12.95+deb12-cloud-amd64", "6.12.9", False),
    ("6.12.95+deb12-cloud-amd64", "6.1", False),
])
def test_kernel_matches(release, wanted, ok):
    assert kernels.matches(release, wanted) is ok


# --- the control protocol ----------------------------------------------------------------------

def test_frames_survive_any_split():
    stream = (runner._frame("R", b"2.5 6.12.95") + runner._frame("O", b"x" * 70000)
              + runner._frame("E", b"") + runner._frame("S", b"exit 3"))
    for step in (1, 7, 4096, len(stream)):
        frames = runner._Frames()
        got = []
        for i in range(0, len(stream), step):
            got += frames.feed(stream[i:i + step])
        assert got == [("R", b"2.5 6.12.95"), ("O", b"x" * 70000), ("E", b""),
                       ("S", b"exit 3")]


def test_crash_reason_picks_the_panic_line():
    console = ("[    1.0] ok\n[    2.1] Kernel panic - not syncing: VFS: Unable to mount root\n"
               "[    2.2] ---[ end Kernel panic ]---\n")
    assert runner._crash_reason(console) == "Kernel panic - not syncing: VFS: Unable to mount root"
    assert runner._crash_reason("[ 1.0] all fine\n") == ""


def test_console_tail_keeps_a_panic_line_that_scrolled_out():
    # The panic line comes before the stack trace; a long trace must not push it out.
    trace = "".join(f"[    3.{i:03d}]  frame_{i}+0x10/0x20\n" for i in range(200))
    console = "[    3.0] Kernel panic - not syncing: sysrq triggered crash\n" + trace
    tail = runner._console_tail(console, lines=40).splitlines()
    assert tail[0] == "[    3.0] Kernel panic - not syncing: sysrq triggered crash"
    assert tail[1] == "..." and tail[-1].endswith("frame_199+0x10/0x20") and len(tail) == 42
    quiet = "[ 1.0] a\n[ 1.1] b\n"
    assert runner._console_tail(quiet, lines=40) == quiet.rstrip()


# --- the command -------------------------------------------------------------------------------

def test_cli_parses_sizes_and_the_command():
    args = cli.build_parser().parse_args(["vm", "--mem", "2G", "--cpus", "1", "--rw", "/o",
                                          "--", "ip", "-V"])
    assert (args.mem, args.cpus, args.rw, args.command) == (2048, 1, ["/o"], ["--", "ip", "-V"])
    assert cli.build_parser().parse_args(["vm", "--mem", "300M", "true"]).mem == 300


def test_cli_without_a_command_is_a_usage_error(capsys):
    assert cli.main(["vm"]) == 2
    assert "no command" in capsys.readouterr().err


def test_cli_rejects_a_bad_size():
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(["vm", "--mem", "lots", "true"])
    assert e.value.code == 2


def test_the_kvm_verdict_is_kept_per_guest_kernel(tmp_path, monkeypatch):
    """A matrix alternates kernels: each one's verdict is probed once per host boot, not again
    every time the other kernel ran in between."""
    probes = []

    def fake_run(argv, *, kernel, **kw):
        probes.append(kernel.release)
        return type("R", (), {"returncode": 1})()

    monkeypatch.setattr(runner, "run", fake_run)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: p == "/dev/kvm" or real_access(p, m))
    cache = type("C", (), {"root": str(tmp_path)})()
    k612, k73 = (type("K", (), {"release": r})() for r in ("6.12.95", "7.3.4"))
    qemu_bin = shutil.which("true")
    for k in (k612, k73, k612, k73, k612):
        assert runner.detect_accel(cache, k, qemu_bin)[0] == "tcg"
    assert probes == ["6.12.95", "7.3.4"]


def test_precompile_leaves_bytecode_for_a_read_only_guest(tmp_path, monkeypatch):
    # Whatever this process says about writing bytecode: the guest cannot write it.
    monkeypatch.setattr("sys.dont_write_bytecode", True)
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "mod.py").write_text("X = 1\n")
    (pkg / "sub" / "deep.py").write_text("Y = 2\n")
    guest.precompile(pkg, tmp_path / "missing")
    import importlib.util
    for src in (pkg / "mod.py", pkg / "sub" / "deep.py"):
        assert os.path.exists(importlib.util.cache_from_source(str(src)))
