/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking with NAT: which backend a connection went to, and how each direction's
 * packets are rewritten.
 *
 * A connection has two entries in one LRU hash, keyed by the tuple its packets carry on
 * arrival:
 *   forward  client -> VIP          nat: gateway (SNAT address, port) -> backend
 *   reply    backend -> gateway     nat: VIP -> client
 * The forward entry holds the connection's state (TCP flags seen both ways, expiry); a reply
 * finds it as the reverse of its own translation. Entries carry the complete translated
 * tuple, so a connection keeps its backend whatever happens to the service's tables, and
 * a backend removed from its service still gets its open connections' packets.
 *
 * Expiry is lazy: an entry past its deadline counts as absent (and is replaced); the LRU
 * evicts what nobody uses. Timeouts come from gw_config (SYN, established, closing, UDP).
 */
#ifndef GW_CONNTRACK_H
#define GW_CONNTRACK_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "tuple.h"
#include "config.h"
#include "lb.h"

#define GW_CT_ENTRIES 262144	/* both directions; a topology's conntrack_entries resizes it */
#define GW_SNAT_TRIES 32	/* source ports tried per new connection */
#define GW_NSEC 1000000000ULL

enum gw_ct_dir {
	GW_CT_FORWARD = 0,
	GW_CT_REPLY = 1,
};

/* What a connection has seen (forward entry), bits. */
enum gw_seen {
	GW_SEEN_SYN = 0x01,	/* the client's SYN */
	GW_SEEN_REPLY = 0x02,	/* a packet from the backend: TCP established, UDP answered */
	GW_SEEN_FIN_FWD = 0x04,
	GW_SEEN_FIN_REP = 0x08,
	GW_SEEN_RST = 0x10,
};

struct gw_ct {
	struct gw_tuple nat;	/* this direction's packets after translation */
	__u64 expires;		/* forward: bpf_ktime_get_ns() past which the connection is gone */
	__u64 created;		/* bpf_ktime_get_ns() */
	__u32 backend;		/* backend id */
	__u32 service;		/* service id */
	enum gw_ct_dir dir;
	enum gw_seen seen;	/* bits, forward entries */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_CT_ENTRIES);
	__type(key, struct gw_tuple);
	__type(value, struct gw_ct);
} gw_ct SEC(".maps");

/* TCP flags byte (offset 13 of the header) */
#define GW_TCP_FIN 0x01
#define GW_TCP_SYN 0x02
#define GW_TCP_RST 0x04
#define GW_TCP_ACK 0x10

static __always_inline bool gw_tcp_syn_only(__u8 flags)
{
	return (flags & (GW_TCP_SYN | GW_TCP_ACK | GW_TCP_RST)) == GW_TCP_SYN;
}

/* GW_SEEN_* bits a packet of direction `dir` with TCP `flags` adds. */
static __always_inline __u8 gw_seen_bits(__u8 dir, __u8 flags)
{
	__u8 bits = dir == GW_CT_REPLY ? GW_SEEN_REPLY : 0;

	if (flags & GW_TCP_RST)
		bits |= GW_SEEN_RST;
	if (flags & GW_TCP_FIN)
		bits |= dir == GW_CT_REPLY ? GW_SEEN_FIN_REP : GW_SEEN_FIN_FWD;
	if (dir == GW_CT_FORWARD && gw_tcp_syn_only(flags))
		bits |= GW_SEEN_SYN;
	return bits;
}

static __always_inline bool gw_ct_closing(__u8 seen)
{
	return (seen & GW_SEEN_RST) ||
	       (seen & (GW_SEEN_FIN_FWD | GW_SEEN_FIN_REP)) == (GW_SEEN_FIN_FWD | GW_SEEN_FIN_REP);
}

static __always_inline __u64 gw_ct_lifetime(const struct gw_config *cfg, __u8 proto, __u8 seen)
{
	__u32 s;

	if (proto != IPPROTO_TCP)
		s = cfg->timeout_other;
	else if (gw_ct_closing(seen))
		s = cfg->timeout_close;
	else if (!(seen & GW_SEEN_REPLY))
		s = cfg->timeout_syn;
	else
		s = cfg->timeout_tcp;
	return (__u64)s * GW_NSEC;
}

static __always_inline bool gw_ct_expired(const struct gw_ct *e, __u64 now)
{
	return e->expires <= now;
}

/* Record a packet on the forward entry `f`. The deadline is rewritten when the state
 * changes and otherwise at most once a second, to keep the entry's cache line clean. */
static __always_inline void gw_ct_touch(struct gw_ct *f, const struct gw_config *cfg,
					__u8 proto, __u8 bits, __u64 now)
{
	__u32 seen = f->seen | bits;
	__u64 expires = now + gw_ct_lifetime(cfg, proto, seen);

	if (seen != f->seen) {
		f->seen = seen;
		f->expires = expires;
	} else if (expires > f->expires + GW_NSEC) {
		f->expires = expires;
	}
}

