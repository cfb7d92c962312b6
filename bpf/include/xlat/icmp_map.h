/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMPv4 <-> ICMPv6 type, code, pointer and MTU translation (RFC 7915 4.2, 5.2).
 *
 * Pure functions of the ICMP header (and, for MTUs, facts about the quoted packet), so the
 * stateless translator and the stateful gateway map messages identically.
 */
#ifndef XLAT_ICMP_MAP_H
#define XLAT_ICMP_MAP_H

#include "proto.h"

enum icmp_class {
	ICMP_XLAT_DROP = -1,    /* the RFC says: silently drop */
	ICMP_XLAT_QUERY = 0,    /* informational: echo request/reply */
	ICMP_XLAT_ERROR = 1,    /* error: quotes a packet that is translated too */
};

/* RFC 7915 Figure 3: IPv4 header byte -> IPv6 header byte, -1 for "n/a" or not listed. */
static __always_inline int icmp_pointer_4to6(__u8 ptr)
{
	switch (ptr) {
	case 0: return 0;       /* Version/IHL */
	case 1: return 1;       /* Type Of Service */
	case 2: case 3: return 4;       /* Total Length */
	case 8: return 7;       /* Time to Live */
	case 9: return 6;       /* Protocol */
	case 12: case 13: case 14: case 15: return 8;  /* Source Address */
	case 16: case 17: case 18: case 19: return 24; /* Destination Address */
	default: return -1;     /* Identification, Flags, Fragment Offset, Checksum, options */
	}
}

/* RFC 7915 Figure 6: IPv6 header byte -> IPv4 header byte, -1 for "n/a" or not listed. */
static __always_inline int icmp_pointer_6to4(__u32 ptr)
{
	switch (ptr) {
	case 0: return 0;       /* Version/Traffic Class */
	case 1: return 1;       /* Traffic Class/Flow Label */
	case 4: case 5: return 2;       /* Payload Length */
	case 6: return 9;       /* Next Header */
	case 7: return 8;       /* Hop Limit */
	default:
		if (ptr >= 8 && ptr < 24)
			return 12;      /* Source Address */
		if (ptr >= 24 && ptr < 40)
			return 16;      /* Destination Address */
		return -1;              /* Flow Label, extension headers, payload */
	}
}

/* ICMPv4 -> ICMPv6 (RFC 7915 4.2) for everything but the Packet Too Big MTU, which needs the
 * quoted packet (icmp_mtu_4to6()). `out` gets type, code and the second word; the checksum
 * is the caller's. */
static __always_inline int icmp_map_4to6(const struct icmp_hdr8 *in, struct icmp_hdr8 *out)
{
	int ptr;

	out->code = in->code;
	out->data = 0;
	switch (in->type) {
	case ICMP_ECHO:
		out->type = ICMPV6_ECHO_REQUEST;
		out->data = in->data;
		return ICMP_XLAT_QUERY;
	case ICMP_ECHOREPLY:
		out->type = ICMPV6_ECHO_REPLY;
		out->data = in->data;
		return ICMP_XLAT_QUERY;
	case ICMP_DEST_UNREACH:
		out->type = ICMPV6_DEST_UNREACH;
		switch (in->code) {
		case ICMP_NET_UNREACH:
		case ICMP_HOST_UNREACH:
		case ICMP_SR_FAILED:
		case ICMP_NET_UNKNOWN:
		case ICMP_HOST_UNKNOWN:
		case ICMP_HOST_ISOLATED:
		case ICMP_NET_UNR_TOS:
		case ICMP_HOST_UNR_TOS:
			out->code = ICMPV6_NOROUTE;
			return ICMP_XLAT_ERROR;
		case ICMP_PROT_UNREACH:
			out->type = ICMPV6_PARAMPROB;
			out->code = ICMPV6_UNK_NEXTHDR;
			out->data = bpf_htonl(6);       /* the IPv6 Next Header field */
			return ICMP_XLAT_ERROR;
		case ICMP_PORT_UNREACH:
			out->code = ICMPV6_PORT_UNREACH;
			return ICMP_XLAT_ERROR;
		case ICMP_FRAG_NEEDED:
			out->type = ICMPV6_PKT_TOOBIG;
			out->code = 0;
			return ICMP_XLAT_ERROR;
		case ICMP_NET_ANO:
		case ICMP_HOST_ANO:
		case ICMP_PKT_FILTERED:
		case ICMP_PREC_CUTOFF:
			out->code = ICMPV6_ADM_PROHIBITED;
			return ICMP_XLAT_ERROR;
		default:        /* 14 host precedence violation, unknown codes */
			return ICMP_XLAT_DROP;
		}
	case ICMP_TIME_EXCEEDED:
		out->type = ICMPV6_TIME_EXCEED;
		return ICMP_XLAT_ERROR;
	case ICMP_PARAMETERPROB:
		if (in->code != 0 && in->code != 2)
			return ICMP_XLAT_DROP;  /* 1: missing a required option; unknown codes */
		ptr = icmp_pointer_4to6(in->bytes[0]);
		if (ptr < 0)
			return ICMP_XLAT_DROP;
		out->type = ICMPV6_PARAMPROB;
		out->code = ICMPV6_HDR_FIELD;
		out->data = bpf_htonl(ptr);
		return ICMP_XLAT_ERROR;
	default:
		/* timestamp, information, address mask, router advertisement and solicitation,
		 * redirect, alternate host address, source quench, unknown types */
		return ICMP_XLAT_DROP;
	}
}

