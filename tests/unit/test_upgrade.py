"""results.json of older schema versions: read through the upgrade, each version tested with
a file `lab run` of that version wrote (tests/data/results/v<N>.json); a newer or unknown
version is refused with its number, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import UsageError
from lab.scenarios import results, stats, upgrade
from lab.scenarios.report import write_reports

DATA = Path(__file__).resolve().parents[1] / "data" / "results"
LAB = [sys.executable, "-m", "lab"]


@pytest.mark.parametrize("version", sorted(upgrade.UPGRADES))
def test_every_older_version_has_a_stored_file_that_loads(version):
    path = DATA / f"v{version}.json"
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == version
    results.validate(raw, version)  # as that version's lab wrote it
    doc = results.load(path)
    assert doc["schema_version"] == results.SCHEMA_VERSION
    results.validate(doc)


def test_version_1_ratios_get_their_interval_from_the_samples():
    raw = json.loads((DATA / "v1.json").read_text())
    doc = results.load(DATA / "v1.json")
    (old_sc,), (sc,) = raw["scenarios"], doc["scenarios"]
    assert len(sc["comparisons"]) == len(old_sc["comparisons"]) == 2
    for old, new in zip(old_sc["comparisons"], sc["comparisons"]):
        metric = {(m["step"] + "." + m["metric"], m["point"]["config"]): m
                  for m in old_sc["metrics"]}
        of = metric[(old["metric"], old["of"]["config"])]
        to = metric[(old["metric"], old["to"]["config"])]
        assert of["repeats"] == to["repeats"] == [0, 1, 2]
        iv = stats.paired_ratio(of["samples"], to["samples"])
        assert (new["ratio"], new["ci_low"], new["ci_high"]) == \
            pytest.approx((iv.estimate, iv.low, iv.high))
        assert new["ratio_of_medians"] == pytest.approx(old["ratio"])  # version 1's ratio
        assert new["verdict"] == stats.ratio_verdict(iv)[0]
        assert new["anchors"] == old["anchors"] and new["spec"] is None
    assert [c["kind"] for c in sc["charts"]] == ["bars"]
    assert sc["claims"] == sc["distributions"] == sc["timelines"] == []


def test_a_version_1_run_is_reported_again(tmp_path):
    proc = subprocess.run(LAB + ["report", str(DATA / "v1.json"), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "report.html").read_text()
    assert 'v1-sample: <span class="passed">passed' in page and "95% confidence" in page
    assert page.count("<figure") == len(list((tmp_path / "charts").glob("*.svg"))) >= 2


@pytest.mark.parametrize("version,why", [
    (results.SCHEMA_VERSION + 1, "(the file is newer than this lab: update the lab to read "
                                 "it)"),
    (0, ""), ("1", ""), (None, ""),
])
def test_other_versions_are_refused_naming_them(tmp_path, version, why):
    doc = json.loads((DATA / "v1.json").read_text())
    doc["schema_version"] = version
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError) as exc:
        results.load(path)
    assert str(exc.value) == (f"{path}: results schema version {version!r}: this lab reads "
                              f"versions 1 to {results.SCHEMA_VERSION}" + (f" {why}" if why
                                                                            else ""))
    proc = subprocess.run(LAB + ["compare", str(path), str(DATA / "v1.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and f"results schema version {version!r}" in proc.stderr


def test_an_invalid_old_file_is_refused_against_its_own_schema(tmp_path):
    doc = json.loads((DATA / "v1.json").read_text())
    del doc["scenarios"][0]["comparisons"][0]["ratio_min"]  # required in version 1
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match=r"not a valid results document \(schema version 1\) "
                                         "at scenarios/0/comparisons/0: 'ratio_min'"):
        results.load(path)


def test_nan_is_refused_as_bad_input(tmp_path):
    text = (DATA / "v1.json").read_text()
    doc = json.loads(text)
    doc["scenarios"][0]["metrics"][0]["samples"][0] = float("nan")
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))  # Python writes NaN, which JSON does not allow
    with pytest.raises(UsageError, match="NaN is not a number JSON allows"):
        results.load(path)


def test_the_upgraded_run_renders(tmp_path):
    doc = results.load(DATA / "v1.json")
    md, page = write_reports(doc, tmp_path)
    assert "| 80000-byte transactions/s, BIG TCP / 64 KB | family=6 |" in md.read_text()
