"""The kernel cache: Debian cloud kernels and guest tools, downloaded and unpacked once.

Kernels come from several suites (archive.SUITES) and in two packagings. Up to 6.18 one
linux-image-RELEASE .deb holds everything (/boot/vmlinuz-RELEASE, /boot/config-RELEASE,
/lib/modules/RELEASE). From 6.19 (all of 7.x) linux-image-RELEASE is a metapackage depending on
linux-binary-RELEASE (/usr/lib/modules/RELEASE/vmlinuz), linux-base-RELEASE (config, System.map,
modules.builtin* in /usr/lib/modules/RELEASE/) and linux-modules-RELEASE: all three are fetched,
each verified, and unpacked into one root.

Layout of the cache (default /var/cache/lab/vm, or $LAB_VM_CACHE):
    index/                     the verified package index of each suite (see archive.py)
    kernels/RELEASE/root/      the unpacked .deb(s) (lib/modules/RELEASE with the output of
                               `depmod -b`; lib is a link to usr/lib for the split packaging)
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
# linux-image-6.12.95+deb12-cloud-amd64, linux-image-7.3.4+deb13-cloud-amd64, and
# experimental's linux-image-7.3-cloud-amd64 (7.3~rc7): no -dbg, -unsigned or metapackages.
_IMAGE_RE = re.compile(r"^linux-image-(?P<release>(?P<upstream>\d+\.\d+(?:\.\d+)?)(?:\+\S+)?-"
                       + re.escape(FLAVOUR) + r")$")
# The parts of the split packaging a linux-image-RELEASE metapackage depends on.
SPLIT_PARTS = ("linux-binary", "linux-base", "linux-modules")


def cache_dir() -> str:
    return os.environ.get("LAB_VM_CACHE", DEFAULT_CACHE)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A kernel unpacked in the cache."""

    release: str  # what `uname -r` says in the guest, e.g. 6.12.95+deb12-cloud-amd64
    version: str  # the Debian package version
    path: str  # kernels/RELEASE
    suite: str = ""  # where it came from (bookworm-backports, trixie-backports, ...)

    @property
    def root(self) -> str:
        return os.path.join(self.path, "root")

    @property
    def modules(self) -> str:
        return os.path.join(self.root, "lib", "modules", self.release)

    def _boot_file(self, name: str, split_name: str) -> str:
        """/boot/NAME-RELEASE of the one-package layout, else the split layout's file in the
        modules directory."""
        classic = os.path.join(self.root, "boot", f"{name}-{self.release}")
        return classic if os.path.exists(classic) else os.path.join(self.modules, split_name)

    @property
    def bzimage(self) -> str:
        return self._boot_file("vmlinuz", "vmlinuz")

    @property
    def config_path(self) -> str:
        return self._boot_file("config", "config")

    @property
    def vmlinux(self) -> str | None:
        path = os.path.join(self.path, "vmlinux")
        return path if os.path.exists(path) else None

    @property
    def image(self) -> str:
        """What QEMU boots: the PVH ELF if there is one, else the bzImage."""
        return self.vmlinux or self.bzimage

    def config(self) -> dict[str, str]:
        return read_kconfig(self.config_path)

    def expose_config(self) -> None:
        """Put the configuration beside the modules (as the split packaging has it), where
        the guest sees it as /lib/modules/RELEASE/config: its /boot is the host's."""
        target = os.path.join(self.modules, "config")
        if not os.path.exists(target):
            fd, tmp = tempfile.mkstemp(dir=self.modules, prefix=".part-")
            with os.fdopen(fd, "wb") as out, open(self.config_path, "rb") as src:
                shutil.copyfileobj(src, out)
            os.chmod(tmp, 0o644)
            os.rename(tmp, target)

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
    upstream version or its prefix: 6.12.95, 6.12, 7 (7.3-cloud-amd64 is upstream 7.3)."""
    if wanted is None or wanted == release:
        return True
    m = re.match(r"\d+(?:\.\d+)*", release)
    upstream = m[0] if m else release
    return upstream == wanted or upstream.startswith(wanted.rstrip(".") + ".")


@dataclasses.dataclass(frozen=True)
class KernelOffer:
    """A kernel a suite offers: its linux-image package and the .debs that hold its files
    (the image itself, or the three parts of the split packaging)."""

    suite: str
    image: archive.Package
    release: str
    files: tuple[archive.Package, ...]

    @property
    def version(self) -> str:
        return self.image.version

    @property
    def size(self) -> int:
        return sum(p.size for p in self.files)

    @property
    def split(self) -> bool:
        return self.files != (self.image,)


def _depends(pkg: archive.Package) -> set[str]:
    names = set()
    for clause in pkg.fields.get("Depends", "").replace("\n", " ").split(","):
        for alternative in clause.split("|"):
            name = alternative.strip().split(" ", 1)[0].split(":", 1)[0]
            if name:
                names.add(name)
    return names


def kernel_offer(index: archive.PackageIndex, image: archive.Package) -> KernelOffer | None:
    """The offer of linux-image package IMAGE in INDEX; None if not of our flavour, or a split
    metapackage whose parts are missing from the index at its version."""
    parsed = parse_kernel_package(image.name)
    if not parsed:
        return None
    release = parsed[0]
    depends = _depends(image)
    if f"linux-binary-{release}" not in depends:
        return KernelOffer(index.suite, image, release, (image,))
    parts = []
    for part in SPLIT_PARTS:
        found = [p for p in index.versions(f"{part}-{release}") if p.version == image.version]
        if not found:
            return None
        parts.append(found[0])
    return KernelOffer(index.suite, image, release, tuple(parts))


def offers_in(index: archive.PackageIndex) -> list[KernelOffer]:
    """Kernels of our flavour in one suite's index, newest first."""
    found = [o for p in index.packages if parse_kernel_package(p.name)
             for o in [kernel_offer(index, p)] if o]
    return sorted(found, key=lambda o: archive.DebianVersion(o.version), reverse=True)


