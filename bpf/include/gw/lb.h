/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Services and backend selection.
 *
 * A service is a frontend (VIP, port, protocol) with a selection table: an array of backend
 * ids, each backend appearing in proportion to its weight. Maglev indexes the table with the
 * flow's hash (the table is the Maglev lookup table, NSDI 2016, computed by
 * lab/datapath/gateway/maglev.py), random selection with a random number. Only active backends are in
 * a table; terminating and quarantined ones keep their entry in gw_backends (existing
 * connections carry their backend's address in conntrack and finish), but get no new flows.
 *
 * Each service owns one slot of the map-in-map gw_tables. The control plane builds a new
 * table aside and swaps it into the slot in one update, so a packet sees the old table or
 * the new one, never a half-written one.
 */
#ifndef GW_LB_H
#define GW_LB_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>

#include "tuple.h"
#include "jhash.h"
#include "config.h"

#define GW_MAX_SERVICES 1024
#define GW_MAX_BACKENDS 65536
#define GW_TABLE_SIZE 16381	/* the default Maglev M (gw_config.table_size sets it) */

enum gw_selection {
	GW_SEL_MAGLEV = 0,
	GW_SEL_RANDOM = 1,
};

enum gw_backend_state {
	GW_BACKEND_ACTIVE = 0,
	GW_BACKEND_TERMINATING = 1,
	GW_BACKEND_QUARANTINED = 2,
};

struct gw_svc_key {
	struct in6_addr addr;	/* the VIP, IPv4-mapped for IPv4 */
	__be16 port;
	__u8 proto;
	__u8 family;
};

struct gw_service {
	__u32 id;		/* its slot in gw_tables, 1..GW_MAX_SERVICES-1 */
	enum gw_selection selection;
};

struct gw_backend {
	struct in6_addr addr;	/* IPv4-mapped for IPv4 */
	__be16 port;
	__u8 family;
	__u8 pad;
	enum gw_backend_state state;	/* the control plane's record: the datapath goes by
					 * the tables */
	__u32 service;		/* id of the service it belongs to */
	__u32 weight;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_MAX_SERVICES);
	__type(key, struct gw_svc_key);
	__type(value, struct gw_service);
} gw_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct gw_backend);
} gw_backends SEC(".maps");

/* Selection tables, gw_config.table_size entries each (BPF_F_INNER_MAP: a size other than
 * the template's is accepted). */
struct gw_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GW_TABLE_SIZE);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, GW_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct gw_table);
} gw_tables SEC(".maps");

static __always_inline const struct gw_service *gw_service_of(const struct gw_tuple *t)
{
	struct gw_svc_key key = {
		.addr = t->daddr,
		.port = t->dport,
		.proto = t->proto,
		.family = t->family,
	};

	return bpf_map_lookup_elem(&gw_services, &key);
}

/* The backend id for a new connection with tuple `t` (client side) to `svc`, 0 if none. */
static __always_inline __u32 gw_select(const struct gw_tuple *t, const struct gw_service *svc,
				       const struct gw_config *cfg)
{
	__u32 slot = svc->id, idx, *backend;
	void *table;

	if (!cfg->table_size)
		return 0;
	table = bpf_map_lookup_elem(&gw_tables, &slot);
	if (!table)
		return 0;
	if (svc->selection == GW_SEL_RANDOM)
		idx = bpf_get_prandom_u32();
	else
		idx = gw_jhash_words((const __u32 *)t, sizeof(*t) / 4, cfg->hash_seed);
	idx %= cfg->table_size;
	backend = bpf_map_lookup_elem(table, &idx);
	return backend ? *backend : 0;
}

#endif /* GW_LB_H */
