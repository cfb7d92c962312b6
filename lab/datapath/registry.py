"""The registry: every datapath feature of the lab, one line each. The core learns of features
only here; adding one is a new package under lab/datapath/ and a line below
(docs/architecture.md).

The order is the order in which their hooks run (host routing derives its programs before
the translator looks at the model) and in which `lab --help` and `lab run --list` show what
they offer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lab.datapath.bigtcp.feature import BigTcpDatapath
from lab.datapath.contract import Datapath
from lab.datapath.gateway.feature import GatewayDatapath
from lab.datapath.hostrouting.feature import HostRoutingDatapath
from lab.datapath.kubeproxy.feature import LegacyNodeDatapath
from lab.datapath.translator.feature import TranslatorDatapath

if TYPE_CHECKING:
    from lab.scenarios.registry import Catalogue


DATAPATHS: tuple[Datapath, ...] = (
    HostRoutingDatapath(),
    BigTcpDatapath(),
    TranslatorDatapath(),
    GatewayDatapath(),
    LegacyNodeDatapath(),
)


def catalogue(datapaths: Sequence[Datapath] = DATAPATHS) -> Catalogue:
    """What scenarios may use: the built-in step kinds and those of DATAPATHS, whose sections
    their topologies may configure."""
    from lab.scenarios.registry import Catalogue, builtin, by_name

    return Catalogue(by_name(builtin().kinds.values(),
                             *(d.step_kinds() for d in datapaths)), tuple(datapaths))
