// SPDX-License-Identifier: GPL-2.0
/* The smallest IPv4 -> IPv6 rewrite (no checksums, no options): enough to test that offline
 * runs follow a program that changes the IP version (ethertype, link type of the output). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("tc")
int v4tov6_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct ipv6hdr ip6 = { .version = 6 };
	__be16 proto = bpf_htons(ETH_P_IPV6);

	if ((void *)(ip + 1) > data_end || skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip6.payload_len = bpf_htons(bpf_ntohs(ip->tot_len) - sizeof(*ip));
	ip6.nexthdr = ip->protocol;
	ip6.hop_limit = ip->ttl;
	/* 64:ff9b::/96 (RFC 6052) around the IPv4 addresses */
	ip6.saddr.in6_u.u6_addr16[0] = bpf_htons(0x64);
	ip6.saddr.in6_u.u6_addr16[1] = bpf_htons(0xff9b);
	ip6.saddr.in6_u.u6_addr32[3] = ip->saddr;
	ip6.daddr.in6_u.u6_addr16[0] = bpf_htons(0x64);
	ip6.daddr.in6_u.u6_addr16[1] = bpf_htons(0xff9b);
	ip6.daddr.in6_u.u6_addr32[3] = ip->daddr;
	if (bpf_skb_change_proto(skb, proto, 0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &ip6, sizeof(ip6), 0) ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto), 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
