"""Shared test set-up: root-only tests are skipped (with the reason) when not root; BPF
fixtures come from tests/bpf_fixtures.py."""

import os

import pytest

pytest_plugins = ["bpf_fixtures"]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, loading BPF)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
