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
    with pytest.raises(UsageError, match=r"available:\n  bookworm-backports: "
                                         r"6\.12\.95\+deb12-cloud-amd64, ") as e:
        kernels.select_kernel(index, wanted)
    assert e.value.exit_code == 2


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


# --- several suites, and the split packaging of 7.x ------------------------------------------

H = "ab" * 32


def _entry(name: str, version: str, size: int = 1000, depends: str = "") -> str:
    return (f"Package: {name}\nVersion: {version}\n"
            + (f"Depends: {depends}\n" if depends else "")
            + f"Filename: pool/main/l/x/{name}_{version}_amd64.deb\nSize: {size}\n"
              f"SHA256: {H}\n\n")


def _split_kernel(release: str, version: str, with_parts=("binary", "base", "modules")) -> str:
    parts = ",\n ".join(f"linux-{p}-{release} (= {version})" for p in ("base", "binary",
                                                                     "modules"))
    text = _entry(f"linux-image-{release}", version, 1928,
                  f"dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool,\n {parts}")
    for part in with_parts:
        text += _entry(f"linux-{part}-{release}", version, 1 << 20)
    return text


@pytest.fixture
def split_index() -> archive.PackageIndex:
    text = (_split_kernel("7.3.4+deb13-cloud-amd64", "7.3.4-1~bpo13+1")
            + _split_kernel("7.2.12+deb13-cloud-amd64", "7.2.12-1~bpo13+1")
            # parts gone from the index (superseded): not offered
            + _split_kernel("7.1.13+deb13-cloud-amd64", "7.1.13-1~bpo13+1", ("binary",))
            + _entry("linux-image-7.3.4+deb13-cloud-amd64-dbg", "7.3.4-1~bpo13+1")
            + _entry("linux-image-cloud-amd64", "7.3.4-1~bpo13+1", depends="linux-image-7.3."
                     "4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)")
            + _entry("linux-image-6.18.15+deb13-cloud-amd64", "6.18.15-1~bpo13+1", 49_000_000,
                     "kmod, linux-base (>= 4.3~)"))
    return archive.PackageIndex.parse(text, "trixie-backports")


def test_split_packaging_offers_its_three_parts(split_index):
    offers = kernels.offers_in(split_index)
    assert [o.release for o in offers] == ["7.3.4+deb13-cloud-amd64", "7.2.12+deb13-cloud-amd64",
                                           "6.18.15+deb13-cloud-amd64"]
    newest = offers[0]
    assert newest.split and newest.suite == "trixie-backports"
    assert [p.name for p in newest.files] == [f"linux-{p}-7.3.4+deb13-cloud-amd64"
                                              for p in ("binary", "base", "modules")]
    assert newest.size == 3 << 20
    one = offers[-1]
    assert not one.split and one.files == (one.image,)


def test_experimental_release_without_debian_revision():
    assert kernels.parse_kernel_package("linux-image-7.3-cloud-amd64") == ("7.3-cloud-amd64",
                                                                           "7.3")
    assert kernels.parse_kernel_package("linux-image-7.3-cloud-amd64-dbg") is None
    assert kernels.matches("7.3-cloud-amd64", "7.3")
    assert kernels.matches("7.3-cloud-amd64", "7")
    assert not kernels.matches("7.3-cloud-amd64", "7.3.4")
    assert not kernels.matches("7.30.1+deb14-cloud-amd64", "7.3")
    # 7.3~rc7 sorts before the release 7.3.4: --kernel 7.3 takes the release
    assert archive.DebianVersion("7.3~rc7-1~exp1") < archive.DebianVersion("7.3.4-1~bpo13+1")


def test_not_found_lists_every_suite_and_why_one_is_missing(split_index, index):
    offers = kernels.offers_in(split_index) + kernels.offers_in(index)
    err = kernels.not_found("9.1", offers, ["bookworm-backports", "trixie-backports", "sid"],
                            {"sid": "the sid index expired at X"})
    text = str(err)
    assert err.exit_code == 2
    assert "  bookworm-backports: 6.12.95+deb12-cloud-amd64," in text
    assert "  trixie-backports: 7.3.4+deb13-cloud-amd64, 7.2.12+deb13-cloud-amd64," in text
    assert "  sid: not available (the sid index expired at X)" in text


