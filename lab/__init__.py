"""The datapath lab: network-namespace topologies, an eBPF NAT46/NAT64 datapath and scenarios.

The public API is small: load a topology, bring it up as a Lab (a context manager that tears
everything down on exit), and reach its nodes. The CLI (`lab ...`) is a thin shell over it.
"""

__version__ = "0.1.0"
