"""The datapath features: each a package implementing the contract (contract.py: Datapath),
all listed in one registry (registry.py: DATAPATHS), which the top of the lab (the `lab`
command, `lab run`, the pytest plugin) hands down to the layers below.

    contract     Datapath: the hooks a feature implements (docs/architecture.md)
    registry     DATAPATHS, and the scenario Catalogue they make with the built-in step kinds
    translator   the stateless NAT46/NAT64 translator (bpf/xlate.c), DNS64, TAYGA
    gateway      the stateful NAT46/NAT64 gateway and L4 load balancer (bpf/gateway.c)
    hostrouting  BPF host routing for pods (bpf/hostrouting.c)
    bigtcp       BIG TCP: GSO/GRO limits along a path and the big packet counter's proof

    from lab.datapath.registry import DATAPATHS
    with Lab.from_file("topologies/nat46.yaml", datapaths=DATAPATHS) as lab: ...
"""
