"""BPF host routing (`pods: {routing: bpf}`, bpf/hostrouting.c): see control.py."""

from lab.datapath.hostrouting.control import (OBJECT, PODS_MAP, STATS_MAP, Outcome, PodEntry,
                                              StatsEntry, check_outcomes, clear_stats,
                                              fill_pods, packets, pod_table, read_stats, stats)

__all__ = ["OBJECT", "PODS_MAP", "STATS_MAP", "Outcome", "PodEntry", "StatsEntry",
           "check_outcomes", "clear_stats", "fill_pods", "packets", "pod_table", "read_stats",
           "stats"]
