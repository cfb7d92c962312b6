"""Statistics of repeated measurements: a confidence interval for every ratio, and the verdicts
that use it (reports, claims and `lab compare` all judge with these functions).

The method: a Student t interval on the logarithms of the ratios.

  - Within one run (`compare:` in a scenario) both sides of a ratio are measured one right
    after the other in every repeat, so repeat i of `of` and repeat i of `to` form a pair and
    share whatever the shared machine did at that moment. The interval is over the n paired
    log ratios log(of_i / to_i): mean +- t(n-1) * sd / sqrt(n), taken back with exp(). The
    estimate is their geometric mean, the ratio the interval is about.
  - Across two runs (`lab compare OLD NEW`) nothing pairs repeat i of one run with repeat i of
    the other, so the interval is Welch's: the difference of the mean logs, with the
    Welch-Satterthwaite degrees of freedom.

Why logarithms: throughput, rates and latencies are positive and their changes multiplicative
(1.44x and 1/1.44x are the same size of effect), and their spread grows with their size; on a
log scale a ratio's noise is close to symmetric. Why t and not a bootstrap: a scenario has 3
to 5 repeats. A percentile bootstrap over 3 pairs has 10 distinct resamples and its interval
can never be wider than the smallest and largest ratio observed (the old "paired range"), so
it claims differences that are not there: the median of 3 lies outside their range 25% of
the time, far from 5%. The t interval is exact for log-normal noise and honest (wide) when n
is small; tests/unit/test_stats.py checks its false-positive rate on pure noise.

A value that is zero or negative has no logarithm (a counter, a retransmission count): such a
ratio falls back to a t interval on the differences, expressed relative to the baseline's mean.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

CONFIDENCE = 0.95
# A ratio whose interval lies within 1 +- this is "no difference" (the smallest effect this lab
# calls real on a shared machine); one whose interval holds 1 but reaches beyond it is too wide.
EQUIVALENCE = 0.05
MAX_REPEATS = 1000


# -- Student's t ----------------------------------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                    -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with DF degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The P quantile of Student's t with DF degrees of freedom (0.5 < P < 1)."""
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def _t(df: float, confidence: float) -> float:
    return t_quantile(0.5 + confidence / 2.0, df)


# -- intervals ------------------------------------------------------------------------------------

@dataclass
class Interval:
    """A ratio, its confidence interval and what it was computed from."""

    estimate: float | None  # the ratio the interval is about
    low: float | None  # None: no interval (fewer than two repeats, or a zero baseline)
    high: float | None
    n: int  # pairs (paired) or the smaller side's repeats (unpaired)
    method: str
    sd: float = 0.0  # spread of the logs (or of the differences, relative): for repeats_needed
    confidence: float = CONFIDENCE

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def excludes_one(self) -> bool:
        return self.has_interval and (self.low > 1.0 or self.high < 1.0)

    @property
    def half_width(self) -> float | None:
        """Half the interval's width on the log scale (relative size of the noise)."""
        if not self.has_interval or self.low <= 0:
            return None
        return (math.log(self.high) - math.log(self.low)) / 2.0


def _positive(values: list[float]) -> bool:
    return all(v > 0 and math.isfinite(v) for v in values)


def paired_ratio(of: list[float], to: list[float],
                 confidence: float = CONFIDENCE) -> Interval:
    """OF / TO where OF[i] and TO[i] were measured side by side (the same repeat)."""
    if len(of) != len(to):
        raise ValueError("paired samples must have the same length")
    n = len(of)
    if n == 0:
        return Interval(None, None, None, 0, "none")
    if _positive(of) and _positive(to):
        logs = [math.log(a / b) for a, b in zip(of, to)]
        mean = statistics.fmean(logs)
        if n < 2:
            return Interval(math.exp(mean), None, None, n, "paired log t")
        sd = statistics.stdev(logs)
        half = _t(n - 1, confidence) * sd / math.sqrt(n)
        return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n,
                        "paired log t", sd, confidence)
    base = statistics.fmean(to)
    estimate = statistics.fmean(of) / base if base > 0 else None
    if n < 2 or base <= 0:
        return Interval(estimate, None, None, n, "paired difference t")
    diffs = [a - b for a, b in zip(of, to)]
    sd = statistics.stdev(diffs)
    mean = statistics.fmean(diffs)
    half = _t(n - 1, confidence) * sd / math.sqrt(n)
    return Interval(estimate, max(0.0, 1.0 + (mean - half) / base), 1.0 + (mean + half) / base,
                    n, "paired difference t", sd / base, confidence)


