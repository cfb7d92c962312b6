/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv4 -> IPv6 packet translation (RFC 7915 section 4), independent of address policy.
 *
 * Three steps, so that the caller chooses the addresses (SIIT: RFC 6052 prefix and RFC 7757
 * EAM; the stateful gateway: its connection table):
 *   xlat46_parse()    Ethernet and the base IPv4 header: enough to decide whose packet it is.
 *   xlat46_validate() the rest: header checksum, options, transport and ICMP headers, and the
 *                     packet quoted by an ICMP error.
 *   xlat46_commit()   rewrite the packet with the addresses the caller put in `struct xlat46`.
 * The packet is untouched until xlat46_commit().
 */
#ifndef XLAT_XLAT46_H
#define XLAT_XLAT46_H

#include "ctx.h"
#include "proto.h"
#include "outcome.h"
#include "ipv4.h"
#include "ipv6.h"
#include "l4.h"
#include "icmp_map.h"
#include "icmp_ext.h"

struct xlat46 {
	struct ethhdr eth;
	__u8 l4;                    /* enum xlat_l4 of the packet */
	__u8 proto6;                /* its Next Header after translation */
	__u8 in_l4;                 /* enum xlat_l4 of the quoted packet */
	__u8 in_proto6;
	__u16 in_avail;             /* bytes of the quoted packet present (with an RFC 4884
				     * extension: the "original datagram" field) */
	__u16 ext_len;              /* RFC 4884 extension structure after it, 0: none */
	__u16 pad;
	struct ip4_info out;
	struct icmp_hdr8 icmp;      /* ICMPv4 header as received */
	struct icmp_hdr8 icmp6;     /* and translated */
	struct ip4_info in;         /* packet quoted by an ICMP error */
	struct icmp_hdr8 in_icmp;   /* its ICMP header, if an ICMP query */
	/* Set by the caller before xlat46_commit(). Each pair adjacent: checksums sum them. */
	struct in6_addr saddr;
	struct in6_addr daddr;
	struct in6_addr in_saddr;   /* quoted packet, ICMP errors only */
	struct in6_addr in_daddr;
};

/* Whether the packet is IPv4; if so, s->out.ip holds its base header, not yet validated. */
static __always_inline bool xlat46_parse(const struct pkt *p, struct xlat46 *s)
{
	void *h = PKT_PTR(p, 0, ETH_HLEN + IP4_HLEN);

	if (h) {
		pkt_copy(&s->eth, h, ETH_HLEN);
		pkt_copy(&s->out.ip, h + ETH_HLEN, IP4_HLEN);
	} else if (pkt_load(p, 0, &s->eth, ETH_HLEN) ||
		   s->eth.h_proto != bpf_htons(ETH_P_IP) ||
		   pkt_load(p, ETH_HLEN, &s->out.ip, IP4_HLEN)) {
		return false;
	}
	return s->eth.h_proto == bpf_htons(ETH_P_IP) && s->out.ip.version == 4;
}

/* Classify the transport header of a quoted IPv4 packet. */
static __always_inline int xlat46_quoted_l4(const struct pkt *p, struct xlat46 *s, __u32 off)
{
	__u32 rest = s->in_avail - s->in.hlen;

	s->in_proto6 = s->in.ip.protocol;
	s->in_l4 = XLAT_L4_OPAQUE;
	if (l4_untranslatable4(s->in.ip.protocol))
		return XLAT_DROP_ICMP_INNER;
	if (s->in.frag_off)
		return 0;                       /* no transport header in a later fragment */
	if (s->in.ip.protocol != IPPROTO_ICMP) {
		s->in_l4 = l4_kind_of(s->in.ip.protocol);
		return 0;
	}
	s->in_proto6 = IPPROTO_ICMPV6;
	if (!rest)
		return 0;
	if (rest < 4 || pkt_load(p, off, &s->in_icmp, 4))
		return XLAT_DROP_ICMP_INNER;
	/* RFC 7915 4.3: translate one level; an error quoting an error is dropped */
	if (s->in_icmp.type != ICMP_ECHO && s->in_icmp.type != ICMP_ECHOREPLY)
		return XLAT_DROP_ICMP_INNER;
	s->in_l4 = XLAT_L4_ICMP_QUERY;
	return 0;
}

