/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The stateless translator (SIIT, RFC 7915) for one packet in either direction: address
 * policy (RFC 7757 EAM, RFC 6052 prefix, allow-list) around the translation of xlat46.h and
 * xlat64.h, and the ICMP errors RFC 7915 4.4/5.4 ask for. */
#ifndef XLAT_SIIT_H
#define XLAT_SIIT_H

#include "config.h"
#include "addrmap.h"
#include "xlat46.h"
#include "xlat64.h"
#include "icmp_err.h"
#include "scratch.h"

/* Flags of siit46(): where the packet is, and why. */
#define SIIT_F_INGRESS 1        /* at ingress, before the kernel routes it: a DF-clear packet
				 * too big for the IPv6 side is the kernel's to fragment */
#define SIIT_F_HAIRPIN 2        /* the IPv4 half of a hairpin (RFC 7757 4.2) */

/* Continuations of a translation as global functions (see PKT_GLOBAL): the ICMP error
 * paths are the largest, and verifying them on their own keeps each function well inside the
 * verifier's limits. They find the packet's state in the per-CPU scratch. */
static __always_inline __s64 siit46_error_body(const struct pkt *p, __u32 zero_tos, __u32 mtus)
{
	struct xlat_scratch *scratch = xlat_scratch_get();

	if (!scratch)
		return XLAT_DROP_ERROR;
	return xlat46_commit_error(p, &scratch->x46, zero_tos, mtus >> 16, mtus & 0xffff);
}

static __always_inline __s64 siit64_error_body(const struct pkt *p, __u32 zero_tos, __u32 mtus)
{
	struct xlat_scratch *scratch = xlat_scratch_get();

	if (!scratch)
		return XLAT_DROP_ERROR;
	return xlat64_commit_error(p, &scratch->x64, zero_tos, mtus >> 16, mtus & 0xffff);
}

/* RFC 7915 4.4/5.4: answer the discarded packet with type/code (type << 8 | code) instead
 * of dropping it with `otherwise`, when configured and allowed. */
static __always_inline __s64 siit46_bounce_body(const struct pkt *p, __u32 type_code,
						__u32 data, __s32 otherwise)
{
	const struct xlat_config *cfg = xlat_config();
	struct xlat_scratch *scratch = xlat_scratch_get();

	if (!cfg || !scratch || !cfg->icmp_errors)
		return otherwise;
	return icmp4_bounce(p, &scratch->x46.eth, &scratch->x46.out, type_code >> 8,
			    type_code & 0xff, data, cfg->src4, otherwise);
}

static __always_inline __s64 siit64_bounce_body(const struct pkt *p, __u32 type_code,
						__u32 data, __s32 otherwise)
{
	const struct xlat_config *cfg = xlat_config();
	struct xlat_scratch *scratch = xlat_scratch_get();

	if (!cfg || !scratch || !cfg->icmp_errors)
		return otherwise;
	return icmp6_bounce(p, &scratch->x64.eth, &scratch->x64.out, type_code >> 8,
			    type_code & 0xff, data, &cfg->src6, otherwise);
}

/* A zero UDP checksum computed in the IPv4 packet itself, before the kernel fragments it
 * (XLAT_FRAG_KERNEL): its fragments then translate like any. */
static __always_inline __s64 siit46_udp_csum4_body(const struct pkt *p)
{
	struct xlat_scratch *scratch = xlat_scratch_get();
	struct xlat46 *s;
	__u32 sum, l4off;
	struct {
		__be32 saddr, daddr;
		__u8 zero, proto;
		__be16 len;
	} ph;
	__u16 check;

	if (!scratch)
		return -1;
	s = &scratch->x46;
	ph.saddr = s->out.ip.saddr;
	ph.daddr = s->out.ip.daddr;
	ph.zero = 0;
	ph.proto = IPPROTO_UDP;
	ph.len = bpf_htons(s->out.plen);
	sum = (__u32)bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0);
	l4off = ETH_HLEN + s->out.hlen;
	if (pkt_csum_range(p, l4off, s->out.plen, &sum))
		return -1;
	check = csum_fold(sum);
	if (!check)
		check = 0xffff;
	return pkt_store(p, l4off + 6, &check, sizeof(check));
}

