/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The stateful gateway for one packet: find its connection in conntrack (or start one on a
 * service's frontend), then rewrite it to the connection's other side, translating between
 * IPv4 and IPv6 with the stateless translator's code (bpf/include/xlat/) where the families
 * differ and NATing in place where they do not; ICMP errors about a connection go to its
 * other end, the quoted packet rewritten to match what that end sent.
 *
 * Packets with no connection and no service are not the gateway's (GW_PASS). Fragments are
 * left to the stack: the gateway does not reassemble (docs/gateway.md).
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include "xlat/ctx.h"
#include "xlat/xlat46.h"
#include "xlat/xlat64.h"

#include "config.h"
#include "tuple.h"
#include "lb.h"
#include "conntrack.h"
#include "nat.h"

/* The packet being processed, handed from the stage that finds its connection to the stage
 * that rewrites it. Each stage is a function of its own (see the end of this file), so the
 * verifier's 512-byte stack limit applies to each call chain, not to both stages at once;
 * the state lives in per-CPU scratch space (a program runs to completion on its CPU). */
struct gw_scratch {
	union {
		struct xlat46 x46;	/* parsed and validated by translation */
		struct xlat64 x64;
	};
	struct gw_tuple nat;		/* what the packet becomes (conntrack) */
	__be16 ports[2];		/* its ports as received */
	__u32 l4off;			/* offset of its transport header */
};

/* Opaque to user space (it has no business there, and header bitfields have no ctypes). */
struct gw_scratch_bytes {
	__u8 bytes[sizeof(struct gw_scratch)];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_scratch_bytes);
} gw_scratch SEC(".maps");

static __always_inline struct gw_scratch *gw_scratch_get(void)
{
	__u32 zero = 0;

	return (struct gw_scratch *)bpf_map_lookup_elem(&gw_scratch, &zero);
}

/* The connection of a TCP/UDP packet with tuple `t` and TCP `flags`, given `e`, its
 * conntrack entry if any. On GW_NEW, GW_FORWARD and GW_REPLY, `nat` holds the tuple the
 * packet is to be rewritten to. */
static __attribute__((noinline)) enum gw_outcome gw_conn(const struct gw_tuple *t,
							 struct gw_ct *e, __u8 flags,
							 const struct gw_config *cfg,
							 struct gw_tuple *nat)
{
	__u64 now = bpf_ktime_get_ns();
	const struct gw_service *svc;

	if (e && e->dir == GW_CT_REPLY) {
		struct gw_ct *f = gw_ct_forward_of(e, now);

		if (!f) {
			bpf_map_delete_elem(&gw_ct, t);
			return GW_PASS_STALE;
		}
		gw_ct_touch(f, cfg, t->proto, gw_seen_bits(GW_CT_REPLY, flags), now);
		*nat = e->nat;
		return GW_REPLY;
	}
	if (e) {
		if (!gw_ct_expired(e, now) && !(gw_tcp_syn_only(flags) && gw_ct_closing(e->seen))) {
			gw_ct_touch(e, cfg, t->proto, gw_seen_bits(GW_CT_FORWARD, flags), now);
			*nat = e->nat;
			return GW_FORWARD;
		}
		/* Over (expired, or closed and a new SYN reuses the tuple): start afresh. */
		gw_ct_delete(t, e);
	}
	svc = gw_service_of(t);
	if (!svc)
		return GW_PASS;
	return gw_ct_create(t, svc, cfg, flags, nat);
}

/* gw6's answer for ICMPv6 found behind extension headers: gw6_icmp's business. */
#define GW_ICMP6_BEHIND_EXT GW_OUTCOME_MAX

static __always_inline bool gw_is_conn(int rc)
{
	return rc == GW_NEW || rc == GW_FORWARD || rc == GW_REPLY;
}

/* Ports and, for TCP, flags of the transport header at `off`. */
static __always_inline int gw_load_l4(const struct pkt *p, __u32 off, __u8 proto,
				      __be16 *ports, __u8 *flags)
{
	*flags = 0;
	if (pkt_load(p, off, ports, GW_PORTS_LEN))
		return -1;
	if (proto == IPPROTO_TCP && pkt_load(p, off + 13, flags, 1))
		return -1;
	return 0;
}

