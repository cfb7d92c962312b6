/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What the translator did with a packet, and why. Translation functions return one of these;
 * entry programs count it in a statistics map indexed by it and turn it into a verdict. */
#ifndef XLAT_OUTCOME_H
#define XLAT_OUTCOME_H

enum xlat_outcome {
	XLAT_PASS = 0,               /* not for the translator, left untouched */
	XLAT_DONE46,                 /* translated IPv4 -> IPv6 */
	XLAT_DONE64,                 /* translated IPv6 -> IPv4 */
	XLAT_BOUNCE,                 /* turned into an ICMP error back to the sender */
	XLAT_HAIRPIN,                /* IPv6 -> IPv6 through IPv4 and back: RFC 7757 4.2 */
	XLAT_FRAG_KERNEL,            /* DF-clear IPv4 too big for the IPv6 side: left to the
				      * kernel's IPv4 forwarding to fragment, each fragment then
				      * translated at egress (RFC 7915 4.1) */
	XLAT_DROP_MALFORMED,         /* bad version, lengths, header checksum, truncated headers */
	XLAT_DROP_SRC,               /* source address not translatable */
	XLAT_DROP_SPECIAL,           /* a special-use IPv4 address (0/8, 127/8, 169.254/16,
				      * 224/4, 240/4): never translated (RFC 7915 4.1, 5.1) */
	XLAT_DROP_DST,               /* IPv6 destination: the prefix with an excluded IPv4 */
	XLAT_DROP_ALLOW4,            /* IPv4 source not in the allow-list */
	XLAT_DROP_ICMP_TYPE,         /* ICMP type/code the RFC says to drop */
	XLAT_DROP_ICMP_INNER,        /* ICMP error whose quoted packet cannot be translated */
	XLAT_DROP_ICMP_CSUM,         /* ICMP error with a wrong checksum */
	XLAT_DROP_ICMP_FRAG,         /* fragmented ICMP: the pseudo-header length is unknown */
	XLAT_DROP_UDP_ZERO,          /* IPv4 UDP with a zero checksum the policy (or a fragment)
				      * does not let through (RFC 7915 4.5) */
	XLAT_DROP_SRCROUTE,          /* unexpired IPv4 source route (RFC 7915 4.1) */
	XLAT_DROP_ROUTING_HDR,       /* IPv6 routing header with segments left (RFC 7915 5.1) */
	XLAT_DROP_EXT_CHAIN,         /* IPv6 extension headers that cannot be translated: after
				      * a Fragment header, misplaced Hop-by-Hop, too many */
	XLAT_DROP_PROTO,             /* a protocol without a translation (l4.h) */
	XLAT_DROP_TOO_BIG,           /* longer than the translator can checksum (PKT_CSUM_MAX) */
	XLAT_DROP_ERROR,             /* a helper failed (memory, unsupported GSO type, no route) */
	XLAT_OUTCOME_MAX,
};

#endif /* XLAT_OUTCOME_H */
