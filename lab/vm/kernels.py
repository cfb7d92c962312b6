"""The kernel cache: Debian cloud kernels and guest tools, downloaded and unpacked once.

Layout of the cache (default /var/cache/lab/vm, or $LAB_VM_CACHE):
    index/                     the verified package index of the suite (see archive.py)
    kernels/RELEASE/root/      the unpacked linux-image .deb (boot/, lib/modules/RELEASE with
                               the output of `depmod -b`)
    kernels/RELEASE/vmlinux    the uncompressed kernel, booted through its PVH entry point
                               (no decompression under emulation: 0.7 to 1 s less per boot)
    kernels/RELEASE/kernel.json  where it came from (package, version, SHA256)
    packages/NAME_VERSION/     other unpacked packages whose programs the guest uses instead of
                               the host's (iproute2 from the same suite: it knows netkit)
Entries appear by rename once complete, under a lock, so concurrent runs share the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator

from lab.errors import LabError, UsageError
from lab.vm import archive

log = logging.getLogger(__name__)

DEFAULT_CACHE = "/var/cache/lab/vm"
FLAVOUR = "cloud-amd64"
# Programs of these packages replace the host's inside the guest (same paths).
GUEST_PACKAGES = ("iproute2",)
# What the guest cannot boot without: lab-vm-init mounts the root over virtio-fs, talks over a
# virtio serial port, and has no initramfs to load modules from.
REQUIRED_BUILTIN = ("CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_FS", "CONFIG_FUSE_FS",
                    "CONFIG_VIRTIO_CONSOLE", "CONFIG_DEVTMPFS", "CONFIG_SERIAL_8250_CONSOLE")
_IMAGE_RE = re.compile(r"^linux-image-(?P<release>(?P<upstream>\d+\.\d+(?:\.\d+)?)\+\S+-"
                       + re.escape(FLAVOUR) + r")$")


def cache_dir() -> str:
    return os.environ.get("LAB_VM_CACHE", DEFAULT_CACHE)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A kernel unpacked in the cache."""

    release: str  # what `uname -r` says in the guest, e.g. 6.12.95+deb12-cloud-amd64
    version: str  # the Debian package version
    path: str  # kernels/RELEASE

    @property
    def root(self) -> str:
        return os.path.join(self.path, "root")

    @property
    def modules(self) -> str:
        return os.path.join(self.root, "lib", "modules", self.release)

    @property
    def bzimage(self) -> str:
        return os.path.join(self.root, "boot", f"vmlinuz-{self.release}")

    @property
    def vmlinux(self) -> str | None:
        path = os.path.join(self.path, "vmlinux")
        return path if os.path.exists(path) else None

    @property
    def image(self) -> str:
        """What QEMU boots: the PVH ELF if there is one, else the bzImage."""
        return self.vmlinux or self.bzimage

    def config(self) -> dict[str, str]:
        return read_kconfig(os.path.join(self.root, "boot", f"config-{self.release}"))

    def module_path(self, name: str) -> str:
        """The file of module NAME (as modules.dep lists it)."""
        with open(os.path.join(self.modules, "modules.dep"), encoding="utf-8") as f:
            for line in f:
                path = line.split(":", 1)[0]
                base = os.path.basename(path).split(".ko", 1)[0]
                if base.replace("-", "_") == name.replace("-", "_"):
                    return os.path.join(self.modules, path)
        raise LabError(f"kernel {self.release} has no module {name}")


@dataclasses.dataclass(frozen=True)
class GuestPackage:
    """An unpacked package whose programs the guest uses in place of the host's."""

    name: str
    version: str
    root: str

    def programs(self) -> list[str]:
        """Guest paths (as in the package) of the executables it ships."""
        found = []
        for sub in ("bin", "sbin", "usr/bin", "usr/sbin"):
            d = os.path.join(self.root, sub)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                p = os.path.join(d, name)
                if os.path.isfile(p) and not os.path.islink(p) and os.access(p, os.X_OK):
                    found.append(f"/{sub}/{name}")
        return found