static __always_inline bool gw_l4_ok(__u8 kind)
{
	return kind == XLAT_L4_TCP || kind == XLAT_L4_UDP || kind == XLAT_L4_UDP_NOCSUM;
}

/* The ICMP checksum at `icmp_off` follows quoted bytes the gateway rewrote (their sum
 * changed by `diff`), in the packet and in the translator's parsed ICMP header `icmp`: a
 * translating commit checks the message's checksum against that header and the quote as the
 * packet holds it then (without the checksum cut off in an RFC 792 quote, the quoted
 * transport checksum cannot absorb the new ports, and the ICMP checksum changes). */
static __always_inline int gw_icmp_csum_update(const struct pkt *p, __u32 icmp_off, __u32 diff,
					       struct icmp_hdr8 *icmp)
{
	if (pkt_l4_csum_update(p, icmp_off + 2, diff, 0, false))
		return -1;
	return pkt_load_u16(p, icmp_off + 2, &icmp->checksum);
}

/* --- IPv4 arrivals ---------------------------------------------------------------------- */

/* An ICMPv4 error about a connection: to the connection's other end. */
static __always_inline int gw4_icmp_body(const struct pkt *p)
{
	const struct gw_config *cfg = gw_config();
	__u32 icmp_off, in_off, in_l4off, rest, pseudo;
	struct gw_tuple key = {}, nat;
	struct gw_scratch *scratch = gw_scratch_get();
	struct xlat46 *s;
	__be16 q[2];
	struct gw_ct *e;
	__s64 sum, sum2;
	int rc;

	if (!cfg || !scratch)
		return GW_PASS;
	s = &scratch->x46;
	if (!xlat46_parse(p, s))
		return GW_PASS;
	rc = xlat46_validate(p, s);
	if (rc || s->l4 != XLAT_L4_ICMP_ERROR || !gw_l4_ok(s->in_l4))
		return GW_PASS;
	icmp_off = ETH_HLEN + PKT_OPAQUE(s->out.hlen);
	in_off = icmp_off + ICMP_HLEN;
	in_l4off = in_off + PKT_OPAQUE(s->in.hlen);
	rest = s->in_avail - s->in.hlen;
	if (rest < GW_PORTS_LEN || pkt_load(p, in_l4off, q, GW_PORTS_LEN))
		return GW_PASS;
	/* The quoted packet went from us to the error's sender: the reverse of what arrives. */
	if (s->out.ip.daddr != s->in.ip.saddr)
		return GW_PASS;
	gw_addr_from4(&key.saddr, s->in.ip.daddr);
	gw_addr_from4(&key.daddr, s->in.ip.saddr);
	key.sport = q[1];
	key.dport = q[0];
	key.proto = s->in.ip.protocol;
	key.family = GW_AF4;
	e = bpf_map_lookup_elem(&gw_ct, &key);
	if (!e)
		return GW_PASS;
	nat = e->nat;

	if (nat.family == GW_AF6) {
		sum = gw_nat_quoted_ports(p, in_l4off, rest, s->in_l4, nat.dport, nat.sport, 0);
		if (sum < 0 || gw_icmp_csum_update(p, icmp_off, (__u32)sum, &s->icmp))
			return GW_DROP_ERROR;
		s->saddr = nat.saddr;
		s->daddr = nat.daddr;
		s->in_saddr = nat.daddr;
		s->in_daddr = nat.saddr;
		rc = xlat46_commit_error(p, s, cfg->zero_tos, cfg->mtu4, cfg->mtu6);
		return rc == XLAT_DONE46 ? GW_ICMP_ERROR : GW_INVALID(rc);
	}

	sum = gw_nat4_quoted_addrs(p, in_off, &s->in.ip, gw_addr_to4(&nat.daddr),
				   gw_addr_to4(&nat.saddr), &pseudo);
	if (sum < 0)
		return GW_DROP_ERROR;
	sum2 = gw_nat_quoted_ports(p, in_l4off, rest, s->in_l4, nat.dport, nat.sport, pseudo);
	if (sum2 < 0 ||
	    pkt_l4_csum_update(p, icmp_off + 2, csum_add((__u32)sum, (__u32)sum2), 0, false) ||
	    gw_nat4_addrs(p, ETH_HLEN, &s->out.ip, gw_addr_to4(&nat.saddr),
			  gw_addr_to4(&nat.daddr), &pseudo))
		return GW_DROP_ERROR;
	return GW_ICMP_ERROR;
}

