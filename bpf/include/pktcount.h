/* SPDX-License-Identifier: GPL-2.0 */
/* The packet counter's map and counting code, shared by the objects that count packets by
 * length bucket: pktcount.c (one tc and one XDP program) and pktcount_dir.c (tc programs for
 * each direction, so one object attached both ways tells them apart).
 *
 * Bucket N counts packets whose length (L2 header included) is in [2^N, 2^(N+1)). IP packets
 * whose length their header's 16-bit field cannot hold (the key's `lenfield`, which also says
 * how the kernel marked them) exist only when GSO/GRO go beyond the legacy 64 KiB limit: BIG
 * TCP's proof. `segments` adds up skb gso_segs, so the bytes-per-segment ratio is visible too.
 */
#ifndef LAB_PKTCOUNT_H
#define LAB_PKTCOUNT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum pktcount_hook {
	PKTCOUNT_TC = 1,	/* pktcount_tc: tc/tcx/netkit, either direction */
	PKTCOUNT_XDP = 2,
	PKTCOUNT_INGRESS = 3,	/* pktcount_ingress: tc/tcx ingress */
	PKTCOUNT_EGRESS = 4,	/* pktcount_egress: tc/tcx egress */
};

/* How the IP header tells the packet's length. Packets whose length does not fit the 16-bit
 * field exist only with BIG TCP (GSO/GRO above 64 KiB), and kernels mark them differently. */
enum pktcount_lenfield {
	PKTCOUNT_LEN_HEADER = 0,	/* the length field holds it (or not IP) */
	PKTCOUNT_LEN_JUMBO_HBH = 1,	/* IPv6 payload length 0 and a hop-by-hop Jumbo Payload
					 * option (RFC 2675): IPv6 BIG TCP up to 2025's kernels */
	PKTCOUNT_LEN_ZERO = 2,		/* length field 0 and nothing else: the length is the
					 * packet's own (IPv4 BIG TCP; IPv6 BIG TCP since 2026) */
};

struct pktcount_key {
	__u32 ifindex;
	__u8 family;	/* 4, 6, or 0 for anything that is not IP */
	__u8 l4proto;	/* IPPROTO_* after the IP header (IPv6: after a hop-by-hop header) */
	__u8 bucket;	/* floor(log2(length)) */
	__u8 hook;	/* enum pktcount_hook */
	__u32 lenfield;	/* enum pktcount_lenfield */
};

struct pktcount_value {
	__u64 packets;
	__u64 bytes;
	__u64 segments;	/* wire segments these packets stand for (gso_segs, 1 if not GSO) */
	__u64 max_len;	/* the longest of these packets (length as in `bytes`) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pktcount_key);
	__type(value, struct pktcount_value);
} pktcount SEC(".maps");

/* The first 8 bytes after an IPv6 header, where a BIG TCP jumbo hop-by-hop header sits. */
struct hbh8 {
	__u8 nexthdr;
	__u8 hdrlen;
	__u8 opt_type;
	__u8 opt_len;
	__be32 jumbo_len;
};

static __always_inline __u8 log2_u32(__u32 v)
{
	__u8 r = 0;

	if (v >= 1U << 16) {
		v >>= 16;
		r += 16;
	}
	if (v >= 1U << 8) {
		v >>= 8;
		r += 8;
	}
	if (v >= 1U << 4) {
		v >>= 4;
		r += 4;
	}
	if (v >= 1U << 2) {
		v >>= 2;
		r += 2;
	}
	if (v >= 1U << 1)
		r += 1;
	return r;
}

/* The classifiers take headers the caller has made safe to read: copied out of an skb at
 * tc (bpf_skb_load_bytes works on non-linear skbs too), bounds-checked packet data at XDP. */
static __always_inline void classify4(struct pktcount_key *key, const struct iphdr *ip)
{
	key->l4proto = ip->protocol;
	if (ip->tot_len == 0)
		key->lenfield = PKTCOUNT_LEN_ZERO;
}

/* HBH may be NULL when nothing follows the IPv6 header. */
static __always_inline void classify6(struct pktcount_key *key, const struct ipv6hdr *ip6,
				      const struct hbh8 *hbh)
{
	key->l4proto = ip6->nexthdr;
	if (ip6->nexthdr == IPPROTO_HOPOPTS && hbh)
		key->l4proto = hbh->nexthdr;
	if (ip6->payload_len != 0)
		return;
	if (ip6->nexthdr == IPPROTO_HOPOPTS && hbh && hbh->opt_type == IPV6_TLV_JUMBO)
		key->lenfield = PKTCOUNT_LEN_JUMBO_HBH;
	else
		key->lenfield = PKTCOUNT_LEN_ZERO;
}

static __always_inline void count(struct pktcount_key *key, __u32 len, __u32 segs)
{
	struct pktcount_value *v, first = {
		.packets = 1, .bytes = len, .segments = segs, .max_len = len,
	};

	key->bucket = log2_u32(len);
	/* Per-CPU values: plain adds are safe. A racing first insert on another CPU makes
	 * BPF_NOEXIST fail; then the entry exists and the second lookup finds it. */
	v = bpf_map_lookup_elem(&pktcount, key);
	if (!v && bpf_map_update_elem(&pktcount, key, &first, BPF_NOEXIST) == 0)
		return;
	if (!v)
		v = bpf_map_lookup_elem(&pktcount, key);
	if (v) {
		v->packets += 1;
		v->bytes += len;
		v->segments += segs;
		if (len > v->max_len)
			v->max_len = len;
	}
}

static __always_inline int count_skb(struct __sk_buff *skb, __u8 hook)
{
	struct pktcount_key key = { .ifindex = skb->ifindex, .hook = hook };
	__u32 l3 = sizeof(struct ethhdr);

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		key.family = 4;
		if (bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)) == 0)
			classify4(&key, &ip);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		struct hbh8 hbh;

		key.family = 6;
		if (bpf_skb_load_bytes(skb, l3, &ip6, sizeof(ip6)) == 0)
			classify6(&key, &ip6,
				  bpf_skb_load_bytes(skb, l3 + sizeof(ip6), &hbh, sizeof(hbh)) == 0 ?
				  &hbh : NULL);
	}
	count(&key, skb->len, skb->gso_segs ? skb->gso_segs : 1);
	/* TC_ACT_UNSPEC: tc goes on to the next filter, tcx/netkit to the next program. */
	return TC_ACT_UNSPEC;
}

#endif /* LAB_PKTCOUNT_H */
