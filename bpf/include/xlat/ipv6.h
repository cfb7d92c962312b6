/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Parsing and building IPv6 headers for translation. */
#ifndef XLAT_IPV6_H
#define XLAT_IPV6_H

#include "ctx.h"
#include "proto.h"

/* Check the IPv6 header in h->ip (at `off` in the packet) and walk its extension headers (RFC 7915 5.1: Hop-by-Hop,
 * Destination Options and Routing headers are skipped, the Fragment header is translated).
 * `avail` and `outer` as for ip4_parse(). Fragments stop the walk at the Fragment header:
 * extension headers after it belong to the fragmentable part, whose length later fragments'
 * offsets count, so they cannot be removed.
 * A zero payload length is a jumbogram (RFC 2675): translatable only as the outer header of
 * a BIG TCP GSO packet (`big`), which kernels up to 2025 mark with a Hop-by-Hop Jumbo Payload
 * option (checked against the packet's length) and 2026's leave bare; IPv4 BIG TCP carries it
 * on with tot_len 0. */
static __always_inline int ip6_walk(const struct pkt *p, __u32 off, __u32 avail, bool outer,
				    bool big, struct ip6_info *h)
{
	__u32 o = IP6_HLEN, end;
	__u8 nh;
	int i;

	if (avail < IP6_HLEN || h->ip.version != 6)
		return -1;
	end = IP6_HLEN + bpf_ntohs(h->ip.payload_len);
	h->jumbo = 0;
	if (end == IP6_HLEN) {
		struct {
			__u8 nexthdr;
			__u8 len;
			__u8 type;
			__u8 optlen;
			__be32 jumbo_len;
		} hbh;

		if (!outer || !big)
			return -1;
		if (h->ip.nexthdr == NEXTHDR_HOP_) {
			if (pkt_load(p, off + IP6_HLEN, &hbh, sizeof(hbh)) || hbh.len ||
			    hbh.type != IP6_TLV_JUMBO || hbh.optlen != 4 ||
			    bpf_ntohl(hbh.jumbo_len) != avail - IP6_HLEN ||
			    hbh.nexthdr != IPPROTO_TCP)
				return -1;
		} else if (h->ip.nexthdr != IPPROTO_TCP) {
			return -1;
		}
		h->jumbo = 1;
		end = avail;
	}
	if (outer && end > avail)
		return -1;
	if (end > avail)
		end = avail;       /* quoted packet: walk what is there */
	h->frag = 0;
	h->mf = 0;
	h->frag_off = 0;
	h->frag_id = 0;
	h->rh_ptr = 0;
	nh = h->ip.nexthdr;

	for (i = 0; i < IP6_MAX_EXT; i++) {
		struct {
			__u8 nexthdr;
			__u8 len;
			__u8 type;         /* routing type */
			__u8 segments_left;
			__be32 rest;
		} e;

		if (nh != NEXTHDR_HOP_ && nh != NEXTHDR_ROUTING_ && nh != NEXTHDR_DEST_ &&
		    nh != NEXTHDR_FRAGMENT_)
			break;
		if (nh == NEXTHDR_HOP_ && i)
			return -1;       /* Hop-by-Hop only directly after the IPv6 header */
		if (o + 8 > end || pkt_load(p, off + o, &e, sizeof(e)))
			return -1;
		if (nh == NEXTHDR_FRAGMENT_) {
			__u16 fo = bpf_ntohs(((struct ip6_frag *)&e)->frag_off);

			if (h->frag)
				return -1;
			h->frag = 1;
			h->frag_off = fo >> 3;
			h->mf = fo & 1;
			h->frag_id = ((struct ip6_frag *)&e)->identification;
			o += IP6_FRAG_HLEN;
			nh = e.nexthdr;
			if (nh == NEXTHDR_HOP_ || nh == NEXTHDR_ROUTING_ || nh == NEXTHDR_DEST_ ||
			    nh == NEXTHDR_FRAGMENT_)
				return -1;
			break;
		}
		if (nh == NEXTHDR_ROUTING_ && e.segments_left && !h->rh_ptr)
			h->rh_ptr = o + 3;
		o += (e.len + 1) * 8;
		nh = e.nexthdr;
	}
	if (nh == NEXTHDR_HOP_ || nh == NEXTHDR_ROUTING_ || nh == NEXTHDR_DEST_ ||
	    nh == NEXTHDR_FRAGMENT_)
		return -1;       /* more extension headers than we walk */
	if (!h->jumbo)
		end = IP6_HLEN + bpf_ntohs(h->ip.payload_len);   /* a quoted packet's own length */
	if (o > end || o > avail)
		return -1;
	h->hlen = o;
	h->plen = end - o;
	h->proto = nh;
	return 0;
}

