// SPDX-License-Identifier: GPL-2.0
/* The packet counter of pktcount.c with the direction in its key: pktcount_ingress and
 * pktcount_egress, for tc/tcx. One object per node attached at both hooks of several devices
 * counts into one map, e.g. the BIG TCP proof on a router's links (lab.datapath.bigtcp).
 */
#include "pktcount.h"

SEC("tc")
int pktcount_ingress(struct __sk_buff *skb)
{
	return count_skb(skb, PKTCOUNT_INGRESS);
}

SEC("tc")
int pktcount_egress(struct __sk_buff *skb)
{
	return count_skb(skb, PKTCOUNT_EGRESS);
}

char LICENSE[] SEC("license") = "GPL";
