// SPDX-License-Identifier: GPL-2.0
/* BPF host routing for the pods of a node (topology `pods: {routing: bpf}`): packets between
 * pods, and between pods and the world, are forwarded by these programs instead of the node's
 * IP stack (no ip6_forward, no netfilter, no second trip through the backlog for pod-bound
 * packets):
 *
 *   hr_from_pod          tc/tcx ingress of the node side of a pod's veth (lxcN): what a pod
 *                        sends. To a pod of this node: straight into that pod's namespace
 *                        (bpf_redirect_peer); elsewhere: the node's FIB picks the device and
 *                        next hop (bpf_fib_lookup), bpf_redirect or bpf_redirect_neigh sends.
 *   hr_from_netkit_pod   the same for a netkit pod, at the netkit peer hook (attached through
 *                        the primary, it runs as the pod transmits). bpf_redirect_peer only
 *                        works at tc ingress, so a packet for a local pod goes out that pod's
 *                        primary instead (bpf_redirect), which hands it to the pod's namespace.
 *   hr_to_pod            tc/tcx ingress of the node's uplinks: packets for a pod of this node
 *                        go straight into its namespace (bpf_redirect_peer); the rest is the
 *                        stack's.
 *
 * The control plane (lab/datapath/hostrouting/control.py) fills hr_pods with the node's pods. Every
 * packet the programs do not forward goes to the stack unchanged (TC_ACT_UNSPEC; at netkit the
 * same value, NETKIT_NEXT, means "pass"). hr_stats counts what happened to each packet, by
 * device in and out: the proof that the programs, not the stack, carried the traffic.
 */
#include "fwd6.h"

#define HR_MAX_PODS 4096

struct hr_pod_key {
	__u32 addr[4];		/* the pod's IPv6 address, network byte order */
};

struct hr_pod {
	__u32 ifindex;		/* the node side of the pod's device (veth lxcN, netkit primary) */
	__u8 pod_mac[ETH_ALEN];	/* the pod's eth0 (zero for netkit L3: no link-layer address) */
	__u8 node_mac[ETH_ALEN];	/* the node side's */
};

enum hr_outcome {
	HR_TO_POD_PEER = 1,	/* into a local pod's namespace: bpf_redirect_peer */
	HR_TO_POD_DEV = 2,	/* into a local netkit pod through its primary: bpf_redirect */
	HR_FIB_DIRECT = 3,	/* routed by the FIB, neighbour known: bpf_redirect */
	HR_FIB_NEIGH = 4,	/* routed by the FIB, neighbour resolved by bpf_redirect_neigh */
	HR_PASS_NOT_IPV6 = 5,
	HR_PASS_LINK_SCOPE = 6,	/* multicast or link-local destination (ND, MLD) */
	HR_PASS_HOP_LIMIT = 7,	/* hop limit 1 or 0: the stack sends Time Exceeded */
	HR_PASS_NOT_LOCAL = 8,	/* at an uplink: not for a pod of this node */
	HR_PASS_FIB = 9,	/* the FIB lookup said no (detail: BPF_FIB_LKUP_RET_*) */
};

struct hr_stats_key {
	__u32 in_ifindex;	/* the device the program ran for */
	__u32 out_ifindex;	/* where the packet was sent; 0 when passed to the stack */
	enum hr_outcome outcome;	/* 4 bytes; typed so the enum is in the BTF Python checks */
	__u32 detail;		/* HR_PASS_FIB: the lookup's BPF_FIB_LKUP_RET_* */
};

struct hr_stats_value {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HR_MAX_PODS);
	__type(key, struct hr_pod_key);
	__type(value, struct hr_pod);
} hr_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct hr_stats_key);
	__type(value, struct hr_stats_value);
} hr_stats SEC(".maps");

static __always_inline void hr_count(struct __sk_buff *skb, __u32 in, __u32 out,
				     __u32 outcome, __u32 detail)
{
	struct hr_stats_key key = { .in_ifindex = in, .out_ifindex = out, .outcome = outcome,
				    .detail = detail };
	struct hr_stats_value *v = bpf_map_lookup_elem(&hr_stats, &key);

	if (!v) {
		struct hr_stats_value zero = {};

		bpf_map_update_elem(&hr_stats, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&hr_stats, &key);
		if (!v)
			return;
	}
	v->packets++;	/* per CPU: no atomics needed */
	v->bytes += skb->len;
}