/* ip6_walk() of the header at `off`, read first. */
static __always_inline int ip6_parse(const struct pkt *p, __u32 off, __u32 avail, bool outer,
				     struct ip6_info *h)
{
	if (avail < IP6_HLEN || pkt_load(p, off, &h->ip, IP6_HLEN))
		return -1;
	return ip6_walk(p, off, avail, outer, false, h);
}

/* The IPv6 header (and Fragment header for IPv4 fragments, or the Hop-by-Hop Jumbo Payload
 * header for a BIG TCP GSO packet above 64 KiB when `jumbo_hbh`) of a packet translated from
 * IPv4 (RFC 7915 4.1). Returns the length written to `hdr` (40 or 48). */
struct ip6_hdrs {
	struct ipv6hdr ip;
	struct ip6_frag fh;
};

static __always_inline __u32 ip6_build(struct ip6_hdrs *out, const struct ip4_info *h4,
				       __u8 nexthdr, const struct in6_addr *saddr,
				       const struct in6_addr *daddr, bool zero_tos, bool jumbo_hbh)
{
	__u8 tc = zero_tos ? 0 : h4->ip.tos;
	__u32 hlen = IP6_HLEN;

	out->ip.version = 6;
	out->ip.priority = tc >> 4;
	out->ip.flow_lbl[0] = (__u8)(tc << 4);     /* flow label 0 */
	out->ip.flow_lbl[1] = 0;
	out->ip.flow_lbl[2] = 0;
	out->ip.hop_limit = h4->ip.ttl;
	out->ip.saddr = *saddr;
	out->ip.daddr = *daddr;
	if (hlen - IP6_HLEN + h4->plen > 0xffff) {
		/* A BIG TCP GSO packet, in the form the kernel's own IPv6 stack gives its
		 * super-packets, so that its GSO and receive paths take ours as theirs: 7.2/7.3
		 * write payload length 0 and take the length from the skb (as IPv4's tot_len 0);
		 * 6.12/6.18 add an RFC 2675 Jumbo Payload option, which their
		 * receiving stack checks and GSO segmentation removes. A GSO packet is never a
		 * fragment, so the option takes the Fragment header's place. */
		out->ip.payload_len = 0;
		if (!jumbo_hbh) {
			out->ip.nexthdr = nexthdr;
			return IP6_HLEN;
		}
		out->ip.nexthdr = NEXTHDR_HOP_;
		out->fh.nexthdr = nexthdr;
		out->fh.reserved = 0;                                   /* Hdr Ext Len 0 */
		out->fh.frag_off = bpf_htons(IP6_TLV_JUMBO << 8 | 4);   /* type, opt data len */
		out->fh.identification = bpf_htonl(IP6_FRAG_HLEN + h4->plen);
		out->ip.payload_len = 0;
		return IP6_HLEN + IP6_FRAG_HLEN;
	}
	if (h4->frag) {
		out->ip.nexthdr = NEXTHDR_FRAGMENT_;
		out->fh.nexthdr = nexthdr;
		out->fh.reserved = 0;
		out->fh.frag_off = bpf_htons((h4->frag_off << 3) | h4->mf);
		out->fh.identification = bpf_htonl(bpf_ntohs(h4->ip.id));
		hlen += IP6_FRAG_HLEN;
	} else {
		out->ip.nexthdr = nexthdr;
	}
	out->ip.payload_len = bpf_htons(hlen - IP6_HLEN + h4->plen);
	return hlen;
}

/* Sum of the IPv6 pseudo-header for an upper-layer packet of `len` bytes. */
static __always_inline __u32 pseudo6_sum(const struct in6_addr *saddr,
					 const struct in6_addr *daddr, __u32 len, __u8 nexthdr)
{
	struct pseudo6 ph = {
		.saddr = *saddr,
		.daddr = *daddr,
		.len = bpf_htonl(len),
		.nexthdr = nexthdr,
	};

	return (__u32)bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0);
}

#endif /* XLAT_IPV6_H */