def read_kconfig(path: str) -> dict[str, str]:
    options = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep and key.startswith("CONFIG_"):
                options[key] = value
    return options


def parse_kernel_package(name: str) -> tuple[str, str] | None:
    """(release, upstream version) of a linux-image-RELEASE package of our flavour, else None
    (meta packages, -dbg and -unsigned builds)."""
    m = _IMAGE_RE.match(name)
    return (m["release"], m["upstream"]) if m else None


def matches(release: str, wanted: str | None) -> bool:
    """Does kernel RELEASE answer `--kernel WANTED`? WANTED is a release (exactly), or an
    upstream version or its prefix: 6.12.95, 6.12."""
    if wanted is None or wanted == release:
        return True
    upstream = release.split("+", 1)[0]
    return upstream == wanted or upstream.startswith(wanted.rstrip(".") + ".")


def available_kernels(index: archive.PackageIndex) -> list[archive.Package]:
    """Kernel packages of our flavour in the index, newest first."""
    found = [p for p in index.packages if parse_kernel_package(p.name)]
    return sorted(found, key=lambda p: archive.DebianVersion(p.version), reverse=True)


def select_kernel(index: archive.PackageIndex, wanted: str | None) -> archive.Package:
    """The newest kernel package of the index that answers WANTED."""
    candidates = available_kernels(index)
    for pkg in candidates:
        if matches(parse_kernel_package(pkg.name)[0], wanted):
            return pkg
    offered = ", ".join(parse_kernel_package(p.name)[0] for p in candidates) or "none"
    raise UsageError(f"no {FLAVOUR} kernel {wanted} in {index.suite}; available: {offered}")


def extract_vmlinux(bzimage: bytes) -> bytes | None:
    """The uncompressed kernel ELF inside a bzImage, found through the setup header's
    payload_offset and payload_length (Documentation/arch/x86/boot.rst); None if the payload
    is compressed with something we cannot undo here."""
    if bzimage[0x202:0x206] != b"HdrS":
        return None
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = bzimage[start:start + length]
    if payload[:4] == b"\x28\xb5\x2f\xfd":
        # zstd; the kernel appends the uncompressed size as 4 more bytes.
        if shutil.which("zstd") is None:
            return None
        proc = subprocess.run(["zstd", "-dc", "--long=31"], input=payload[:-4],
                              capture_output=True, check=False)
        data = proc.stdout if proc.returncode == 0 else None
    elif payload[:6] == b"\xfd7zXZ\x00":
        data = lzma.LZMADecompressor().decompress(payload)
    elif payload[:2] == b"\x1f\x8b":
        data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    else:
        return None
    return data if data and data[:4] == b"\x7fELF" else None


