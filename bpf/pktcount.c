// SPDX-License-Identifier: GPL-2.0
/* Packet counter by length bucket and protocol, at tc/tcx/netkit (pktcount_tc) or XDP
 * (pktcount_xdp). A transparent observer: it never changes or drops a packet.
 *
 * Bucket N counts packets whose length (L2 header included) is in [2^N, 2^(N+1)). The BIG TCP
 * scenario uses it as proof that super-packets crossed a link: any count at bucket 16 or above
 * is a packet larger than 64 KiB, which only exists when GSO/GRO go beyond the legacy limit.
 * `segments` adds up skb gso_segs, so the bytes-per-segment ratio is visible too.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum pktcount_hook {
	PKTCOUNT_TC = 1,
	PKTCOUNT_XDP = 2,
};

struct pktcount_key {
	__u32 ifindex;
	__u8 family;	/* 4, 6, or 0 for anything that is not IP */
	__u8 l4proto;	/* IPPROTO_* after the IP header (IPv6: after a hop-by-hop header) */
	__u8 bucket;	/* floor(log2(length)) */
	__u8 hook;	/* enum pktcount_hook */
};

struct pktcount_value {
	__u64 packets;
	__u64 bytes;
	__u64 segments;	/* wire segments these packets stand for (gso_segs, 1 if not GSO) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pktcount_key);
	__type(value, struct pktcount_value);
} pktcount SEC(".maps");

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

/* family and l4proto from the IP header right after an Ethernet header, if it is linear. */
static __always_inline void classify(struct pktcount_key *key, __be16 proto, void *data,
				     void *data_end)
{
	void *l3 = data + sizeof(struct ethhdr);

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		key->family = 4;
		if ((void *)(ip + 1) <= data_end)
			key->l4proto = ip->protocol;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		__u8 *hbh = (void *)(ip6 + 1);

		key->family = 6;
		if ((void *)(ip6 + 1) > data_end)
			return;
		key->l4proto = ip6->nexthdr;
		/* IPv6 BIG TCP packets carry a hop-by-hop jumbo option before TCP: look past it. */
		if (ip6->nexthdr == IPPROTO_HOPOPTS && (void *)(hbh + 1) <= data_end)
			key->l4proto = *hbh;
	}
}

static __always_inline void count(struct pktcount_key *key, __u32 len, __u32 segs)
{
	struct pktcount_value *v, first = { .packets = 1, .bytes = len, .segments = segs };

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
	}
}

SEC("tc")
int pktcount_tc(struct __sk_buff *skb)
{
	struct pktcount_key key = { .ifindex = skb->ifindex, .hook = PKTCOUNT_TC };

	classify(&key, skb->protocol, (void *)(long)skb->data, (void *)(long)skb->data_end);
	count(&key, skb->len, skb->gso_segs ? skb->gso_segs : 1);
	/* TC_ACT_UNSPEC: tc goes on to the next filter, tcx/netkit to the next program. */
	return TC_ACT_UNSPEC;
}

SEC("xdp")
int pktcount_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct pktcount_key key = { .ifindex = ctx->ingress_ifindex, .hook = PKTCOUNT_XDP };
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) <= data_end)
		classify(&key, eth->h_proto, data, data_end);
	count(&key, data_end - data, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