/* ICMPv6 -> ICMPv4 (RFC 7915 5.2), the MTU of Packet Too Big aside (icmp_mtu_6to4()). */
static __always_inline int icmp_map_6to4(const struct icmp_hdr8 *in, struct icmp_hdr8 *out)
{
	int ptr;

	out->code = in->code;
	out->data = 0;
	switch (in->type) {
	case ICMPV6_ECHO_REQUEST:
		out->type = ICMP_ECHO;
		out->data = in->data;
		return ICMP_XLAT_QUERY;
	case ICMPV6_ECHO_REPLY:
		out->type = ICMP_ECHOREPLY;
		out->data = in->data;
		return ICMP_XLAT_QUERY;
	case ICMPV6_DEST_UNREACH:
		out->type = ICMP_DEST_UNREACH;
		switch (in->code) {
		case ICMPV6_NOROUTE:
		case ICMPV6_NOT_NEIGHBOUR:      /* beyond scope of source address */
		case ICMPV6_ADDR_UNREACH:
			out->code = ICMP_HOST_UNREACH;
			return ICMP_XLAT_ERROR;
		case ICMPV6_ADM_PROHIBITED:
			out->code = ICMP_HOST_ANO;
			return ICMP_XLAT_ERROR;
		case ICMPV6_PORT_UNREACH:
			out->code = ICMP_PORT_UNREACH;
			return ICMP_XLAT_ERROR;
		default:
			return ICMP_XLAT_DROP;
		}
	case ICMPV6_PKT_TOOBIG:
		out->type = ICMP_DEST_UNREACH;
		out->code = ICMP_FRAG_NEEDED;
		return ICMP_XLAT_ERROR;
	case ICMPV6_TIME_EXCEED:
		out->type = ICMP_TIME_EXCEEDED;
		return ICMP_XLAT_ERROR;
	case ICMPV6_PARAMPROB:
		if (in->code == ICMPV6_UNK_NEXTHDR) {
			out->type = ICMP_DEST_UNREACH;
			out->code = ICMP_PROT_UNREACH;
			return ICMP_XLAT_ERROR;
		}
		if (in->code != ICMPV6_HDR_FIELD)
			return ICMP_XLAT_DROP;  /* 2: unrecognized option; unknown codes */
		ptr = icmp_pointer_6to4(bpf_ntohl(in->data));
		if (ptr < 0)
			return ICMP_XLAT_DROP;
		out->type = ICMP_PARAMETERPROB;
		out->code = 0;
		out->bytes[0] = (__u8)ptr;
		return ICMP_XLAT_ERROR;
	default:
		/* MLD, neighbour discovery, redirect, router renumbering, unknown types: all
		 * single-hop or without an IPv4 counterpart */
		return ICMP_XLAT_DROP;
	}
}