static __always_inline int xlat46_validate(const struct pkt *p, struct xlat46 *s)
{
	__u32 l4off, sum, qlen;
	__s64 opts;
	int cls;

	/* xlat46_parse() read the base header */
	if (ip4_check(pkt_len(p) - ETH_HLEN, true, pkt_big_gso(p), &s->out))
		return XLAT_DROP_MALFORMED;
	sum = csum_words(&s->out.ip, IP4_HLEN / 4);
	opts = 0;
	if (s->out.hlen > IP4_HLEN) {
		opts = PKT_CALL(p, ip4_options, ETH_HLEN + IP4_HLEN, s->out.hlen - IP4_HLEN, sum);
		if (opts < 0)
			return XLAT_DROP_MALFORMED;
		sum = (__u32)opts;
	}
	if (csum_fold(sum))
		return XLAT_DROP_MALFORMED;     /* header checksum (RFC 1812 5.2.2) */
	if (opts & IP4_OPT_SOURCE_ROUTE)
		return XLAT_DROP_SRCROUTE;

	l4off = ETH_HLEN + PKT_OPAQUE(s->out.hlen);
	s->proto6 = s->out.ip.protocol;
	s->l4 = XLAT_L4_OPAQUE;
	if (l4_untranslatable4(s->out.ip.protocol))
		return XLAT_DROP_PROTO;

	if (s->out.ip.protocol == IPPROTO_ICMP) {
		s->proto6 = IPPROTO_ICMPV6;
		/* the ICMPv6 pseudo-header needs the whole message's length */
		if (s->out.frag)
			return XLAT_DROP_ICMP_FRAG;
		if (s->out.plen < ICMP_HLEN || pkt_load(p, l4off, &s->icmp, ICMP_HLEN))
			return XLAT_DROP_MALFORMED;
		cls = icmp_map_4to6(&s->icmp, &s->icmp6);
		if (cls == ICMP_XLAT_DROP)
			return XLAT_DROP_ICMP_TYPE;
		if (cls == ICMP_XLAT_QUERY) {
			s->l4 = XLAT_L4_ICMP_QUERY;
			return 0;
		}
		s->l4 = XLAT_L4_ICMP_ERROR;
		s->in_avail = s->out.plen - ICMP_HLEN;
		s->ext_len = 0;
		qlen = icmp4_rfc4884_len(&s->icmp);
		if (qlen && qlen < s->in_avail) {
			/* RFC 4884: an extension follows a field of at least 128 bytes; only
			 * Destination Unreachable and Time Exceeded keep one in ICMPv6 (Packet
			 * Too Big and Parameter Problem have no length attribute) */
			if (qlen >= ICMP_EXT_MIN_DGRAM && (s->icmp6.type == ICMPV6_DEST_UNREACH ||
							  s->icmp6.type == ICMPV6_TIME_EXCEED))
				s->ext_len = s->in_avail - qlen;
			s->in_avail = qlen;
		}
		if (ip4_parse(p, l4off + ICMP_HLEN, s->in_avail, false, &s->in))
			return XLAT_DROP_ICMP_INNER;
		return xlat46_quoted_l4(p, s, l4off + ICMP_HLEN + PKT_OPAQUE(s->in.hlen));
	}

	if (s->out.frag_off)
		return 0;                       /* later fragment: no transport header */
	s->l4 = l4_kind_of(s->out.ip.protocol);
	if (s->l4 == XLAT_L4_OPAQUE)
		return 0;
	if (s->out.plen < l4_csum_off(s->l4) + 2)
		return XLAT_DROP_MALFORMED;
	if (s->l4 == XLAT_L4_UDP) {
		__u16 check;

		if (pkt_load_u16(p, l4off + 6, &check))
			return XLAT_DROP_MALFORMED;
		/* RFC 7915 4.5: the caller's policy decides (computable only over the whole
		 * datagram, so never for a first fragment) */
		if (!check)
			s->l4 = XLAT_L4_UDP_NOCSUM;
	}
	return 0;
}

/* ICMPv4 echo -> ICMPv6 echo in place at `off`: new type, the checksum adjusted for it and for
 * the pseudo-header ICMPv6 adds (RFC 7915 4.2). `len` is the ICMP message length. */
static __always_inline int xlat46_icmp_query(const struct pkt *p, __u32 off,
					     const struct icmp_hdr8 *from,
					     struct icmp_hdr8 *to, const struct in6_addr *saddr,
					     const struct in6_addr *daddr, __u32 len, bool quoted)
{
	__u32 word = icmp_word_diff(from, to);
	__u32 pseudo = pseudo6_sum(saddr, daddr, len, IPPROTO_ICMPV6);

	if (quoted) {
		/* plain data inside an ICMP error: one full-checksum update */
		to->checksum = csum_replace_diff(from->checksum, csum_add(word, pseudo));
		return pkt_store(p, off, to, 4);
	}
	if (pkt_l4_csum_update(p, off + 2, word, pseudo, false))
		return -1;
	return pkt_store_nocsum(p, off, &to->type, 2);
}

