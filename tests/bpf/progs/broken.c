// SPDX-License-Identifier: GPL-2.0
/* A program the verifier must reject: it reads the packet without checking data_end.
 * Used to test that a rejection names the program and its section and shows the log. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int broken_tc(struct __sk_buff *skb)
{
	unsigned char *data = (void *)(long)skb->data;

	return data[12];
}

char LICENSE[] SEC("license") = "GPL";