static __always_inline int gw4_body(const struct pkt *p)
{
	const struct gw_config *cfg = gw_config();
	struct gw_scratch *scratch = gw_scratch_get();
	struct gw_tuple t = {};
	struct xlat46 *s;
	__be16 ports[2];
	__u32 l4off;
	struct gw_ct *e;
	__u8 flags;
	int rc;

	if (!cfg || !scratch)
		return GW_PASS;
	s = &scratch->x46;
	if (!xlat46_parse(p, s) || s->out.ip.ihl < 5)
		return GW_PASS;
	if (s->out.ip.protocol != IPPROTO_TCP && s->out.ip.protocol != IPPROTO_UDP)
		return GW_PASS;
	l4off = ETH_HLEN + s->out.ip.ihl * 4;
	if (gw_load_l4(p, l4off, s->out.ip.protocol, ports, &flags))
		return GW_PASS;
	gw_addr_from4(&t.saddr, s->out.ip.saddr);
	gw_addr_from4(&t.daddr, s->out.ip.daddr);
	t.sport = ports[0];
	t.dport = ports[1];
	t.proto = s->out.ip.protocol;
	t.family = GW_AF4;

	e = bpf_map_lookup_elem(&gw_ct, &t);
	if (!e && !gw_service_of(&t))
		return GW_PASS;
	if (s->out.ip.frag_off & bpf_htons(IP4_MF | IP4_OFFSET))
		return GW_PASS_FRAGMENT;
	rc = xlat46_validate(p, s);
	if (rc)
		return GW_INVALID(rc);
	if (!gw_l4_ok(s->l4))
		return GW_INVALID(XLAT_DROP_MALFORMED);

	scratch->ports[0] = ports[0];
	scratch->ports[1] = ports[1];
	scratch->l4off = l4off;
	return gw_conn(&t, e, flags, cfg, &scratch->nat);
}

/* Rewrite the IPv4 packet gw4 found the connection of: 0, or a failure outcome. */
static __always_inline int gw4_nat_body(const struct pkt *p)
{
	const struct gw_config *cfg = gw_config();
	struct gw_scratch *scratch = gw_scratch_get();
	const struct gw_tuple *nat;
	struct xlat46 *s;
	__be16 new[2];
	__u32 pseudo;
	int rc;

	if (!cfg || !scratch)
		return GW_DROP_ERROR;
	s = &scratch->x46;
	nat = &scratch->nat;
	new[0] = nat->sport;
	new[1] = nat->dport;
	if (nat->family == GW_AF6) {
		if (gw_nat_ports(p, scratch->l4off, s->l4, scratch->ports, new, 0))
			return GW_DROP_ERROR;
		s->saddr = nat->saddr;
		s->daddr = nat->daddr;
		rc = xlat46_commit(p, s, cfg->zero_tos, cfg->jumbo_hbh);
		return rc == XLAT_DONE46 ? 0 : GW_INVALID(rc);
	}
	if (gw_nat4_addrs(p, ETH_HLEN, &s->out.ip, gw_addr_to4(&nat->saddr),
			  gw_addr_to4(&nat->daddr), &pseudo) ||
	    gw_nat_ports(p, scratch->l4off, s->l4, scratch->ports, new, pseudo))
		return GW_DROP_ERROR;
	return 0;
}

/* --- IPv6 arrivals ---------------------------------------------------------------------- */

