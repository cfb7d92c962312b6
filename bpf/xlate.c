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
#include "xlat/forward.h"

/* One packet through the translator; `flags` as siit46() takes them. An IPv6 packet that
 * hairpins (RFC 7757 4.2) is translated to IPv4 and straight back, the second time with the
 * hairpin rules: XLAT_HAIRPIN when it comes out IPv6. */
static __always_inline int siit(const struct pkt *p, __u32 flags)
{
	__u16 proto;
	int rc;

	if (pkt_load_u16(p, offsetof(struct ethhdr, h_proto), &proto))
		return XLAT_PASS;
	if (proto == bpf_htons(ETH_P_IP))
		return PKT_CALL(p, siit46, flags);
	if (proto != bpf_htons(ETH_P_IPV6))
		return XLAT_PASS;
	rc = PKT_CALL0(p, siit64);
	if (rc != XLAT_HAIRPIN)
		return rc;
	rc = PKT_CALL(p, siit46, SIIT_F_HAIRPIN);
	return rc == XLAT_DONE46 ? XLAT_HAIRPIN : rc;
}

static __always_inline bool outcome_is_drop(int outcome)
{
	return outcome >= XLAT_DROP_MALFORMED;
}

/* tc verdicts: a packet left alone (also one left to the kernel to fragment) goes on to
 * whatever comes next at the hook (another filter or tcx program), a translated one is
 * accepted. */
static __always_inline int tc_verdict(int outcome)
{
	if (outcome == XLAT_PASS || outcome == XLAT_FRAG_KERNEL)
		return TC_ACT_UNSPEC;
	return outcome_is_drop(outcome) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* How a translated packet is forwarded by the program itself (forward.h), or -1 when the
 * kernel forwards it: an IPv6 BIG TCP packet on a kernel whose super-packets carry the
 * Jumbo Payload option always (the kernel's own forwarding would strip it), anything else
 * when `forward: fib` is on. */
static __always_inline int forward_how(const struct pkt *p, int outcome)
{
	const struct xlat_config *cfg;

	if (outcome != XLAT_DONE46 && outcome != XLAT_DONE64)
		return -1;
	if (outcome == XLAT_DONE46 && pkt_big_gso(p) && (cfg = xlat_config()) && cfg->jumbo_hbh)
		return XLAT_FWD_V6 | XLAT_FWD_PEER;
	if (!xlat_fwd_fib())
		return -1;
	return (outcome == XLAT_DONE46 ? XLAT_FWD_V6 : 0) | XLAT_FWD_EGRESS;
}

SEC("tc")
int xlate_ingress(struct __sk_buff *skb)
{
	struct pkt p = { .ctx = skb, .kind = PKT_SKB };
	int rc = siit(&p, SIIT_F_INGRESS), how;

	xlat_count(rc);
	if (rc == XLAT_BOUNCE)
		return bpf_redirect(skb->ifindex, 0);
	how = forward_how(&p, rc);
	if (how >= 0) {
		__s64 act = PKT_CALL(&p, xlat_forward, how);

		if (act >= 0)
			return (int)act;
	}
	return tc_verdict(rc);
}

/* Multi-buffer aware (xdp.frags): a driver may hand over frames larger than a page, split
 * into fragments. Headers are read and written in the first buffer where they lie (all of
 * them do on veth and on real NICs), and through bpf_xdp_{load,store}_bytes() otherwise;
 * lengths come from bpf_xdp_get_buff_len(), and trimming works across fragments. On veth it
 * also lifts the MTU limit of a page that a single-buffer program puts on the peer. */
SEC("xdp.frags")
int xlate_xdp(struct xdp_md *ctx)
{
	struct pkt p = { .ctx = ctx, .kind = PKT_XDP };
	int rc = siit(&p, SIIT_F_INGRESS), how;

	xlat_count(rc);
	if (rc == XLAT_BOUNCE)
		return XDP_TX;
	how = forward_how(&p, rc);
	if (how >= 0) {
		__s64 act = PKT_CALL(&p, xlat_forward, how);

		if (act >= 0)
			return (int)act;
	}
	return outcome_is_drop(rc) ? XDP_DROP : XDP_PASS;
}

/* The XDP hook without the translation: an empty multi-buffer program, the baseline the
 * translator at XDP is measured against (engine none with hook xdp). On veth it is not free:
 * the peer loses TSO and every packet goes through veth's NAPI path. */
SEC("xdp.frags")
int xlate_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
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
	int rc = siit46_skb(skb, 0);

	xlat_count(rc);
	if (rc == XLAT_DONE46)
		return fib_redirect(skb, true);
	return rc == XLAT_BOUNCE ? TC_ACT_SHOT : tc_verdict(rc);
}

SEC("tc")
int xlate64_egress(struct __sk_buff *skb)
{
	int rc = siit64_skb(skb);

	/* one direction only, so that the redirected packet passes this hook again untouched;
	 * a hairpin's second half happens here, its result is IPv6 */
	if (rc == XLAT_HAIRPIN) {
		rc = siit46_skb(skb, SIIT_F_HAIRPIN);
		if (rc == XLAT_DONE46)
			rc = XLAT_HAIRPIN;
	}
	xlat_count(rc);
	if (rc == XLAT_DONE64)
		return fib_redirect(skb, false);
	if (rc == XLAT_HAIRPIN)
		return fib_redirect(skb, true);
	return rc == XLAT_BOUNCE ? TC_ACT_SHOT : tc_verdict(rc);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
