"""`lab vm`: run a command in a kernel VM, or list the kernels it can boot."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from lab.digits import int_arg, real_arg
from lab.errors import UsageError
from lab.vm import archive, kernels, runner


def _mem_mib(text: str) -> int:
    m = re.fullmatch(r"([1-9][0-9]{0,6})([MmGg]?)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M, 2G)")
    return int(m[1]) * (1024 if m[2] in ("G", "g") else 1)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "vm", help="run a command in a VM booting another kernel",
        description="Boot a Debian cloud kernel in QEMU with the host's files visible "
                    "(read-only; /tmp, /run and /var are the guest's own), run COMMAND in it, "
                    "and exit with its exit code.",
        epilog="Exit status: the command's (128+N if signal N killed it), 124 if --timeout "
               "expired, 125 if the VM failed or a download failed verification (it is "
               "deleted, never booted), 2 for a kernel version no suite offers (the available "
               "ones are listed). Example: lab vm --kernel 7.3 -- ip link add type netkit")
    p.add_argument("--kernel", metavar="VERSION",
                   help="kernel release or version prefix (e.g. 6.12, 7.3, 7.2.12): the newest "
                        "cloud kernel that answers it in any of " + ", ".join(archive.SUITES)
                        + "; default: the newest in " + archive.SUITE)
    p.add_argument("--suite", metavar="SUITE",
                   help="look for the kernel in this suite only (one of "
                        + ", ".join(archive.SUITES) + ")")
    p.add_argument("--allow-expired-index", action="store_true",
                   help="use a suite's index past its Valid-Until (a mirror that stopped "
                        "updating); its signature is still verified")
    p.add_argument("--mem", type=_mem_mib, default=runner.DEFAULT_MEM_MIB, metavar="SIZE",
                   help=f"guest memory (default {runner.DEFAULT_MEM_MIB}M)")
    p.add_argument("--cpus", type=int_arg(1, 64), default=runner.DEFAULT_CPUS,
                   help=f"guest CPUs (default {runner.DEFAULT_CPUS})")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help="auto: KVM if a guest really boots with it, else TCG emulation")
    p.add_argument("--tcg-threads", choices=("single", "multi"), default="single",
                   help="under emulation, one host thread for all vCPUs (default) or one per "
                        "vCPU (parallel work runs faster, but QEMU 7.2 crashes about 2%% of "
                        "boots)")
    p.add_argument("--rw", action="append", default=[], metavar="DIR",
                   help="share host directory DIR writable at the same path (repeatable)")
    p.add_argument("--timeout", type=real_arg(0.1), metavar="SECONDS",
                   help="give up after this long, boot included")
    p.add_argument("--list", action="store_true",
                   help="list cached kernels and those available, with their suite")
    p.add_argument("--fetch", action="store_true",
                   help="only download the kernel (and guest tools) into the cache")
    p.add_argument("--refresh", action="store_true",
                   help="fetch the package index even if the cached one is recent")
    p.add_argument("--report", action="store_true",
                   help="print how the VM ran (accelerator, kernel, times, memory) as JSON on "
                        "stderr")
    p.add_argument("--console", action="store_true",
                   help="show the kernel's boot messages in error reports (not 'quiet')")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    p.set_defaults(handler=main)


def _list(cache: kernels.KernelCache, refresh: bool, suite: str | None) -> int:
    cached = {k.release: k for k in cache.cached()}
    offers, errors = cache.offers([suite] if suite else None, refresh)
    for name, why in errors.items():
        print(f"lab vm: {name}: {why}", file=sys.stderr)
    offers.sort(key=lambda o: archive.DebianVersion(o.version), reverse=True)
    print(f"{'RELEASE':36} {'VERSION':24} {'SUITE':20} WHERE")
    seen = set()
    for o in offers:
        seen.add(o.release)
        k = cached.get(o.release)
        where = "cached" if k and k.version == o.version else \
            f"{o.size >> 20} MB{', split packages' if o.split else ''}"
        print(f"{o.release:36} {o.version:24} {o.suite:20} {where}")
    for release, k in cached.items():
        if release not in seen and (suite is None or k.suite == suite):
            print(f"{release:36} {k.version:24} {k.suite or '?':20} cached")
    print(f"cache: {cache.root}")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.allow_expired_index:
        os.environ["LAB_VM_ALLOW_EXPIRED_INDEX"] = "1"  # also for `lab run` inside the guest
    cache = kernels.KernelCache()
    if args.list:
        return _list(cache, args.refresh, args.suite)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.fetch:
        k = cache.kernel(args.kernel, refresh=args.refresh, suite=args.suite)
        for name in kernels.GUEST_PACKAGES:
            cache.guest_package(name)
        print(f"{k.release} {k.version} {k.suite} {k.path}")
        return 0
    if not command:
        raise UsageError("lab vm: no command given (lab vm [options] -- COMMAND...)")
    k = cache.kernel(args.kernel, refresh=args.refresh, suite=args.suite)
    # SIGTERM unwinds like Ctrl-C (lab.cli), so the VM is torn down either way.
    result = runner.run(command, kernel=k, mem_mib=args.mem, cpus=args.cpus,
                        accel=args.accel, tcg_threads=args.tcg_threads, shares=args.rw,
                        timeout=args.timeout, stdout=sys.stdout.buffer,
                        stderr=sys.stderr.buffer, quiet_kernel=not args.console, cache=cache)
    if args.report:
        print(json.dumps(result.summary(), indent=2), file=sys.stderr)
    # As a shell reports a command killed by a signal.
    return result.returncode if result.returncode >= 0 else 128 - result.returncode
