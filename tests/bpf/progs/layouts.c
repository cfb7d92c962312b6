// SPDX-License-Identifier: GPL-2.0
/* Map types with awkward layouts (packed, nested arrays, anonymous unions, padding), for the
 * BTF -> ctypes tests. Never attached. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct addr {
	union {
		__u32 v4;
		__u8 v6[16];
	};
	__u16 port;
};				/* 4-byte aligned: 2 bytes of tail padding */

struct flow {
	struct addr src, dst;
	__u8 proto;
	__u64 cookie;		/* 7 bytes of padding before it */
	__u32 weights[2][3];
} ;

struct __attribute__((packed)) packed_key {
	__u8 family;
	__u32 ifindex;
	__u16 port;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct packed_key);
	__type(value, struct flow);
} flows SEC(".maps");

SEC("tc")
int layouts_tc(struct __sk_buff *skb)
{
	struct packed_key k = {};

	return bpf_map_lookup_elem(&flows, &k) ? 1 : 0;
}

char LICENSE[] SEC("license") = "GPL";
