"""Command lines for QEMU and virtiofsd, and which of them this host has.

Pure functions of a MachineSpec, so they are tested without booting anything. Choices that
are not obvious:
- `-cpu qemu64,-cx16` under TCG: QEMU 7.2's default CPU model double-faults on a share of
  boots; without CMPXCHG16B the kernel takes another path and boots every time.
- TCG runs all vCPUs in one host thread by default. With a thread per vCPU (MTTCG), a vCPU
  can keep running code another one just patched (the kernel's int3-based text_poke of static
  keys), and the guest dies in an int3 Oops: 2 boots in 100 here, and datapath tests flip
  static keys all the time (tcx, clsact, BPF attach).
- The kernel is booted through its PVH entry point (an uncompressed ELF) when we have one:
  no real-mode setup, no decompression under emulation.
- Guest RAM is a shared memfd: vhost-user (virtiofsd) must map it.
- One virtio serial port carries the command's output and status (see init.c), the serial
  console carries only the kernel's log, to a file kept for error messages.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence

from lab.errors import UsageError

QEMU = "qemu-system-x86_64"
# virtiofsd in QEMU <= 7.2 (C, Debian 12's qemu-system-common) and the Rust one packaged on
# its own since (Ubuntu 24.04, Debian 13: package virtiofsd). Their options differ.
VIRTIOFSD_C = "/usr/lib/qemu/virtiofsd"
VIRTIOFSD_RUST = ("/usr/libexec/virtiofsd", "/usr/lib/virtiofsd")
ROOT_TAG = "lab-root"
CTL_PORT = "lab.ctl"
# Cheaper boots, none of which changes what the lab tests: no crypto self-tests, no
# speculation mitigations (a throwaway guest), no keyboard controller probing, a trusted TSC.
BOOT_PARAMS = ("cryptomgr.notests", "mitigations=off", "audit=0", "i8042.nokbd", "i8042.noaux",
               "i8042.nopnp", "tsc=reliable", "no_timer_check", "8250.nr_uarts=1")


@dataclasses.dataclass(frozen=True)
class Virtiofsd:
    path: str
    flavour: str  # "c" or "rust"


@dataclasses.dataclass(frozen=True)
class Nic:
    """A virtio NIC whose wire is a Unix datagram socket: frames the guest sends go to PEER
    (another guest's SOCKET), frames sent to SOCKET arrive. Two guests with each other's
    sockets are cabled back to back, with nothing of the host's network in between."""

    socket: str
    peer: str
    mac: str


@dataclasses.dataclass
class MachineSpec:
    """Everything the QEMU command line depends on."""

    kernel_image: str
    init: str
    job: str
    accel: str  # "kvm" or "tcg"
    mem_mib: int
    cpus: int
    console_log: str
    ctl_socket: str
    fs_sockets: Sequence[tuple[str, str]]  # (tag, vhost-user socket), the root share first
    tcg_threads: str = "single"  # or "multi": see the module's docstring
    quiet: bool = True
    extra_cmdline: Sequence[str] = ()
    name: str = "lab-vm"
    nics: Sequence[Nic] = ()


def find_qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise UsageError(f"{QEMU} is missing: install qemu-system-x86 "
                         "(tools/debian-packages-vm.txt)")
    return path


def find_virtiofsd() -> Virtiofsd:
    if os.access(VIRTIOFSD_C, os.X_OK):
        return Virtiofsd(VIRTIOFSD_C, "c")
    for path in VIRTIOFSD_RUST:
        if os.access(path, os.X_OK):
            return Virtiofsd(path, "rust")
    raise UsageError("virtiofsd is missing: install qemu-system-common (Debian 12) or "
                     "virtiofsd (Ubuntu 24.04, Debian 13)")


def kernel_cmdline(spec: MachineSpec) -> str:
    params = ["console=ttyS0", "panic=-1", "rootfstype=virtiofs", f"root={ROOT_TAG}", "ro",
              *BOOT_PARAMS]
    if spec.quiet:
        params.append("quiet")
    params += list(spec.extra_cmdline)
    # Everything after "--" is passed to init as its arguments.
    params += [f"init={spec.init}", "--", spec.job]
    for p in params:
        if any(c.isspace() for c in p) or '"' in p:
            raise UsageError(f"kernel command line parameter {p!r} contains a space or quote")
    return " ".join(params)


def qemu_argv(spec: MachineSpec, qemu: str = QEMU) -> list[str]:
    if spec.accel == "kvm":
        accel = ["-accel", "kvm", "-cpu", "host"]
    elif spec.accel == "tcg":
        accel = ["-accel", f"tcg,thread={spec.tcg_threads}", "-cpu", "qemu64,-cx16"]
    else:
        raise ValueError(f"unknown accelerator {spec.accel!r}")
    argv = [
        qemu, "-name", spec.name,
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        *accel,
        "-machine", "q35,memory-backend=mem",
        "-object", f"memory-backend-memfd,id=mem,size={spec.mem_mib}M,share=on",
        "-m", f"{spec.mem_mib}M",
        "-smp", str(spec.cpus),
        "-kernel", spec.kernel_image,
        "-append", kernel_cmdline(spec),
        "-chardev", f"file,id=console,path={spec.console_log}",
        "-serial", "chardev:console",
        # ioeventfd=off: a port write is handled before the guest's next instruction, so
        # nothing is still queued when the guest powers off (it waits for our ack anyway).
        "-device", "virtio-serial-pci,ioeventfd=off",
        "-chardev", f"socket,id=ctl,path={spec.ctl_socket}",
        "-device", f"virtserialport,chardev=ctl,name={CTL_PORT}",
    ]
    for i, (tag, sock) in enumerate(spec.fs_sockets):
        argv += ["-chardev", f"socket,id=fs{i},path={sock}",
                 "-device", f"vhost-user-fs-pci,chardev=fs{i},tag={tag}"]
    for i, nic in enumerate(spec.nics):
        for path in (nic.socket, nic.peer):
            if "," in path:
                raise UsageError(f"a NIC's socket path cannot contain a comma: {path}")
        argv += ["-netdev", f"dgram,id=net{i},local.type=unix,local.path={nic.socket},"
                            f"remote.type=unix,remote.path={nic.peer}",
                 "-device", f"virtio-net-pci,netdev=net{i},mac={nic.mac}"]
    return argv


def virtiofsd_argv(daemon: Virtiofsd, socket: str, source: str) -> list[str]:
    """virtiofsd sharing SOURCE. The root share runs chrooted (pivot_root into `/` itself is
    refused); read-only is enforced by the mount namespace the runner starts it in."""
    sandbox = "chroot" if os.path.realpath(source) == "/" else "namespace"
    if daemon.flavour == "c":
        return [daemon.path, f"--socket-path={socket}", "-o", f"source={source}",
                "-o", "cache=auto", "-o", f"sandbox={sandbox}", "-o", "announce_submounts",
                "-o", "no_posix_lock", "-o", "no_flock"]
    return [daemon.path, "--socket-path", socket, "--shared-dir", source, "--cache", "auto",
            "--sandbox", sandbox, "--announce-submounts"]