/* RFC 1191 7: the plateau table. The greatest plateau below the quoted packet's total length
 * is the likely MTU when a router reports none (MTU field 0, before RFC 1191). */
static __always_inline __u32 icmp_mtu_plateau(__u32 tot_len)
{
	if (tot_len > 65535) return 65535;
	if (tot_len > 32000) return 32000;
	if (tot_len > 17914) return 17914;
	if (tot_len > 8166) return 8166;
	if (tot_len > 4352) return 4352;
	if (tot_len > 2002) return 2002;
	if (tot_len > 1492) return 1492;
	if (tot_len > 1006) return 1006;
	if (tot_len > 508) return 508;
	if (tot_len > 296) return 296;
	return 68;
}

static __always_inline __u32 min_u32(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

#define IPV6_MIN_MTU 1280

/* RFC 7915 4.2 Fragmentation Needed -> Packet Too Big: "minimum(advertised MTU+20,
 * MTU_of_IPv6_nexthop, (MTU_of_IPv4_nexthop)+20)", with the RFC 1191 plateau below the
 * quoted Total Length when the router advertised 0 ("larger than or equal to 1280"), and
 * (section 5) "never ... lower than 1280". `mtu4`/`mtu6` are the translator's next-hop
 * MTUs, 0 when unknown. */
static __always_inline __u32 icmp_mtu_4to6(__u16 advertised, __u16 quoted_tot_len, __u16 mtu4,
					   __u16 mtu6)
{
	__u32 mtu = advertised ? advertised : icmp_mtu_plateau(quoted_tot_len);

	mtu += IP6_HLEN - IP4_HLEN;
	if (mtu6)
		mtu = min_u32(mtu, mtu6);
	if (mtu4)
		mtu = min_u32(mtu, mtu4 + IP6_HLEN - IP4_HLEN);
	return mtu < IPV6_MIN_MTU ? IPV6_MIN_MTU : mtu;
}

/* RFC 7915 5.2 Packet Too Big -> Fragmentation Needed: min(advertised - 20,
 * IPv4 next-hop MTU, IPv6 next-hop MTU - 20), with 28 if the quoted IPv6 packet has a
 * Fragment header. Never below the IPv4 minimum of 68, and 16 bits wide. */
static __always_inline __u16 icmp_mtu_6to4(__u32 advertised, bool quoted_frag, __u16 mtu4,
					   __u16 mtu6)
{
	__u32 overhead = IP6_HLEN - IP4_HLEN + (quoted_frag ? IP6_FRAG_HLEN : 0);
	__u32 mtu = advertised > overhead ? advertised - overhead : 0;

	if (mtu4)
		mtu = min_u32(mtu, mtu4);
	if (mtu6 > overhead)
		mtu = min_u32(mtu, mtu6 - overhead);
	mtu = min_u32(mtu, 0xffff);
	return mtu < 68 ? 68 : (__u16)mtu;
}

/* RFC 4884: length of the "original datagram" field in an ICMP error with extensions, in
 * bytes, or 0 when the message has none (icmp_ext.h lays them out after translation). */
static __always_inline __u32 icmp4_rfc4884_len(const struct icmp_hdr8 *h)
{
	if (h->type == ICMP_DEST_UNREACH || h->type == ICMP_TIME_EXCEEDED ||
	    h->type == ICMP_PARAMETERPROB)
		return h->bytes[1] * 4;
	return 0;
}

static __always_inline __u32 icmp6_rfc4884_len(const struct icmp_hdr8 *h)
{
	if (h->type == ICMPV6_DEST_UNREACH || h->type == ICMPV6_TIME_EXCEED)
		return h->bytes[0] * 8;
	return 0;
}

static __always_inline bool icmp4_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_REDIRECT ||
	       type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB || type == 6;
}

static __always_inline bool icmp6_is_error(__u8 type)
{
	return type < 128;
}

#endif /* XLAT_ICMP_MAP_H */