KCONFIG = "".join(f"{o}=y\n" for o in kernels.REQUIRED_BUILTIN) + "CONFIG_NETKIT=y\n"


def _deb(tmp: Path, name: str, version: str, files: dict[str, str]) -> bytes:
    root = tmp / f"root-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: lab <lab@test>\n"
        "Description: test\n")
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    out = tmp / f"{name}.deb"
    subprocess.run(["dpkg-deb", "-Zxz", "--root-owner-group", "-b", str(root), str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out.read_bytes()


def _kernel_mirror(tmp: Path, signer, *, tamper: str = "") -> Path:
    """Two signed suites: test-old with a one-package 6.12 kernel, test-new with a split 7.3
    one (TAMPER: the name of a part whose .deb differs from what the index says)."""
    home, _ = signer
    mirror = tmp / "mirror"
    suites = {
        "test-old": [("linux-image-6.12.95+deb12-cloud-amd64", "6.12.95-1", "kmod", {
            "boot/vmlinuz-6.12.95+deb12-cloud-amd64": "not really a kernel",
            "boot/config-6.12.95+deb12-cloud-amd64": KCONFIG,
            "lib/modules/6.12.95+deb12-cloud-amd64/modules.order": ""})],
        "test-new": [
            ("linux-image-7.3.4+deb13-cloud-amd64", "7.3.4-1",
             ", ".join(f"linux-{p}-7.3.4+deb13-cloud-amd64 (= 7.3.4-1)"
                       for p in ("base", "binary", "modules")), {}),
            ("linux-binary-7.3.4+deb13-cloud-amd64", "7.3.4-1", "", {
                "usr/lib/modules/7.3.4+deb13-cloud-amd64/vmlinuz": "not really a kernel"}),
            ("linux-base-7.3.4+deb13-cloud-amd64", "7.3.4-1", "", {
                "usr/lib/modules/7.3.4+deb13-cloud-amd64/config": KCONFIG,
                "usr/lib/modules/7.3.4+deb13-cloud-amd64/modules.builtin": ""}),
            ("linux-modules-7.3.4+deb13-cloud-amd64", "7.3.4-1", "", {
                "usr/lib/modules/7.3.4+deb13-cloud-amd64/modules.order": ""})],
    }
    for suite, debs in suites.items():
        packages = ""
        for name, version, depends, files in debs:
            deb = _deb(tmp, name, version, files)
            rel = f"pool/main/l/{name}_{version}_amd64.deb"
            (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
            (mirror / rel).write_bytes(deb + (b"x" if name == tamper else b""))
            packages += _entry(name, version, len(deb), depends).replace(
                f"pool/main/l/x/{name}_{version}_amd64.deb", rel).replace(
                H, hashlib.sha256(deb).hexdigest())
        xz = lzma.compress(packages.encode(), format=lzma.FORMAT_XZ)
        dists = mirror / "dists" / suite
        (dists / "main" / "binary-amd64").mkdir(parents=True)
        (dists / "main" / "binary-amd64" / "Packages.xz").write_bytes(xz)
        until = datetime.now(UTC) + timedelta(days=7)
        release = (f"Suite: {suite}\nValid-Until: {format_datetime(until, usegmt=True)}\n"
                   f"SHA256:\n {hashlib.sha256(xz).hexdigest()} {len(xz)} "
                   f"main/binary-amd64/Packages.xz\n")
        (dists / "InRelease").write_bytes(_gpg(home, "--clearsign", input=release.encode()))
    return mirror


@pytest.fixture
def kernel_mirror_env(tmp_path, signer, monkeypatch):
    def use(**kw) -> Path:
        mirror = _kernel_mirror(tmp_path, signer, **kw)
        monkeypatch.setenv("LAB_VM_MIRROR", f"file://{mirror}")
        monkeypatch.setenv("LAB_VM_KEYRING", str(signer[1]))
        monkeypatch.setenv("LAB_VM_CACHE", str(tmp_path / "cache"))
        return tmp_path / "cache"
    if shutil.which("depmod") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("needs depmod and dpkg-deb")
    return use


def test_both_packagings_install_from_their_suites(kernel_mirror_env):
    cache_root = kernel_mirror_env()
    cache = kernels.KernelCache(suites=("test-old", "test-new"))
    old = cache.kernel(None)  # the first suite's newest, as before there were several
    assert (old.release, old.suite) == ("6.12.95+deb12-cloud-amd64", "test-old")
    assert old.bzimage.endswith("/root/boot/vmlinuz-6.12.95+deb12-cloud-amd64")
    new = cache.kernel("7.3")
    assert (new.release, new.suite) == ("7.3.4+deb13-cloud-amd64", "test-new")
    assert new.bzimage == os.path.join(new.modules, "vmlinuz")
    assert os.path.realpath(new.modules) == os.path.join(
        new.root, "usr", "lib", "modules", new.release)
    assert os.path.exists(os.path.join(new.modules, "modules.dep"))  # depmod ran
    assert new.config()["CONFIG_NETKIT"] == "y"
    for k in (old, new):  # what the guest reads as /lib/modules/RELEASE/config
        assert kernels.read_kconfig(os.path.join(k.modules, "config")) == k.config()
    import json
    meta = json.loads((Path(new.path) / "kernel.json").read_text())
    assert meta["layout"] == "split" and meta["suite"] == "test-new"
    assert sorted(meta["files"]) == [f"linux-{p}-7.3.4+deb13-cloud-amd64"
                                     for p in ("base", "binary", "modules")]
    assert sorted(os.listdir(cache_root / "kernels")) == [old.release, new.release]
    with pytest.raises(UsageError, match=r"(?s)no cloud-amd64 kernel 7\.4 .*test-new: "
                                         r"7\.3\.4\+deb13-cloud-amd64"):
        cache.kernel("7.4")


def test_a_part_failing_verification_is_deleted_and_nothing_is_cached(kernel_mirror_env):
    cache_root = kernel_mirror_env(tamper="linux-modules-7.3.4+deb13-cloud-amd64")
    cache = kernels.KernelCache(suites=("test-old", "test-new"))
    with pytest.raises(archive.ArchiveError, match="SHA256 .* does not match") as e:
        cache.kernel("7.3")
    assert e.value.exit_code == 125
    assert os.listdir(cache_root / "kernels") == []  # no kernel, no partial download


def test_cli_unknown_version_exit_2_and_failed_verification_exit_125(kernel_mirror_env):
    import sys
    kernel_mirror_env(tamper="linux-binary-7.3.4+deb13-cloud-amd64")
    env = {**os.environ, "LAB_VM_SUITES": "test-old,test-new"}
    run = [sys.executable, "-m", "lab", "vm"]
    proc = subprocess.run([*run, "--kernel", "9.1", "--", "true"], env=env, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "test-new: 7.3.4+deb13-cloud-amd64" in proc.stderr
    proc = subprocess.run([*run, "--kernel", "7.3", "--", "true"], env=env, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 125, proc.stderr
    assert "does not match" in proc.stderr
    proc = subprocess.run([*run, "--list"], env=env, text=True, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:-1]}
    assert rows["7.3.4+deb13-cloud-amd64"][2] == "test-new"
    assert rows["6.12.95+deb12-cloud-amd64"][2] == "test-old"


def test_a_cached_index_expires_too(tmp_path, signer):
    mirror = _make_mirror(tmp_path, signer,
                          valid_until=datetime.now(UTC) + timedelta(seconds=2))
    arch = _archive(tmp_path, mirror, signer[1])
    arch.refresh()
    assert arch.index().newest("lab-test")
    time.sleep(2.5)
    with pytest.raises(archive.ArchiveError, match="expired"):
        arch.index()
    waived = archive.Archive(arch.cache_dir, mirror=arch.mirror, suite=SUITE,
                             keyring=arch.keyring, allow_expired=True)
    assert waived.index().newest("lab-test").version == "1.0"
