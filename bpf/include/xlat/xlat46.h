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

struct xlat46 {
	struct ethhdr eth;
	__u8 l4;                    /* enum xlat_l4 of the packet */
	__u8 proto6;                /* its Next Header after translation */
	__u8 in_l4;                 /* enum xlat_l4 of the quoted packet */
	__u8 in_proto6;
	__u16 in_avail;             /* bytes of the quoted packet present */
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
	if (pkt_load(p, 0, &s->eth, ETH_HLEN) || s->eth.h_proto != bpf_htons(ETH_P_IP))
		return false;
	if (pkt_load(p, ETH_HLEN, &s->out.ip, IP4_HLEN) || s->out.ip.version != 4)
		return false;
	return true;
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
	sum = (__u32)bpf_csum_diff(NULL, 0, (void *)&s->out.ip, IP4_HLEN, 0);
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

	l4off = ETH_HLEN + s->out.hlen;
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
		qlen = icmp4_rfc4884_len(&s->icmp);
		if (qlen && qlen < s->in_avail)
			s->in_avail = qlen;
		if (ip4_parse(p, l4off + ICMP_HLEN, s->in_avail, false, &s->in))
			return XLAT_DROP_ICMP_INNER;
		return xlat46_quoted_l4(p, s, l4off + ICMP_HLEN + s->in.hlen);
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

		if (pkt_load(p, l4off + 6, &check, sizeof(check)))
			return XLAT_DROP_MALFORMED;
		if (!check) {
			/* RFC 7915 4.5: computable only over the whole datagram */
			if (s->out.frag)
				return XLAT_DROP_UDP_ZERO;
			if (s->out.plen > PKT_CSUM_MAX)
				return XLAT_DROP_TOO_BIG;
			s->l4 = XLAT_L4_UDP_NOCSUM;
		}
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
	if (pkt_l4_csum_diff(p, off + 2, word, 0) ||
	    pkt_l4_csum_diff(p, off + 2, pseudo, PKT_CSUM_PSEUDO))
		return -1;
	return pkt_store_nocsum(p, off, &to->type, 2);
}

static __always_inline int xlat46_commit_error(const struct pkt *p, struct xlat46 *s,
					       bool zero_tos, __u16 mtu4, __u16 mtu6)
{
	struct ip6_hdrs outer, inner;
	__u32 in_hlen6, rest, keep, len6, old_hdrs, new_hdrs, l4off, in_l4off, sum = 0;
	__u16 check;

	in_hlen6 = ip6_build(&inner, &s->in, s->in_proto6, &s->in_saddr, &s->in_daddr, zero_tos,
			     false);
	rest = s->in_avail - s->in.hlen;
	keep = XLAT_ICMP6_ERR_MAX - IP6_HLEN - ICMP_HLEN - in_hlen6;
	if (rest < keep)
		keep = rest;
	len6 = ICMP_HLEN + in_hlen6 + keep;

	if (s->icmp6.type == ICMPV6_PKT_TOOBIG)
		s->icmp6.data = bpf_htonl(icmp_mtu_4to6(bpf_ntohs(s->icmp.frag.mtu),
							 bpf_ntohs(s->in.ip.tot_len),
							 s->in.frag, mtu4, mtu6));

	/* The message is rebuilt and summed afresh, so first make sure it arrived intact. */
	l4off = ETH_HLEN + s->out.hlen;
	if (pkt_csum_range(p, l4off, s->out.plen, &sum))
		return XLAT_DROP_TOO_BIG;
	if (csum_fold(sum))
		return XLAT_DROP_ICMP_CSUM;

	ip6_build(&outer, &s->out, IPPROTO_ICMPV6, &s->saddr, &s->daddr, zero_tos, false);
	outer.ip.payload_len = bpf_htons(len6);

	old_hdrs = s->out.hlen + ICMP_HLEN + s->in.hlen;
	new_hdrs = IP6_HLEN + ICMP_HLEN + in_hlen6;
	if (pkt_trim(p, ETH_HLEN + old_hdrs + keep) ||
	    pkt_change_l3(p, ETH_P_IPV6, old_hdrs, new_hdrs))
		return XLAT_DROP_ERROR;

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
	if (l4_has_csum(s->in_l4) && keep >= l4_csum_off(s->in_l4) + 2) {
		__u32 diff = (__u32)bpf_csum_diff((void *)&s->in.ip.saddr, 8,
						  (void *)&s->in_saddr, 32, 0);

		if (l4_fix_quoted_csum(p, in_l4off + l4_csum_off(s->in_l4), diff,
				       s->in_l4 == XLAT_L4_UDP))
			return XLAT_DROP_ERROR;
	} else if (s->in_l4 == XLAT_L4_ICMP_QUERY) {
		struct icmp_hdr8 q;

		q.type = s->in_icmp.type == ICMP_ECHO ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY;
		q.code = s->in_icmp.code;
		if (xlat46_icmp_query(p, in_l4off, &s->in_icmp, &q, &s->in_saddr, &s->in_daddr,
				      s->in.plen, true))
			return XLAT_DROP_ERROR;
	}

	sum = pseudo6_sum(&s->saddr, &s->daddr, len6, IPPROTO_ICMPV6);
	if (pkt_csum_range(p, l4off, len6, &sum))
		return XLAT_DROP_ERROR;
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
	if (pkt_store_nocsum(p, 0, &s->eth, ETH_HLEN))
		return XLAT_DROP_ERROR;
	if (hlen6 == IP6_HLEN) {
		if (pkt_store(p, ETH_HLEN, &h, IP6_HLEN))
			return XLAT_DROP_ERROR;
	} else {
		if (pkt_store(p, ETH_HLEN, &h, IP6_HLEN + IP6_FRAG_HLEN))
			return XLAT_DROP_ERROR;
	}

	l4off = ETH_HLEN + hlen6;
	switch (s->l4) {
	case XLAT_L4_TCP:
	case XLAT_L4_UDP:
	case XLAT_L4_DCCP: {
		/* Only the addresses differ between the pseudo-headers (RFC 7915 4.5). */
		__u32 diff = (__u32)bpf_csum_diff((void *)&s->out.ip.saddr, 8,
						  (void *)&s->saddr, 32, 0);
		__u32 flags = PKT_CSUM_PSEUDO | (s->l4 == XLAT_L4_UDP ? PKT_CSUM_UDP : 0);

		if (pkt_l4_csum_diff(p, l4off + l4_csum_off(s->l4), diff, flags))
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
