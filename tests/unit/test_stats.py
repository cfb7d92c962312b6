"""The statistics that judge every ratio (lab/scenarios/stats.py) and the talk's claims
(lab/scenarios/claims.py), on synthetic repeats with a known difference and with pure noise."""

from __future__ import annotations

import math
import random

import pytest

from lab.scenarios import claims, stats


def repeats(rng: random.Random, n: int, level: float, noise: float) -> list[float]:
    """N measurements of LEVEL with log-normal noise (sd NOISE on the log scale)."""
    return [level * math.exp(rng.gauss(0.0, noise)) for _ in range(n)]


def paired(rng: random.Random, n: int, ratio: float, noise: float,
           drift: float = 0.3) -> tuple[list[float], list[float]]:
    """Side-by-side repeats: each repeat's machine state (DRIFT) hits both sides alike."""
    of, to = [], []
    for _ in range(n):
        state = math.exp(rng.gauss(0.0, drift))
        to.append(1000.0 * state * math.exp(rng.gauss(0.0, noise)))
        of.append(1000.0 * ratio * state * math.exp(rng.gauss(0.0, noise)))
    return of, to


def test_t_quantiles_match_the_tables():
    for df, t in ((1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (29, 2.045),
                  (1000, 1.962)):
        assert stats.t_quantile(0.975, df) == pytest.approx(t, abs=1e-3)
    assert stats.t_cdf(0.0, 5) == pytest.approx(0.5)


def test_a_known_difference_is_found_and_its_interval_holds_it():
    rng = random.Random(7)
    of, to = paired(rng, 5, 1.30, noise=0.03)
    iv = stats.paired_ratio(of, to)
    assert iv.low < 1.30 < iv.high and iv.low > 1.0
    verdict, note, _ = stats.ratio_verdict(iv)
    assert verdict == "higher" and "lies above 1" in note
    down = stats.paired_ratio(to, of)
    assert stats.ratio_verdict(down)[0] == "lower"
    assert down.estimate == pytest.approx(1 / iv.estimate)


def test_pairing_removes_the_drift_both_sides_share():
    rng = random.Random(3)
    # the machine's state swings 30% between repeats, the effect is 10%, the noise 2%
    of, to = paired(rng, 4, 1.10, noise=0.02, drift=0.3)
    assert stats.ratio_verdict(stats.paired_ratio(of, to))[0] == "higher"
    # unpaired (as two runs would be), the drift hides it
    assert not stats.unpaired_ratio(of, to).excludes_one


def test_pure_noise_is_no_difference_or_too_wide_never_a_difference():
    rng = random.Random(11)
    quiet_of, quiet_to = paired(rng, 5, 1.0, noise=0.005)
    verdict, _, _ = stats.ratio_verdict(stats.paired_ratio(quiet_of, quiet_to))
    assert verdict == "no difference"
    loud_of, loud_to = paired(rng, 3, 1.0, noise=0.25)
    iv = stats.paired_ratio(loud_of, loud_to)
    verdict, note, need = stats.ratio_verdict(iv)
    assert verdict == "too wide to judge" and need is not None and need > 3
    assert f"about {need} repeats" in note


def test_false_positives_on_pure_noise_stay_near_five_percent():
    """The interval's promise: on noise alone, 'higher' or 'lower' about 5% of the time.
    The old min..max band of the paired ratios (what a bootstrap over 3 pairs gives at best)
    excludes 1 far more often: 25% of the time for 3 repeats."""
    rng = random.Random(2024)
    trials = 2000
    for n in (3, 5):
        t_hits = band_hits = 0
        for _ in range(trials):
            of, to = paired(rng, n, 1.0, noise=0.1)
            t_hits += stats.paired_ratio(of, to).excludes_one
            ratios = [a / b for a, b in zip(of, to)]
            band_hits += min(ratios) > 1.0 or max(ratios) < 1.0
        assert 0.03 < t_hits / trials < 0.07, (n, t_hits / trials)
        assert band_hits / trials > 0.05 + 0.05 * (n == 3), (n, band_hits / trials)


def test_the_repeats_suggested_are_enough():
    rng = random.Random(5)
    of, to = paired(rng, 3, 1.08, noise=0.08)
    iv = stats.paired_ratio(of, to)
    verdict, _, need = stats.ratio_verdict(iv)
    assert verdict == "too wide to judge" and need
    decided = sum(stats.ratio_verdict(stats.paired_ratio(*paired(rng, need, 1.08, 0.08)))[0]
                  != "too wide to judge" for _ in range(200))
    assert decided / 200 > 0.5  # at the spread seen, the suggested n usually decides


def test_zeros_fall_back_to_differences_and_welch_across_runs():
    iv = stats.paired_ratio([0.0, 2.0, 1.0], [1.0, 1.0, 1.0])
    assert iv.method == "paired difference t" and iv.estimate == pytest.approx(1.0)
    assert iv.low == 0.0 and iv.high > 1.0  # a ratio is never negative
    assert stats.paired_ratio([1.0], [2.0]).has_interval is False
    w = stats.unpaired_ratio([10.0, 10.2, 9.9], [5.0, 5.1, 4.9])
    assert w.method == "Welch log t" and w.low > 1.9 and w.high < 2.1


# -- claims ---------------------------------------------------------------------------------------

def comparison(est: float, low: float | None, high: float | None, better="higher",
               n: int = 3, sd: float = 0.1) -> dict:
    return {"ratio": est, "ci_low": low, "ci_high": high, "n": n, "sd": sd,
            "better": better, "method": "paired log t"}


@pytest.mark.parametrize("est,low,high,verdict", [
    (1.45, 1.30, 1.60, "reproduced"),  # holds 1.44
    (1.90, 1.70, 2.10, "reproduced"),  # beyond it: a larger effect
    (1.15, 1.05, 1.25, "same direction, smaller"),
    (1.00, 0.95, 1.05, "not reproduced"),  # no effect, 1.44 excluded
    (0.80, 0.70, 0.90, "not reproduced"),  # the other way
    (1.20, 0.90, 1.60, "inconclusive"),  # holds both 1 and 1.44
])
def test_claim_verdicts_of_an_improvement(est, low, high, verdict):
    claim = {"id": "x", "claim": "+44%", "published": 1.44, "source": "s"}
    assert claims.judge(claim, comparison(est, low, high))[0] == verdict


def test_claim_verdicts_of_a_reduction_and_of_parity():
    p99 = {"id": "p", "claim": "-23%", "published": 0.77, "source": "s"}
    assert claims.judge(p99, comparison(0.55, 0.50, 0.60, "lower"))[0] == "reproduced"
    assert claims.judge(p99, comparison(0.90, 0.85, 0.95, "lower"))[0] == \
        "same direction, smaller"
    cheap = {"id": "c", "claim": "costs little", "parity": 0.15, "source": "s"}
    assert claims.judge(cheap, comparison(0.92, 0.88, 0.96))[0] == "reproduced"
    assert claims.judge(cheap, comparison(1.10, 1.02, 1.20))[0] == "reproduced"  # faster
    assert claims.judge(cheap, comparison(0.70, 0.65, 0.76))[0] == "not reproduced"
    verdict, reason = claims.judge(cheap, comparison(0.86, 0.75, 0.98))
    assert verdict == "inconclusive" and "repeats would decide it" in reason
    one = comparison(1.5, None, None, n=1)
    assert claims.judge(p99, one)[0] == "inconclusive"


def test_claims_not_measured_say_why_and_emulation_is_not_judged():
    spec = [{"metric": "crr.cps", "of": {"config": "netkit"}, "to": {"config": "veth"},
             "claims": [{"id": "nk", "claim": "+12%", "published": 1.12, "source": "s"}]}]
    skipped = {"name": "pods-netkit", "status": "skipped", "configs": [], "comparisons": [],
               "reason": "requires netkit: CONFIG_NETKIT is not set"}
    (row,) = claims.evaluate(skipped, spec)
    assert row["verdict"] == "not measurable here"
    assert row["reason"] == "the scenario was skipped: requires netkit: CONFIG_NETKIT is not set"
    # a row per point the ratio would have had, as a run that measured it has them
    spec[0]["claims"][0]["at"] = {"server": "gw"}
    skipped["dimensions"] = {"config": ["veth", "netkit"], "server": ["node1-pod1", "gw"],
                             "placement": ["same-cpu"]}
    (row,) = claims.evaluate(skipped, spec)
    assert row["point"] == {"server": "gw", "placement": "same-cpu"}
    del spec[0]["claims"][0]["at"]
    ran = {"name": "pods-netkit", "status": "passed", "configs": [],
           "comparisons": [{"spec": 0, "point": {}, **comparison(1.2, 1.15, 1.25)}]}
    rows = claims.evaluate(ran, spec)
    assert rows[0]["verdict"] == "reproduced"
    claims.mark_emulated(rows, {"execution": {"mode": "vm", "accel": "tcg"},
                                "kernel": {"release": "6.12.0"}})
    assert rows[0]["verdict"] == "not measurable here" and rows[0]["ratio"] == 1.2
    assert "tcg VM (kernel 6.12.0)" in rows[0]["reason"]
