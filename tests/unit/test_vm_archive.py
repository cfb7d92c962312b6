"""The Debian archive client of the VM runner: index parsing, versions, kernel selection, and the
verification chain (signed InRelease -> Packages -> .deb), against a mirror made in a temporary
directory and reached through file:// URLs."""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from lab.errors import UsageError
from lab.vm import archive, kernels

FIXTURE = Path(__file__).parent / "fixtures" / "vm-Packages"


@pytest.fixture
def index() -> archive.PackageIndex:
    return archive.PackageIndex.parse(FIXTURE.read_text())


# --- deb822 ------------------------------------------------------------------------------------

def test_deb822_paragraphs_and_continuation_lines():
    paragraphs = archive.parse_deb822(FIXTURE.read_text())
    assert len(paragraphs) == 10
    first = paragraphs[0]
    assert first["Package"] == "linux-image-6.12.43+deb12-cloud-amd64"
    assert first["Depends"] == "kmod, initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool"
    assert first["Description"].splitlines() == [
        "Linux 6.12 for x86-64 cloud (signed)",
        "The Linux kernel 6.12 and modules for use on cloud platforms", ".",
        "A second paragraph of the long description."]


def test_deb822_rejects_garbage():
    with pytest.raises(ValueError, match="not a field"):
        archive.parse_deb822("Package: a\nthis line has no colon\n")
    with pytest.raises(ValueError, match="continuation"):
        archive.parse_deb822(" starts with a continuation\n")


def test_index_entries(index):
    pkg = index.newest("iproute2")
    assert pkg.version == "6.15.0-1~bpo12+1"
    assert pkg.size == 1080392
    assert pkg.sha256.startswith("270e82b9")
    assert [p.version for p in index.versions("iproute2")] == ["6.15.0-1~bpo12+1",
                                                               "6.12.0-1~bpo12+1"]
    with pytest.raises(archive.ArchiveError, match="not in"):
        index.newest("no-such-package")


def test_index_entry_without_sha256_is_an_error():
    with pytest.raises(ValueError, match="SHA256"):
        archive.PackageIndex.parse("Package: x\nVersion: 1\nFilename: x.deb\nSize: 1\n")


# --- versions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("lower,higher", [
    ("1.0", "1.0.1"),
    ("1.0~rc1", "1.0"),
    ("1.0~", "1.0"),
    ("1.0~~", "1.0~"),
    ("1.0", "1.0a"),
    ("1.0a", "1.0+"),
    ("1.0-1", "1.0-1+b1"),
    ("1.0-1", "1.0-2"),
    ("2.0", "1:0.1"),
    ("6.12.9", "6.12.10"),
    ("6.12.94-1~bpo12+1", "6.12.95-1~bpo12+1"),
    ("6.12.90-1~bpo12+1", "6.12.90-2~bpo12+1"),
    ("6.12.95-1~bpo12+1", "6.12.95-1"),
    ("1.01", "1.2"),
])
def test_version_order(lower, higher):
    assert archive.version_compare(lower, higher) < 0
    assert archive.version_compare(higher, lower) > 0
    assert archive.DebianVersion(lower) < archive.DebianVersion(higher)


@pytest.mark.parametrize("a,b", [("1.0", "1.0"), ("1.01", "1.1"), ("0:1.0", "1.0"),
                                 ("1.0-0", "1.0-")])
def test_version_equal(a, b):
    assert archive.version_compare(a, b) == 0


# --- kernel selection --------------------------------------------------------------------------

def test_only_concrete_cloud_images_are_kernels(index):
    names = [p.name for p in kernels.available_kernels(index)]
    assert names == ["linux-image-6.12.95+deb12-cloud-amd64",
                     "linux-image-6.12.90+deb12.1-cloud-amd64",
                     "linux-image-6.12.90+deb12-cloud-amd64",
                     "linux-image-6.12.43+deb12-cloud-amd64"]


@pytest.mark.parametrize("wanted,release", [
    (None, "6.12.95+deb12-cloud-amd64"),
    ("6.12", "6.12.95+deb12-cloud-amd64"),
    ("6.12.90", "6.12.90+deb12.1-cloud-amd64"),  # the newer build of that version
    ("6.12.90+deb12-cloud-amd64", "6.12.90+deb12-cloud-amd64"),
    ("6.12.43", "6.12.43+deb12-cloud-amd64"),
])
def test_select_kernel(index, wanted, release):
    pkg = kernels.select_kernel(index, wanted)
    assert kernels.parse_kernel_package(pkg.name)[0] == release


@pytest.mark.parametrize("wanted", ["6.1", "6.12.9", "6.13", "6.12.95+deb12-amd64"])
def test_select_kernel_not_found_lists_what_there_is(index, wanted):
    with pytest.raises(UsageError, match=r"available: 6\.12\.95\+deb12-cloud-amd64, "):
        kernels.select_kernel(index, wanted)


# --- the verification chain, against a local mirror -------------------------------------------

SUITE = "test-backports"


def _gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet", *args],
                          input=input, capture_output=True, check=True).stdout


@contextlib.contextmanager
def _gpg_home(tmp_path_factory, name: str, uid: str):
    """A throwaway GnuPG home with one signing key; its gpg-agent is stopped afterwards."""
    home = tmp_path_factory.mktemp(name)
    os.chmod(home, 0o700)
    try:
        _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
        yield home
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True)


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    """A throwaway signing key and a keyring holding only it."""
    if shutil.which("gpg") is None or shutil.which("gpgv") is None:
        pytest.skip("gpg and gpgv are needed to sign a test index")
    with _gpg_home(tmp_path_factory, "gnupg", "lab test archive <lab@test>") as home:
        keyring = home / "keyring.gpg"
        keyring.write_bytes(_gpg(home, "--export"))
        yield home, keyring


