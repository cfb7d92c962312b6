"""Debian archive access without apt: a suite's signed index, its package list, and .deb files.

The VM runner needs packages from suites this machine's apt is not configured for (the cloud
kernels of bookworm-backports, trixie-backports, sid and experimental; iproute2 built for the
host's release) and must leave the host's apt configuration as it was. So it does what apt
does, suite by suite: InRelease is verified with gpgv against Debian's archive keyring, the
Packages index is checked against the SHA256 that InRelease lists, and each .deb against the
SHA256 the index lists. Downloads land in a temporary file and are renamed into place only once
verified. An index past its Valid-Until is refused, as apt refuses it, unless the user waives
that one check ($LAB_VM_ALLOW_EXPIRED_INDEX=1, `lab vm --allow-expired-index`): the signature
is still required.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import lzma
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime

from lab.errors import LabError, UsageError

log = logging.getLogger(__name__)

MIRROR = "http://deb.debian.org/debian"
# Suites whose cloud kernels `lab vm` offers, oldest first. The first is the default (its newest
# kernel boots when no version is asked for) and the one guest tools come from: their programs
# run on the host's own libraries inside the guest, so they must be built for the host's
# release (Debian 12), not for the kernel's.
SUITES = ("bookworm-backports", "trixie-backports", "sid", "experimental")
SUITE = SUITES[0]
COMPONENT = "main"
ARCH = "amd64"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
HTTP_TIMEOUT = 60


class ArchiveError(LabError):
    """The archive could not be reached, or what it served failed verification. Nothing
    unverified is kept or booted; the CLI exits with 125, as when the VM cannot run."""

    exit_code = 125


def suites() -> tuple[str, ...]:
    """The suites kernels come from: $LAB_VM_SUITES (comma-separated, for a local mirror),
    else SUITES. The first is the default one."""
    names = tuple(n.strip() for n in os.environ.get("LAB_VM_SUITES", "").split(",") if n.strip())
    return names or SUITES


def mirror_url() -> str:
    """The Debian mirror: $LAB_VM_MIRROR (a local mirror, file:// or http://), else Debian's."""
    return os.environ.get("LAB_VM_MIRROR") or MIRROR


def keyring_path() -> str:
    """The keyring InRelease must verify against: $LAB_VM_KEYRING, else Debian's."""
    return os.environ.get("LAB_VM_KEYRING") or KEYRING


def expired_index_allowed() -> bool:
    return os.environ.get("LAB_VM_ALLOW_EXPIRED_INDEX", "") not in ("", "0")


# --- deb822 and Debian versions ----------------------------------------------------------------

def parse_deb822(text: str) -> list[dict[str, str]]:
    """Paragraphs of a deb822 file (Packages, Release) as dicts; continuation lines are joined
    with newlines, as in the file."""
    paragraphs: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                paragraphs.append(fields)
            fields, key = {}, None
        elif line[0] in " \t":
            if key is None:
                raise ValueError(f"continuation line without a field: {line!r}")
            fields[key] += "\n" + line.strip()
        elif line.startswith("#"):
            continue
        else:
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"not a field: {line!r}")
            fields[key] = value.strip()
    if fields:
        paragraphs.append(fields)
    return paragraphs


def _order(c: str) -> int:
    # dpkg's character order in the non-digit parts: '~' sorts before everything, even the end
    # of the string; letters before other characters.
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(v: str) -> tuple[int, str, str]:
    epoch, sep, rest = v.partition(":")
    if not sep:
        epoch, rest = "0", v
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    return int(epoch), upstream, revision


def version_compare(a: str, b: str) -> int:
    """Compare two Debian version strings as dpkg does: <0, 0 or >0."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


class DebianVersion:
    """A Debian version string that sorts as dpkg sorts it."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __lt__(self, other: DebianVersion) -> bool:
        return version_compare(self.text, other.text) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DebianVersion) and version_compare(self.text, other.text) == 0

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"DebianVersion({self.text!r})"


