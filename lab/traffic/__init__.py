"""Real traffic tools run inside lab nodes, with their output parsed into numbers.

    placement   where the client and the server run: same CPU, different CPUs, or unpinned
    process     background servers (started once, recorded by the lab, waited on until they
                listen) and pinned clients whose CPUs are read back from the kernel
    iperf3      single-stream throughput, CPU use and retransmits (iperf3 -J)
    rr          request/response transactions and connections/s (lab-rr, netperf TCP_RR and
                TCP_CRR semantics; built from rr.c on first use)
    sockperf    TCP ping-pong latency with sockperf (IPv4 only in Debian 12's 3.7)
    ping        loss and round-trip times
    capture     tcpdump into pcap files around a step

Every server is started with NodeHandle.popen, so the lab stops it at teardown whatever happens.
"""