static __always_inline int hr_pass(struct __sk_buff *skb, __u32 in, __u32 outcome,
				   __u32 detail)
{
	hr_count(skb, in, 0, outcome, detail);
	return TC_ACT_UNSPEC;
}

static __always_inline const struct hr_pod *hr_local_pod(const struct ipv6hdr *ip6)
{
	struct hr_pod_key key;

	__builtin_memcpy(&key, &ip6->daddr, sizeof(key));
	return bpf_map_lookup_elem(&hr_pods, &key);
}

/* Into a pod of this node. AT_INGRESS: the program runs at tc ingress, where
 * bpf_redirect_peer can switch namespaces without another trip through the backlog. */
static __always_inline int hr_into_pod(struct __sk_buff *skb, struct fwd6_packet *p,
				       const struct hr_pod *pod, __u32 in, bool at_ingress)
{
	__u32 out = pod->ifindex;

	if (!fwd6_hop(p->ip6))
		return hr_pass(skb, in, HR_PASS_HOP_LIMIT, 0);
	fwd6_set_macs(p->eth, pod->node_mac, pod->pod_mac);
	if (at_ingress) {
		hr_count(skb, in, out, HR_TO_POD_PEER, 0);
		return bpf_redirect_peer(out, 0);
	}
	hr_count(skb, in, out, HR_TO_POD_DEV, 0);
	return bpf_redirect(out, 0);
}

static __always_inline int hr_from_pod_at(struct __sk_buff *skb, bool at_ingress)
{
	/* At tc ingress skb->ifindex is the device the packet came in on; at netkit's peer hook
	 * the kernel has set skb->dev to the primary already: the node side in both cases. */
	__u32 in = skb->ifindex;
	struct bpf_fib_lookup fib;
	struct fwd6_packet p;
	const struct hr_pod *pod;
	long rc;

	if (!fwd6_parse(skb, &p))
		return hr_pass(skb, in, HR_PASS_NOT_IPV6, 0);
	if (fwd6_link_scoped(&p.ip6->daddr))
		return hr_pass(skb, in, HR_PASS_LINK_SCOPE, 0);
	pod = hr_local_pod(p.ip6);
	if (pod)
		return hr_into_pod(skb, &p, pod, in, at_ingress);
	if (p.ip6->hop_limit <= 1)
		return hr_pass(skb, in, HR_PASS_HOP_LIMIT, 0);

	rc = fwd6_fib(skb, p.ip6, in, &fib);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		fwd6_hop(p.ip6);
		fwd6_set_macs(p.eth, fib.smac, fib.dmac);
		hr_count(skb, in, fib.ifindex, HR_FIB_DIRECT, 0);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = { .nh_family = AF_INET6 };

		/* The lookup left the next hop (the gateway, or the destination on-link) in
		 * ipv6_dst; the kernel resolves its neighbour and writes the MACs. */
		__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, sizeof(nh.ipv6_nh));
		fwd6_hop(p.ip6);
		hr_count(skb, in, fib.ifindex, HR_FIB_NEIGH, 0);
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	return hr_pass(skb, in, HR_PASS_FIB, (__u32)rc);
}

SEC("tc")
int hr_from_pod(struct __sk_buff *skb)
{
	return hr_from_pod_at(skb, true);
}

SEC("tc")
int hr_from_netkit_pod(struct __sk_buff *skb)
{
	return hr_from_pod_at(skb, false);
}

SEC("tc")
int hr_to_pod(struct __sk_buff *skb)
{
	__u32 in = skb->ifindex;
	struct fwd6_packet p;
	const struct hr_pod *pod;

	if (!fwd6_parse(skb, &p))
		return hr_pass(skb, in, HR_PASS_NOT_IPV6, 0);
	pod = hr_local_pod(p.ip6);
	if (!pod)
		return hr_pass(skb, in, HR_PASS_NOT_LOCAL, 0);
	return hr_into_pod(skb, &p, pod, in, true);
}

char LICENSE[] SEC("license") = "GPL";
