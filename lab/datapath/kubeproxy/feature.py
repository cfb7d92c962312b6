"""The legacy node as a datapath feature: a node with `pods: {routing: legacy}` forwards its
pods' packets through its IP stack with netfilter conntrack and kube-proxy's rules on every
packet, what a Kubernetes node without an eBPF datapath runs (docs/legacy.md).

  check  the `kube_proxy:` section of every legacy node (lab/datapath/kubeproxy/config.py)
  start  kube-proxy's first sync on each legacy node, journaled before it is written
  stop   its rules removed, its conntrack flushed (the namespace takes the rest with it)
  steps  `services` (the service-count sweep, also on the stateful gateway) and
         `netfilter_proof`
"""

from __future__ import annotations

import logging
from typing import Any

from lab.datapath.kubeproxy import config as kp_config
from lab.datapath.kubeproxy import node as kp_node

log = logging.getLogger("lab")


def check(doc: Any, topo: Any) -> None:
    kp_config.check(doc, topo)


def start(lab: Any) -> None:
    for name in kp_config.legacy_nodes(lab.topology):
        setup = kp_config.setup_for(lab.topology, name)
        handle = lab.node(name)
        lab.record.append({"t": "netfilter", "node": name, "netns": handle.netns,
                           "mode": setup.config.mode, "backend": setup.config.backend})
        kp = kp_node.KubeProxy(handle, setup.config, setup.exposed, setup.node_ips)
        seconds = kp.start()
        kp_node.register(lab, kp)
        log.info("kube-proxy (%s) on %s: %d services in %.2f s", setup.config.mode, name,
                 setup.config.services + len(setup.exposed), seconds)


def stop(lab: Any) -> None:
    for name in kp_config.legacy_nodes(lab.topology):
        kp = kp_node.unregister(lab, name)
        if kp is not None:
            kp.stop()