def _make_deb(tmp: Path) -> bytes:
    root = tmp / "debroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: lab-test\nVersion: 1.0\nArchitecture: all\nMaintainer: lab <lab@test>\n"
        "Description: test\n")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "lab-test").write_text("#!/bin/sh\n")
    out = tmp / "lab-test_1.0_all.deb"
    subprocess.run(["dpkg-deb", "-Zxz", "--root-owner-group", "-b", str(root), str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out.read_bytes()


def _make_mirror(tmp: Path, signer, *, valid_until: datetime | None = None,
                 tamper_packages: bool = False, tamper_deb: bool = False) -> Path:
    home, _ = signer
    mirror = tmp / "mirror"
    deb = _make_deb(tmp)
    pool = mirror / "pool" / "main" / "l" / "lab-test"
    pool.mkdir(parents=True)
    (pool / "lab-test_1.0_all.deb").write_bytes(deb + (b"x" if tamper_deb else b""))
    packages = (f"Package: lab-test\nVersion: 1.0\n"
                f"Filename: pool/main/l/lab-test/lab-test_1.0_all.deb\n"
                f"Size: {len(deb)}\nSHA256: {hashlib.sha256(deb).hexdigest()}\n")
    xz = lzma.compress(packages.encode(), format=lzma.FORMAT_XZ)
    dists = mirror / "dists" / SUITE
    (dists / "main" / "binary-amd64").mkdir(parents=True)
    (dists / "main" / "binary-amd64" / "Packages.xz").write_bytes(
        xz + (b"\0" if tamper_packages else b""))
    until = valid_until or datetime.now(UTC) + timedelta(days=7)
    release = (f"Suite: {SUITE}\nValid-Until: {format_datetime(until, usegmt=True)}\n"
               f"SHA256:\n {hashlib.sha256(xz).hexdigest()} {len(xz)} "
               f"main/binary-amd64/Packages.xz\n")
    (dists / "InRelease").write_bytes(_gpg(home, "--clearsign", input=release.encode()))
    return mirror


def _archive(tmp: Path, mirror: Path, keyring: Path) -> archive.Archive:
    return archive.Archive(str(tmp / "cache"), mirror=f"file://{mirror}", suite=SUITE,
                           keyring=str(keyring))


def test_verified_index_and_download(tmp_path, signer):
    mirror = _make_mirror(tmp_path, signer)
    arch = _archive(tmp_path, mirror, signer[1])
    index = arch.refresh()
    pkg = index.newest("lab-test")
    path = arch.download(pkg, str(tmp_path / "debs"))
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == pkg.sha256
    # The index is cached: a second look does not need the mirror.
    shutil.rmtree(mirror)
    assert arch.index().newest("lab-test").version == "1.0"


def test_a_signature_by_another_key_is_refused(tmp_path, signer, tmp_path_factory):
    other_keyring = tmp_path / "other.gpg"
    with _gpg_home(tmp_path_factory, "other-gnupg", "someone else <x@test>") as other_home:
        other_keyring.write_bytes(_gpg(other_home, "--export"))
    mirror = _make_mirror(tmp_path, signer)
    with pytest.raises(archive.ArchiveError, match="signature does not verify"):
        _archive(tmp_path, mirror, other_keyring).refresh()


def test_an_altered_inrelease_is_refused(tmp_path, signer):
    mirror = _make_mirror(tmp_path, signer)
    inrelease = mirror / "dists" / SUITE / "InRelease"
    inrelease.write_bytes(inrelease.read_bytes().replace(b"Suite: ", b"Suite:  "))
    with pytest.raises(archive.ArchiveError, match="signature does not verify"):
        _archive(tmp_path, mirror, signer[1]).refresh()


def test_a_packages_index_not_matching_inrelease_is_refused(tmp_path, signer):
    mirror = _make_mirror(tmp_path, signer, tamper_packages=True)
    with pytest.raises(archive.ArchiveError, match="does not match the SHA256 in InRelease"):
        _archive(tmp_path, mirror, signer[1]).refresh()


def test_a_deb_not_matching_the_index_is_refused_and_not_kept(tmp_path, signer):
    mirror = _make_mirror(tmp_path, signer, tamper_deb=True)
    arch = _archive(tmp_path, mirror, signer[1])
    pkg = arch.refresh().newest("lab-test")
    with pytest.raises(archive.ArchiveError, match="SHA256 .* does not match"):
        arch.download(pkg, str(tmp_path / "debs"))
    assert os.listdir(tmp_path / "debs") == []


def test_an_expired_index_is_refused(tmp_path, signer):
    mirror = _make_mirror(tmp_path, signer,
                          valid_until=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(archive.ArchiveError, match="expired"):
        _archive(tmp_path, mirror, signer[1]).refresh()


def test_a_missing_mirror_is_an_archive_error(tmp_path, signer):
    with pytest.raises(archive.ArchiveError, match="cannot fetch"):
        _archive(tmp_path, tmp_path / "nowhere", signer[1]).refresh()


def test_release_sha256_table():
    text = ("Suite: x\nSHA256:\n abc 10 main/binary-amd64/Packages\n"
            " DEF 20 main/binary-amd64/Packages.xz\n")
    assert archive.release_sha256(text) == {"main/binary-amd64/Packages": ("abc", 10),
                                            "main/binary-amd64/Packages.xz": ("def", 20)}


def test_valid_until_in_the_future_passes():
    until = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    archive.check_valid_until(f"Valid-Until: {until}\n")
    with pytest.raises(archive.ArchiveError):
        archive.check_valid_until(f"Valid-Until: {until}\n", now=time.time() + 7200)
