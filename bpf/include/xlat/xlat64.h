/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv6 -> IPv4 packet translation (RFC 7915 section 5), independent of address policy.
 * Same three steps as xlat46.h: parse, validate, commit. */
#ifndef XLAT_XLAT64_H
#define XLAT_XLAT64_H

#include "ctx.h"
#include "proto.h"
#include "outcome.h"
#include "ipv4.h"
#include "ipv6.h"
#include "l4.h"
#include "icmp_map.h"
#include "icmp_ext.h"

struct xlat64 {
	struct ethhdr eth;
	__u8 l4;                    /* enum xlat_l4 of the packet */
	__u8 proto4;                /* its Protocol after translation */
	__u8 in_l4;                 /* enum xlat_l4 of the quoted packet */
	__u8 in_proto4;
	__u16 in_avail;             /* bytes of the quoted packet present (with an RFC 4884
				     * extension: the "original datagram" field) */
	__u16 ext_len;              /* RFC 4884 extension structure after it, 0: none */
	__u16 ident;                /* IPv4 Identification for a DF-clear result (the caller's
				     * generator; 0 unless set after xlat64_parse()) */
	struct ip6_info out;
	struct icmp_hdr8 icmp;      /* ICMPv6 header as received */
	struct icmp_hdr8 icmp4;     /* and translated */
	struct ip6_info in;         /* packet quoted by an ICMP error */
	struct icmp_hdr8 in_icmp;   /* its ICMPv6 header, if an ICMP query */
	/* Set by the caller before xlat64_commit(); each pair adjacent. */
	__be32 saddr;
	__be32 daddr;
	__be32 in_saddr;            /* quoted packet, ICMP errors only */
	__be32 in_daddr;
};

/* Whether the packet is IPv6; if so, s->out.ip holds its base header, not yet validated. */
static __always_inline bool xlat64_parse(const struct pkt *p, struct xlat64 *s)
{
	void *h = PKT_PTR(p, 0, ETH_HLEN + IP6_HLEN);

	if (h) {
		pkt_copy(&s->eth, h, ETH_HLEN);
		pkt_copy(&s->out.ip, h + ETH_HLEN, IP6_HLEN);
	} else if (pkt_load(p, 0, &s->eth, ETH_HLEN) ||
		   s->eth.h_proto != bpf_htons(ETH_P_IPV6) ||
		   pkt_load(p, ETH_HLEN, &s->out.ip, IP6_HLEN)) {
		return false;
	}
	s->ident = 0;
	return s->eth.h_proto == bpf_htons(ETH_P_IPV6) && s->out.ip.version == 6;
}

static __always_inline int xlat64_quoted_l4(const struct pkt *p, struct xlat64 *s, __u32 off)
{
	__u32 rest = s->in_avail - s->in.hlen;

	s->in_proto4 = s->in.proto;
	s->in_l4 = XLAT_L4_OPAQUE;
	if (l4_untranslatable6(s->in.proto))
		return XLAT_DROP_ICMP_INNER;
	if (s->in.frag_off)
		return 0;
	if (s->in.proto != IPPROTO_ICMPV6) {
		s->in_l4 = l4_kind_of(s->in.proto);
		return 0;
	}
	s->in_proto4 = IPPROTO_ICMP;
	if (!rest)
		return 0;
	if (rest < 4 || pkt_load(p, off, &s->in_icmp, 4))
		return XLAT_DROP_ICMP_INNER;
	if (s->in_icmp.type != ICMPV6_ECHO_REQUEST && s->in_icmp.type != ICMPV6_ECHO_REPLY)
		return XLAT_DROP_ICMP_INNER;
	s->in_l4 = XLAT_L4_ICMP_QUERY;
	return 0;
}

