/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Transport-layer facts translation needs: which protocols carry a pseudo-header checksum
 * and where, and fixing a checksum in quoted (plain data) bytes. */
#ifndef XLAT_L4_H
#define XLAT_L4_H

#include "ctx.h"
#include "proto.h"

#ifndef IPPROTO_DCCP
#define IPPROTO_DCCP 33
#endif

enum xlat_l4 {
	XLAT_L4_OPAQUE = 0, /* nothing to fix: other protocols, non-first fragments */
	XLAT_L4_TCP,
	XLAT_L4_UDP,
	XLAT_L4_UDP_NOCSUM, /* IPv4 UDP without checksum: computed afresh (RFC 7915 4.5) */
	XLAT_L4_DCCP,
	XLAT_L4_ICMP_QUERY,
	XLAT_L4_ICMP_ERROR,
};

/* Offset of the checksum in the transport header, and the header bytes that must be present
 * to fix it, for protocols whose checksum covers a pseudo-header. */
static __always_inline __u32 l4_csum_off(__u8 kind)
{
	return kind == XLAT_L4_TCP ? 16 : 6;
}

static __always_inline enum xlat_l4 l4_kind_of(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return XLAT_L4_TCP;
	case IPPROTO_UDP:
		return XLAT_L4_UDP;
	case IPPROTO_DCCP:
		return XLAT_L4_DCCP;
	default:
		return XLAT_L4_OPAQUE;
	}
}

static __always_inline bool l4_has_csum(__u8 kind)
{
	return kind == XLAT_L4_TCP || kind == XLAT_L4_UDP || kind == XLAT_L4_DCCP;
}

/* IPv4 protocols that have no IPv6 translation: numbers of IPv6 extension headers (copied
 * into Next Header they would make the payload parse as one) and ICMPv6 (whose checksum an
 * IPv4 sender cannot have computed over the IPv6 pseudo-header). */
static __always_inline bool l4_untranslatable4(__u8 proto)
{
	return proto == 0 || proto == 43 || proto == 44 || proto == 60 || proto == IPPROTO_ICMPV6;
}

/* And the IPv6 upper-layer protocol without an IPv4 translation: ICMPv4 inside IPv6. */
static __always_inline bool l4_untranslatable6(__u8 proto)
{
	return proto == IPPROTO_ICMP;
}

/* Apply `diff` to a checksum inside quoted bytes (an ICMP error's payload): always a full
 * checksum, whatever the skb's checksum state. A zero UDP checksum stays zero. `*delta` gets
 * the change of the quoted bytes' sum, for the error's own checksum. */
static __always_inline int l4_fix_quoted_csum(const struct pkt *p, __u32 off, __u32 diff,
					      bool udp, __u32 *delta)
{
	__u16 check, old;

	*delta = 0;
	if (pkt_load(p, off, &check, sizeof(check)))
		return -1;
	if (udp && !check)
		return 0;
	old = check;
	check = csum_replace_diff(check, diff);
	if (udp && !check)
		check = 0xffff;
	*delta = csum_add(check, ~(__u32)old);
	return pkt_store(p, off, &check, sizeof(check));
}

/* Sum change of a type/code word. */
static __always_inline __u32 icmp_word_diff(const struct icmp_hdr8 *from,
					    const struct icmp_hdr8 *to)
{
	return csum_sub(*(const __u16 *)&to->type, *(const __u16 *)&from->type);
}

#endif /* XLAT_L4_H */
