"""kube-proxy's service rules, as it writes them: the legacy side of the lab's comparisons.

services (ServicePort, ClusterConfig, kube-proxy's chain names, synthetic sweeps), iptables
(the iptables-restore batches of its iptables mode), nftables (the `nft -f` transactions of
its nftables mode). Pure functions of the services: nothing here touches the kernel.
"""