/* An ICMP echo the kernel is to fragment (XLAT_FRAG_KERNEL) becomes its ICMPv6 self while
 * still in IPv4: type and checksum (over the IPv6 pseudo-header, with the whole message's
 * length) translated, protocol 58. Fragments of an ICMP message cannot be translated one by
 * one (RFC 7915 1.2); these need only their headers, and the egress translator lets
 * protocol 58 through as it is, which nothing but this makes IPv4 carry to it (the ingress
 * refuses IPv4 protocol 58, l4_untranslatable4()). */
static __always_inline __s64 siit46_icmp6_in4_body(const struct pkt *p)
{
	struct xlat_scratch *scratch = xlat_scratch_get();
	struct xlat46 *s;
	__u16 old[2], new[2];

	if (!scratch)
		return -1;
	s = &scratch->x46;
	if (xlat46_icmp_query(p, ETH_HLEN + s->out.hlen, &s->icmp, &s->icmp6, &s->saddr,
			      &s->daddr, s->out.plen, true))
		return -1;
	/* TTL and protocol share a word; the header checksum follows it */
	__builtin_memcpy(old, &s->out.ip.ttl, sizeof(old));
	new[0] = old[0];
	((__u8 *)new)[1] = IPPROTO_ICMPV6;
	new[1] = csum_replace_diff(old[1], csum_sub(new[0], old[0]));
	return pkt_store(p, ETH_HLEN + offsetof(struct iphdr, ttl), new, sizeof(new));
}

PKT_GLOBAL(siit46_error, (__u32 zero_tos, __u32 mtus), (zero_tos, mtus))
PKT_GLOBAL(siit64_error, (__u32 zero_tos, __u32 mtus), (zero_tos, mtus))
PKT_GLOBAL(siit46_bounce, (__u32 type_code, __u32 data, __s32 otherwise),
	   (type_code, data, otherwise))
PKT_GLOBAL(siit64_bounce, (__u32 type_code, __u32 data, __s32 otherwise),
	   (type_code, data, otherwise))
PKT_GLOBAL0(__s64, siit46_udp_csum4)
PKT_GLOBAL0(__s64, siit46_icmp6_in4)

#define TYPE_CODE(t, c) ((__u32)(t) << 8 | (c))

/* RFC 6864 4.1: a DF-clear IPv4 datagram needs an Identification unique for its source,
 * destination and protocol while its fragments may live. A per-CPU counter (no shared state
 * between CPUs) offset by a keyed hash of the three: a flow's packets count up from a point
 * an off-path attacker cannot guess (RFC 7739), and flows on one CPU do not share a
 * sequence. */
static __always_inline __u16 siit_ident(const struct xlat_config *cfg,
					struct xlat_scratch *scratch, __be32 saddr,
					__be32 daddr, __u8 proto)
{
	__u32 h = (saddr ^ cfg->ident_seed) * 0x9e3779b1U;

	h = (h ^ daddr ^ proto) * 0x85ebca6bU;
	h ^= h >> 16;
	return (__u16)(h + scratch->ident_next++);
}

/* RFC 6791: the IPv4 source of an ICMP error from an IPv6 node without an IPv4 address, one
 * of the pool's addresses chosen by that node's address (a traceroute shows different
 * routers as different hops, the same router always the same), or the translator's own. */