# --- the index ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Package:
    """One binary package as the index describes it."""

    name: str
    version: str
    filename: str  # path below the mirror root, e.g. pool/main/l/...
    sha256: str
    size: int
    fields: dict[str, str] = dataclasses.field(compare=False, repr=False)

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Package:
        try:
            return cls(fields["Package"], fields["Version"], fields["Filename"],
                       fields["SHA256"].lower(), int(fields["Size"]), fields)
        except (KeyError, ValueError) as e:
            raise ValueError(f"index entry {fields.get('Package', '?')} lacks {e}") from None


class PackageIndex:
    """The packages of one suite/component/architecture."""

    def __init__(self, packages: list[Package], suite: str = SUITE, fetched: float = 0.0):
        self.packages = packages
        self.suite = suite
        self.fetched = fetched  # time.time() of the download, 0 for a fixture

    @classmethod
    def parse(cls, text: str, suite: str = SUITE, fetched: float = 0.0) -> PackageIndex:
        return cls([Package.from_fields(p) for p in parse_deb822(text) if "Package" in p],
                   suite, fetched)

    def versions(self, name: str) -> list[Package]:
        """All entries for package NAME, newest first."""
        found = [p for p in self.packages if p.name == name]
        return sorted(found, key=lambda p: DebianVersion(p.version), reverse=True)

    def newest(self, name: str) -> Package:
        found = self.versions(name)
        if not found:
            raise ArchiveError(f"package {name} is not in {self.suite}")
        return found[0]

    def matching(self, predicate) -> list[Package]:
        return [p for p in self.packages if predicate(p)]


# --- fetching ----------------------------------------------------------------------------------

def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as e:
        raise ArchiveError(f"cannot fetch {url}: {getattr(e, 'reason', e)}") from None


def _download(url: str, dest: str, sha256: str, size: int | None = None) -> None:
    """Fetch URL into DEST through a temporary file; DEST appears only if the hash matches."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".part-")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
                    while chunk := response.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as e:
                raise ArchiveError(f"cannot fetch {url}: {getattr(e, 'reason', e)}") from None
        if digest.hexdigest() != sha256:
            raise ArchiveError(f"{url}: SHA256 {digest.hexdigest()} does not match the index's "
                               f"{sha256}")
        if size is not None and os.path.getsize(tmp) != size:
            raise ArchiveError(f"{url}: size {os.path.getsize(tmp)}, index says {size}")
        os.rename(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


def verify_inrelease(signed: bytes, keyring: str = KEYRING) -> str:
    """Check InRelease's signature with gpgv; return the signed text (and only that)."""
    if not os.path.exists(keyring):
        raise UsageError(f"{keyring} is missing: install debian-archive-keyring")
    if shutil.which("gpgv") is None:
        raise UsageError("gpgv is missing: install gpgv")
    with tempfile.TemporaryDirectory(prefix="lab-gpgv-") as tmp:
        src = os.path.join(tmp, "InRelease")
        with open(src, "wb") as f:
            f.write(signed)
        proc = subprocess.run(
            ["gpgv", "--status-fd", "1", "--keyring", keyring, "--output",
             os.path.join(tmp, "Release"), src],
            capture_output=True, text=True)
        if proc.returncode != 0 or "[GNUPG:] VALIDSIG" not in proc.stdout:
            raise ArchiveError(f"InRelease signature does not verify against {keyring}:\n"
                               f"{proc.stderr.strip()}")
        with open(os.path.join(tmp, "Release"), encoding="utf-8") as f:
            return f.read()


def release_sha256(release_text: str) -> dict[str, tuple[str, int]]:
    """Path -> (sha256, size) from a Release file's SHA256 field."""
    fields = parse_deb822(release_text)[0]
    table = {}
    for line in fields.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[2]] = (parts[0].lower(), int(parts[1]))
    return table


