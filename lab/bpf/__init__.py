"""The lab's eBPF toolchain in Python: objects loaded through libbpf, maps typed and checked
against BTF, programs attached at tc/tcx/XDP/netkit, packets run offline with
BPF_PROG_TEST_RUN.

  libbpf    the ctypes binding (only what the lab uses)
  btf       BTF types, ctypes derived from them or checked against them
  object    open/load an object, programs and maps by name, globals, map pins
  maps      typed map access, per-CPU values, map-in-map swaps, pinned maps by path
  bpffs     the BPF filesystem: mount, per-lab pin directories
  attach    hooks, attach/detach records
  topology  what a topology file names, attached by `lab up`
  features  capability probes for `lab doctor`
  testrun   BPF_PROG_TEST_RUN: bytes in, verdict and bytes out
  pcap      offline runs over capture files (`lab bpf run`, `lab xlate`)
  bench     `lab bench prog`: ns/packet over a packet mix
  testing   scapy packets in, scapy packets out (for tests)
  pktcount  the packet counter's Python side (BIG TCP's proof)
  cli       `lab bpf run`, `lab bench prog`
"""
