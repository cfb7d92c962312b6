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

static __always_inline enum xlat_outcome siit46_body(const struct pkt *p)
{
	const struct xlat_config *cfg = xlat_config();
	struct xlat46 s;
	bool errors;
	int rc;

	if (!cfg)
		return XLAT_PASS;
	errors = cfg->icmp_errors;
	rc = xlat46_parse(p, &s);
	if (rc)
		return rc;
	/* Destinations the translator does not map are not its business. */
	if (siit_4to6(cfg, s.out.ip.daddr, &s.daddr))
		return XLAT_PASS;
	rc = xlat46_validate(p, &s);
	if (rc == XLAT_DROP_SRCROUTE && errors)
		return icmp4_bounce(p, &s.eth, &s.out, ICMP_DEST_UNREACH, ICMP_SR_FAILED, 0,
				    cfg->src4, rc);
	if (rc)
		return rc;
	if (!allowed4(cfg, s.out.ip.saddr))
		rc = XLAT_DROP_ALLOW4;
	else if (siit_4to6(cfg, s.out.ip.saddr, &s.saddr))
		rc = XLAT_DROP_SRC;
	if (rc)
		return errors ? icmp4_bounce(p, &s.eth, &s.out, ICMP_DEST_UNREACH, ICMP_PKT_FILTERED,
					     0, cfg->src4, rc) : rc;
	if (s.l4 == XLAT_L4_ICMP_ERROR &&
	    (siit_4to6(cfg, s.in.ip.saddr, &s.in_saddr) ||
	     siit_4to6(cfg, s.in.ip.daddr, &s.in_daddr)))
		return XLAT_DROP_ICMP_INNER;
	return xlat46_commit(p, &s, cfg->zero_tos, cfg->mtu4, cfg->mtu6);
}

static __always_inline enum xlat_outcome siit64_body(const struct pkt *p)
{
	const struct xlat_config *cfg = xlat_config();
	struct xlat64 s;
	bool errors;
	int rc;

	if (!cfg)
		return XLAT_PASS;
	errors = cfg->icmp_errors;
	rc = xlat64_parse(p, &s);
	if (rc)
		return rc;
	if (siit_6to4(cfg, &s.out.ip.daddr, &s.daddr))
		return XLAT_PASS;
	rc = xlat64_validate(p, &s);
	if (rc == XLAT_DROP_ROUTING_HDR && errors)
		return icmp6_bounce(p, &s.eth, &s.out, ICMPV6_PARAMPROB, ICMPV6_HDR_FIELD,
				    bpf_htonl(s.out.rh_ptr), &cfg->src6, rc);
	if (rc)
		return rc;
	if (siit_6to4(cfg, &s.out.ip.saddr, &s.saddr)) {
		/* RFC 6791: errors from IPv6 routers without an IPv4 address get a pool one */
		if (s.l4 == XLAT_L4_ICMP_ERROR && cfg->pool4)
			s.saddr = cfg->pool4;
		else
			return errors ? icmp6_bounce(p, &s.eth, &s.out, ICMPV6_DEST_UNREACH,
						     ICMPV6_ADM_PROHIBITED, 0, &cfg->src6,
						     XLAT_DROP_SRC) : XLAT_DROP_SRC;
	}
	if (s.l4 == XLAT_L4_ICMP_ERROR &&
	    (siit_6to4(cfg, &s.in.ip.saddr, &s.in_saddr) ||
	     siit_6to4(cfg, &s.in.ip.daddr, &s.in_daddr)))
		return XLAT_DROP_ICMP_INNER;
	return xlat64_commit(p, &s, cfg->zero_tos, cfg->mtu4, cfg->mtu6);
}

/* One global function per direction and hook (see PKT_GLOBAL): the entry programs stay
 * small and each direction is verified once. Their return type also puts enum xlat_outcome
 * in the object's BTF, where the control plane reads the names of the statistics. */
PKT_GLOBAL0(enum xlat_outcome, siit46)
PKT_GLOBAL0(enum xlat_outcome, siit64)

#endif /* XLAT_SIIT_H */
