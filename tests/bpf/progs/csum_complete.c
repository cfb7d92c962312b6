// SPDX-License-Identifier: GPL-2.0
/* Controls for the CHECKSUM_COMPLETE packet tests: one packet byte changed in place (the
 * first byte after the IPv4 and UDP headers, as plain data), with and without skb->csum told
 * of it. The kernel's check after a CHECKSUM_COMPLETE test run must refuse the first and
 * accept the second, or passing it proves nothing about the translator. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define DATA_OFF (ETH_HLEN + 20 + 8)

static __always_inline int bump(struct __sk_buff *skb, int tell)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u16 *word = data + DATA_OFF;    /* the changed byte and the one after it */
	__u32 old, new;

	if ((void *)(word + 1) > end)
		return TC_ACT_SHOT;
	old = *word;
	((__u8 *)word)[0] += 1;
	new = *word;
	if (tell)   /* the sum of what the bytes are less that of what they were */
		bpf_csum_update(skb, new + (__u16)~old);
	return TC_ACT_OK;
}

SEC("tc")
int bump_stale(struct __sk_buff *skb)
{
	return bump(skb, 0);
}

SEC("tc")
int bump_told(struct __sk_buff *skb)
{
	return bump(skb, 1);
}

char LICENSE[] SEC("license") = "GPL";
