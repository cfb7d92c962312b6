// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Stateful NAT46/NAT64 gateway and L4 load balancer.
 *
 * Services map a frontend (IPv4 or IPv6 VIP, port, protocol) to backends of either family.
 * A client's first packet picks a backend (Maglev or random, bpf/include/gw/lb.h) and a
 * source port on the gateway's own address (SNAT), and creates the connection's conntrack
 * entries (bpf/include/gw/conntrack.h); every packet of the connection is then rewritten,
 * translated between IPv4 and IPv6 by the stateless translator's code where the families
 * differ. The backend sees the gateway as the client: the client's address is not carried
 * (docs/gateway.md).
 *
 * Attach gw_ingress (tc/tcx) or gw_xdp (XDP) on ingress of the gateway's devices that
 * receive clients' packets and backends' replies. Translated packets go on to the kernel,
 * which routes them as any router (TTL/hop limit, neighbours, fragmentation and its ICMP
 * errors). Packets that are not the gateway's are left alone (TC_ACT_UNSPEC lets the next
 * tcx program, e.g. the stateless translator, see them).
 *
 * Control plane: lab/datapath/gateway/ (control.py writes the maps).
 */
#include "gw/gateway.h"

static __always_inline bool gw_dropped(int rc)
{
	return GW_RESULT_OUTCOME(rc) >= GW_DROP_NO_BACKEND;
}

static __always_inline bool gw_rewrote(int rc)
{
	int outcome = GW_RESULT_OUTCOME(rc);

	return outcome >= GW_NEW && outcome <= GW_ICMP_ERROR;
}

SEC("tc")
int gw_ingress(struct __sk_buff *skb)
{
	struct pkt p = { .ctx = skb, .kind = PKT_SKB };
	int rc = gateway(&p);

	gw_count(rc);
	if (gw_dropped(rc))
		return TC_ACT_SHOT;
	return gw_rewrote(rc) ? TC_ACT_OK : TC_ACT_UNSPEC;
}

SEC("xdp")
int gw_xdp(struct xdp_md *ctx)
{
	struct pkt p = { .ctx = ctx, .kind = PKT_XDP };
	int rc = gateway(&p);

	gw_count(rc);
	return gw_dropped(rc) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
