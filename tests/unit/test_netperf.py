"""netperf: its output as netperf 2.7.0 printed it (tests/data/traffic/netperf-*), the command
lines the lab runs, and where the lab finds it (PATH, or its verified copy of Debian's
package in the tool cache)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab.errors import LabError, UsageError
from lab.traffic import netperf, netperf_package

DATA = Path(__file__).resolve().parents[1] / "data" / "traffic"


def test_tcp_rr_with_latency_percentiles():
    r = netperf.parse((DATA / "netperf-tcp_rr.txt").read_text(), "TCP_RR")
    assert r.rate == pytest.approx(37008.75) and r.units == "Trans/s"
    assert (r.request_bytes, r.response_bytes, r.seconds) == (1, 1, 1.0)
    lat = r.latency_us
    assert (lat["min"], lat["p50"], lat["p90"], lat["p99"]) == (13, 14, 18, 55)
    assert lat["mean"] == pytest.approx(26.97)
    assert lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]


def test_tcp_crr_is_connections_per_second():
    r = netperf.parse((DATA / "netperf-tcp_crr.txt").read_text(), "TCP_CRR")
    assert r.rate == pytest.approx(8769.98)
    assert r.latency_us["p99"] == 1800


def test_tcp_stream_in_gbit():
    r = netperf.parse((DATA / "netperf-tcp_stream.txt").read_text(), "TCP_STREAM")
    assert r.rate == pytest.approx(14.0) and r.units == "10^9bits/s"
    assert r.latency_us == {}


def test_units_must_match_the_test():
    with pytest.raises(LabError, match="expected 10\\^9bits/s"):
        netperf.parse((DATA / "netperf-tcp_rr.txt").read_text(), "TCP_STREAM")


def test_no_result_is_an_error_with_netperfs_words():
    with pytest.raises(LabError, match="are you sure there is a netserver"):
        netperf.parse((DATA / "netperf-refused.txt").read_text(), "TCP_RR")


def test_missing_selectors_are_left_out():
    r = netperf.parse((DATA / "netperf-tcp_rr-no-j.txt").read_text(), "TCP_RR")
    assert set(r.latency_us) == {"p99"} and r.request_bytes is None


def test_command_lines():
    rr = netperf.command("/x/netperf", "TCP_RR", "fd00::11", 12865, 2)
    assert rr[:2] == ["/x/netperf", "-j"]
    assert rr[rr.index("-H") + 1] == "fd00::11" and "-6" in rr
    assert rr[rr.index("-l") + 1] == "2"
    test_opts = rr[rr.index("--") + 1:]
    assert test_opts[test_opts.index("-r") + 1] == "1,1"
    assert test_opts[test_opts.index("-P") + 1] == ",12866"  # data port: control + 1
    assert "P99_LATENCY" in test_opts[test_opts.index("-k") + 1]
    crr = netperf.command("netperf", "TCP_CRR", "192.0.2.1", 5000, 1.4, request=64,
                          response=1024, data_port=6000)
    assert "-4" in crr and crr[crr.index("-r") + 1] == "64,1024"
    assert crr[crr.index("-l") + 1] == "1" and crr[-1] == ",6000"
    stream = netperf.command("netperf", "TCP_STREAM", "fd00::1", 12865, 3)
    assert "-j" not in stream and stream[stream.index("-f") + 1] == "g"
    counted = netperf.command("netperf", "TCP_RR", "fd00::1", 12865, 0.5, transactions=5000)
    assert counted[counted.index("-l") + 1] == "-5000"  # a negative length counts transactions
    with pytest.raises(UsageError, match="TCP_RR or TCP_CRR only"):
        netperf.command("netperf", "TCP_STREAM", "fd00::1", 12865, 1, transactions=10)
    with pytest.raises(UsageError, match="expected one of"):
        netperf.command("netperf", "UDP_RR", "fd00::1", 12865, 1)
    with pytest.raises(UsageError, match="needs an address"):
        netperf.command("netperf", "TCP_RR", "pod0.lab", 12865, 1)


# -- where netperf comes from -------------------------------------------------------------------

def _unpacked(root: Path, version: str, complete: bool = True) -> Path:
    entry = root / f"netperf_{version}"
    (entry / "usr" / "bin").mkdir(parents=True)
    for prog in netperf_package.PROGRAMS:
        path = entry / "usr" / "bin" / prog
        path.write_text("#!/bin/sh\necho 'Netperf version 2.7.0'\n")
        path.chmod(0o755)
    if complete:
        (entry / "package.json").write_text(json.dumps({
            "package": "netperf", "version": version, "suite": "bookworm",
            "component": "non-free", "mirror": "http://deb.debian.org/debian",
            "sha256": "0" * 64}))
    return entry


def test_the_newest_complete_cached_copy_is_used(tmp_path):
    assert netperf_package.cached(tmp_path) is None
    _unpacked(tmp_path, "2.7.0-0.1")
    _unpacked(tmp_path, "2.7.1~git20240101-1", complete=False)  # interrupted: no package.json
    _unpacked(tmp_path, "2.6.0-2.1")
    found = netperf_package.cached(tmp_path)
    assert found.netperf.endswith("netperf_2.7.0-0.1/usr/bin/netperf")
    assert found.netserver.endswith("netperf_2.7.0-0.1/usr/bin/netserver")
    assert "bookworm/non-free" in found.origin
    assert found.version == "Netperf version 2.7.0"


def test_path_comes_first_then_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _unpacked(cache, "2.7.0-0.1")
    monkeypatch.setenv("LAB_TOOLS_CACHE", str(cache))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert netperf_package.find().origin.startswith("netperf 2.7.0-0.1")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for prog in netperf_package.PROGRAMS:
        (bindir / prog).write_text("#!/bin/sh\n")
        (bindir / prog).chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    assert netperf_package.find().origin == "PATH"


def test_missing_netperf_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_TOOLS_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="non-free.*make deps"):
        netperf_package.require()
    cap = netperf_package.capability()
    assert not cap.ok and "deb.debian.org" in cap.detail
    assert not os.listdir(tmp_path)  # looking leaves nothing behind


class FakeArchive:
    """The archive client's interface (lab/vm/archive.py, tested on its own against a signed
    file:// mirror) serving one real .deb built here."""

    mirror, suite, component = "file:///mirror", "bookworm", "non-free"

    def __init__(self, deb: Path, version: str):
        from lab.vm import archive

        self.deb = deb
        self.pkg = archive.Package("netperf", version, "pool/non-free/n/netperf/x.deb",
                                   "0" * 64, deb.stat().st_size, {})
        self.downloads = 0

    def index(self):
        return self

    def newest(self, name):
        assert name == "netperf"
        return self.pkg

    def download(self, pkg, dest_dir):
        self.downloads += 1
        target = Path(dest_dir) / "netperf.deb"
        target.write_bytes(self.deb.read_bytes())
        return str(target)


def _build_deb(tmp: Path, version: str) -> Path:
    import shutil
    import subprocess

    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is needed to build a test package")
    root = tmp / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: netperf\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: test\n")
    (root / "usr" / "bin").mkdir(parents=True)
    for prog in netperf_package.PROGRAMS:
        (root / "usr" / "bin" / prog).write_text("#!/bin/sh\necho 'Netperf version 2.7.0'\n")
        (root / "usr" / "bin" / prog).chmod(0o755)
    deb = tmp / "netperf.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


def test_fetch_unpacks_once_and_records_the_origin(tmp_path):
    arch = FakeArchive(_build_deb(tmp_path, "2.7.0-0.1"), "2.7.0-0.1")
    cache = tmp_path / "cache"
    found = netperf_package.fetch(cache, arch)
    assert found.netperf == str(cache / "netperf_2.7.0-0.1" / "usr" / "bin" / "netperf")
    meta = json.loads((cache / "netperf_2.7.0-0.1" / "package.json").read_text())
    assert (meta["version"], meta["component"]) == ("2.7.0-0.1", "non-free")
    assert netperf_package.fetch(cache, arch) == found and arch.downloads == 1
    assert not [p for p in cache.iterdir() if p.name.startswith(".part-")]