static __always_inline __be32 pool4_pick(const struct xlat_config *cfg,
					 const struct in6_addr *src)
{
	__u32 host = 32 - cfg->pool4_len, h;

	if (!cfg->pool4)
		return cfg->src4;
	if (!host || host > 32)
		return cfg->pool4;
	h = src->in6_u.u6_addr32[0] ^ src->in6_u.u6_addr32[1] ^ src->in6_u.u6_addr32[2] ^
	    src->in6_u.u6_addr32[3];
	h ^= h >> 16;
	h *= 0x9e3779b1U;       /* Fibonacci hashing: the top bits are the well-mixed ones */
	return cfg->pool4 | bpf_htonl(host >= 32 ? h : h >> (32 - host));
}

static __always_inline enum xlat_outcome siit46_body(const struct pkt *p, __u32 flags)
{
	const struct xlat_config *cfg = xlat_config();
	struct xlat_scratch *scratch = xlat_scratch_get();
	bool hairpin = flags & SIIT_F_HAIRPIN;
	struct xlat46 *s;
	int rc, m;

	if (!cfg || !scratch)
		return XLAT_PASS;
	s = &scratch->x46;
	if (!xlat46_parse(p, s))
		return XLAT_PASS;
	/* Destinations the translator does not map are not its business, nor are special-use
	 * ones (the kernel drops martians and keeps multicast local), nor the host's own
	 * addresses: packets to them are for the host, in the family they came in. */
	if (siit_4to6(cfg, s->out.ip.daddr, &s->daddr) != XLAT_MAP_OK)
		return XLAT_PASS;
	rc = xlat46_validate(p, s);
	if (rc == XLAT_DROP_SRCROUTE)
		return PKT_CALL(p, siit46_bounce, TYPE_CODE(ICMP_DEST_UNREACH, ICMP_SR_FAILED), 0,
				rc);
	if (rc == XLAT_DROP_PROTO && !(flags & SIIT_F_INGRESS) &&
	    s->out.ip.protocol == IPPROTO_ICMPV6)
		rc = 0;         /* an ICMP echo translated before the kernel fragmented it */
	if (rc)
		return rc;
	/* RFC 7915 4.1: an illegal source is silently dropped, before any other policy (its
	 * own count: a spoofed loopback source is an attack, not a client off the list), but
	 * "when translating ICMPv4 Error Messages into ICMPv6, the 'illegal' source address
	 * will be translated for the purpose of trouble shooting" */
	if (ip4_special(s->out.ip.saddr) && s->l4 != XLAT_L4_ICMP_ERROR)
		return XLAT_DROP_SPECIAL;
	if (hairpin) {
		/* RFC 7757 4.2: the source through the prefix, so the far host answers an
		 * address the near one knows it by */
		m = prefix_4to6(cfg, s->out.ip.saddr, &s->saddr);
	} else if (!allowed4(cfg, s->out.ip.saddr)) {
		return PKT_CALL(p, siit46_bounce, TYPE_CODE(ICMP_DEST_UNREACH, ICMP_PKT_FILTERED),
				0, XLAT_DROP_ALLOW4);
	} else {
		m = siit_4to6(cfg, s->out.ip.saddr, &s->saddr);
	}
	if (m == XLAT_MAP_SPECIAL &&      /* an ICMP error's, see above */
	    rfc6052_embed(&cfg->pref6, cfg->pref6_len, s->out.ip.saddr, &s->saddr))
		m = XLAT_MAP_NONE;
	if (m == XLAT_MAP_NONE)
		return PKT_CALL(p, siit46_bounce, TYPE_CODE(ICMP_DEST_UNREACH, ICMP_PKT_FILTERED),
				0, XLAT_DROP_SRC);
	if (s->l4 == XLAT_L4_UDP_NOCSUM) {
		/* RFC 7915 4.5: drop, or compute over the whole datagram; a first fragment
		 * cannot be summed and goes on with zero only if configured (1.2) */
		if (cfg->udp_zero == XLAT_UDP_ZERO_DROP ||
		    (s->out.frag && cfg->udp_zero != XLAT_UDP_ZERO_FORWARD))
			return PKT_CALL(p, siit46_bounce,
					TYPE_CODE(ICMP_DEST_UNREACH, ICMP_PKT_FILTERED), 0,
					XLAT_DROP_UDP_ZERO);
		if (s->out.frag)
			s->l4 = XLAT_L4_OPAQUE;
	}
	if (s->l4 != XLAT_L4_ICMP_ERROR) {
		/* RFC 7915 4.1: a DF-clear packet whose translation exceeds lowest-ipv6-mtu
		 * "SHOULD be fragmented". A BPF program cannot make several packets of one, but
		 * the kernel's IPv4 forwarding does, by the route's MTU, before the egress
		 * translator turns each fragment into an IPv6 one (docs/translator.md). */
		__u32 lowest = cfg->lowest_mtu6 ? cfg->lowest_mtu6 : IPV6_MIN_MTU;

		if ((flags & SIIT_F_INGRESS) && !(s->out.ip.frag_off & bpf_htons(IP4_DF)) &&
		    IP6_HLEN + (s->out.frag ? IP6_FRAG_HLEN : 0) + s->out.plen > lowest &&
		    !pkt_is_gso(p)) {
			if ((s->l4 == XLAT_L4_UDP_NOCSUM && PKT_CALL0(p, siit46_udp_csum4)) ||
			    (s->l4 == XLAT_L4_ICMP_QUERY && PKT_CALL0(p, siit46_icmp6_in4)))
				return XLAT_DROP_ERROR;
			return XLAT_FRAG_KERNEL;
		}
		return xlat46_commit(p, s, cfg->zero_tos, cfg->jumbo_hbh);
	}
	if (hairpin) {
		/* the quoted packet went the other way: its destination through the prefix */
		m = siit_4to6(cfg, s->in.ip.saddr, &s->in_saddr);
		rc = prefix_4to6(cfg, s->in.ip.daddr, &s->in_daddr);
	} else {
		m = siit_4to6(cfg, s->in.ip.saddr, &s->in_saddr);
		rc = siit_4to6(cfg, s->in.ip.daddr, &s->in_daddr);
	}
	if (m == XLAT_MAP_SPECIAL || rc == XLAT_MAP_SPECIAL)
		return XLAT_DROP_SPECIAL;
	if (m == XLAT_MAP_NONE || rc == XLAT_MAP_NONE)
		return XLAT_DROP_ICMP_INNER;
	return PKT_CALL(p, siit46_error, cfg->zero_tos, (__u32)cfg->mtu4 << 16 | cfg->mtu6);
}

