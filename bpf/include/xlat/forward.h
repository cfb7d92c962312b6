/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Forwarding a translated packet straight out of the device the routing table names, without
 * the gateway's IP stack, at tc and at XDP alike: the one forwarding path of the translator,
 * for two reasons.
 *
 * By choice (the topology section's `forward: fib`, XLAT_FWD_EGRESS): the kernel forwarding a
 * translated packet costs a second receive, a routing decision and the output path per
 * packet; at XDP on veth it also means building an skb for each one. Here the program asks
 * the FIB (bpf_fib_lookup(), which also checks forwarding is enabled and the egress MTU),
 * lowers the hop limit or TTL as the router it stands in for, writes the next hop's MAC
 * addresses and redirects out of the egress device. Only between the devices the control
 * plane named in xlat_fwd_devs, at ingress and egress (an empty map: the kernel forwards
 * everything, the default). At XDP the named devices must accept redirected frames (on veth:
 * a peer with NAPI, GRO or an XDP program; lab/datapath/translator/topology.py turns GRO on
 * there).
 *
 * By necessity (XLAT_FWD_PEER, whatever the configuration): an IPv6 BIG TCP packet
 * translated from IPv4 on a kernel whose IPv6 super-packets carry the Hop-by-Hop Jumbo
 * Payload option cannot be forwarded by the kernel. bpf_skb_change_proto() made it
 * SKB_GSO_DODGY, veth lacks NETIF_F_GSO_ROBUST, so validate_xmit_skb() hands it to
 * skb_gso_segment(), whose ipv6_gso_segment() strips the option (ipv6_hopopt_jumbo_remove())
 * before tcp_gso_segment() decides not to segment it, and the receiver trims a payload length
 * of 0 without the option to the bare header (docs/kernels.md). So such a packet skips the
 * transmit path: it goes straight into the namespace of the next hop's veth/netkit peer
 * (bpf_redirect_peer(), tc ingress only), where it arrives with its option.
 *
 * Either way, everything that needs the router's judgement goes to the kernel instead,
 * translated but untouched: hop limit or TTL running out (Time Exceeded), a packet too big
 * for the next link (Packet Too Big / Fragmentation Needed, or IPv4 fragmentation; at tc the
 * skb is checked, GSO-aware), an unresolved neighbour, packets for the gateway itself.
 * Netfilter's FORWARD hooks are not traversed by redirected packets. xlat_fwd_stats counts
 * both outcomes.
 */
#ifndef XLAT_FORWARD_H
#define XLAT_FORWARD_H

#include "ctx.h"
#include "proto.h"
#include "config.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Egress devices translated packets may be redirected to (ifindex -> 1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} xlat_fwd_devs SEC(".maps");

/* How xlat_forward() sends a packet on (flags). */
#define XLAT_FWD_V6     1   /* the translated packet is IPv6 */
#define XLAT_FWD_EGRESS 0   /* out of an egress device named in xlat_fwd_devs (bpf_redirect) */
#define XLAT_FWD_PEER   2   /* into the next hop's namespace, from any device (tc only) */

enum xlat_fwd {
	XLAT_FWD_REDIRECTED,     /* sent out by the program */
	XLAT_FWD_KERNEL,         /* handed to the kernel's forwarding (see above) */
	XLAT_FWD_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLAT_FWD_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xlat_fwd_stats SEC(".maps");

static __always_inline void xlat_fwd_count(enum xlat_fwd what)
{
	__u32 key = what;
	__u64 *v = bpf_map_lookup_elem(&xlat_fwd_stats, &key);

	if (v)
		*v += 1;
}

/* Whether the control plane turned forwarding by FIB on. */
static __always_inline bool xlat_fwd_fib(void)
{
	const struct xlat_config *cfg = xlat_config();

	return cfg && cfg->fwd_fib;
}

/* The FIB lookup of the translated packet: its egress device and next hop, or -1 when the
 * kernel should forward it (`any_dev`: to any device, not only those in xlat_fwd_devs).
 * Leaves the packet untouched. */
static __always_inline int xlat_fib(const struct pkt *p, bool v6, __u32 ifindex, bool any_dev,
				    struct bpf_fib_lookup *fib)
{
	__u32 len = pkt_len(p) - ETH_HLEN;
	long rc;

	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = ifindex;
	/* at tc the kernel checks the skb against the egress MTU (GSO-aware) when tot_len is 0 */
	if (v6) {
		struct ipv6hdr *ip = PKT_PTR(p, ETH_HLEN, IP6_HLEN);

		if (!ip || ip->hop_limit <= 1)
			return -1;
		fib->family = AF_INET6;
		fib->flowinfo = *(__be32 *)ip & bpf_htonl(0x0fffffff);
		fib->l4_protocol = ip->nexthdr;
		if (ip->nexthdr == NEXTHDR_HOP_) {
			/* a BIG TCP packet's Jumbo Payload option: the transport follows it */
			__u8 *nh = PKT_PTR(p, ETH_HLEN + IP6_HLEN, 1);

			if (!nh)
				return -1;
			fib->l4_protocol = *nh;
		}
		fib->tot_len = PKT_IS_XDP(p) ? len : 0;
		__builtin_memcpy(fib->ipv6_src, &ip->saddr, sizeof(ip->saddr));
		__builtin_memcpy(fib->ipv6_dst, &ip->daddr, sizeof(ip->daddr));
	} else {
		struct iphdr *ip = PKT_PTR(p, ETH_HLEN, IP4_HLEN);

		if (!ip || ip->ttl <= 1)
			return -1;
		fib->family = AF_INET;
		fib->tos = ip->tos;
		fib->l4_protocol = ip->protocol;
		fib->tot_len = PKT_IS_XDP(p) ? len : 0;
		fib->ipv4_src = ip->saddr;
		fib->ipv4_dst = ip->daddr;
	}
	if (PKT_IS_XDP(p))
		rc = bpf_fib_lookup(PKT_XDP(p), fib, sizeof(*fib), 0);
	else
		rc = bpf_fib_lookup(PKT_SKB(p), fib, sizeof(*fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	if (!any_dev && !bpf_map_lookup_elem(&xlat_fwd_devs, &fib->ifindex))
		return -1;
	return 0;
}

/* Lower the hop limit or TTL by one, as ip6_forward()/ip_forward() would. */
static __always_inline int xlat_fwd_decrement(const struct pkt *p, bool v6)
{
	if (v6) {
		struct ipv6hdr *ip = PKT_PTR(p, ETH_HLEN, IP6_HLEN);
		__u16 *word;

		if (!ip)
			return -1;
		/* Next Header and Hop Limit share a 16-bit word: skb->csum follows its change */
		word = (__u16 *)&ip->nexthdr;
		ip->hop_limit--;
		pkt_csum_complete_update(p, csum_sub(*word, *word + bpf_htons(1)));
	} else {
		struct iphdr *ip = PKT_PTR(p, ETH_HLEN, IP4_HLEN);
		__u32 check;

		if (!ip)
			return -1;
		/* RFC 1624 update of the header checksum; the header's sum stays -0 */
		check = ip->check;
		check += bpf_htons(0x0100);
		ip->check = (__u16)(check + (check >= 0xffff));
		ip->ttl--;
	}
	return 0;
}

/* Forward the translated packet by the FIB, `how` XLAT_FWD_*: the redirect verdict of the
 * hook, or -1 to let the kernel forward it. A global function (xlat_forward_skb/_xdp): the
 * lookup's 64 bytes of stack stay out of the translation's call chain. */
static __always_inline __s64 xlat_forward_body(const struct pkt *p, __u32 how)
{
	__u32 in = PKT_IS_XDP(p) ? PKT_XDP(p)->ingress_ifindex : PKT_SKB(p)->ifindex;
	bool v6 = how & XLAT_FWD_V6, peer = !PKT_IS_XDP(p) && (how & XLAT_FWD_PEER);
	struct bpf_fib_lookup fib;
	struct ethhdr *eth;

	/* by choice, only between the devices in the map */
	if (!peer && !bpf_map_lookup_elem(&xlat_fwd_devs, &in))
		return -1;
	if (xlat_fib(p, v6, in, peer, &fib) || !(eth = PKT_PTR(p, 0, ETH_HLEN)) ||
	    xlat_fwd_decrement(p, v6)) {
		xlat_fwd_count(XLAT_FWD_KERNEL);
		return -1;
	}
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	xlat_fwd_count(XLAT_FWD_REDIRECTED);
	if (peer)
		return (int)bpf_redirect_peer(fib.ifindex, 0);
	return (int)bpf_redirect(fib.ifindex, 0);
}

PKT_GLOBAL(xlat_forward, (__u32 how), (how))

#endif /* XLAT_FORWARD_H */
