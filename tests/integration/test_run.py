"""`lab run` end to end: a small scenario for real, a failing assertion, Ctrl-C, the HTML
report in headless Chromium, and the pytest plugin."""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lab import netns
from lab.scenarios import results

from sigint import with_sigint

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
LAB = [sys.executable, "-m", "lab"]
BIGTCP = ROOT / "topologies" / "bigtcp.yaml"

SMALL = f"""\
name: small
topology: {BIGTCP}
configs:
  legacy: {{patch: {{defaults: {{gso_max_size: 65536, gro_max_size: 65536,
                               gso_ipv4_max_size: 65536, gro_ipv4_max_size: 65536}}}}}}
  big: {{}}
matrix: {{family: [6, 4]}}
repeats: 2
steps:
  - {{kind: reach, when: {{family: 6}}}}
  - kind: ping
    with: {{from: client, to: server, family: "${{family}}", count: 3, interval: 0.05}}
    capture: [{{node: router, ifname: eth-server, filter: "icmp or (icmp6 and ip6[40] < 130)"}}]
  - kind: rr
    with: {{client: client, server: server, family: "${{family}}", seconds: 0.3,
           request: 1000}}
assert:
  - {{metric: ping.loss, max: 0}}
  - {{metric: reach.unreachable, max: 0}}
compare:
  - metric: rr.tps
    of: {{config: big}}
    to: {{config: legacy}}
    anchors: [{{value: 1.5, label: "an anchor"}}]
    claims:
      - {{id: big-rr, claim: "BIG TCP: +10% 1000-byte transactions/s", published: 1.1,
         source: "a test", at: {{family: 6}}}}
      - {{id: big-rr4, claim: "BIG TCP for IPv4 costs nothing", parity: 0.2,
         source: "a test", at: {{family: 4}}}}
charts:
  - {{title: rr latency, metrics: [rr.p50, rr.p99], x: [metric, family]}}
  - {{title: rr latency distribution, cdf: rr, where: {{family: 6}}}}
"""