def check_valid_until(release_text: str, now: float | None = None, suite: str = "",
                      allow_expired: bool = False) -> str | None:
    """Refuse a Release file past its Valid-Until (a replayed old index would pin old kernels).
    With ALLOW_EXPIRED, return the expiry date instead (the caller warns and records it)."""
    fields = parse_deb822(release_text)[0]
    if "Valid-Until" not in fields:
        return None
    until = parsedate_to_datetime(fields["Valid-Until"]).timestamp()
    if (now if now is not None else time.time()) > until:
        if allow_expired:
            return fields["Valid-Until"]
        raise ArchiveError(f"the {suite + ' ' if suite else ''}index expired at "
                           f"{fields['Valid-Until']} (Valid-Until); is the clock right? (a "
                           "mirror that stopped updating: LAB_VM_ALLOW_EXPIRED_INDEX=1 or "
                           "`lab vm --allow-expired-index` waives this check, the signature "
                           "is still verified)")
    return None


class Archive:
    """One suite of a Debian mirror, with its verified index cached in CACHE_DIR."""

    def __init__(self, cache_dir: str, mirror: str | None = None, suite: str | None = None,
                 component: str = COMPONENT, arch: str = ARCH, keyring: str | None = None,
                 allow_expired: bool | None = None):
        self.cache_dir = cache_dir
        self.mirror = (mirror or mirror_url()).rstrip("/")
        self.suite, self.component, self.arch = suite or suites()[0], component, arch
        self.keyring = keyring or keyring_path()
        self.allow_expired = expired_index_allowed() if allow_expired is None else allow_expired

    @property
    def _index_path(self) -> str:
        return os.path.join(self.cache_dir, f"{self.suite}_{self.component}_{self.arch}_Packages")

    def cached_index(self) -> PackageIndex | None:
        """The cached index, None if there is none (or none with its verified Release). Its
        Release's Valid-Until is checked again: a cached index outlives its expiry too."""
        try:
            with open(self._index_path, encoding="utf-8") as f:
                text = f.read()
            with open(self._index_path + ".Release", encoding="utf-8") as f:
                release = f.read()
            fetched = os.path.getmtime(self._index_path)
        except FileNotFoundError:
            return None
        check_valid_until(release, suite=self.suite, allow_expired=self.allow_expired)
        return PackageIndex.parse(text, self.suite, fetched)

    def index(self, max_age: float = 86400.0) -> PackageIndex:
        """The verified index: the cached one if younger than MAX_AGE seconds, else fetched."""
        cached = self.cached_index()
        if cached is not None and time.time() - cached.fetched < max_age:
            return cached
        return self.refresh()

    def refresh(self) -> PackageIndex:
        base = f"{self.mirror}/dists/{self.suite}"
        release = verify_inrelease(_get(f"{base}/InRelease"), self.keyring)
        expired = check_valid_until(release, suite=self.suite, allow_expired=self.allow_expired)
        if expired:
            log.warning("lab vm: the %s index expired at %s; used anyway (its signature "
                        "verifies; LAB_VM_ALLOW_EXPIRED_INDEX)", self.suite, expired)
        member = f"{self.component}/binary-{self.arch}/Packages.xz"
        sums = release_sha256(release)
        if member not in sums:
            raise ArchiveError(f"{base}/InRelease lists no {member}")
        data = _get(f"{base}/{member}")
        sha, size = sums[member]
        if hashlib.sha256(data).hexdigest() != sha or len(data) != size:
            raise ArchiveError(f"{base}/{member} does not match the SHA256 in InRelease")
        text = lzma.decompress(data).decode("utf-8")
        index = PackageIndex.parse(text, self.suite, time.time())
        os.makedirs(self.cache_dir, exist_ok=True)
        for path, content in ((self._index_path + ".Release", release),
                              (self._index_path, text)):
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".part-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(content)
            os.rename(tmp, path)
        return index

    def download(self, package: Package, dest_dir: str) -> str:
        """Fetch PACKAGE's .deb into DEST_DIR (verified); return its path."""
        dest = os.path.join(dest_dir, os.path.basename(package.filename))
        _download(f"{self.mirror}/{package.filename}", dest, package.sha256, package.size)
        return dest