/* The ICMPv4 error in `s` rebuilt as ICMPv6 (RFC 7915 4.2, 4.3): outer and quoted headers
 * translated, the quote cut to fit 1280 bytes or laid out around an RFC 4884 extension, the
 * quoted transport checksum fixed. Its checksum is checked first: the message is summed
 * afresh, which would hide damage. Without an extension that takes one pass over the
 * quote: the translated message's sum is that of its new headers and of the quoted bytes it
 * keeps, which the check summed on the way. */
static __always_inline int xlat46_commit_error(const struct pkt *p, struct xlat46 *s,
					       bool zero_tos, __u16 mtu4, __u16 mtu6)
{
	struct ip6_hdrs outer, inner;
	struct icmp_ext_layout l;
	__u32 in_hlen6, rest, len6, old_hdrs, new_hdrs, l4off, in_l4off, kept, sum;
	__u32 delta = 0;
	int rc;
	__u16 check;

	in_hlen6 = ip6_build(&inner, &s->in, s->in_proto6, &s->in_saddr, &s->in_daddr, zero_tos,
			     false);
	rest = s->in_avail - s->in.hlen;
	if (s->ext_len && rest > s->in.plen)
		rest = s->in.plen;      /* the rest of the field is its zero padding */
	icmp_ext_plan(&l, XLAT_ICMP6_ERR_MAX - IP6_HLEN - ICMP_HLEN, in_hlen6, rest, s->ext_len,
		      8);
	len6 = ICMP_HLEN + l.dgram + l.ext;
	if (l.ext)
		s->icmp6.bytes[0] = l.dgram / 8;        /* RFC 4884 length, 64-bit words */

	if (s->icmp6.type == ICMPV6_PKT_TOOBIG)
		s->icmp6.data = bpf_htonl(icmp_mtu_4to6(bpf_ntohs(s->icmp.frag.mtu),
							 bpf_ntohs(s->in.ip.tot_len), mtu4, mtu6));

	l4off = ETH_HLEN + s->out.hlen;
	/* the ICMP header and the quoted IPv4 base header as parsed */
	rc = icmp_err_check(p, &l, l4off, s->out.plen, 0,
			    csum_add(csum_words(&s->icmp, 2), csum_words(&s->in.ip, IP4_HLEN / 4)),
			    IP4_HLEN, s->in.hlen, &kept);
	if (rc)
		return rc;

	ip6_build(&outer, &s->out, IPPROTO_ICMPV6, &s->saddr, &s->daddr, zero_tos, false);
	((pkt_u32_t *)&outer)[1] = bpf_htonl(len6 << 16 | IPPROTO_ICMPV6 << 8 | s->out.ip.ttl);

	old_hdrs = s->out.hlen + ICMP_HLEN + s->in.hlen;
	new_hdrs = IP6_HLEN + ICMP_HLEN + in_hlen6;
	if (l.ext) {
		/* the extension keeps its bytes but moves behind the translated quote */
		if (pkt_trim(p, l4off + ICMP_HLEN + s->in_avail + s->ext_len) ||
		    pkt_change_l3(p, ETH_P_IPV6, old_hdrs, new_hdrs) ||
		    icmp_ext_move(p, ETH_HLEN + new_hdrs + l.keep,
				  ETH_HLEN + new_hdrs + s->in_avail - s->in.hlen,
				  ETH_HLEN + IP6_HLEN + ICMP_HLEN + l.dgram, l.ext))
			return XLAT_DROP_ERROR;
	} else if (pkt_trim(p, ETH_HLEN + old_hdrs + l.keep) ||
		   pkt_change_l3(p, ETH_P_IPV6, old_hdrs, new_hdrs)) {
		return XLAT_DROP_ERROR;
	}

	s->eth.h_proto = bpf_htons(ETH_P_IPV6);
	s->icmp6.checksum = 0;
	l4off = ETH_HLEN + IP6_HLEN;
	if (pkt_store_nocsum(p, 0, &s->eth, ETH_HLEN) ||
	    pkt_store(p, ETH_HLEN, &outer.ip, IP6_HLEN) ||
	    pkt_store(p, l4off, &s->icmp6, ICMP_HLEN))
		return XLAT_DROP_ERROR;
	if (in_hlen6 == IP6_HLEN) {
		if (pkt_store(p, l4off + ICMP_HLEN, &inner, IP6_HLEN))
			return XLAT_DROP_ERROR;
	} else {
		if (pkt_store(p, l4off + ICMP_HLEN, &inner, IP6_HLEN + IP6_FRAG_HLEN))
			return XLAT_DROP_ERROR;
	}

	/* The quoted transport checksum follows its packet's new addresses, where quoted. */
	in_l4off = ETH_HLEN + new_hdrs;
	if (l4_has_csum(s->in_l4) && l.keep >= l4_csum_off(s->in_l4) + 2) {
		__u32 diff = csum_words_diff(&s->in.ip.saddr, 2, &s->in_saddr, 8);

		if (l4_fix_quoted_csum(p, in_l4off + l4_csum_off(s->in_l4), diff,
				       s->in_l4 == XLAT_L4_UDP, &delta))
			return XLAT_DROP_ERROR;
	} else if (s->in_l4 == XLAT_L4_ICMP_QUERY && l.keep >= 4) {
		struct icmp_hdr8 q;

		q.type = s->in_icmp.type == ICMP_ECHO ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY;
		q.code = s->in_icmp.code;
		if (xlat46_icmp_query(p, in_l4off, &s->in_icmp, &q, &s->in_saddr, &s->in_daddr,
				      s->in.plen, true))
			return XLAT_DROP_ERROR;
		delta = csum_add(pkt_sum(&q, 4), ~pkt_sum(&s->in_icmp, 4));
	}

	sum = pseudo6_sum(&s->saddr, &s->daddr, len6, IPPROTO_ICMPV6);
	if (l.ext) {
		if (pkt_csum_range(p, l4off, len6, &sum))
			return XLAT_DROP_ERROR;
	} else {
		/* the new headers (the checksum field 0) and the quoted bytes kept */
		sum = csum_add(sum, csum_words(&s->icmp6, 2));
		sum = csum_add(sum, in_hlen6 == IP6_HLEN ? csum_words(&inner, IP6_HLEN / 4) :
				    csum_words(&inner, (IP6_HLEN + IP6_FRAG_HLEN) / 4));
		sum = csum_add(sum, csum_add(kept, delta));
	}
	check = csum_fold(sum);
	if (pkt_store(p, l4off + 2, &check, sizeof(check)))
		return XLAT_DROP_ERROR;
	return XLAT_DONE46;
}

