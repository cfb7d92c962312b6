/* SPDX-License-Identifier: GPL-2.0 */
/* IPv6 forwarding in BPF, for programs that route packets past the kernel's IP stack (BPF host
 * routing, bpf/hostrouting.c): the IPv6 header behind an Ethernet header, the hop limit a
 * router must decrement, MAC rewriting, and the FIB lookup that picks the next hop.
 *
 * What the stack would do for a forwarded packet and these helpers do not: ICMPv6 errors. The
 * programs hand every packet they cannot forward to the stack (TC_ACT_UNSPEC), which sends
 * them (hop limit exceeded, no route, packet too big).
 */
#ifndef LAB_FWD6_H
#define LAB_FWD6_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET6
#define AF_INET6 10
#endif

#define FWD6_FLOWINFO_MASK bpf_htonl(0x0FFFFFFF)

struct fwd6_packet {
	struct ethhdr *eth;
	struct ipv6hdr *ip6;
};

/* The Ethernet and IPv6 headers of SKB, if it is an IPv6 packet. Pointers are valid until the
 * packet is changed by a helper. */
static __always_inline bool fwd6_parse(struct __sk_buff *skb, struct fwd6_packet *p)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;

	p->eth = data;
	p->ip6 = (void *)(p->eth + 1);
	if ((void *)(p->ip6 + 1) > data_end)
		return false;
	return p->eth->h_proto == bpf_htons(ETH_P_IPV6) && p->ip6->version == 6;
}

/* Destinations only the stack handles: multicast (ND, MLD) and link-local (scope of one link,
 * never forwarded). */
static __always_inline bool fwd6_link_scoped(const struct in6_addr *a)
{
	__u8 b0 = a->in6_u.u6_addr8[0], b1 = a->in6_u.u6_addr8[1];

	return b0 == 0xff || (b0 == 0xfe && (b1 & 0xc0) == 0x80);
}

/* A router forwards a packet only with hop limit > 1 (RFC 8200 3); the stack answers the
 * others with ICMPv6 Time Exceeded. IPv6 has no header checksum to fix. */
static __always_inline bool fwd6_hop(struct ipv6hdr *ip6)
{
	if (ip6->hop_limit <= 1)
		return false;
	ip6->hop_limit--;
	return true;
}

static __always_inline void fwd6_set_macs(struct ethhdr *eth, const __u8 *src, const __u8 *dst)
{
	__builtin_memcpy(eth->h_source, src, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
}

/* The kernel's FIB lookup for a packet that entered at IFINDEX (a device of the namespace the
 * program runs in): returns BPF_FIB_LKUP_RET_*, with the egress device, the next hop and, if
 * its neighbour entry is known, the MAC addresses in FIB. The kernel refuses the lookup
 * (BPF_FIB_LKUP_RET_FWD_DISABLED) unless IPv6 forwarding is on for IFINDEX. */
static __always_inline long fwd6_fib(struct __sk_buff *skb, const struct ipv6hdr *ip6,
				     __u32 ifindex, struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET6;
	fib->ifindex = ifindex;
	fib->l4_protocol = ip6->nexthdr;
	/* tot_len stays 0: the kernel then checks the skb itself against the egress MTU, GSO
	 * packets segment by segment. Given the header's length, a GSO packet (a pod's TCP
	 * stream) would be refused as too big (BPF_FIB_LKUP_RET_FRAG_NEEDED). */
	fib->flowinfo = *(const __be32 *)ip6 & FWD6_FLOWINFO_MASK;
	__builtin_memcpy(fib->ipv6_src, &ip6->saddr, sizeof(ip6->saddr));
	__builtin_memcpy(fib->ipv6_dst, &ip6->daddr, sizeof(ip6->daddr));
	return bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
}

#endif /* LAB_FWD6_H */