def unpaired_ratio(new: list[float], old: list[float],
                   confidence: float = CONFIDENCE) -> Interval:
    """NEW / OLD from two independent sets of repeats (two runs): Welch's interval."""
    n1, n2 = len(new), len(old)
    if not n1 or not n2:
        return Interval(None, None, None, 0, "none")
    positive = _positive(new) and _positive(old)
    a = [math.log(v) for v in new] if positive else list(new)
    b = [math.log(v) for v in old] if positive else list(old)
    method = "Welch log t" if positive else "Welch difference t"
    base = statistics.fmean(old)
    if positive:
        estimate = math.exp(statistics.fmean(a) - statistics.fmean(b))
    else:
        estimate = statistics.fmean(new) / base if base > 0 else None
    if n1 < 2 or n2 < 2 or estimate is None:
        return Interval(estimate, None, None, min(n1, n2), method)
    v1, v2 = statistics.variance(a) / n1, statistics.variance(b) / n2
    se = math.sqrt(v1 + v2)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if se == 0.0:
        low = high = diff
        df = float(n1 + n2 - 2)
    else:
        df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
        half = _t(df, confidence) * se
        low, high = diff - half, diff + half
    sd = math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2.0)
    if positive:
        return Interval(estimate, math.exp(low), math.exp(high), min(n1, n2), method, sd,
                        confidence)
    return Interval(estimate, max(0.0, 1.0 + low / base), 1.0 + high / base, min(n1, n2),
                    method, sd / base, confidence)


def repeats_needed(iv: Interval, target: float, unpaired: bool = False) -> int | None:
    """Repeats for IV's kind of interval to have a half-width (log scale) below TARGET, at the
    spread observed; None when more than MAX_REPEATS would be needed (or nothing is known)."""
    if iv.sd <= 0.0 or target <= 0.0 or iv.n < 2:
        return None if iv.n < 2 else iv.n + 1
    for n in range(iv.n + 1, MAX_REPEATS + 1):
        if unpaired:
            half = _t(2 * n - 2, iv.confidence) * iv.sd * math.sqrt(2.0 / n)
        else:
            half = _t(n - 1, iv.confidence) * iv.sd / math.sqrt(n)
        if half < target:
            return n
    return None


# -- verdicts -------------------------------------------------------------------------------------

# The verdict of a ratio within one run: which side is larger, if the interval says so.
HIGHER, LOWER, SAME, TOO_WIDE, ONE_REPEAT = ("higher", "lower", "no difference",
                                             "too wide to judge", "not judged")


def _log_distance(a: float, b: float) -> float:
    return abs(math.log(a) - math.log(b))


def ratio_verdict(iv: Interval, equivalence: float = EQUIVALENCE) -> tuple[str, str, int | None]:
    """(verdict, explanation, repeats needed) for a ratio within one run."""
    if iv.estimate is None:
        return ONE_REPEAT, "no ratio: the baseline is zero", None
    if not iv.has_interval:
        why = "one repeat: no interval" if iv.n < 2 else "no interval"
        return ONE_REPEAT, why, None
    if iv.low > 1.0:
        return HIGHER, f"{fmt_interval(iv)} lies above 1", None
    if iv.high < 1.0:
        return LOWER, f"{fmt_interval(iv)} lies below 1", None
    if iv.low >= 1.0 - equivalence and iv.high <= 1.0 + equivalence:
        return SAME, f"{fmt_interval(iv)} lies within 1 +- {equivalence:.0%}", None
    effect = _log_distance(iv.estimate, 1.0) if iv.estimate > 0 else 0.0
    target = max(effect, math.log1p(equivalence))
    need = repeats_needed(iv, target)
    return TOO_WIDE, (f"{fmt_interval(iv)} holds 1 and reaches beyond +-{equivalence:.0%}; "
                      + (f"about {need} repeats would decide it" if need else
                         f"more than {MAX_REPEATS} repeats would be needed")), need


def fmt_ratio(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}x" if v < 10 else f"{v:.1f}x"


def fmt_interval(iv: Interval) -> str:
    if not iv.has_interval:
        return "no interval"
    return f"{iv.confidence:.0%} CI {fmt_ratio(iv.low)}..{fmt_ratio(iv.high)}"