/* The live forward entry of the connection whose reply entry is `r`, or NULL. */
static __always_inline struct gw_ct *gw_ct_forward_of(const struct gw_ct *r, __u64 now)
{
	struct gw_tuple key;
	struct gw_ct *f;

	gw_tuple_reverse(&key, &r->nat);
	f = bpf_map_lookup_elem(&gw_ct, &key);
	if (!f || f->dir != GW_CT_FORWARD || gw_ct_expired(f, now))
		return NULL;
	return f;
}

/* Remove both entries of the connection whose forward entry `f` is keyed `key`. */
static __always_inline void gw_ct_delete(const struct gw_tuple *key, const struct gw_ct *f)
{
	struct gw_tuple reply;

	gw_tuple_reverse(&reply, &f->nat);
	bpf_map_delete_elem(&gw_ct, &reply);
	bpf_map_delete_elem(&gw_ct, key);
}

static __always_inline __be16 gw_snat_port(const struct gw_config *cfg, __be16 client_port,
					   __u32 attempt)
{
	__u16 lo = cfg->port_min, hi = cfg->port_max, p = bpf_ntohs(client_port);

	/* the client's own port first, as Linux's NAT does: most connections keep it */
	if (!attempt && p >= lo && p <= hi)
		return client_port;
	if (hi < lo)
		return 0;
	return bpf_htons(lo + bpf_get_prandom_u32() % ((__u32)hi - lo + 1));
}

/* A new connection: the client-side tuple `t` to service `svc`. Picks a backend and a
 * source port, inserts the reply entry (claiming the port) and the forward entry, and
 * leaves the forward translation in `nat`. Returns GW_NEW or a drop outcome. */
static __attribute__((noinline)) enum gw_outcome gw_ct_create(const struct gw_tuple *t,
							      const struct gw_service *svc,
							      const struct gw_config *cfg,
							      __u8 tcp_flags, struct gw_tuple *nat)
{
	__u64 now = bpf_ktime_get_ns();
	const struct gw_backend *be;
	struct gw_tuple rkey;
	struct gw_ct v = {};
	__u32 id, i;
	__be16 port = 0;

	id = gw_select(t, svc, cfg);
	be = id ? bpf_map_lookup_elem(&gw_backends, &id) : NULL;
	if (!be)
		return GW_DROP_NO_BACKEND;

	nat->daddr = be->addr;
	nat->dport = be->port;
	nat->proto = t->proto;
	nat->family = be->family;
	nat->pad[0] = 0;
	nat->pad[1] = 0;
	if (be->family == GW_AF4) {
		if (!cfg->snat4)
			return GW_DROP_NO_BACKEND;
		gw_addr_from4(&nat->saddr, cfg->snat4);
	} else {
		nat->saddr = cfg->snat6;
	}

	/* The reply entry: its key is the backend's answer, its translation the reverse of `t`. */
	gw_tuple_reverse(&v.nat, t);
	v.created = now;
	v.backend = id;
	v.service = svc->id;
	v.dir = GW_CT_REPLY;
	rkey.saddr = nat->daddr;
	rkey.daddr = nat->saddr;
	rkey.sport = nat->dport;
	rkey.proto = nat->proto;
	rkey.family = nat->family;
	rkey.pad[0] = 0;
	rkey.pad[1] = 0;
	for (i = 0; i < GW_SNAT_TRIES; i++) {
		struct gw_ct *old;

		rkey.dport = gw_snat_port(cfg, t->sport, i);
		if (!rkey.dport)
			break;
		if (!bpf_map_update_elem(&gw_ct, &rkey, &v, BPF_NOEXIST)) {
			port = rkey.dport;
			break;
		}
		/* Taken: by a live connection, or by one that ended and is only not evicted yet. */
		old = bpf_map_lookup_elem(&gw_ct, &rkey);
		if (old && old->dir == GW_CT_REPLY && !gw_ct_forward_of(old, now) &&
		    !bpf_map_update_elem(&gw_ct, &rkey, &v, BPF_ANY)) {
			port = rkey.dport;
			break;
		}
	}
	if (!port)
		return GW_DROP_NO_PORT;
	nat->sport = port;

	v.nat = *nat;
	v.dir = GW_CT_FORWARD;
	v.seen = gw_seen_bits(GW_CT_FORWARD, tcp_flags);
	v.expires = now + gw_ct_lifetime(cfg, t->proto, v.seen);
	if (bpf_map_update_elem(&gw_ct, t, &v, BPF_ANY)) {
		bpf_map_delete_elem(&gw_ct, &rkey);
		return GW_DROP_ERROR;
	}
	return GW_NEW;
}

#endif /* GW_CONNTRACK_H */
