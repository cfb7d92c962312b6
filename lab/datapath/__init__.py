"""Control planes of the BPF datapath: what configures the programs under bpf/ and the kernel
features they work with on a running lab.

Modules: addrmap (RFC 6052 prefixes and RFC 7757 explicit address mappings, the rules the
translator's maps are filled from), translator (the stateless NAT46/NAT64 translator's
configuration, its maps and statistics), cli (`lab xlate`), gateway (the stateful NAT46/NAT64
gateway and load balancer: services, Maglev, the agent and its API), bigtcp (BIG TCP's GSO/GRO limits along a
path and the big packet counter that proves packets above 64 KiB crossed it).
"""