/* Rewrite the validated IPv4 packet into IPv6 with the addresses in `s`; ICMP errors
 * (s->l4 == XLAT_L4_ICMP_ERROR) go to xlat46_commit_error() instead. */
static __always_inline int xlat46_commit(const struct pkt *p, struct xlat46 *s, bool zero_tos,
					 bool jumbo_hbh)
{
	struct ip6_hdrs h;
	__u32 hlen6, l4off, sum;
	__u16 check;

	hlen6 = ip6_build(&h, &s->out, s->proto6, &s->saddr, &s->daddr, zero_tos, jumbo_hbh);
	/* Ethernet padding and anything past the announced length goes. */
	if (pkt_trim(p, ETH_HLEN + s->out.hlen + s->out.plen) ||
	    pkt_change_l3(p, ETH_P_IPV6, s->out.hlen, hlen6))
		return XLAT_DROP_ERROR;
	s->eth.h_proto = bpf_htons(ETH_P_IPV6);
	/* The new header is written over the IPv4 base header (options and the room
	 * pkt_change_l3() made are accounted for by the helpers). */
	if (pkt_write_l3(p, &s->eth, &h, hlen6, &s->out.ip, IP4_HLEN / 4))
		return XLAT_DROP_ERROR;

	l4off = ETH_HLEN + hlen6;
	switch (s->l4) {
	case XLAT_L4_TCP:
	case XLAT_L4_UDP:
	case XLAT_L4_DCCP: {
		/* Only the addresses differ between the pseudo-headers (RFC 7915 4.5). */
		__u32 diff = csum_words_diff(&s->out.ip.saddr, 2, &s->saddr, 8);

		if (pkt_l4_csum_update(p, l4off + l4_csum_off(s->l4), 0, diff,
				       s->l4 == XLAT_L4_UDP))
			return XLAT_DROP_ERROR;
		break;
	}
	case XLAT_L4_UDP_NOCSUM:
		sum = pseudo6_sum(&s->saddr, &s->daddr, s->out.plen, IPPROTO_UDP);
		if (pkt_csum_range(p, l4off, s->out.plen, &sum))
			return XLAT_DROP_ERROR;
		check = csum_fold(sum);
		if (!check)
			check = 0xffff;
		if (pkt_store(p, l4off + 6, &check, sizeof(check)))
			return XLAT_DROP_ERROR;
		break;
	case XLAT_L4_ICMP_QUERY:
		if (xlat46_icmp_query(p, l4off, &s->icmp, &s->icmp6, &s->saddr, &s->daddr,
				      s->out.plen, false))
			return XLAT_DROP_ERROR;
		break;
	}
	return XLAT_DONE46;
}

#endif /* XLAT_XLAT46_H */
