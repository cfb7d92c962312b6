"""Fixtures for the translator's packet tests: bpf/xlate.c loaded once per session, and
`xlat`, its ingress program at tc or XDP (every test runs at both) with the base
configuration applied afresh."""

import pytest

from lab.bpf.object import BpfObject

from xlate_helpers import HOOKS, Translator


@pytest.fixture(scope="session")
def xlate_object(bpf_build):
    obj = BpfObject(bpf_build / "xlate.o").load()
    yield obj
    obj.close()


@pytest.fixture(params=HOOKS)
def xlat(request, xlate_object):
    return Translator(xlate_object, request.param)


@pytest.fixture
def both(xlate_object):
    """The translator at both hooks, for tests that compare them."""
    return {hook: Translator(xlate_object, hook) for hook in HOOKS}
