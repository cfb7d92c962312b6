"""Reading results.json of older schema versions: each version's document is upgraded one
version at a time to the current one, as flent reads its older data files.

Each step takes a document valid against its version's frozen schema
(schemas/results.vN.schema.json) and returns one valid against version N + 1; results.load
checks both ends. A file of each older version is kept in tests/data/results/ and read back
by tests/unit/test_upgrade.py. A change to results.json that removes or changes the meaning of
a field gets a new version, a frozen copy of the old schema and a step here.

  1 -> 2  ratios get a confidence interval and a verdict (recomputed from the samples, which
          version 1 kept), `ratio` becomes the geometric mean of the paired ratios (the
          estimate the interval is about; the old median/median is `ratio_of_medians`); charts
          get a `kind`; scenarios get `claims`, `distributions` and `timelines` (empty: a
          version 1 run recorded none).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from lab.scenarios.results import SCHEMA_VERSION, comparison_record, point_eq


def _v1_to_v2(doc: dict) -> dict:
    for s in doc["scenarios"]:
        by_key = {}
        for m in s["metrics"]:
            by_key.setdefault(f"{m['step']}.{m['metric']}", []).append(m)
        comparisons = []
        for c in s["comparisons"]:
            series = by_key.get(c["metric"], [])
            of = next((m for m in series if point_eq(m["point"], {**c["point"], **c["of"]})),
                      None)
            to = next((m for m in series if point_eq(m["point"], {**c["point"], **c["to"]})),
                      None)
            if of is None or to is None:  # not in the file: keep what version 1 said
                comparisons.append({**c, "spec": None, "ci_low": None, "ci_high": None,
                                    "verdict": "not judged",
                                    "verdict_note": "its samples are not in the file"})
                continue
            record = comparison_record(None, c, c["point"], (of["samples"], of["repeats"]),
                                       (to["samples"], to["repeats"]), of["unit"],
                                       of["better"])
            record["anchors"] = c.get("anchors", [])
            comparisons.append(record)
        s["comparisons"] = comparisons
        s["charts"] = [{"kind": "bars", **ch} for ch in s.get("charts", [])]
        s["claims"] = []
        s["distributions"] = []
        s["timelines"] = []
    doc["schema_version"] = 2
    return doc


# version -> the function that takes a document of that version to the next one
UPGRADES: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2}
READABLE = frozenset([*UPGRADES, SCHEMA_VERSION])


def upgrade(doc: dict) -> dict:
    """DOC (an older version, valid against its schema) as a current-version document."""
    doc = copy.deepcopy(doc)
    while doc["schema_version"] != SCHEMA_VERSION:
        doc = UPGRADES[doc["schema_version"]](doc)
    return doc
