"""BPF host routing (`pods: {routing: bpf}`, bpf/hostrouting.c).

    control   the object's pod table, outcome counters and statistics (control.py)
    feature   the datapath feature: programs on pod devices and uplinks, set-up at `lab up`
"""

from lab.datapath.hostrouting.control import (FROM_POD, OBJECT, PODS_MAP, STATS_MAP, TO_POD,
                                              Outcome, PodEntry, StatsEntry, check_outcomes,
                                              clear_stats, fill_pods, packets, pod_table,
                                              read_stats, stats)

__all__ = ["FROM_POD", "OBJECT", "PODS_MAP", "STATS_MAP", "TO_POD", "Outcome", "PodEntry",
           "StatsEntry", "check_outcomes", "clear_stats", "fill_pods", "packets", "pod_table",
           "read_stats", "stats"]
