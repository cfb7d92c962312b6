"""Maglev lookup tables (lab/datapath/gateway/maglev.py): every slot filled, shares that
follow the weights, minimal disruption when a backend leaves or joins, independence from the
order backends are given in, and table sizes refused when they are not prime."""

from collections import Counter

import pytest

from lab.datapath.gateway import maglev
from lab.datapath.gateway.maglev import Entry


def entries(n, weights=None):
    return [Entry(f"[2001:db8::{i + 1:x}]:80", i + 1, (weights or [1] * n)[i]) for i in range(n)]


def test_every_slot_has_a_backend():
    table = maglev.build(entries(7), 251)
    assert len(table) == 251 and set(table) == set(range(1, 8))


def test_equal_weights_share_the_table_evenly():
    table = maglev.build(entries(10), 16381)
    counts = Counter(table)
    # round robin: each backend claims M/N slots, give or take one
    assert max(counts.values()) - min(counts.values()) <= 1


@pytest.mark.parametrize("weights", [[1, 2, 3, 4], [1, 1, 10], [5, 3]])
def test_shares_follow_weights(weights):
    table = maglev.build(entries(len(weights), weights), 16381)
    counts = Counter(table)
    total = sum(weights)
    for i, w in enumerate(weights):
        assert abs(counts[i + 1] - 16381 * w / total) <= 1


def test_order_of_backends_does_not_matter():
    es = entries(12, [1, 2, 3] * 4)
    assert maglev.build(es, 4093) == maglev.build(list(reversed(es)), 4093)


def test_seed_changes_the_table():
    es = entries(5)
    assert maglev.build(es, 1021, seed=1) != maglev.build(es, 1021, seed=2)


@pytest.mark.parametrize("n", [5, 10, 50])
def test_removing_a_backend_moves_few_slots(n):
    es = entries(n)
    before = maglev.build(es, 16381)
    after = maglev.build(es[:1] + es[2:], 16381)
    kept = [(a, b) for a, b in zip(before, after) if a != 2]
    moved = sum(a != b for a, b in kept) / len(kept)
    assert moved <= 1 / n   # the paper's bound holds with room to spare at M >> N
    assert 2 not in after


def test_adding_a_backend_takes_its_share_mostly_from_others_evenly():
    es = entries(10)
    before = maglev.build(es[:9], 16381)
    after = maglev.build(es, 16381)
    changed = [b for a, b in zip(before, after) if a != b]
    assert abs(after.count(10) / 16381 - 0.1) < 0.001
    # nearly every slot that changed went to the newcomer, not between old backends
    assert changed.count(10) / len(changed) > 0.9


def test_zero_weight_and_empty():
    assert maglev.build([], 251) == []
    assert 3 not in maglev.build(entries(3, [1, 1, 0]), 251)


@pytest.mark.parametrize("m", [0, 1, 4, 16380, 131072, 200003])
def test_bad_table_sizes(m):
    with pytest.raises(ValueError):
        maglev.build(entries(2), m)


def test_more_backends_than_slots():
    with pytest.raises(ValueError, match="do not fit"):
        maglev.build(entries(8), 7)


def test_duplicate_names():
    with pytest.raises(ValueError, match="distinct"):
        maglev.build([Entry("a", 1), Entry("a", 2)], 7)


def test_one_backend_takes_every_slot():
    assert maglev.build([maglev.Entry("[2001:db8::1]:80", 7, 1)], 251) == [7] * 251
