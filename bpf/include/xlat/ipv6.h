/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Parsing and building IPv6 headers for translation. */
#ifndef XLAT_IPV6_H
#define XLAT_IPV6_H

#include "ctx.h"
#include "proto.h"

static __always_inline bool ip6_is_ext(__u8 nh)
{
	return nh == NEXTHDR_HOP_ || nh == NEXTHDR_ROUTING_ || nh == NEXTHDR_DEST_ ||
	       nh == NEXTHDR_FRAGMENT_;
}

/* Check the IPv6 header in h->ip (at `off` in the packet) and walk its extension headers
 * (RFC 7915 5.1: Hop-by-Hop, Destination Options and Routing headers are skipped, the
 * Fragment header is translated). `avail` and `outer` as for ip4_parse().
 * Returns 0, -1 for a malformed packet, or 1 for a chain the translator does not translate
 * (h->chain says why, h->chain_ptr where): an extension header after the Fragment header
 * (it belongs to the fragmentable part, whose length later fragments' offsets count, so it
 * cannot be removed), a misplaced Hop-by-Hop header, more headers than IP6_MAX_EXT.
 * Payload length 0 is a jumbogram (RFC 2675) only as the outer header of a BIG TCP GSO
 * packet (`big`), which kernels up to 2025 mark with a Hop-by-Hop Jumbo Payload option
 * (checked against the packet's length) and 2026's leave bare; IPv4 BIG TCP carries it on
 * with tot_len 0. Anywhere else it means what it says: nothing follows the headers. */
static __always_inline int ip6_walk(const struct pkt *p, __u32 off, __u32 avail, bool outer,
				    bool big, struct ip6_info *h)
{
	__u32 o = IP6_HLEN, end, nh_off = 6;
	__u8 nh;
	int i;

	if (avail < IP6_HLEN || h->ip.version != 6)
		return -1;
	end = IP6_HLEN + bpf_ntohs(h->ip.payload_len);
	h->jumbo = 0;
	if (end == IP6_HLEN && outer && big) {
		struct {
			__u8 nexthdr;
			__u8 len;
			__u8 type;
			__u8 optlen;
			__be32 jumbo_len;
		} hbh;

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
	h->chain = IP6_CHAIN_OK;
	nh = h->ip.nexthdr;

	for (i = 0; i < IP6_MAX_EXT; i++) {
		struct {
			__u8 nexthdr;
			__u8 len;
			__u8 type;         /* routing type */
			__u8 segments_left;
			__be32 rest;
		} e;

		if (!ip6_is_ext(nh))
			break;
		if (nh == NEXTHDR_HOP_ && i) {
			h->chain = IP6_CHAIN_HBH_NOT_FIRST;
			goto chain;
		}
		if (o + 8 > end || pkt_load_copy(p, off + o, &e, sizeof(e)))
			return -1;
		if (nh == NEXTHDR_FRAGMENT_) {
			__u16 fo = bpf_ntohs(((struct ip6_frag *)&e)->frag_off);

			h->frag = 1;
			h->frag_off = fo >> 3;
			h->mf = fo & 1;
			h->frag_id = ((struct ip6_frag *)&e)->identification;
			nh_off = o;
			o += IP6_FRAG_HLEN;
			nh = e.nexthdr;
			if (ip6_is_ext(nh)) {
				h->chain = IP6_CHAIN_AFTER_FRAGMENT;
				goto chain;
			}
			break;
		}
		if (nh == NEXTHDR_ROUTING_ && e.segments_left && !h->rh_ptr)
			h->rh_ptr = o + 3;
		nh_off = o;
		o += (e.len + 1) * 8;
		nh = e.nexthdr;
	}
	if (ip6_is_ext(nh)) {
		h->chain = IP6_CHAIN_TOO_LONG;
		goto chain;
	}
	if (!h->jumbo)
		end = IP6_HLEN + bpf_ntohs(h->ip.payload_len);   /* a quoted packet's own length */
	if (o > end || o > avail)
		return -1;
	h->hlen = o;
	h->plen = end - o;
	h->proto = nh;
	return 0;
chain:
	h->chain_ptr = nh_off;
	h->hlen = o;
	h->plen = 0;
	h->proto = nh;
	return 1;
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
	pkt_u32_t *w = (pkt_u32_t *)out;        /* written in whole words, see pkt_copy() */
	__u32 tc = zero_tos ? 0 : h4->ip.tos, hlen = IP6_HLEN, plen, nh = nexthdr;

	if (h4->plen > 0xffff) {
		/* A BIG TCP GSO packet, in the form the kernel's own IPv6 stack gives its
		 * super-packets, so that its GSO and receive paths take ours as theirs: 7.2/7.3
		 * write payload length 0 and take the length from the skb (as IPv4's tot_len 0);
		 * 6.12/6.18 add an RFC 2675 Jumbo Payload option, which their
		 * receiving stack checks and GSO segmentation removes. A GSO packet is never a
		 * fragment, so the option takes the Fragment header's place. */
		plen = 0;
		if (jumbo_hbh) {
			nh = NEXTHDR_HOP_;
			/* Next Header, Hdr Ext Len 0, option type and length; the jumbo length */
			w[10] = bpf_htonl((__u32)nexthdr << 24 | IP6_TLV_JUMBO << 8 | 4);
			w[11] = bpf_htonl(IP6_FRAG_HLEN + h4->plen);
			hlen += IP6_FRAG_HLEN;
		}
	} else {
		if (h4->frag) {
			nh = NEXTHDR_FRAGMENT_;
			w[10] = bpf_htonl((__u32)nexthdr << 24 | (__u32)h4->frag_off << 3 | h4->mf);
			w[11] = bpf_htonl(bpf_ntohs(h4->ip.id));
			hlen += IP6_FRAG_HLEN;
		}
		plen = hlen - IP6_HLEN + h4->plen;
	}
	w[0] = bpf_htonl(6U << 28 | tc << 20);            /* flow label 0 */
	w[1] = bpf_htonl(plen << 16 | nh << 8 | h4->ip.ttl);
	pkt_copy(&w[2], saddr, 16);
	pkt_copy(&w[6], daddr, 16);
	return hlen;
}

/* Sum of the IPv6 pseudo-header for an upper-layer packet of `len` bytes. */
static __always_inline __u32 pseudo6_sum(const struct in6_addr *saddr,
					 const struct in6_addr *daddr, __u32 len, __u8 nexthdr)
{
	__u32 s = csum_add(csum_words(saddr, 4), csum_words(daddr, 4));

	return csum_add(s, csum_add(bpf_htonl(len), bpf_htonl(nexthdr)));
}

#endif /* XLAT_IPV6_H */