def run_lab(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true"}
    return subprocess.run(LAB + list(args), capture_output=True, text=True, env=env,
                          timeout=kw.pop("timeout", 300), **kw)


def lab_namespaces(pid: int) -> list[str]:
    return [n for n in netns.list_names() if n.startswith(f"r{pid % 100000}s")]


def test_a_scenario_for_real_results_reports_and_captures(tmp_path):
    (tmp_path / "small.yaml").write_text(SMALL)
    out = tmp_path / "out"
    proc = run_lab("run", str(tmp_path / "small.yaml"), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results.load(out / "results.json")  # validates against the schema
    (sc,) = doc["scenarios"]
    assert doc["status"] == sc["status"] == "passed"
    assert sc["dimensions"] == {"config": ["legacy", "big"], "family": [6, 4]}
    by = {(m["step"], m["metric"], m["point"]["config"], m["point"]["family"]): m
          for m in sc["metrics"]}
    tps = by[("rr", "tps", "big", 4)]
    assert tps["n"] == 2 and tps["repeats"] == [0, 1] and tps["unit"] == "transactions/s"
    assert tps["placement"][0]["name"] == "same-cpu"
    assert tps["placement"][0]["client_cpus"] == tps["placement"][0]["server_cpus"]
    assert by[("reach", "unreachable", "legacy", 6)]["samples"] == [0.0, 0.0]
    assert ("reach", "pairs", "legacy", 4) not in by  # `when: {family: 6}`
    assert len(sc["comparisons"]) == 2 and all(c["n"] == 2 for c in sc["comparisons"])
    assert {c["name"]: c["status"] for c in sc["configs"]} == {"legacy": "up", "big": "up"}
    # one capture per ping step run (2 configs x 2 families x 2 repeats), each readable
    assert len(sc["captures"]) == 8
    for cap in sc["captures"]:
        assert (out / cap["file"]).read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")
        assert cap["packets"] == 6  # 3 echo requests + 3 replies
    assert len(sc["distributions"]) == 8  # an rr step per config, family and repeat
    assert sum(sc["distributions"][0]["buckets"]["counts"]) == \
        sc["distributions"][0]["count"] > 0
    assert [c["id"] for c in sc["claims"]] == ["big-rr", "big-rr4"]
    md = (out / "report.md").read_text()
    assert "## small: passed" in md and "an anchor: 1.50x" in md
    # the claims, the ratios (both families), the latency bars, the latency CDFs of the
    # two configs
    assert len(list((out / "charts").glob("*.svg"))) == 4
    labs = tuple(f"{c['lab']}-" for c in sc["configs"])
    assert not [n for n in netns.list_names() if n.startswith(labs)]  # torn down


def test_failing_assertion_fails_the_run_with_value_and_threshold(tmp_path):
    text = SMALL.replace("  - {metric: ping.loss, max: 0}",
                         "  - {metric: rr.tps, max: 1, where: {config: big, family: 6}}")
    (tmp_path / "small.yaml").write_text(text.replace("repeats: 2", "repeats: 1"))
    proc = run_lab("run", str(tmp_path / "small.yaml"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    (sc,) = doc["scenarios"]
    assert doc["status"] == sc["status"] == "failed"
    (bad,) = [a for a in sc["assertions"] if not a["ok"]]
    measured = bad["measured"]
    assert measured > 1
    assert bad["message"].startswith("rr.tps [config=big family=6] = ")
    assert "(repeat 0), expected <= 1 transactions/s" in bad["message"]
    assert bad["message"] in proc.stderr and bad["message"] in proc.stdout


def test_bad_scenario_exits_2_with_position_before_anything_runs(tmp_path):
    (tmp_path / "bad.yaml").write_text(SMALL.replace("count: 3", "count: 0"))
    env = {**os.environ, "CI": "true"}
    proc = subprocess.Popen(LAB + ["run", str(tmp_path / "bad.yaml"), "--out",
                                   str(tmp_path / "out")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"{tmp_path / 'bad.yaml'}:12:" in stderr
    assert "count: 0 is less than the minimum of 1" in stderr
    assert not (tmp_path / "out").exists() and lab_namespaces(proc.pid) == []


def test_ctrl_c_tears_the_labs_down_and_keeps_partial_results(tmp_path):
    text = SMALL.replace("seconds: 0.3", "seconds: 60").replace("repeats: 2", "repeats: 1")
    (tmp_path / "long.yaml").write_text(text)
    out = tmp_path / "out"
    env = {**os.environ, "CI": "true"}
    # SIGINT at its default action, as from a terminal, whatever this test inherited.
    proc = subprocess.Popen(with_sigint("default", LAB + ["run", str(tmp_path / "long.yaml"),
                                                          "--out", str(out)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        # wait for the first rr measurement to be under way (its server logs to out/logs)
        while not list((out / "logs").glob("*lab-rr*")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.5)
        assert lab_namespaces(proc.pid), "the labs should be up"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert lab_namespaces(proc.pid) == []
    doc = results.load(out / "results.json")
    assert doc["status"] == "interrupted"
    (sc,) = doc["scenarios"]
    assert sc["status"] == "interrupted"
    # what was measured before the interrupt is kept: reach and ping of the first point
    assert {m["step"] for m in sc["metrics"]} >= {"reach", "ping"}
    assert (out / "report.html").exists() and "partial results" in stderr


# Run in the page after it loaded: what a reader's browser made of it, as JSON in the DOM.
PROBE = """<script>
window.addEventListener("load", () => {
  const figures = [...document.querySelectorAll("figure")].map(f => {
    const img = f.querySelector("img");
    return {id: f.id, loaded: !!img && img.complete && img.naturalWidth > 0,
            width: img ? img.naturalWidth : 0};
  });
  const heading = document.getElementById("the-talk-s-claims");
  let table = heading.nextElementSibling;
  while (table && table.tagName !== "TABLE") table = table.nextElementSibling;
  const head = [...table.querySelectorAll("thead th")].map(th => th.textContent);
  const claims = [...table.querySelectorAll("tbody tr")].map(tr => {
    const cells = [...tr.children].map(td => td.textContent);
    return {claim: cells[0], verdict: cells[head.indexOf("verdict")]};
  });
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({figures, claims});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium_with_its_charts(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (tools/debian-packages.txt; make deps)")
    from PIL import Image

    from lab.scenarios.claims import VERDICTS

    (tmp_path / "small.yaml").write_text(SMALL)
    out = tmp_path / "out"
    proc = run_lab("run", str(tmp_path / "small.yaml"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out / "report.html"
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
             "--enable-logging=stderr", "--v=0"]
    r = subprocess.run([chromium, *flags, "--window-size=1280,5000",
                        f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    console = [ln for ln in r.stderr.splitlines() if "CONSOLE" in ln or "Failed to load" in ln]
    assert console == [], console
    # The page as loaded, with a probe script added to a copy (the report has no script).
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=10000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120)
    start = dom.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    seen = json.loads(html.unescape(dom.stdout[start:dom.stdout.index("</pre>", start)]))
    # The claims table: a row per claim of the run, each with a verdict.
    doc = results.load(out / "results.json")
    claims = [c for s in doc["scenarios"] for c in s["claims"]]
    assert [c["claim"] for c in seen["claims"]] == [c["claim"] for c in claims]
    assert len(claims) == 2
    assert all(c["verdict"] in VERDICTS for c in seen["claims"]), seen["claims"]
    # Every chart written is on the page (and in report.md), and every one loaded.
    files = sorted(p.stem for p in (out / "charts").glob("*.svg"))
    assert sorted(f["id"].removeprefix("chart-") for f in seen["figures"]) == files
    assert len(files) == 4 and all(f["loaded"] and f["width"] > 300 for f in seen["figures"])
    md = (out / "report.md").read_text()
    assert all(f"](charts/{name}.svg)" in md for name in files)
    # The charts are there as pixels: matplotlib's bar colours (C0 blue, C1 orange) cover a
    # real area of the screenshot, in more than one place down the page.
    img = Image.open(shot).convert("RGB")
    width, height = img.size
    pixels = img.load()
    bar_rows = set()
    count = 0
    for y in range(0, height, 2):
        for x in range(0, width, 2):
            r_, g, b = pixels[x, y]
            if (abs(r_ - 0x1f) < 12 and abs(g - 0x77) < 12 and abs(b - 0xb4) < 12) or \
                    (abs(r_ - 0xff) < 12 and abs(g - 0x7f) < 12 and abs(b - 0x0e) < 12):
                count += 1
                bar_rows.add(y // 200)
    assert count > 2000, f"only {count} chart-coloured pixels in the screenshot"
    assert len(bar_rows) >= 2


def test_pytest_plugin_gives_tests_a_running_lab(pytester):
    names = pytester.path / "labs.txt"
    pytester.makepyfile(test_mine=f"""
        import pytest

        def record(lab):
            with open({str(names)!r}, "a") as f:
                f.write(lab.name + "\\n")

        def test_nodes(lab, lab_nodes):
            record(lab)
            assert set(lab_nodes) == {{"client", "router", "server"}}
            lab_nodes["client"].run(["ping", "-c1", "-W2", lab.node("server").address(6)])

        def test_same_lab_again(lab):
            record(lab)

        @pytest.mark.lab_topology({str(ROOT / "topologies" / "nat46.yaml")!r})
        def test_marker(lab):
            record(lab)
            assert "gw" in lab.nodes and len(lab.pods("node1")) == 4
    """)
    result = pytester.runpytest_subprocess("--lab-topology", str(BIGTCP), "-p",
                                           "no:cacheprovider")
    result.assert_outcomes(passed=3)
    first, again, other = names.read_text().split()
    assert first == again != other  # one lab per topology file for the session
    left = [n for n in netns.list_names() if n.startswith((f"{first}-", f"{other}-"))]
    assert left == []  # both torn down at the session's end


def test_pytest_plugin_without_a_topology_says_what_to_do(pytester):
    pytester.makepyfile(test_mine="def test_x(lab):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*run pytest with --lab-topology FILE*"])


@pytest.mark.vm
@pytest.mark.slow
def test_vm_runs_a_scenario_whose_requirement_this_kernel_lacks(tmp_path):
    pytest.importorskip("lab.vm", reason="the kernel VM runner (lab.vm) is not in this checkout")
    from lab import features

    if features.netkit()[0]:
        pytest.skip("this kernel has netkit: the scenario would run natively")
    (tmp_path / "needs-netkit.yaml").write_text(textwrap.dedent(f"""\
        name: needs-netkit
        topology: {BIGTCP}
        requires: [netkit]
        repeats: 1
        steps:
          - {{kind: ping, with: {{from: client, to: server, family: 6, count: 2}}}}
        assert:
          - {{metric: ping.loss, max: 0}}
        """))
    out = tmp_path / "out"
    skipped = run_lab("run", str(tmp_path / "needs-netkit.yaml"), "--out", str(out))
    assert skipped.returncode == 0
    (sc,) = results.load(out / "results.json")["scenarios"]
    assert sc["status"] == "skipped" and "CONFIG_NETKIT" in sc["reason"]

    proc = run_lab("run", str(tmp_path / "needs-netkit.yaml"), "--vm", "--out", str(out),
                   timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results.load(out / "results.json")
    (sc,) = doc["scenarios"]
    assert sc["status"] == "passed"
    env = sc["environment"]
    assert env["execution"]["mode"] == "vm" and env["execution"]["accel"] in ("kvm", "tcg")
    assert env["kernel"]["release"] != doc["environment"]["kernel"]["release"]
    assert [m["samples"] for m in sc["metrics"] if m["metric"] == "loss"] == [[0.0]]
