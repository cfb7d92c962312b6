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

/* Continuations of a translation as global functions (see PKT_GLOBAL): the ICMP error
 * paths are the largest, and verifying them on their own keeps each function well inside the
 * verifier's limits. They find the packet's state in the per-CPU scratch. */
static __always_inline __s64 siit46_error_body(const struct pkt *p, __u32 zero_tos, __u32 mtus)
{
	union xlat_scratch *scratch = xlat_scratch_get();

	if (!scratch)
		return XLAT_DROP_ERROR;
	return xlat46_commit_error(p, &scratch->x46, zero_tos, mtus >> 16, mtus & 0xffff);
}

static __always_inline __s64 siit64_error_body(const struct pkt *p, __u32 zero_tos, __u32 mtus)
{
	union xlat_scratch *scratch = xlat_scratch_get();

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
	union xlat_scratch *scratch = xlat_scratch_get();

	if (!cfg || !scratch || !cfg->icmp_errors)
		return otherwise;
	return icmp4_bounce(p, &scratch->x46.eth, &scratch->x46.out, type_code >> 8,
			    type_code & 0xff, data, cfg->src4, otherwise);
}

static __always_inline __s64 siit64_bounce_body(const struct pkt *p, __u32 type_code,
						__u32 data, __s32 otherwise)
{
	const struct xlat_config *cfg = xlat_config();
	union xlat_scratch *scratch = xlat_scratch_get();

	if (!cfg || !scratch || !cfg->icmp_errors)
		return otherwise;
	return icmp6_bounce(p, &scratch->x64.eth, &scratch->x64.out, type_code >> 8,
			    type_code & 0xff, data, &cfg->src6, otherwise);
}

PKT_GLOBAL(siit46_error, (__u32 zero_tos, __u32 mtus), (zero_tos, mtus))
PKT_GLOBAL(siit64_error, (__u32 zero_tos, __u32 mtus), (zero_tos, mtus))
PKT_GLOBAL(siit46_bounce, (__u32 type_code, __u32 data, __s32 otherwise),
	   (type_code, data, otherwise))
PKT_GLOBAL(siit64_bounce, (__u32 type_code, __u32 data, __s32 otherwise),
	   (type_code, data, otherwise))

#define TYPE_CODE(t, c) ((__u32)(t) << 8 | (c))

static __always_inline enum xlat_outcome siit46_body(const struct pkt *p)
{
	const struct xlat_config *cfg = xlat_config();
	union xlat_scratch *scratch = xlat_scratch_get();
	struct xlat46 *s;
	int rc;

	if (!cfg || !scratch)
		return XLAT_PASS;
	s = &scratch->x46;
	if (!xlat46_parse(p, s))
		return XLAT_PASS;
	/* Destinations the translator does not map are not its business, nor are the host's
	 * own addresses: packets to them are for the host, in the family they came in. */
	if (siit_4to6(cfg, s->out.ip.daddr, &s->daddr) != XLAT_MAP_OK)
		return XLAT_PASS;
	rc = xlat46_validate(p, s);
	if (rc == XLAT_DROP_SRCROUTE)
		return PKT_CALL(p, siit46_bounce, TYPE_CODE(ICMP_DEST_UNREACH, ICMP_SR_FAILED), 0,
				rc);
	if (rc)
		return rc;
	if (!allowed4(cfg, s->out.ip.saddr))
		rc = XLAT_DROP_ALLOW4;
	else if (siit_4to6(cfg, s->out.ip.saddr, &s->saddr) == XLAT_MAP_NONE)
		rc = XLAT_DROP_SRC;
	if (rc)
		return PKT_CALL(p, siit46_bounce, TYPE_CODE(ICMP_DEST_UNREACH, ICMP_PKT_FILTERED),
				0, rc);
	if (s->l4 != XLAT_L4_ICMP_ERROR)
		return xlat46_commit(p, s, cfg->zero_tos, cfg->jumbo_hbh);
	if (siit_4to6(cfg, s->in.ip.saddr, &s->in_saddr) == XLAT_MAP_NONE ||
	    siit_4to6(cfg, s->in.ip.daddr, &s->in_daddr) == XLAT_MAP_NONE)
		return XLAT_DROP_ICMP_INNER;
	return PKT_CALL(p, siit46_error, cfg->zero_tos, (__u32)cfg->mtu4 << 16 | cfg->mtu6);
}

static __always_inline enum xlat_outcome siit64_body(const struct pkt *p)
{
	const struct xlat_config *cfg = xlat_config();
	union xlat_scratch *scratch = xlat_scratch_get();
	struct xlat64 *s;
	int rc;

	if (!cfg || !scratch)
		return XLAT_PASS;
	s = &scratch->x64;
	if (!xlat64_parse(p, s))
		return XLAT_PASS;
	switch (siit_6to4(cfg, &s->out.ip.daddr, &s->daddr)) {
	case XLAT_MAP_OK:
		break;
	case XLAT_MAP_REFUSED:
		/* RFC 6052 3.1: the well-known prefix with a non-global IPv4 address */
		return XLAT_DROP_DST;
	default:
		return XLAT_PASS;
	}
	rc = xlat64_validate(p, s);
	if (rc == XLAT_DROP_ROUTING_HDR)
		return PKT_CALL(p, siit64_bounce, TYPE_CODE(ICMPV6_PARAMPROB, ICMPV6_HDR_FIELD),
				bpf_htonl(s->out.rh_ptr), rc);
	if (rc)
		return rc;
	if (siit_6to4(cfg, &s->out.ip.saddr, &s->saddr) < XLAT_MAP_OK) {
		/* RFC 6791: errors from IPv6 routers without an IPv4 address get a pool one */
		if (s->l4 != XLAT_L4_ICMP_ERROR || !cfg->pool4)
			return PKT_CALL(p, siit64_bounce,
					TYPE_CODE(ICMPV6_DEST_UNREACH, ICMPV6_ADM_PROHIBITED), 0,
					XLAT_DROP_SRC);
		s->saddr = cfg->pool4;
	}
	if (s->l4 != XLAT_L4_ICMP_ERROR)
		return xlat64_commit(p, s, cfg->zero_tos);
	if (siit_6to4(cfg, &s->in.ip.saddr, &s->in_saddr) < XLAT_MAP_OK ||
	    siit_6to4(cfg, &s->in.ip.daddr, &s->in_daddr) < XLAT_MAP_OK)
		return XLAT_DROP_ICMP_INNER;
	return PKT_CALL(p, siit64_error, cfg->zero_tos, (__u32)cfg->mtu4 << 16 | cfg->mtu6);
}

/* One global function per direction and hook: the entry programs stay small and each
 * direction is verified once. Their return type also puts enum xlat_outcome in the object's
 * BTF, where the control plane reads the names of the statistics. */
PKT_GLOBAL0(enum xlat_outcome, siit46)
PKT_GLOBAL0(enum xlat_outcome, siit64)

#endif /* XLAT_SIIT_H */