static __always_inline int gw6_icmp_body(const struct pkt *p)
{
	const struct gw_config *cfg = gw_config();
	__u32 icmp_off, in_off, in_l4off, rest, pseudo;
	struct gw_tuple key = {}, nat;
	struct gw_scratch *scratch = gw_scratch_get();
	struct xlat64 *s;
	__be16 q[2];
	struct gw_ct *e;
	__s64 sum;
	int rc;

	if (!cfg || !scratch)
		return GW_PASS;
	s = &scratch->x64;
	if (!xlat64_parse(p, s))
		return GW_PASS;
	rc = xlat64_validate(p, s);
	if (rc || s->l4 != XLAT_L4_ICMP_ERROR || !gw_l4_ok(s->in_l4))
		return GW_PASS;
	icmp_off = ETH_HLEN + PKT_OPAQUE(s->out.hlen);
	in_off = icmp_off + ICMP_HLEN;
	in_l4off = in_off + PKT_OPAQUE(s->in.hlen);
	rest = s->in_avail - s->in.hlen;
	if (rest < GW_PORTS_LEN || pkt_load(p, in_l4off, q, GW_PORTS_LEN))
		return GW_PASS;
	if (!gw_addr_eq(&s->out.ip.daddr, &s->in.ip.saddr))
		return GW_PASS;
	key.saddr = s->in.ip.daddr;
	key.daddr = s->in.ip.saddr;
	key.sport = q[1];
	key.dport = q[0];
	key.proto = s->in.proto;
	key.family = GW_AF6;
	e = bpf_map_lookup_elem(&gw_ct, &key);
	if (!e)
		return GW_PASS;
	nat = e->nat;

	if (nat.family == GW_AF4) {
		sum = gw_nat_quoted_ports(p, in_l4off, rest, s->in_l4, nat.dport, nat.sport, 0);
		if (sum < 0 || gw_icmp_csum_update(p, icmp_off, (__u32)sum, &s->icmp))
			return GW_DROP_ERROR;
		s->saddr = gw_addr_to4(&nat.saddr);
		s->daddr = gw_addr_to4(&nat.daddr);
		s->in_saddr = gw_addr_to4(&nat.daddr);
		s->in_daddr = gw_addr_to4(&nat.saddr);
		rc = xlat64_commit_error(p, s, cfg->zero_tos, cfg->mtu4, cfg->mtu6);
		return rc == XLAT_DONE64 ? GW_ICMP_ERROR : GW_INVALID(rc);
	}

	if (gw_nat6_addrs(p, in_off, &s->in.ip, &nat.daddr, &nat.saddr, &pseudo, true))
		return GW_DROP_ERROR;
	sum = gw_nat_quoted_ports(p, in_l4off, rest, s->in_l4, nat.dport, nat.sport, pseudo);
	if (sum < 0 ||
	    pkt_l4_csum_update(p, icmp_off + 2, csum_add(pseudo, (__u32)sum), 0, false) ||
	    gw_nat6_addrs(p, ETH_HLEN, &s->out.ip, &nat.saddr, &nat.daddr, &pseudo, false) ||
	    pkt_l4_csum_update(p, icmp_off + 2, 0, pseudo, false))
		return GW_DROP_ERROR;
	return GW_ICMP_ERROR;
}

static __always_inline int gw6_body(const struct pkt *p)
{
	const struct gw_config *cfg = gw_config();
	struct gw_scratch *scratch = gw_scratch_get();
	struct gw_tuple t = {};
	struct xlat64 *s;
	__be16 ports[2];
	__u32 l4off;
	bool validated = false;
	struct gw_ct *e;
	__u8 flags, proto;
	int rc;

	if (!cfg || !scratch)
		return GW_PASS;
	s = &scratch->x64;
	if (!xlat64_parse(p, s))
		return GW_PASS;
	proto = s->out.ip.nexthdr;
	l4off = ETH_HLEN + IP6_HLEN;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
		/* extension headers first: walk them to the transport header */
		if (xlat64_validate(p, s))
			return GW_PASS;
		if (s->out.frag)
			return GW_PASS;
		validated = true;
		proto = s->out.proto;
		l4off = ETH_HLEN + PKT_OPAQUE(s->out.hlen);
	}
	if (proto == IPPROTO_ICMPV6)
		return GW_ICMP6_BEHIND_EXT;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return GW_PASS;
	if (gw_load_l4(p, l4off, proto, ports, &flags))
		return GW_PASS;
	t.saddr = s->out.ip.saddr;
	t.daddr = s->out.ip.daddr;
	t.sport = ports[0];
	t.dport = ports[1];
	t.proto = proto;
	t.family = GW_AF6;

	e = bpf_map_lookup_elem(&gw_ct, &t);
	if (!e && !gw_service_of(&t))
		return GW_PASS;
	if (!validated) {
		rc = xlat64_validate(p, s);
		if (rc)
			return GW_INVALID(rc);
	}
	if (!gw_l4_ok(s->l4))
		return GW_INVALID(XLAT_DROP_MALFORMED);

	scratch->ports[0] = ports[0];
	scratch->ports[1] = ports[1];
	scratch->l4off = l4off;
	return gw_conn(&t, e, flags, cfg, &scratch->nat);
}

