// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Stateless NAT46/NAT64 translator (SIIT: RFC 7915, RFC 6052 prefixes, RFC 7757 EAM).
 *
 * Packet path through the gateway namespace, with dev4 its IPv4-side device and dev6 its
 * IPv6-side device (docs/translator.md has the full picture and the routes it needs):
 *
 *   client --IPv4--> dev4 [ingress: xlate_ingress or xlate_xdp] 4->6, then the kernel
 *                         routes the IPv6 packet: it decrements the hop limit and sends
 *                         ICMPv6 errors as any router --IPv6--> dev6 --> pod
 *   pod    --IPv6--> dev6 [ingress: xlate_ingress or xlate_xdp] 6->4, kernel routes IPv4
 *                         --> dev4 --> client or IPv4 server
 *
 * Translating on ingress and letting the kernel forward the result makes the gateway a real
 * router for both families: TTL/hop limit go down once, traceroute sees it, and path MTU
 * discovery works because the kernel sends "packet too big"/"fragmentation needed" for the
 * translated packet. Those errors, and any other packet the kernel itself sends toward the
 * other family, are addressed to a translated address: the routes for the RFC 6052 prefix
 * (and EAM IPv6 ranges) point out of dev4, those for EAM IPv4 ranges out of dev6, each via a
 * neighbour entry that never needs resolving, so the packet reaches
 *
 *   dev4 [egress: xlate64_egress] IPv6 -> IPv4, then a FIB lookup and bpf_redirect_neigh()
 *   dev6 [egress: xlate46_egress] IPv4 -> IPv6, likewise
 *
 * The gateway's own addresses are configured as "own" address pairs: packets to them are the
 * host's (passed untouched at ingress), packets from them (the kernel's errors) translate.
 * Egress programs translate one direction only, so a redirected packet that comes back
 * through the same hook is left alone. XDP has no egress hook: with XDP on ingress, the two
 * tc egress programs still carry the kernel's own packets.
 *
 * The translation itself (bpf/include/xlat/) is the same code at tc and at XDP.
 */
#include "xlat/siit.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

static __always_inline int siit(const struct pkt *p)
{
	__u16 proto;

	if (pkt_load(p, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)))
		return XLAT_PASS;
	if (proto == bpf_htons(ETH_P_IP))
		return PKT_CALL0(p, siit46);
	if (proto == bpf_htons(ETH_P_IPV6))
		return PKT_CALL0(p, siit64);
	return XLAT_PASS;
}

static __always_inline bool outcome_is_drop(int outcome)
{
	return outcome >= XLAT_DROP_MALFORMED;
}

/* tc verdicts: a packet left alone goes on to whatever comes next at the hook (another
 * filter or tcx program), a translated one is accepted. */
static __always_inline int tc_verdict(int outcome)
{
	if (outcome == XLAT_PASS)
		return TC_ACT_UNSPEC;
	return outcome_is_drop(outcome) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* An IPv6 BIG TCP packet translated from IPv4 on a kernel whose IPv6 super-packets carry the
 * Hop-by-Hop Jumbo Payload option cannot be routed on by the kernel: bpf_skb_change_proto()
 * made it SKB_GSO_DODGY, veth lacks NETIF_F_GSO_ROBUST, so validate_xmit_skb() hands it to
 * skb_gso_segment(), whose ipv6_gso_segment() strips the option (ipv6_hopopt_jumbo_remove())
 * before tcp_gso_segment() decides not to segment it, and the receiver trims a payload length
 * of 0 without the option to the bare header. So such a packet skips the transmit path: the
 * translator forwards it itself (hop limit, MACs from the FIB) straight into the namespace of
 * the next hop's veth/netkit peer (bpf_redirect_peer), where it arrives with its option. Any
 * lookup that does not resolve leaves the packet to the kernel, as before. */
__attribute__((noinline)) int jumbo_forward(struct __sk_buff *skb)
{
	struct bpf_fib_lookup fib = { .family = AF_INET6, .ifindex = skb->ifindex };
	struct ipv6hdr ip;
	__u8 hops;
	long rc;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) || ip.hop_limit <= 1)
		return TC_ACT_OK;
	fib.l4_protocol = IPPROTO_TCP;
	/* tot_len 0: the MTU is checked on the skb, where a GSO packet passes by its segments */
	__builtin_memcpy(fib.ipv6_src, &ip.saddr, sizeof(ip.saddr));
	__builtin_memcpy(fib.ipv6_dst, &ip.daddr, sizeof(ip.daddr));
	/* SKIP_NEIGH is not asked for: the MACs must be known to deliver without the stack */
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return TC_ACT_OK;
	hops = ip.hop_limit - 1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, hop_limit), &hops, 1, 0) ||
	    bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0))
		return TC_ACT_SHOT;
	return bpf_redirect_peer(fib.ifindex, 0);
}

SEC("tc")
int xlate_ingress(struct __sk_buff *skb)
{
	struct pkt p = { .ctx = skb, .kind = PKT_SKB };
	const struct xlat_config *cfg;
	int rc = siit(&p);

	xlat_count(rc);
	if (rc == XLAT_BOUNCE)
		return bpf_redirect(skb->ifindex, 0);
	if (rc == XLAT_DONE46 && pkt_big_gso(&p) && (cfg = xlat_config()) && cfg->jumbo_hbh)
		return jumbo_forward(skb);
	return tc_verdict(rc);
}

SEC("xdp")
int xlate_xdp(struct xdp_md *ctx)
{
	struct pkt p = { .ctx = ctx, .kind = PKT_XDP };
	int rc = siit(&p);

	xlat_count(rc);
	if (rc == XLAT_BOUNCE)
		return XDP_TX;
	return outcome_is_drop(rc) ? XDP_DROP : XDP_PASS;
}

/* Send a packet translated on egress where the routing table says its new family goes. A
 * function of its own so that its stack is not added to the translation's. */
__attribute__((noinline)) int fib_redirect(struct __sk_buff *skb, __u32 v6)
{
	struct bpf_fib_lookup fib = { .ifindex = skb->ifindex };
	long rc;

	if (v6) {
		struct ipv6hdr ip;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
			return TC_ACT_SHOT;
		fib.family = AF_INET6;
		fib.l4_protocol = ip.nexthdr;
		fib.tot_len = IP6_HLEN + bpf_ntohs(ip.payload_len);
		__builtin_memcpy(fib.ipv6_src, &ip.saddr, sizeof(ip.saddr));
		__builtin_memcpy(fib.ipv6_dst, &ip.daddr, sizeof(ip.daddr));
	} else {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
			return TC_ACT_SHOT;
		fib.family = AF_INET;
		fib.tos = ip.tos;
		fib.l4_protocol = ip.protocol;
		fib.tot_len = bpf_ntohs(ip.tot_len);
		fib.ipv4_src = ip.saddr;
		fib.ipv4_dst = ip.daddr;
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
		xlat_count(XLAT_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
}

SEC("tc")
int xlate46_egress(struct __sk_buff *skb)
{
	int rc = siit46_skb(skb);

	xlat_count(rc);
	if (rc == XLAT_DONE46)
		return fib_redirect(skb, true);
	return rc == XLAT_BOUNCE ? TC_ACT_SHOT : tc_verdict(rc);
}

SEC("tc")
int xlate64_egress(struct __sk_buff *skb)
{
	int rc = siit64_skb(skb);

	xlat_count(rc);
	if (rc == XLAT_DONE64)
		return fib_redirect(skb, false);
	return rc == XLAT_BOUNCE ? TC_ACT_SHOT : tc_verdict(rc);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
