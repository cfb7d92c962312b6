"""Control planes of the BPF datapath: what configures the programs under bpf/ and the kernel
features they work with on a running lab.

Modules: bigtcp (BIG TCP's GSO/GRO limits along a path and the big packet counter that proves
packets above 64 KiB crossed it).
"""
