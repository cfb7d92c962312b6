/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A connection's 5-tuple in one direction, family-independent: IPv4 addresses are stored
 * IPv4-mapped (::ffff:a.b.c.d, RFC 4291 2.5.5.2) so one key type serves the four family
 * combinations of the gateway, and `family` says which header the packet carries. */
#ifndef GW_TUPLE_H
#define GW_TUPLE_H

#include <linux/types.h>
#include <linux/in6.h>
#include <bpf/bpf_endian.h>

#define GW_AF4 4
#define GW_AF6 6

struct gw_tuple {
	struct in6_addr saddr;
	struct in6_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;		/* GW_AF4 or GW_AF6 */
	__u8 pad[2];		/* zero: tuples are hashed and compared as bytes */
};

static __always_inline void gw_addr_from4(struct in6_addr *a, __be32 v4)
{
	a->in6_u.u6_addr32[0] = 0;
	a->in6_u.u6_addr32[1] = 0;
	a->in6_u.u6_addr32[2] = bpf_htonl(0xffff);
	a->in6_u.u6_addr32[3] = v4;
}

static __always_inline __be32 gw_addr_to4(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[3];
}

static __always_inline bool gw_addr_eq(const struct in6_addr *a, const struct in6_addr *b)
{
	return !((a->in6_u.u6_addr32[0] ^ b->in6_u.u6_addr32[0]) |
		 (a->in6_u.u6_addr32[1] ^ b->in6_u.u6_addr32[1]) |
		 (a->in6_u.u6_addr32[2] ^ b->in6_u.u6_addr32[2]) |
		 (a->in6_u.u6_addr32[3] ^ b->in6_u.u6_addr32[3]));
}

/* The tuple of the packets going the other way. */
static __always_inline void gw_tuple_reverse(struct gw_tuple *out, const struct gw_tuple *t)
{
	out->saddr = t->daddr;
	out->daddr = t->saddr;
	out->sport = t->dport;
	out->dport = t->sport;
	out->proto = t->proto;
	out->family = t->family;
	out->pad[0] = 0;
	out->pad[1] = 0;
}

#endif /* GW_TUPLE_H */
