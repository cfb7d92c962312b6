/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Parsing and building IPv4 headers for translation. */
#ifndef XLAT_IPV4_H
#define XLAT_IPV4_H

#include "ctx.h"
#include "proto.h"

/* Check the IPv4 header in h->ip, with `avail` bytes from its start to the end of the data it
 * may use, and fill in the rest of `h`. An outer header must cover its whole announced packet
 * (tot_len <= avail); one quoted in an ICMP error only needs its header present, the rest may
 * be cut. `big`: the outer packet is a GSO packet above 64 KiB, whose tot_len 0 means "the
 * skb's length" (IPv4 BIG TCP, kernel 6.3+). */
static __always_inline int ip4_check(__u32 avail, bool outer, bool big, struct ip4_info *h)
{
	__u32 tot;
	__u16 fo;

	if (avail < IP4_HLEN || h->ip.version != 4 || h->ip.ihl < 5)
		return -1;
	h->hlen = h->ip.ihl * 4;
	tot = bpf_ntohs(h->ip.tot_len);
	h->jumbo = outer && big && !tot && h->ip.protocol == IPPROTO_TCP;
	if (h->jumbo)
		tot = avail;
	if (tot < h->hlen || h->hlen > avail || (outer && tot > avail))
		return -1;
	h->plen = tot - h->hlen;
	fo = bpf_ntohs(h->ip.frag_off);
	h->frag_off = fo & IP4_OFFSET;
	h->mf = !!(fo & IP4_MF);
	h->frag = h->mf || h->frag_off;
	return 0;
}

/* ip4_check() of the header at `off`, read first. */
static __always_inline int ip4_parse(const struct pkt *p, __u32 off, __u32 avail, bool outer,
				     struct ip4_info *h)
{
	if (avail < IP4_HLEN || pkt_load(p, off, &h->ip, IP4_HLEN))
		return -1;
	return ip4_check(avail, outer, false, h);
}

/* Sum of `len` bytes of IPv4 options at `off` added to `seed` (low 32 bits), bit 32 set if
 * they hold a source route with addresses left (RFC 7915 4.1: such packets are not
 * translated), or -1. Options are otherwise ignored; a malformed option list ends the scan,
 * as nothing after it can be trusted. */
#define IP4_OPT_SOURCE_ROUTE (1ULL << 32)

static __always_inline __s64 ip4_options_body(const struct pkt *p, __u32 off, __u32 len,
					      __u32 seed)
{
	__u8 opt[40];
	__u64 n64 = len;
	__u64 flags = 0;
	__u32 i = 0;
	__s64 r;
	int n;

	if (!n64)
		return seed;
	barrier_var(n64);
	if (n64 == 0 || n64 > sizeof(opt))
		return -1;
	__builtin_memset(opt, 0, sizeof(opt));
	if (pkt_load(p, off, opt, n64))
		return -1;
	r = bpf_csum_diff(NULL, 0, (void *)opt, n64, seed);
	if (r < 0)
		return -1;

	/* Option headers are read from the packet, not indexed in `opt`: an index would have to
	 * be exact for the verifier, and exact values at every step multiply its states. */
	for (n = 0; n < 40; n++) {
		__u8 h[3];      /* type, length, pointer */

		if (i >= len)
			break;
		if (pkt_load_copy(p, off + i, h, 1))
			return -1;
		if (h[0] == IPOPT_END_LIST)
			break;
		if (h[0] == IPOPT_NOOPT) {
			i++;
			continue;
		}
		if (i + 2 > len || pkt_load_copy(p, off + i, h, 2))
			break;
		if (h[1] < 2 || i + h[1] > len)
			break;
		if ((h[0] == IPOPT_LSRR_ || h[0] == IPOPT_SSRR_) && h[1] >= 3 &&
		    !pkt_load_copy(p, off + i, h, 3) && h[2] <= h[1]) {
			flags = IP4_OPT_SOURCE_ROUTE;
			break;
		}
		i += h[1];
	}
	return (__u32)r | flags;
}

PKT_GLOBAL(ip4_options, (__u32 off, __u32 len, __u32 seed), (off, len, seed))

static __always_inline __u16 ip4_header_csum(const struct iphdr *ip)
{
	return csum_fold(csum_words(ip, IP4_HLEN / 4));
}

/* The IPv4 header of a packet translated from IPv6 (RFC 7915 5.1). `frag` describes an IPv6
 * Fragment header, if any. `ident`: the Identification of a packet that IPv4 may fragment
 * (DF clear, RFC 6864 4.1: unique per source, destination and protocol for as long as its
 * fragments may live), from the caller's generator; a fragment keeps its own. */
/* An IPv4 header without options at `ip`, written in whole words (see pkt_copy()), its
 * checksum summed from the words themselves rather than read back from memory. */
static __always_inline void ip4_header(struct iphdr *ip, __u32 tos, __u32 tot, __u32 id, __u32 fo,
				       __u32 ttl, __u32 proto, __be32 saddr, __be32 daddr)
{
	pkt_u32_t *w = (pkt_u32_t *)ip;
	__u32 w0 = bpf_htonl(0x45U << 24 | tos << 16 | tot), w1 = bpf_htonl(id << 16 | fo);
	__u32 w2 = bpf_htonl(ttl << 24 | proto << 16);
	__u64 sum = (__u64)w0 + w1 + w2 + saddr + daddr;

	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	w2 |= (__u32)csum_fold((__u32)sum) << 16;
#else
	w2 |= csum_fold((__u32)sum);
#endif
	w[0] = w0;
	w[1] = w1;
	w[2] = w2;
	w[3] = saddr;
	w[4] = daddr;
}

static __always_inline void ip4_build(struct iphdr *ip, const struct ip6_info *h6, __u8 proto,
				      __be32 saddr, __be32 daddr, bool zero_tos, __u16 ident)
{
	__u32 tot = IP4_HLEN + h6->plen, tos, id, fo;

	if (h6->frag) {
		/* identification from the Fragment header, DF clear so IPv4 may fragment more */
		fo = h6->frag_off | (h6->mf ? IP4_MF : 0);
		id = (__u16)bpf_ntohl(h6->frag_id);
	} else {
		fo = tot > XLAT_DF_THRESHOLD ? IP4_DF : 0;
		id = fo ? 0 : ident;    /* atomic (DF): any value (RFC 6864 4.1) */
	}
	tos = zero_tos ? 0 : (__u32)h6->ip.priority << 4 | h6->ip.flow_lbl[0] >> 4;
	/* above 64 KiB (a BIG TCP GSO packet from an IPv6 jumbogram): 0, the skb's length */
	if (tot > 0xffff)
		tot = 0;
	ip4_header(ip, tos, tot, id, fo, h6->ip.hop_limit, proto, saddr, daddr);
}

#endif /* XLAT_IPV4_H */
