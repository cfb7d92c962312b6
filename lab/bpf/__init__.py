"""The lab's eBPF toolchain in Python: load objects through libbpf, typed maps checked against
BTF, attach at tc/tcx/XDP/netkit, and run packets through programs offline (BPF_PROG_TEST_RUN).

Modules: libbpf (the ctypes binding), btf, maps, object, bpffs (pins), attach, features
(capability probes), testrun, pcap (offline runs), bench, pktcount (the packet counter's
Python side), testing (scapy in, scapy out for tests), cli (`lab bpf`, `lab bench prog`).
"""