class KernelCache:
    """Kernels and guest packages in CACHE_DIR; fetched from the archive when missing."""

    def __init__(self, root: str | None = None, arch: archive.Archive | None = None):
        self.root = root or cache_dir()
        self.archive = arch or archive.Archive(os.path.join(self.root, "index"))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # --- kernels ----------------------------------------------------------------------------

    def cached(self) -> list[Kernel]:
        """Kernels in the cache, newest first."""
        found = []
        kdir = os.path.join(self.root, "kernels")
        for release in os.listdir(kdir) if os.path.isdir(kdir) else ():
            try:
                with open(os.path.join(kdir, release, "kernel.json"), encoding="utf-8") as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                continue
            found.append(Kernel(meta["release"], meta["version"], os.path.join(kdir, release)))
        return sorted(found, key=lambda k: archive.DebianVersion(k.version), reverse=True)

    def kernel(self, wanted: str | None = None, refresh: bool = False) -> Kernel:
        """The kernel answering WANTED (None: the newest in the suite), fetched if needed.

        A kernel asked for by version that is in the cache is used without asking the network;
        without a version, the index (at most a day old unless REFRESH) decides, and if the
        archive cannot be reached the newest cached kernel is used with a warning.
        """
        cached = [k for k in self.cached() if matches(k.release, wanted)]
        if wanted is not None and cached and not refresh:
            return cached[0]
        try:
            index = self.archive.refresh() if refresh else self.archive.index()
        except archive.ArchiveError as e:
            if cached:
                log.warning("%s; using cached kernel %s", e, cached[0].release)
                return cached[0]
            raise
        pkg = select_kernel(index, wanted)
        release = parse_kernel_package(pkg.name)[0]
        for k in cached:
            if k.release == release and k.version == pkg.version:
                return k
        return self._install_kernel(pkg, release)

    def _install_kernel(self, pkg: archive.Package, release: str) -> Kernel:
        with self._locked():
            for k in self.cached():  # another run may have installed it meanwhile
                if k.release == release and k.version == pkg.version:
                    return k
            for tool in ("dpkg-deb", "depmod"):
                if shutil.which(tool) is None:
                    raise UsageError(f"{tool} is missing: install "
                                     f"{'dpkg' if tool == 'dpkg-deb' else 'kmod'}")
            log.warning("lab vm: fetching %s %s (%d MB, once)", pkg.name, pkg.version,
                        pkg.size >> 20)
            kdir = os.path.join(self.root, "kernels")
            os.makedirs(kdir, exist_ok=True)
            tmp = tempfile.mkdtemp(dir=kdir, prefix=".part-")
            os.chmod(tmp, 0o755)
            try:
                deb = self.archive.download(pkg, tmp)
                root = os.path.join(tmp, "root")
                subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
                os.unlink(deb)
                kconfig = read_kconfig(os.path.join(root, "boot", f"config-{release}"))
                missing = [o for o in REQUIRED_BUILTIN if kconfig.get(o) != "y"]
                if missing:
                    raise LabError(f"kernel {release} cannot boot in the lab's VM: "
                                   f"{', '.join(missing)} not built in")
                subprocess.run(["depmod", "-b", root, release], check=True)
                if kconfig.get("CONFIG_PVH") == "y":
                    with open(os.path.join(root, "boot", f"vmlinuz-{release}"), "rb") as f:
                        vmlinux = extract_vmlinux(f.read())
                    if vmlinux:
                        with open(os.path.join(tmp, "vmlinux"), "wb") as f:
                            f.write(vmlinux)
                with open(os.path.join(tmp, "kernel.json"), "w", encoding="utf-8") as f:
                    json.dump({"release": release, "version": pkg.version, "package": pkg.name,
                               "sha256": pkg.sha256, "suite": self.archive.suite,
                               "mirror": self.archive.mirror}, f, indent=2)
                final = os.path.join(kdir, release)
                if os.path.exists(final):  # a different build of the same release
                    shutil.rmtree(final)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return Kernel(release, pkg.version, final)

    # --- guest packages ---------------------------------------------------------------------

    def guest_package(self, name: str) -> GuestPackage:
        """Package NAME from the suite, unpacked: the cached one, else the newest fetched."""
        pdir = os.path.join(self.root, "packages")
        cached = []
        for entry in os.listdir(pdir) if os.path.isdir(pdir) else ():
            pkg_name, _, version = entry.partition("_")
            if pkg_name == name and not entry.startswith("."):
                cached.append(GuestPackage(name, version, os.path.join(pdir, entry)))
        if cached:
            return max(cached, key=lambda p: archive.DebianVersion(p.version))
        pkg = self.archive.index().newest(name)
        with self._locked():
            final = os.path.join(pdir, f"{name}_{pkg.version}")
            if not os.path.isdir(final):
                log.warning("lab vm: fetching %s %s (once)", name, pkg.version)
                os.makedirs(pdir, exist_ok=True)
                tmp = tempfile.mkdtemp(dir=pdir, prefix=".part-")
                try:
                    deb = self.archive.download(pkg, tmp)
                    subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "root")],
                                   check=True)
                    os.unlink(deb)
                    os.rename(os.path.join(tmp, "root"), final)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        return GuestPackage(name, pkg.version, final)
