// SPDX-License-Identifier: GPL-2.0
/* Packet counter by length bucket and protocol, at tc/tcx/netkit (pktcount_tc) or XDP
 * (pktcount_xdp). A transparent observer: it never changes or drops a packet. The map and the
 * counting are in include/pktcount.h; pktcount_dir.c has the same counter per direction.
 */
#include "pktcount.h"

SEC("tc")
int pktcount_tc(struct __sk_buff *skb)
{
	return count_skb(skb, PKTCOUNT_TC);
}

SEC("xdp")
int pktcount_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct pktcount_key key = { .ifindex = ctx->ingress_ifindex, .hook = PKTCOUNT_XDP };
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		goto out;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		key.family = 4;
		if ((void *)(ip + 1) <= data_end)
			classify4(&key, ip);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct hbh8 *hbh = (void *)(ip6 + 1);

		key.family = 6;
		if ((void *)(ip6 + 1) <= data_end)
			classify6(&key, ip6, (void *)(hbh + 1) <= data_end ? hbh : NULL);
	}
out:
	count(&key, data_end - data, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