def available_kernels(index: archive.PackageIndex) -> list[archive.Package]:
    """Kernel (linux-image) packages of our flavour in the index, newest first."""
    return [o.image for o in offers_in(index)]


def newest_offer(offers: list[KernelOffer], wanted: str | None) -> KernelOffer | None:
    candidates = sorted(offers, key=lambda o: archive.DebianVersion(o.version), reverse=True)
    return next((o for o in candidates if matches(o.release, wanted)), None)


def not_found(wanted: str | None, offers: list[KernelOffer], suites: list[str],
              errors: dict[str, str] | None = None) -> UsageError:
    """The error for a version no suite offers: what is available, per suite (exit 2)."""
    by_suite: dict[str, list[str]] = {}
    for o in sorted(offers, key=lambda o: archive.DebianVersion(o.version), reverse=True):
        by_suite.setdefault(o.suite, []).append(o.release)
    lines = [f"  {suite}: {', '.join(by_suite.get(suite, [])) or 'none'}" for suite in suites
             if suite in by_suite or not errors or suite not in errors]
    lines += [f"  {suite}: not available ({why.splitlines()[0]})"
              for suite, why in (errors or {}).items()]
    where = suites[0] if len(suites) == 1 else ", ".join(suites)
    return UsageError(f"no {FLAVOUR} kernel {wanted} in {where}; available:\n"
                      + "\n".join(lines))


