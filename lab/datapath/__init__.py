"""Control planes of the BPF datapath: what fills the maps of the programs under bpf/.

Modules: addrmap (RFC 6052 prefixes and RFC 7757 explicit address mappings, the rules the
translator's maps are filled from), translator (the stateless NAT46/NAT64 translator's
configuration and `lab xlate`).
"""
