"""The legacy node (`pods: {routing: legacy, kube_proxy: {...}}`): netfilter conntrack and
kube-proxy's service rules, the legacy side of the lab's comparisons (docs/legacy.md).

    services  ServicePort, ClusterConfig, kube-proxy's chain names, synthetic sweeps
    iptables  the iptables-restore batches of kube-proxy's iptables mode (pure)
    nftables  the `nft -f` transactions of its nftables mode (pure)
    node      kube-proxy on a node of a running lab: programmed, timed, changed, removed
    config    a legacy node's `kube_proxy:` section, checked at line and column
    sweep     the service-count sweep on kube-proxy or on the stateful gateway
    steps     step kinds `services` and `path_proof`
    feature   the datapath feature (lab/datapath/registry.py)
"""
