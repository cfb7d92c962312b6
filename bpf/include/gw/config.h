/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The gateway's settings and statistics.
 *
 * Filled by lab/datapath/gateway/control.py; layouts are read from this object's BTF by the Python
 * side, so they are defined only here. All maps are pinned: the control plane (the `lab
 * service` command, the agent) re-opens them, and state survives its restarts.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>

#include "xlat/outcome.h"

struct gw_config {
	struct in6_addr snat6;	/* source address of connections to IPv6 backends */
	__be32 snat4;		/* ... to IPv4 backends (0: none configured) */
	__u16 port_min;		/* SNAT source ports, host order, inclusive */
	__u16 port_max;
	__u32 table_size;	/* entries of every selection table (a prime, Maglev's M) */
	__u32 hash_seed;	/* flow hash seed: equal on gateways that must agree */
	__u32 timeout_syn;	/* seconds a connection lives: TCP before the backend answers */
	__u32 timeout_tcp;	/* TCP, established */
	__u32 timeout_close;	/* TCP after RST or FIN both ways */
	__u32 timeout_other;	/* UDP */
	__u16 mtu4;		/* next-hop MTUs for Packet Too Big arithmetic, 0: unknown */
	__u16 mtu6;
	__u8 zero_tos;		/* RFC 7915 option: traffic class / TOS set to 0 */
	__u8 jumbo_hbh;		/* IPv6 BIG TCP form toward IPv6 backends, as xlat_config's */
	__u8 pad[2];
};

/* What the gateway did with a packet. */
enum gw_outcome {
	GW_PASS = 0,		/* not the gateway's: no connection, no service */
	GW_NEW,			/* first packet of a connection: backend chosen, translated */
	GW_FORWARD,		/* client -> backend, translated */
	GW_REPLY,		/* backend -> client, translated back */
	GW_ICMP_ERROR,		/* ICMP error about a connection, sent on to its other end */
	GW_PASS_FRAGMENT,	/* a fragment: the gateway does not reassemble, left to the stack */
	GW_PASS_STALE,		/* a reply whose connection is gone, left to the stack */
	GW_DROP_NO_BACKEND,	/* service without active backends */
	GW_DROP_NO_PORT,	/* no free SNAT port toward the chosen backend */
	GW_DROP_INVALID,	/* refused by translation (the reason: gw_xlat_drops) */
	GW_DROP_ERROR,		/* a helper failed */
	GW_OUTCOME_MAX,
};

/* A gateway result: the outcome, and for GW_DROP_INVALID the translation's reason. */
#define GW_INVALID(xlat_reason) (GW_DROP_INVALID | ((xlat_reason) << 8))
#define GW_RESULT_OUTCOME(rc) ((rc) & 0xff)
#define GW_RESULT_XLAT(rc) ((rc) >> 8)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_config);
} gw_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_OUTCOME_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gw_stats SEC(".maps");

/* Packets translation refused, by enum xlat_outcome (shared with the stateless translator). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLAT_OUTCOME_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gw_xlat_drops SEC(".maps");

static __always_inline const struct gw_config *gw_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&gw_cfg, &zero);
}

/* Count a packet by outcome and, when translation refused it, by reason. A function of its
 * own, so that the object's BTF names both enums for the control plane's statistics. */
static __attribute__((noinline)) void gw_count_result(enum gw_outcome outcome,
						      enum xlat_outcome reason)
{
	__u32 key = outcome;
	__u64 *v = bpf_map_lookup_elem(&gw_stats, &key);

	if (v)
		*v += 1;
	key = reason;
	if (key && (v = bpf_map_lookup_elem(&gw_xlat_drops, &key)))
		*v += 1;
}

static __always_inline void gw_count(int result)
{
	gw_count_result(GW_RESULT_OUTCOME(result), GW_RESULT_XLAT(result));
}

#endif /* GW_CONFIG_H */