static __always_inline int xlat64_validate(const struct pkt *p, struct xlat64 *s)
{
	__u32 l4off, qlen;
	int cls;

	/* xlat64_parse() read the base header */
	cls = ip6_walk(p, ETH_HLEN, pkt_len(p) - ETH_HLEN, true, pkt_big_gso(p), &s->out);
	if (cls)
		return cls < 0 ? XLAT_DROP_MALFORMED : XLAT_DROP_EXT_CHAIN;
	/* RFC 7915 5.1: a routing header with segments left is not translated */
	if (s->out.rh_ptr)
		return XLAT_DROP_ROUTING_HDR;

	l4off = ETH_HLEN + PKT_OPAQUE(s->out.hlen);
	s->proto4 = s->out.proto;
	s->l4 = XLAT_L4_OPAQUE;
	if (l4_untranslatable6(s->out.proto))
		return XLAT_DROP_PROTO;

	if (s->out.proto == IPPROTO_ICMPV6) {
		s->proto4 = IPPROTO_ICMP;
		/* an atomic fragment (offset 0, no more fragments) holds the whole message */
		if (s->out.mf || s->out.frag_off)
			return XLAT_DROP_ICMP_FRAG;
		if (s->out.plen < ICMP_HLEN || pkt_load(p, l4off, &s->icmp, ICMP_HLEN))
			return XLAT_DROP_MALFORMED;
		cls = icmp_map_6to4(&s->icmp, &s->icmp4);
		if (cls == ICMP_XLAT_DROP)
			return XLAT_DROP_ICMP_TYPE;
		if (cls == ICMP_XLAT_QUERY) {
			s->l4 = XLAT_L4_ICMP_QUERY;
			return 0;
		}
		s->l4 = XLAT_L4_ICMP_ERROR;
		s->in_avail = s->out.plen - ICMP_HLEN;
		s->ext_len = 0;
		qlen = icmp6_rfc4884_len(&s->icmp);
		if (qlen && qlen < s->in_avail) {
			/* RFC 4884: Destination Unreachable and Time Exceeded, which keep a
			 * length attribute in ICMPv4 */
			if (qlen >= ICMP_EXT_MIN_DGRAM)
				s->ext_len = s->in_avail - qlen;
			s->in_avail = qlen;
		}
		if (ip6_parse(p, l4off + ICMP_HLEN, s->in_avail, false, &s->in))
			return XLAT_DROP_ICMP_INNER;
		return xlat64_quoted_l4(p, s, l4off + ICMP_HLEN + PKT_OPAQUE(s->in.hlen));
	}

	if (s->out.frag_off)
		return 0;
	s->l4 = l4_kind_of(s->out.proto);
	if (s->l4 != XLAT_L4_OPAQUE && s->out.plen < l4_csum_off(s->l4) + 2)
		return XLAT_DROP_MALFORMED;
	return 0;
}

/* An updated checksum comes out 0x0000 where a computed one would be 0xffff when the data
 * it covers sums to +0, which only all-zero data does (RFC 1624 3). ICMPv4 has no
 * pseudo-header, so an all-zero echo reply can be such data: sum it to tell. Rare (one
 * update in 65536 gives 0x0000), and no checksum is computed afresh, so a wrong one stays
 * wrong. */
static __always_inline int icmp4_fix_negative_zero(const struct pkt *p, __u32 off, __u32 len)
{
	__u16 check;
	__u32 sum = 0;

	if (pkt_load(p, off + 2, &check, sizeof(check)) || check)
		return 0;
	if (pkt_csum_range(p, off, len, &sum) || sum)
		return 0;
	check = 0xffff;
	return pkt_store(p, off + 2, &check, sizeof(check));
}

/* ICMPv6 echo -> ICMPv4 echo in place at `off` (RFC 7915 5.2): new type, the checksum
 * adjusted for it and for the pseudo-header ICMPv4 lacks. `len` is the message length. */
static __always_inline int xlat64_icmp_query(const struct pkt *p, __u32 off,
					     const struct icmp_hdr8 *from,
					     struct icmp_hdr8 *to, const struct in6_addr *saddr,
					     const struct in6_addr *daddr, __u32 len, bool quoted)
{
	__u32 word = icmp_word_diff(from, to);
	__u32 pseudo = ~pseudo6_sum(saddr, daddr, len, IPPROTO_ICMPV6);

	if (quoted) {
		to->checksum = csum_replace_diff(from->checksum, csum_add(word, pseudo));
		return pkt_store(p, off, to, 4);
	}
	if (pkt_l4_csum_update(p, off + 2, word, pseudo, false) ||
	    pkt_store_nocsum(p, off, &to->type, 2))
		return -1;
	return icmp4_fix_negative_zero(p, off, len);
}