/* Rewrite the IPv6 packet gw6 found the connection of: 0, or a failure outcome. */
static __always_inline int gw6_nat_body(const struct pkt *p)
{
	const struct gw_config *cfg = gw_config();
	struct gw_scratch *scratch = gw_scratch_get();
	const struct gw_tuple *nat;
	struct xlat64 *s;
	__be16 new[2];
	__u32 pseudo;
	int rc;

	if (!cfg || !scratch)
		return GW_DROP_ERROR;
	s = &scratch->x64;
	nat = &scratch->nat;
	new[0] = nat->sport;
	new[1] = nat->dport;
	if (nat->family == GW_AF4) {
		if (gw_nat_ports(p, scratch->l4off, s->l4, scratch->ports, new, 0))
			return GW_DROP_ERROR;
		s->saddr = gw_addr_to4(&nat->saddr);
		s->daddr = gw_addr_to4(&nat->daddr);
		rc = xlat64_commit(p, s, cfg->zero_tos);
		return rc == XLAT_DONE64 ? 0 : GW_INVALID(rc);
	}
	if (gw_nat6_addrs(p, ETH_HLEN, &s->out.ip, &nat->saddr, &nat->daddr, &pseudo, false) ||
	    gw_nat_ports(p, scratch->l4off, s->l4, scratch->ports, new, pseudo))
		return GW_DROP_ERROR;
	return 0;
}

/* One global function per kind of arrival and hook (see PKT_GLOBAL in xlat/ctx.h): each is
 * verified once, has its own stack frame, and the entry programs stay small. */
PKT_GLOBAL0(int, gw4)
PKT_GLOBAL0(int, gw4_nat)
PKT_GLOBAL0(int, gw4_icmp)
PKT_GLOBAL0(int, gw6)
PKT_GLOBAL0(int, gw6_nat)
PKT_GLOBAL0(int, gw6_icmp)

/* Dispatch on the network and transport protocol. */
static __always_inline int gateway(const struct pkt *p)
{
	struct {
		__be16 h_proto;
		__u8 l3[10];
	} h;
	int rc, err;

	if (pkt_load(p, offsetof(struct ethhdr, h_proto), &h, sizeof(h)))
		return GW_PASS;
	if (h.h_proto == bpf_htons(ETH_P_IP)) {
		/* IPv4 Protocol, the byte at offset 9 */
		if (h.l3[9] == IPPROTO_ICMP)
			return PKT_CALL0(p, gw4_icmp);
		rc = PKT_CALL0(p, gw4);
		if (!gw_is_conn(rc))
			return rc;
		err = PKT_CALL0(p, gw4_nat);
		return err ? err : rc;
	}
	if (h.h_proto != bpf_htons(ETH_P_IPV6))
		return GW_PASS;
	/* IPv6 Next Header, offset 6; ICMPv6 behind extension headers comes back from gw6 */
	rc = h.l3[6] == IPPROTO_ICMPV6 ? GW_ICMP6_BEHIND_EXT : PKT_CALL0(p, gw6);
	if (rc == GW_ICMP6_BEHIND_EXT)
		return PKT_CALL0(p, gw6_icmp);
	if (!gw_is_conn(rc))
		return rc;
	err = PKT_CALL0(p, gw6_nat);
	return err ? err : rc;
}

#endif /* GW_GATEWAY_H */
