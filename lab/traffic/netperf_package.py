"""Where netperf comes from: the distribution's package, or Debian's, fetched and verified.

netperf is the tool behind the published figures the lab compares with (Cilium's host
routing and kube-proxy benchmarks, the BIG TCP and netkit numbers). Debian 13 and Ubuntu
(multiverse) offer it, and `make deps` installs it with apt where apt can (`netperf?` in
tools/debian-packages.txt). Debian 12 has it only in non-free (2.7.0), which a stock machine's
apt sources do not list; the lab must not change them. So, as `lab vm` does for kernels
(lab/vm/archive.py), it reads bookworm's non-free index itself: InRelease verified with gpgv
against Debian's archive keyring, the index against InRelease's SHA256, the .deb against the
index's. The package is unpacked (dpkg-deb -x) under the tool cache, never installed, and
runs on any glibc from Debian 12's 2.36 on (Ubuntu 24.04, Debian 13).

    python -m lab.traffic.netperf_package        # make deps: fetch if missing, say where

`find()` answers where netperf and netserver are: on PATH (both), else in the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError, UsageError
from lab.vm import archive

log = logging.getLogger("lab")

DEFAULT_CACHE = "/var/cache/lab/tools"
PACKAGE = "netperf"
SUITE, COMPONENT = "bookworm", "non-free"
PROGRAMS = ("netperf", "netserver")


def cache_dir() -> Path:
    return Path(os.environ.get("LAB_TOOLS_CACHE", DEFAULT_CACHE))


@dataclass(frozen=True)
class Netperf:
    """A netperf installation: the two programs and where they came from."""

    netperf: str
    netserver: str
    origin: str  # "PATH" or the package it was unpacked from, e.g. "netperf 2.7.0-0.1 ..."

    @property
    def version(self) -> str:
        out = subprocess.run([self.netperf, "-V"], capture_output=True, text=True, timeout=5)
        text = (out.stdout + out.stderr).strip()
        return text.splitlines()[-1].strip() if text else "unknown"


def _on_path() -> Netperf | None:
    paths = [shutil.which(p) for p in PROGRAMS]
    if all(paths):
        return Netperf(paths[0], paths[1], "PATH")
    return None


def _entries(root: Path) -> list[tuple[Path, dict]]:
    out = []
    for entry in sorted(root.glob(f"{PACKAGE}_*")) if root.is_dir() else ():
        try:
            meta = json.loads((entry / "package.json").read_text())
        except (OSError, ValueError):
            continue  # half-written or foreign: ignored
        out.append((entry, meta))
    return sorted(out, key=lambda e: archive.DebianVersion(e[1]["version"]), reverse=True)


def cached(root: Path | None = None) -> Netperf | None:
    for entry, meta in _entries(root or cache_dir()):
        bins = [entry / "usr" / "bin" / p for p in PROGRAMS]
        if all(os.access(b, os.X_OK) for b in bins):
            return Netperf(str(bins[0]), str(bins[1]),
                           f"{meta['package']} {meta['version']} ({meta['suite']}/"
                           f"{meta['component']}, {meta['mirror']}) in {entry}")
    return None


def find() -> Netperf | None:
    """netperf and netserver: the distribution's on PATH, else the lab's cached copy."""
    return _on_path() or cached()


def capability():
    """`lab doctor`'s netperf line."""
    from lab.features import Capability

    found = find()
    if found is None:
        return Capability("netperf", False, "netperf not found: Debian 12 has it only in "
                                            "non-free; `make deps` fetches it verified from "
                                            "deb.debian.org (python -m "
                                            "lab.traffic.netperf_package says why it could not)")
    try:
        version = found.version
    except (OSError, subprocess.TimeoutExpired) as e:
        return Capability("netperf", False, f"{found.netperf} does not run: {e}")
    where = "" if found.origin == "PATH" else f" (Debian's package, in {cache_dir()})"
    return Capability("netperf", True, f"{version}{where}")


def require() -> Netperf:
    found = find()
    if found is None:
        raise UsageError("netperf is not installed: Debian 12 has it only in non-free; "
                         "`make deps` (python -m lab.traffic.netperf_package) fetches it "
                         "verified from deb.debian.org without changing the apt sources")
    return found


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def fetch(root: Path | None = None, arch: archive.Archive | None = None) -> Netperf:
    """Debian's netperf, downloaded, verified and unpacked under ROOT (once)."""
    root = root or cache_dir()
    arch = arch or archive.Archive(str(root / "index"), suite=SUITE, component=COMPONENT)
    if shutil.which("dpkg-deb") is None:
        raise UsageError("dpkg-deb is missing: install dpkg")
    pkg = arch.index().newest(PACKAGE)
    with _locked(root):
        final = root / f"{PACKAGE}_{pkg.version}"
        if not final.is_dir():
            log.warning("lab: fetching %s %s from %s %s/%s (verified with gpgv)", PACKAGE,
                        pkg.version, arch.mirror, arch.suite, arch.component)
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=".part-"))
            try:
                deb = arch.download(pkg, str(tmp))
                subprocess.run(["dpkg-deb", "-x", deb, str(tmp / "root")], check=True)
                os.unlink(deb)
                (tmp / "root" / "package.json").write_text(json.dumps({
                    "package": pkg.name, "version": pkg.version, "sha256": pkg.sha256,
                    "suite": arch.suite, "component": arch.component,
                    "mirror": arch.mirror}, indent=2))
                os.chmod(tmp / "root", 0o755)
                os.rename(tmp / "root", final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    found = cached(root)
    if found is None:
        raise LabError(f"{final} holds no netperf and netserver after unpacking {pkg.filename}")
    out = subprocess.run([found.netperf, "-V"], capture_output=True, text=True)
    if out.returncode != 0:
        raise LabError(f"{found.netperf} does not run here: {out.stderr.strip()[:200]}")
    return found


def main() -> int:
    """`make deps`: netperf from PATH or the cache, else fetched; exit status 1 if neither
    (the Makefile reports it and goes on: lab doctor repeats why)."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    found = find()
    if found is None:
        try:
            found = fetch()
        except (LabError, OSError, subprocess.CalledProcessError) as e:
            print(f"lab: netperf unavailable ({e}); the netperf steps will be skipped",
                  file=sys.stderr)
            return 1
    print(f"lab: netperf: {found.netperf} ({found.origin})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