/* The ICMPv6 error in `s` rebuilt as ICMPv4 (RFC 7915 5.2, 5.3), as xlat46_commit_error()
 * does the other way: checked first, in one pass over the quote without an extension. */
static __always_inline int xlat64_commit_error(const struct pkt *p, struct xlat64 *s,
					       bool zero_tos, __u16 mtu4, __u16 mtu6)
{
	struct iphdr outer, inner;
	struct icmp_ext_layout l;
	__u32 rest, len4, old_hdrs, new_hdrs, l4off, in_l4off, kept, sum, delta = 0, tos;
	int rc;
	__u16 check;

	rest = s->in_avail - s->in.hlen;
	if (s->ext_len && rest > s->in.plen)
		rest = s->in.plen;      /* the rest of the field is its zero padding */
	icmp_ext_plan(&l, XLAT_ICMP4_ERR_MAX - IP4_HLEN - ICMP_HLEN, IP4_HLEN, rest, s->ext_len,
		      4);
	len4 = ICMP_HLEN + l.dgram + l.ext;
	if (l.ext)
		s->icmp4.bytes[1] = l.dgram / 4;        /* RFC 4884 length, 32-bit words */

	if (s->icmp.type == ICMPV6_PKT_TOOBIG) {
		s->icmp4.frag.unused = 0;
		s->icmp4.frag.mtu = bpf_htons(icmp_mtu_6to4(bpf_ntohl(s->icmp.data), s->in.frag,
							    mtu4, mtu6));
	}

	l4off = ETH_HLEN + s->out.hlen;
	/* the ICMPv6 header and the quoted IPv6 base header as parsed */
	rc = icmp_err_check(p, &l, l4off, s->out.plen,
			    pseudo6_sum(&s->out.ip.saddr, &s->out.ip.daddr, s->out.plen,
					IPPROTO_ICMPV6),
			    csum_add(csum_words(&s->icmp, 2), csum_words(&s->in.ip, IP6_HLEN / 4)),
			    IP6_HLEN, s->in.hlen, &kept);
	if (rc)
		return rc;

	ip4_build(&inner, &s->in, s->in_proto4, s->in_saddr, s->in_daddr, zero_tos, 0);
	/* the outer message: never a fragment here, and at most 576 bytes, so DF clear */
	tos = zero_tos ? 0 : (__u32)s->out.ip.priority << 4 | s->out.ip.flow_lbl[0] >> 4;
	ip4_header(&outer, tos, IP4_HLEN + len4, s->ident, 0, s->out.ip.hop_limit, IPPROTO_ICMP,
		   s->saddr, s->daddr);

	old_hdrs = s->out.hlen + ICMP_HLEN + s->in.hlen;
	new_hdrs = IP4_HLEN + ICMP_HLEN + IP4_HLEN;
	if (l.ext) {
		/* the extension keeps its bytes but moves behind the translated quote */
		if (pkt_trim(p, l4off + ICMP_HLEN + s->in_avail + s->ext_len) ||
		    pkt_change_l3(p, ETH_P_IP, old_hdrs, new_hdrs) ||
		    icmp_ext_move(p, ETH_HLEN + new_hdrs + l.keep,
				  ETH_HLEN + new_hdrs + s->in_avail - s->in.hlen,
				  ETH_HLEN + IP4_HLEN + ICMP_HLEN + l.dgram, l.ext))
			return XLAT_DROP_ERROR;
	} else if (pkt_trim(p, ETH_HLEN + old_hdrs + l.keep) ||
		   pkt_change_l3(p, ETH_P_IP, old_hdrs, new_hdrs)) {
		return XLAT_DROP_ERROR;
	}

	s->eth.h_proto = bpf_htons(ETH_P_IP);
	s->icmp4.checksum = 0;
	l4off = ETH_HLEN + IP4_HLEN;
	if (pkt_store_nocsum(p, 0, &s->eth, ETH_HLEN) ||
	    pkt_store(p, ETH_HLEN, &outer, IP4_HLEN) ||
	    pkt_store(p, l4off, &s->icmp4, ICMP_HLEN) ||
	    pkt_store(p, l4off + ICMP_HLEN, &inner, IP4_HLEN))
		return XLAT_DROP_ERROR;

	in_l4off = ETH_HLEN + new_hdrs;
	if (l4_has_csum(s->in_l4) && l.keep >= l4_csum_off(s->in_l4) + 2) {
		__u32 diff = csum_words_diff(&s->in.ip.saddr, 8, &s->in_saddr, 2);

		if (l4_fix_quoted_csum(p, in_l4off + l4_csum_off(s->in_l4), diff,
				       s->in_l4 == XLAT_L4_UDP, &delta))
			return XLAT_DROP_ERROR;
	} else if (s->in_l4 == XLAT_L4_ICMP_QUERY && l.keep >= 4) {
		struct icmp_hdr8 q;

		q.type = s->in_icmp.type == ICMPV6_ECHO_REQUEST ? ICMP_ECHO : ICMP_ECHOREPLY;
		q.code = s->in_icmp.code;
		if (xlat64_icmp_query(p, in_l4off, &s->in_icmp, &q, &s->in.ip.saddr,
				      &s->in.ip.daddr, s->in.plen, true))
			return XLAT_DROP_ERROR;
		delta = csum_add(pkt_sum(&q, 4), ~pkt_sum(&s->in_icmp, 4));
	}

	if (l.ext) {
		sum = 0;
		if (pkt_csum_range(p, l4off, len4, &sum))
			return XLAT_DROP_ERROR;
	} else {
		/* the new headers (the checksum field 0) and the quoted bytes kept */
		sum = csum_add(csum_words(&s->icmp4, 2), csum_words(&inner, IP4_HLEN / 4));
		sum = csum_add(sum, csum_add(kept, delta));
	}
	check = csum_fold(sum);
	if (pkt_store(p, l4off + 2, &check, sizeof(check)))
		return XLAT_DROP_ERROR;
	return XLAT_DONE64;
}

