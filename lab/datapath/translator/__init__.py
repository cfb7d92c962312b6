"""The stateless NAT46/NAT64 translator (bpf/xlate.c) and what the lab runs with it.

    config    TranslatorConfig: settings checked with clear errors, written into the maps
    addrmap   RFC 6052 prefixes and RFC 7757 explicit address mappings
    topology  a topology file's `datapath.translator` section: placement, derived programs,
              routes and neighbours, set-up at `lab up`
    dns64     DNS64 (RFC 6147) by unbound, from the section's `dns64:`
    tayga     TAYGA as `engine: tayga`, for comparison
    cli       `lab xlate`: a pcap through the translator, offline
    steps     the scenario step kinds of scenarios/nat46*.yaml
"""

from lab.datapath.translator.config import (EGRESS_46, EGRESS_64, INGRESS_TC, INGRESS_XDP,
                                            OBJECT, SETTINGS, TranslatorConfig, outcome_names,
                                            statistics)

__all__ = ["EGRESS_46", "EGRESS_64", "INGRESS_TC", "INGRESS_XDP", "OBJECT", "SETTINGS",
           "TranslatorConfig", "outcome_names", "statistics"]