/* The answer to an IPv6 packet whose extension headers cannot be translated: Parameter
 * Problem where RFC 8200 defines the error (a misplaced Hop-by-Hop header: code 1 at the
 * Next Header field naming it), else RFC 7915 5.4's default. */
static __always_inline enum xlat_outcome siit64_chain_error(const struct pkt *p,
							    const struct xlat64 *s)
{
	if (s->out.chain == IP6_CHAIN_HBH_NOT_FIRST)
		return PKT_CALL(p, siit64_bounce, TYPE_CODE(ICMPV6_PARAMPROB, ICMPV6_UNK_NEXTHDR),
				bpf_htonl(s->out.chain_ptr), XLAT_DROP_EXT_CHAIN);
	return PKT_CALL(p, siit64_bounce, TYPE_CODE(ICMPV6_DEST_UNREACH, ICMPV6_ADM_PROHIBITED),
			0, XLAT_DROP_EXT_CHAIN);
}

/* XLAT_HAIRPIN: translated to IPv4 for an IPv6 host; the caller finishes with siit46(). */
static __always_inline enum xlat_outcome siit64_body(const struct pkt *p)
{
	const struct xlat_config *cfg = xlat_config();
	struct xlat_scratch *scratch = xlat_scratch_get();
	struct xlat64 *s;
	int rc, dst;

	if (!cfg || !scratch)
		return XLAT_PASS;
	s = &scratch->x64;
	if (!xlat64_parse(p, s))
		return XLAT_PASS;
	dst = siit_6to4(cfg, &s->out.ip.daddr, &s->daddr);
	switch (dst) {
	case XLAT_MAP_OK:
	case XLAT_MAP_PREFIX:
	case XLAT_MAP_SPECIAL:
	case XLAT_MAP_REFUSED:
		break;
	default:
		return XLAT_PASS;
	}
	rc = xlat64_validate(p, s);
	if (rc == XLAT_DROP_ROUTING_HDR)
		return PKT_CALL(p, siit64_bounce, TYPE_CODE(ICMPV6_PARAMPROB, ICMPV6_HDR_FIELD),
				bpf_htonl(s->out.rh_ptr), rc);
	if (rc == XLAT_DROP_EXT_CHAIN)
		return siit64_chain_error(p, s);
	if (rc)
		return rc;
	if (dst < XLAT_MAP_OK)
		/* never translated: a special-use IPv4 destination through the prefix, or the
		 * well-known prefix with a non-global one (RFC 6052 3.1: "MUST drop"); 5.4's
		 * error answers the sender */
		return PKT_CALL(p, siit64_bounce,
				TYPE_CODE(ICMPV6_DEST_UNREACH, ICMPV6_ADM_PROHIBITED), 0,
				dst == XLAT_MAP_SPECIAL ? XLAT_DROP_SPECIAL : XLAT_DROP_DST);
	rc = siit_6to4(cfg, &s->out.ip.saddr, &s->saddr);
	if (rc < XLAT_MAP_OK) {
		/* RFC 6791: errors from IPv6 routers without an IPv4 address get a pool one */
		if (s->l4 != XLAT_L4_ICMP_ERROR)
			/* RFC 7915 5.1: an illegal source is silently dropped */
			return rc == XLAT_MAP_SPECIAL ? XLAT_DROP_SPECIAL :
			       PKT_CALL(p, siit64_bounce,
					TYPE_CODE(ICMPV6_DEST_UNREACH, ICMPV6_ADM_PROHIBITED), 0,
					XLAT_DROP_SRC);
		s->saddr = pool4_pick(cfg, &s->out.ip.saddr);
		if (!s->saddr)
			return XLAT_DROP_SRC;
	}
	/* RFC 6864: DF-clear results (ip4_build) need an Identification */
	if (!s->out.frag && (s->l4 == XLAT_L4_ICMP_ERROR ||
			     IP4_HLEN + s->out.plen <= XLAT_DF_THRESHOLD))
		s->ident = siit_ident(cfg, scratch, s->saddr, s->daddr, s->proto4);
	if (s->l4 != XLAT_L4_ICMP_ERROR) {
		rc = xlat64_commit(p, s, cfg->zero_tos);
	} else {
		if (siit_6to4(cfg, &s->in.ip.saddr, &s->in_saddr) < XLAT_MAP_OK ||
		    siit_6to4(cfg, &s->in.ip.daddr, &s->in_daddr) < XLAT_MAP_OK)
			return XLAT_DROP_ICMP_INNER;
		rc = PKT_CALL(p, siit64_error, cfg->zero_tos, (__u32)cfg->mtu4 << 16 | cfg->mtu6);
	}
	/* RFC 7757 4.2: to the prefix-embedded address of an IPv6 host's EAM address */
	if (rc == XLAT_DONE64 && dst == XLAT_MAP_PREFIX && hairpin4(cfg, s->daddr))
		return XLAT_HAIRPIN;
	return rc;
}

/* One global function per direction and hook: the entry programs stay small and each
 * direction is verified once. Their return type also puts enum xlat_outcome in the object's
 * BTF, where the control plane reads the names of the statistics. */
PKT_GLOBAL(siit46, (__u32 flags), (flags))
PKT_GLOBAL0(enum xlat_outcome, siit64)

#endif /* XLAT_SIIT_H */