/* Rewrite the validated IPv6 packet into IPv4 with the addresses in `s`; ICMP errors
 * (s->l4 == XLAT_L4_ICMP_ERROR) go to xlat64_commit_error() instead. */
static __always_inline int xlat64_commit(const struct pkt *p, struct xlat64 *s, bool zero_tos)
{
	struct iphdr ip;
	__u32 l4off;

	ip4_build(&ip, &s->out, s->proto4, s->saddr, s->daddr, zero_tos, s->ident);
	if (pkt_trim(p, ETH_HLEN + s->out.hlen + s->out.plen) ||
	    pkt_change_l3(p, ETH_P_IP, s->out.hlen, IP4_HLEN))
		return XLAT_DROP_ERROR;
	s->eth.h_proto = bpf_htons(ETH_P_IP);
	/* pkt_change_l3() took out the first 20 bytes of the IPv6 header and any extension
	 * headers (the helpers account for them); the IPv4 header goes over the last 20. */
	if (pkt_write_l3(p, &s->eth, &ip, IP4_HLEN, (csum_word_t *)&s->out.ip + 5, 5))
		return XLAT_DROP_ERROR;

	l4off = ETH_HLEN + IP4_HLEN;
	switch (s->l4) {
	case XLAT_L4_TCP:
	case XLAT_L4_UDP:
	case XLAT_L4_DCCP: {
		__u32 diff = csum_words_diff(&s->out.ip.saddr, 8, &s->saddr, 2);

		if (pkt_l4_csum_update(p, l4off + l4_csum_off(s->l4), 0, diff,
				       s->l4 == XLAT_L4_UDP))
			return XLAT_DROP_ERROR;
		break;
	}
	case XLAT_L4_ICMP_QUERY:
		if (xlat64_icmp_query(p, l4off, &s->icmp, &s->icmp4, &s->out.ip.saddr,
				      &s->out.ip.daddr, s->out.plen, false))
			return XLAT_DROP_ERROR;
		break;
	}
	return XLAT_DONE64;
}

#endif /* XLAT_XLAT64_H */