def select_kernel(index: archive.PackageIndex, wanted: str | None) -> archive.Package:
    """The newest kernel package of one index that answers WANTED."""
    offers = offers_in(index)
    found = newest_offer(offers, wanted)
    if found is None:
        raise not_found(wanted, offers, [index.suite])
    return found.image


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
    """Kernels and guest packages in CACHE_DIR; fetched from the archive when missing.

    ARCH is the archive guest tools come from (and the only one searched for kernels when it
    is given alone, as tests do); SUITES the suites kernels come from (archive.SUITES)."""

    def __init__(self, root: str | None = None, arch: archive.Archive | None = None,
                 suites: tuple[str, ...] | None = None):
        self.root = root or cache_dir()
        index_dir = os.path.join(self.root, "index")
        self.archive = arch or archive.Archive(index_dir)
        if suites is None and arch is not None:
            self.archives = {arch.suite: arch}
        else:
            self.archives = {s: (self.archive if s == self.archive.suite else
                                 archive.Archive(index_dir, mirror=self.archive.mirror, suite=s,
                                                 keyring=self.archive.keyring,
                                                 allow_expired=self.archive.allow_expired))
                             for s in (suites or archive.suites())}
        self.default_suite = next(iter(self.archives))

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
            found.append(Kernel(meta["release"], meta["version"], os.path.join(kdir, release),
                                meta.get("suite", "")))
        return sorted(found, key=lambda k: archive.DebianVersion(k.version), reverse=True)

    def offers(self, suites: list[str] | None = None, refresh: bool = False
               ) -> tuple[list[KernelOffer], dict[str, str]]:
        """Kernels the SUITES offer (default: all), and why a suite could not be read."""
        offers, errors = [], {}
        for suite in suites or list(self.archives):
            arch = self.archives[suite]
            try:
                index = arch.refresh() if refresh else arch.index()
            except archive.ArchiveError as e:
                errors[suite] = str(e)
                continue
            offers += offers_in(index)
        return offers, errors

    def _suites(self, suite: str | None, wanted: str | None) -> list[str]:
        if suite is not None:
            if suite not in self.archives:
                raise UsageError(f"unknown suite {suite!r}; lab vm knows "
                                 f"{', '.join(self.archives)}")
            return [suite]
        # No version: the default suite's newest, as before there were several suites.
        return [self.default_suite] if wanted is None else list(self.archives)

    def kernel(self, wanted: str | None = None, refresh: bool = False,
               suite: str | None = None) -> Kernel:
        """The kernel answering WANTED (None: the newest of the default suite), fetched if
        needed; SUITE limits the search to one suite.

        A kernel asked for by version that is in the cache is used without asking the network;
        without a version, the index (at most a day old unless REFRESH) decides, and if the
        archive cannot be reached the newest cached kernel is used with a warning. A version
        no suite offers is a UsageError listing what they offer (exit 2).
        """
        suites = self._suites(suite, wanted)
        cached = [k for k in self.cached() if matches(k.release, wanted)
                  and (suite is None or k.suite in ("", suite))]
        if wanted is not None and cached and not refresh:
            return cached[0]
        offers, errors = self.offers(suites, refresh)
        if not offers and errors:
            if cached:
                log.warning("%s; using cached kernel %s", "; ".join(errors.values()),
                            cached[0].release)
                return cached[0]
            if len(errors) == 1:
                raise archive.ArchiveError(next(iter(errors.values())))
        offer = newest_offer(offers, wanted)
        if offer is None:
            raise not_found(wanted, offers, suites, errors)
        for k in cached:
            if k.release == offer.release and k.version == offer.version:
                return k
        return self._install_kernel(offer)

    def _install_kernel(self, offer: KernelOffer) -> Kernel:
        release = offer.release
        arch = self.archives.get(offer.suite, self.archive)
        with self._locked():
            for k in self.cached():  # another run may have installed it meanwhile
                if k.release == release and k.version == offer.version:
                    return k
            for tool in ("dpkg-deb", "depmod"):
                if shutil.which(tool) is None:
                    raise UsageError(f"{tool} is missing: install "
                                     f"{'dpkg' if tool == 'dpkg-deb' else 'kmod'}")
            log.warning("lab vm: fetching %s %s from %s (%d MB, once)", offer.image.name,
                        offer.version, offer.suite, offer.size >> 20)
            kdir = os.path.join(self.root, "kernels")
            os.makedirs(kdir, exist_ok=True)
            tmp = tempfile.mkdtemp(dir=kdir, prefix=".part-")
            os.chmod(tmp, 0o755)
            try:
                root = os.path.join(tmp, "root")
                for pkg in offer.files:
                    deb = arch.download(pkg, tmp)  # verified, else nothing is kept
                    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
                    os.unlink(deb)
                if not os.path.exists(os.path.join(root, "lib")):
                    # The split packaging ships /usr/lib/modules only (merged /usr).
                    os.symlink("usr/lib", os.path.join(root, "lib"))
                k = Kernel(release, offer.version, tmp, offer.suite)
                if not os.path.exists(k.config_path) or not os.path.exists(k.bzimage):
                    raise LabError(f"{offer.image.name} {offer.version} ({offer.suite}) holds "
                                   f"no kernel image and configuration where lab vm looks "
                                   f"({k.bzimage}, {k.config_path})")
                kconfig = k.config()
                missing = [o for o in REQUIRED_BUILTIN if kconfig.get(o) != "y"]
                if missing:
                    raise LabError(f"kernel {release} cannot boot in the lab's VM: "
                                   f"{', '.join(missing)} not built in")
                subprocess.run(["depmod", "-b", root, release], check=True)
                k.expose_config()
                if kconfig.get("CONFIG_PVH") == "y":
                    with open(k.bzimage, "rb") as f:
                        vmlinux = extract_vmlinux(f.read())
                    if vmlinux:
                        with open(os.path.join(tmp, "vmlinux"), "wb") as f:
                            f.write(vmlinux)
                with open(os.path.join(tmp, "kernel.json"), "w", encoding="utf-8") as f:
                    json.dump({"release": release, "version": offer.version,
                               "package": offer.image.name, "sha256": offer.image.sha256,
                               "files": {p.name: p.sha256 for p in offer.files},
                               "layout": "split" if offer.split else "image",
                               "suite": offer.suite, "mirror": arch.mirror}, f, indent=2)
                final = os.path.join(kdir, release)
                if os.path.exists(final):  # a different build of the same release
                    shutil.rmtree(final)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return Kernel(release, offer.version, final, offer.suite)

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
