/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Stateless address mapping: explicit address mappings (RFC 7757) first, then the RFC 6052
 * prefix. The same rules as lab/datapath/translator/addrmap.py, which fills the maps. */
#ifndef XLAT_ADDRMAP_H
#define XLAT_ADDRMAP_H

#include <stdbool.h>
#include <bpf/bpf_endian.h>

#include "config.h"
#include "proto.h"

/* RFC 6052 2.2: the IPv4 address fills the 32 bits after the prefix, skipping bits 64-71 (the
 * "u" octet, zero); the suffix is zero. `pref` has zero bits after `plen`. */
static __always_inline int rfc6052_embed(const struct in6_addr *pref, __u8 plen, __be32 v4,
					 struct in6_addr *out)
{
	const __u8 *b = (const __u8 *)&v4;
	__u8 *o = out->in6_u.u6_addr8;

	*out = *pref;
	switch (plen) {
	case 32:
		o[4] = b[0]; o[5] = b[1]; o[6] = b[2]; o[7] = b[3];
		return 0;
	case 40:
		o[5] = b[0]; o[6] = b[1]; o[7] = b[2]; o[9] = b[3];
		return 0;
	case 48:
		o[6] = b[0]; o[7] = b[1]; o[9] = b[2]; o[10] = b[3];
		return 0;
	case 56:
		o[7] = b[0]; o[9] = b[1]; o[10] = b[2]; o[11] = b[3];
		return 0;
	case 64:
		o[9] = b[0]; o[10] = b[1]; o[11] = b[2]; o[12] = b[3];
		return 0;
	case 96:
		out->in6_u.u6_addr32[3] = v4;
		return 0;
	default:
		return -1;
	}
}

/* The inverse, for addresses the embedding produces: prefix, zero u octet and zero suffix.
 * Other addresses under the prefix are not translatable, which keeps the mapping one-to-one. */
static __always_inline int rfc6052_extract(const struct in6_addr *pref, __u8 plen,
					   const struct in6_addr *a, __be32 *v4)
{
	const __u8 *i = a->in6_u.u6_addr8;
	__u8 *b = (__u8 *)v4;
	struct in6_addr back;

	switch (plen) {
	case 32:
		b[0] = i[4]; b[1] = i[5]; b[2] = i[6]; b[3] = i[7];
		break;
	case 40:
		b[0] = i[5]; b[1] = i[6]; b[2] = i[7]; b[3] = i[9];
		break;
	case 48:
		b[0] = i[6]; b[1] = i[7]; b[2] = i[9]; b[3] = i[10];
		break;
	case 56:
		b[0] = i[7]; b[1] = i[9]; b[2] = i[10]; b[3] = i[11];
		break;
	case 64:
		b[0] = i[9]; b[1] = i[10]; b[2] = i[11]; b[3] = i[12];
		break;
	case 96:
		*v4 = a->in6_u.u6_addr32[3];
		break;
	default:
		return -1;
	}
	if (rfc6052_embed(pref, plen, *v4, &back))
		return -1;
	return (back.in6_u.u6_addr32[0] ^ a->in6_u.u6_addr32[0]) |
	       (back.in6_u.u6_addr32[1] ^ a->in6_u.u6_addr32[1]) |
	       (back.in6_u.u6_addr32[2] ^ a->in6_u.u6_addr32[2]) |
	       (back.in6_u.u6_addr32[3] ^ a->in6_u.u6_addr32[3]) ? -1 : 0;
}

static __always_inline __be32 eam_suffix_mask(__u8 suffix_len)
{
	return suffix_len >= 32 ? 0xffffffff : bpf_htonl((1U << suffix_len) - 1);
}

/* Results of the mapping functions below. */
enum {
	XLAT_MAP_REFUSED = -2,  /* made with the prefix, but from an excluded IPv4 address */
	XLAT_MAP_NONE = -1,     /* not translatable */
	XLAT_MAP_OK = 0,
	XLAT_MAP_OWN = 1,       /* translatable, and the translator host's own address */
};

/* RFC 7757 3.2: the longest matching IPv4 prefix gives the IPv6 prefix; the suffix bits are
 * copied. */
static __always_inline int eam_4to6(__be32 v4, struct in6_addr *out)
{
	struct xlat_lpm4_key key = { .prefixlen = 32, .addr = v4 };
	const struct xlat_eam *e = bpf_map_lookup_elem(&xlat_eam4, &key);

	if (!e)
		return XLAT_MAP_NONE;
	*out = e->v6;
	out->in6_u.u6_addr32[3] |= v4 & eam_suffix_mask(e->suffix_len);
	return e->own ? XLAT_MAP_OWN : XLAT_MAP_OK;
}

static __always_inline int eam_6to4(const struct in6_addr *v6, __be32 *out)
{
	struct xlat_lpm6_key key = { .prefixlen = 128, .addr = *v6 };
	const struct xlat_eam *e = bpf_map_lookup_elem(&xlat_eam6, &key);

	if (!e)
		return XLAT_MAP_NONE;
	*out = e->v4 | (v6->in6_u.u6_addr32[3] & eam_suffix_mask(e->suffix_len));
	return e->own ? XLAT_MAP_OWN : XLAT_MAP_OK;
}

static __always_inline bool excluded4(__be32 v4)
{
	struct xlat_lpm4_key key = { .prefixlen = 32, .addr = v4 };

	return bpf_map_lookup_elem(&xlat_excl4, &key) != NULL;
}

/* EAM first, then the prefix: XLAT_MAP_*. Trie lookups cost tens of nanoseconds each, so
 * tables known to be empty are skipped. */
static __always_inline int siit_4to6(const struct xlat_config *cfg, __be32 v4,
				     struct in6_addr *out)
{
	if (cfg->use_eam) {
		int rc = eam_4to6(v4, out);

		if (rc != XLAT_MAP_NONE)
			return rc;
	}
	if (!cfg->pref6_len || (cfg->use_excl4 && excluded4(v4)) ||
	    rfc6052_embed(&cfg->pref6, cfg->pref6_len, v4, out))
		return XLAT_MAP_NONE;
	return XLAT_MAP_OK;
}

static __always_inline int siit_6to4(const struct xlat_config *cfg, const struct in6_addr *v6,
				     __be32 *out)
{
	if (cfg->use_eam) {
		int rc = eam_6to4(v6, out);

		if (rc != XLAT_MAP_NONE)
			return rc;
	}
	if (!cfg->pref6_len || rfc6052_extract(&cfg->pref6, cfg->pref6_len, v6, out))
		return XLAT_MAP_NONE;
	return cfg->use_excl4 && excluded4(*out) ? XLAT_MAP_REFUSED : XLAT_MAP_OK;
}

static __always_inline bool allowed4(const struct xlat_config *cfg, __be32 saddr)
{
	struct xlat_lpm4_key key = { .prefixlen = 32, .addr = saddr };

	if (!cfg->allow4)
		return true;
	return bpf_map_lookup_elem(&xlat_allow4, &key) != NULL;
}

#endif /* XLAT_ADDRMAP_H */
