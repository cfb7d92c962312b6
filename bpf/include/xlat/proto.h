/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Wire formats the UAPI headers lack, and the protocol numbers translation cares about. */
#ifndef XLAT_PROTO_H
#define XLAT_PROTO_H

#include <linux/types.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>

/* ICMPv4 types and codes (RFC 792, RFC 1812). Defined here because <linux/icmp.h> pulls in
 * libc socket headers, which do not build for the BPF target. */
#ifndef ICMP_ECHOREPLY
#define ICMP_ECHOREPLY		0
#define ICMP_DEST_UNREACH	3
#define ICMP_SOURCE_QUENCH	4
#define ICMP_REDIRECT		5
#define ICMP_ECHO		8
#define ICMP_TIME_EXCEEDED	11
#define ICMP_PARAMETERPROB	12

#define ICMP_NET_UNREACH	0
#define ICMP_HOST_UNREACH	1
#define ICMP_PROT_UNREACH	2
#define ICMP_PORT_UNREACH	3
#define ICMP_FRAG_NEEDED	4
#define ICMP_SR_FAILED		5
#define ICMP_NET_UNKNOWN	6
#define ICMP_HOST_UNKNOWN	7
#define ICMP_HOST_ISOLATED	8
#define ICMP_NET_ANO		9
#define ICMP_HOST_ANO		10
#define ICMP_NET_UNR_TOS	11
#define ICMP_HOST_UNR_TOS	12
#define ICMP_PKT_FILTERED	13
#define ICMP_PREC_VIOLATION	14
#define ICMP_PREC_CUTOFF	15
#endif

#define IP4_HLEN      20
#define IP6_HLEN      40
#define IP6_FRAG_HLEN 8
#define ICMP_HLEN     8

/* IPv4 frag_off bits (host order) */
#define IP4_DF     0x4000
#define IP4_MF     0x2000
#define IP4_OFFSET 0x1fff

/* IPv4 options (RFC 791) */
#define IPOPT_END_LIST 0
#define IPOPT_NOOPT    1
#define IPOPT_LSRR_    0x83
#define IPOPT_SSRR_    0x89

/* IPv6 extension headers the translator walks (RFC 8200) */
#define NEXTHDR_HOP_    0
#define IP6_TLV_JUMBO   0xC2    /* RFC 2675 Jumbo Payload option */
#define NEXTHDR_ROUTING_ 43
#define NEXTHDR_FRAGMENT_ 44
#define NEXTHDR_DEST_   60
#define NEXTHDR_ICMP6_  58
#define IP6_MAX_EXT     6   /* extension headers walked before giving up */

/* RFC 7915 5.1: IPv4 packets up to this size leave the translator with DF clear */
#define XLAT_DF_THRESHOLD 1260
/* RFC 7915 4.3, 5.3: size limits of translated ICMP errors (the minimum MTUs) */
#define XLAT_ICMP6_ERR_MAX 1280
#define XLAT_ICMP4_ERR_MAX 576

struct ip6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;        /* offset << 3 | M */
	__be32 identification;
};

/* The first 8 bytes of an ICMPv4 or ICMPv6 message, whose layouts coincide. */
struct icmp_hdr8 {
	__u8 type;
	__u8 code;
	__be16 checksum;
	union {
		__be32 data;
		__u8 bytes[4];
		struct {
			__be16 id;
			__be16 seq;
		} echo;
		struct {
			__be16 unused;
			__be16 mtu;
		} frag;        /* ICMPv4 fragmentation needed (RFC 1191) */
	};
};

/* Parsed IPv4 header, outer or quoted in an ICMP error. */
struct ip4_info {
	struct iphdr ip;
	__u16 hlen;       /* ihl * 4 */
	__u16 frag_off;   /* offset in 8-byte units */
	__u32 plen;       /* tot_len - hlen: payload bytes the header announces (a BIG TCP GSO
			   * packet: tot_len 0, its length the skb's) */
	__u8 mf;
	__u8 frag;        /* a fragment: MF set or offset non-zero */
	__u8 jumbo;       /* a BIG TCP GSO packet above 64 KiB (tot_len 0) */
	__u8 pad;
};

/* Parsed IPv6 header and extension headers, outer or quoted in an ICMP error. */
struct ip6_info {
	struct ipv6hdr ip;
	__u16 hlen;       /* IPv6 header and extension headers, Fragment header included */
	__u16 chain_ptr;  /* IP6_CHAIN_*: offset of the Next Header field naming the header that
			   * stopped the walk */
	__u32 plen;       /* upper-layer bytes the header (or its Jumbo Payload option) announces */
	__u8 proto;       /* upper-layer protocol (Next Header of the last extension header) */
	__u8 frag;        /* has a Fragment header */
	__u8 mf;
	__u8 jumbo;       /* payload length 0: a BIG TCP GSO packet above 64 KiB (RFC 2675) */
	__u16 frag_off;   /* offset in 8-byte units */
	__u16 rh_ptr;     /* offset of Segments Left of a routing header still routing, or 0 */
	__be32 frag_id;
	__u8 chain;       /* enum ip6_chain: why ip6_walk() could not translate the header chain */
	__u8 pad[3];
};

/* Extension header chains the translator does not translate (ip6_walk() returns 1). */
enum ip6_chain {
	IP6_CHAIN_OK = 0,
	IP6_CHAIN_HBH_NOT_FIRST,    /* RFC 8200 4.3: Hop-by-Hop only right after the IPv6 header;
				     * a node answers Parameter Problem code 1 */
	IP6_CHAIN_AFTER_FRAGMENT,   /* RFC 7915 5.1: an extension header after the Fragment
				     * header (or a second one) "SHOULD be dropped" */
	IP6_CHAIN_TOO_LONG,         /* more extension headers than IP6_MAX_EXT */
};

#endif /* XLAT_PROTO_H */
