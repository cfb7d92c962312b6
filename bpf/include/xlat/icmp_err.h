/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP errors the translator sends itself about packets it discards (RFC 7915 4.4, 5.4): the
 * packet is wrapped in place into an error addressed to its source, to be sent back out of
 * the device it came in on.
 *
 * As any router (RFC 1812 4.3.2.7, RFC 4443 2.4 e), no error about an ICMP error (about any
 * ICMPv6 message: RFC 7915 5.4), a later fragment, or a packet to a multicast or broadcast
 * address or from an address that does not name a single host.
 */
#ifndef XLAT_ICMP_ERR_H
#define XLAT_ICMP_ERR_H

#include "ctx.h"
#include "proto.h"
#include "outcome.h"
#include "ipv4.h"
#include "ipv6.h"
#include "icmp_map.h"

static __always_inline void eth_swap(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

/* Sum of an error message about to be sent whose quoted packet was CHECKSUM_PARTIAL: the
 * kernel will complete the quoted transport checksum (at `l4off` + the protocol's checksum
 * offset) after the error's own checksum is made, so sum the message with that completed
 * value instead of the pseudo-header sum the field holds now. */
static __always_inline int icmp_err_sum_completed(const struct pkt *p, __u32 l4off, __u8 proto,
						  __u32 end, __u32 *sum)
{
	__u32 field = l4off + (proto == IPPROTO_TCP ? 16 : 6), inner = 0;
	__u16 partial, done;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	if (field + 2 > end || pkt_load(p, field, &partial, sizeof(partial)) ||
	    pkt_csum_range(p, l4off, end - l4off, &inner))
		return -1;
	done = csum_fold(inner);
	*sum = csum_add(csum_sub(*sum, partial), done);
	return 0;
}

static __always_inline bool ip4_is_unicast(__be32 a)
{
	__u32 h = bpf_ntohl(a);

	return h && (h >> 28) != 0xe && (h >> 28) != 0xf && (h >> 24) != 127;
}

/* `h`: the discarded IPv4 packet at ETH_HLEN, parsed and validated; `eth`: its Ethernet
 * header. Returns XLAT_BOUNCE, or `otherwise` when no error may or can be sent. */
static __always_inline int icmp4_bounce(const struct pkt *p, struct ethhdr *eth,
					const struct ip4_info *h, __u8 type, __u8 code,
					__be32 data, __be32 src, int otherwise)
{
	struct {
		struct iphdr ip;
		struct icmp_hdr8 icmp;
	} e;
	__u32 quote = h->hlen + h->plen, sum = 0;
	__u16 check;
	__u8 qtype;

	if (!src || h->frag_off || !ip4_is_unicast(h->ip.saddr) || !ip4_is_unicast(h->ip.daddr))
		return otherwise;
	if (h->ip.protocol == IPPROTO_ICMP) {
		if (h->plen < 1 || pkt_load(p, ETH_HLEN + h->hlen, &qtype, 1) ||
		    icmp4_is_error(qtype))
			return otherwise;
	}
	if (quote > XLAT_ICMP4_ERR_MAX - IP4_HLEN - ICMP_HLEN)
		quote = XLAT_ICMP4_ERR_MAX - IP4_HLEN - ICMP_HLEN;

	_Static_assert(sizeof(e) == IP4_HLEN + ICMP_HLEN, "no padding");
	__builtin_memset(&e, 0, sizeof(e));
	e.ip.version = 4;
	e.ip.ihl = 5;
	e.ip.tot_len = bpf_htons(IP4_HLEN + ICMP_HLEN + quote);
	e.ip.ttl = 64;
	e.ip.protocol = IPPROTO_ICMP;
	e.ip.saddr = src;
	e.ip.daddr = h->ip.saddr;
	e.ip.check = ip4_header_csum(&e.ip);
	e.icmp.type = type;
	e.icmp.code = code;
	e.icmp.data = data;
	eth_swap(eth);

	if (pkt_trim(p, ETH_HLEN + quote) || pkt_push_l3(p, IP4_HLEN + ICMP_HLEN) ||
	    pkt_store_nocsum(p, 0, eth, ETH_HLEN) ||
	    pkt_store(p, ETH_HLEN, &e, sizeof(e)))
		return XLAT_DROP_ERROR;
	if (pkt_csum_range(p, ETH_HLEN + IP4_HLEN, ICMP_HLEN + quote, &sum))
		return XLAT_DROP_ERROR;
	if (!h->frag_off && pkt_csum_partial(p) &&
	    icmp_err_sum_completed(p, ETH_HLEN + IP4_HLEN + ICMP_HLEN + h->hlen, h->ip.protocol,
				   ETH_HLEN + IP4_HLEN + ICMP_HLEN + quote, &sum))
		return XLAT_DROP_ERROR;
	check = csum_fold(sum);
	if (pkt_store(p, ETH_HLEN + IP4_HLEN + 2, &check, sizeof(check)))
		return XLAT_DROP_ERROR;
	return XLAT_BOUNCE;
}

static __always_inline bool ip6_is_unicast(const struct in6_addr *a)
{
	const __u32 *w = a->in6_u.u6_addr32;

	if (a->in6_u.u6_addr8[0] == 0xff)
		return false;           /* multicast */
	return w[0] | w[1] | w[2] || (w[3] && w[3] != bpf_htonl(1));  /* not :: nor ::1 */
}

/* The IPv6 counterpart of icmp4_bounce(); `h` parsed by ip6_parse(). */
static __always_inline int icmp6_bounce(const struct pkt *p, struct ethhdr *eth,
					const struct ip6_info *h, __u8 type, __u8 code,
					__be32 data, const struct in6_addr *src, int otherwise)
{
	struct {
		struct ipv6hdr ip;
		struct icmp_hdr8 icmp;
	} e;
	__u32 quote = IP6_HLEN + bpf_ntohs(h->ip.payload_len), sum;
	__u16 check;

	/* RFC 7915 5.4: "unless the discarded packet is itself an ICMPv6 message" (stricter than
	 * RFC 4443 2.4 e, which spares only errors) */
	if (!ip6_is_unicast(src) || h->frag_off || !ip6_is_unicast(&h->ip.saddr) ||
	    !ip6_is_unicast(&h->ip.daddr) || h->proto == IPPROTO_ICMPV6)
		return otherwise;
	if (quote > XLAT_ICMP6_ERR_MAX - IP6_HLEN - ICMP_HLEN)
		quote = XLAT_ICMP6_ERR_MAX - IP6_HLEN - ICMP_HLEN;

	_Static_assert(sizeof(e) == IP6_HLEN + ICMP_HLEN, "no padding");
	__builtin_memset(&e, 0, sizeof(e));
	e.ip.version = 6;
	e.ip.payload_len = bpf_htons(ICMP_HLEN + quote);
	e.ip.nexthdr = IPPROTO_ICMPV6;
	e.ip.hop_limit = 64;
	e.ip.saddr = *src;
	e.ip.daddr = h->ip.saddr;
	e.icmp.type = type;
	e.icmp.code = code;
	e.icmp.data = data;
	eth_swap(eth);

	if (pkt_trim(p, ETH_HLEN + quote) || pkt_push_l3(p, IP6_HLEN + ICMP_HLEN) ||
	    pkt_store_nocsum(p, 0, eth, ETH_HLEN) ||
	    pkt_store(p, ETH_HLEN, &e, sizeof(e)))
		return XLAT_DROP_ERROR;
	sum = pseudo6_sum(&e.ip.saddr, &e.ip.daddr, ICMP_HLEN + quote, IPPROTO_ICMPV6);
	if (pkt_csum_range(p, ETH_HLEN + IP6_HLEN, ICMP_HLEN + quote, &sum))
		return XLAT_DROP_ERROR;
	if (!h->frag_off && pkt_csum_partial(p) &&
	    icmp_err_sum_completed(p, ETH_HLEN + IP6_HLEN + ICMP_HLEN + h->hlen, h->proto,
				   ETH_HLEN + IP6_HLEN + ICMP_HLEN + quote, &sum))
		return XLAT_DROP_ERROR;
	check = csum_fold(sum);
	if (pkt_store(p, ETH_HLEN + IP6_HLEN + 2, &check, sizeof(check)))
		return XLAT_DROP_ERROR;
	return XLAT_BOUNCE;
}

#endif /* XLAT_ICMP_ERR_H */
