// SPDX-License-Identifier: GPL-2.0
/* Verdict from a swappable table: tables[0] is an inner array map whose entry 0 says what to
 * do with every packet. Tests swap the inner map and watch the verdict change (the way the
 * gateway swaps Maglev tables), and set default_action as a global before load. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct verdict {
	__u32 valid;
	__s32 action;		/* TC_ACT_* */
	__u32 ifindex;		/* for TC_ACT_REDIRECT */
	__u16 hits[3];		/* not used by the program: a nested array for layout tests */
};

struct verdict_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct verdict);
} table_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct verdict_table);
} tables SEC(".maps") = {
	.values = { [0] = &table_a },
};

/* Same inner layout, keyed by name hash and starting empty. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct verdict_table);
} named_tables SEC(".maps");

const volatile __s32 default_action = TC_ACT_OK;

SEC("tc")
int verdict_tc(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct verdict *v;
	void *table;

	table = bpf_map_lookup_elem(&tables, &zero);
	if (!table)
		return default_action;
	v = bpf_map_lookup_elem(table, &zero);
	if (!v || !v->valid)
		return default_action;
	if (v->action == TC_ACT_REDIRECT)
		return bpf_redirect(v->ifindex, 0);
	return v->action;
}

char LICENSE[] SEC("license") = "GPL";
