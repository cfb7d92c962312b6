"""The legacy node as a datapath feature: a node with `pods: {routing: legacy}` forwards its
pods' packets through its IP stack with netfilter conntrack and kube-proxy's rules in the way
of every packet, what a Kubernetes node without an eBPF datapath runs (docs/legacy.md).

  check   the `kube_proxy:` section of every legacy node (config.py), at line and column
  start   kube-proxy's first sync on each legacy node, journaled before it is written
  stop    its rules removed and its conntrack flushed (the journal record and the
          namespace's removal do it too, from any process and after a crash)
  steps   `services` (the service-count sweep, also on the stateful gateway) and
          `path_proof` (steps.py)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lab.datapath.contract import Datapath
from lab.datapath.kubeproxy import config as kp_config
from lab.datapath.kubeproxy import node as kp_node
from lab.datapath.kubeproxy import steps

if TYPE_CHECKING:
    from lab.lab import Lab
    from lab.scenarios.registry import StepKind
    from lab.topology import Topology
    from lab.yamlfile import Document

log = logging.getLogger("lab")


class LegacyNodeDatapath(Datapath):
    name = "legacy node (kube-proxy)"

    def check(self, doc: Document, topo: Topology) -> None:
        kp_config.check(doc, topo)

    def start(self, lab: Lab) -> None:
        for name in kp_config.legacy_nodes(lab.topology):
            setup = kp_config.setup_for(lab.topology, name)
            kp = kp_node.KubeProxy(lab.node(name), setup.config, setup.exposed,
                                   setup.node_ips)
            lab.record.append(kp.journal_record())
            seconds = kp.start()
            kp_node.register(lab, kp)
            log.info("kube-proxy (%s) on %s: %d services in %.2f s", setup.config.mode, name,
                     setup.config.services + len(setup.exposed), seconds)

    def stop(self, lab: Lab) -> None:
        for name in kp_config.legacy_nodes(lab.topology):
            kp = kp_node.unregister(lab, name)
            if kp is not None:
                kp.stop()

    def step_kinds(self) -> Sequence[StepKind]:
        return steps.STEP_KINDS
