/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Rewriting addresses and ports in place: what the gateway adds to translation.
 *
 * Between families, xlat46_commit()/xlat64_commit() (bpf/include/xlat/) rewrite the headers
 * with the addresses conntrack chose; the ports are rewritten here first, in the original
 * packet. Within a family (IPv4 VIP to IPv4 backends, IPv6 to IPv6) this is the whole NAT.
 * Checksums are updated incrementally through the ctx layer, which knows the skb's checksum
 * state at tc and applies full-checksum arithmetic at XDP.
 *
 * ICMP errors quote the packet they are about: its addresses and ports are rewritten too,
 * and the quoted checksums (IPv4 header, transport) with them, as plain data. Every change
 * inside an ICMP message is summed so that the message's own checksum follows in one update.
 */
#ifndef GW_NAT_H
#define GW_NAT_H

#include "xlat/ctx.h"
#include "xlat/proto.h"
#include "xlat/l4.h"
#include "tuple.h"

#define GW_PORTS_LEN 4	/* source and destination port */

/* Rewrite the ports of a TCP/UDP header at `off` from `old` to `new` (each sport, dport) and
 * apply that change to its checksum; `pseudo` is a change of the pseudo-header's addresses
 * to apply with it (0 when the addresses are translated by someone else). `kind` is the
 * xlat_l4 class: an IPv4 UDP datagram without checksum (XLAT_L4_UDP_NOCSUM) keeps none, or
 * gets one computed afresh by translation. */
static __always_inline int gw_nat_ports(const struct pkt *p, __u32 off, __u8 kind,
					const __be16 *old, const __be16 *new, __u32 pseudo)
{
	__u32 csum = off + l4_csum_off(kind);
	__u32 diff;

	if (kind == XLAT_L4_UDP_NOCSUM)
		return pkt_store(p, off, new, GW_PORTS_LEN);
	diff = (__u32)bpf_csum_diff((void *)old, GW_PORTS_LEN, (void *)new, GW_PORTS_LEN, 0);
	if (pkt_l4_csum_update(p, csum, diff, pseudo, kind == XLAT_L4_UDP))
		return -1;
	return pkt_store_nocsum(p, off, new, GW_PORTS_LEN);
}

/* Rewrite the ports of the transport header quoted in an ICMP error at `off`, of which
 * `avail` bytes are present (at least the ports), fixing its checksum for the ports and for
 * `pseudo`, a change of the quoted addresses. Returns the change to the sum of the ICMP
 * message's bytes, for its checksum, or -1. Quoted bytes are plain data whose change the
 * caller compensates in the ICMP checksum: a CHECKSUM_COMPLETE skb->csum is not told. */
static __always_inline __s64 gw_nat_quoted_ports(const struct pkt *p, __u32 off, __u32 avail,
						 __u8 kind, __be16 sport, __be16 dport,
						 __u32 pseudo)
{
	__be16 old[2], new[2] = { sport, dport };
	__u32 csum = l4_csum_off(kind), diff;
	__u16 check, fixed;

	if (pkt_load(p, off, old, GW_PORTS_LEN))
		return -1;
	diff = (__u32)bpf_csum_diff((void *)old, GW_PORTS_LEN, (void *)new, GW_PORTS_LEN, 0);
	if (pkt_store_nocsum(p, off, new, GW_PORTS_LEN))
		return -1;
	if (avail < csum + 2 || pkt_load(p, off + csum, &check, sizeof(check)))
		return diff;            /* checksum cut off: only the ports changed */
	if (kind == XLAT_L4_UDP && !check)
		return diff;            /* no UDP checksum stays none */
	fixed = csum_replace_diff(check, csum_add(diff, pseudo));
	if (kind == XLAT_L4_UDP && !fixed)
		fixed = 0xffff;
	if (pkt_store_nocsum(p, off + csum, &fixed, sizeof(fixed)))
		return -1;
	return csum_add(diff, csum_sub(fixed, check));
}

/* IPv4 -> IPv4: the header's addresses become those of `to`; `h` is the parsed header. Only
 * the addresses and the header checksum are written; `*pseudo` gets the change of the
 * addresses for the transport checksum. */
static __always_inline int gw_nat4_addrs(const struct pkt *p, __u32 off, const struct iphdr *h,
					 __be32 saddr, __be32 daddr, __u32 *pseudo)
{
	__be32 addrs[2] = { saddr, daddr };
	__u16 check;

	*pseudo = (__u32)bpf_csum_diff((void *)&h->saddr, 8, (void *)addrs, 8, 0);
	check = csum_replace_diff(h->check, *pseudo);
	if (pkt_store(p, off + offsetof(struct iphdr, saddr), addrs, sizeof(addrs)))
		return -1;
	return pkt_store(p, off + offsetof(struct iphdr, check), &check, sizeof(check));
}

/* The addresses of an IPv4 header quoted in an ICMP error, with its checksum, as plain data
 * (compensated by the caller in the ICMP checksum, as above). Returns the change to the ICMP
 * message's sum (or -1); `*pseudo` gets the change of the addresses, for the quoted transport
 * checksum. */
static __always_inline __s64 gw_nat4_quoted_addrs(const struct pkt *p, __u32 off,
						  const struct iphdr *h, __be32 saddr,
						  __be32 daddr, __u32 *pseudo)
{
	__be32 addrs[2] = { saddr, daddr };
	__u16 check;

	*pseudo = (__u32)bpf_csum_diff((void *)&h->saddr, 8, (void *)addrs, 8, 0);
	check = csum_replace_diff(h->check, *pseudo);
	if (pkt_store_nocsum(p, off + offsetof(struct iphdr, saddr), addrs, sizeof(addrs)) ||
	    pkt_store_nocsum(p, off + offsetof(struct iphdr, check), &check, sizeof(check)))
		return -1;
	return csum_add(*pseudo, csum_sub(check, h->check));
}

/* IPv6 -> IPv6 likewise (no header checksum); also for a quoted header (`quoted`: plain
 * data, compensated by the caller), where `*pseudo` is the change to the ICMP message's sum
 * as well. */
static __always_inline int gw_nat6_addrs(const struct pkt *p, __u32 off, const struct ipv6hdr *h,
					 const struct in6_addr *saddr,
					 const struct in6_addr *daddr, __u32 *pseudo, bool quoted)
{
	struct in6_addr w[2] = { *saddr, *daddr };

	*pseudo = (__u32)bpf_csum_diff((void *)&h->saddr, 32, (void *)w, 32, 0);
	if (quoted)
		return pkt_store_nocsum(p, off + offsetof(struct ipv6hdr, saddr), w, sizeof(w));
	return pkt_store(p, off + offsetof(struct ipv6hdr, saddr), w, sizeof(w));
}

#endif /* GW_NAT_H */
