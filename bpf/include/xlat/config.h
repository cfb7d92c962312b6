/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The stateless translator's configuration and statistics maps.
 *
 * Filled by lab/datapath/translator/config.py (TranslatorConfig.apply); the layouts below are read
 * from this object's BTF by the Python side, so they are defined only here.
 */
#ifndef XLAT_CONFIG_H
#define XLAT_CONFIG_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>

#include "outcome.h"

struct xlat_config {
	struct in6_addr pref6;   /* RFC 6052 prefix, bits after pref6_len zero */
	__u8  pref6_len;         /* 0 (no prefix), 32, 40, 48, 56, 64 or 96 */
	__u8  icmp_errors;       /* answer discarded packets with ICMP errors (RFC 7915 4.4, 5.4) */
	__u8  allow4;            /* 4->6 sources must match xlat_allow4 */
	__u8  zero_tos;          /* RFC 7915 4.1/5.1 option: traffic class and TOS set to 0 */
	__u16 mtu4;              /* IPv4-side next-hop MTU for PMTU arithmetic, 0 = unknown */
	__u16 mtu6;              /* IPv6-side next-hop MTU, 0 = unknown */
	__u8  use_eam;           /* xlat_eam4/6 have entries (lookups in empty tries skipped) */
	__u8  use_excl4;         /* xlat_excl4 has entries */
	__u8  jumbo_hbh;         /* IPv6 BIG TCP packets built 4->6 carry a Hop-by-Hop Jumbo
				  * Payload option (6.12, 6.18), else only payload length 0
				  * (7.2, 7.3): the form this kernel's own stack emits, found at run
				  * time (lab/datapath/bigtcp_form.py) */
	__u8  pad;
	__be32 pool4;            /* RFC 6791 source of ICMPv4 errors from untranslatable IPv6
				  * sources, 0 = drop such errors */
	__be32 src4;             /* source of ICMPv4 errors the translator sends itself */
	struct in6_addr src6;    /* source of ICMPv6 errors the translator sends itself */
};

struct xlat_lpm4_key {
	__u32 prefixlen;
	__be32 addr;
};

struct xlat_lpm6_key {
	__u32 prefixlen;
	struct in6_addr addr;
};

/* One explicit address mapping (RFC 7757): v4/v4_len <-> v6/v6_len, suffixes of equal
 * length (32 - v4_len == 128 - v6_len), so the suffix is the low `suffix_len` bits of the
 * last 32-bit word on both sides. Stored in both tries, keyed by each side. */
struct xlat_eam {
	struct in6_addr v6;
	__be32 v4;
	__u8 suffix_len;         /* 0..32 */
	__u8 own;                /* the translator host's own address pair: packets to it are
				  * for the host, not translated (its own packets from it are) */
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlat_config);
} xlat_cfg SEC(".maps");

/* Explicit address mappings, longest prefix match on either side. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xlat_lpm4_key);
	__type(value, struct xlat_eam);
} xlat_eam4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xlat_lpm6_key);
	__type(value, struct xlat_eam);
} xlat_eam6 SEC(".maps");

/* IPv4 sources allowed through 4->6 when XLAT_F_ALLOW4 is set. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xlat_lpm4_key);
	__type(value, __u8);
} xlat_allow4 SEC(".maps");

/* IPv4 ranges never composed with the RFC 6052 prefix: the non-global ranges when the
 * prefix is the well-known 64:ff9b::/96 (RFC 6052 3.1), plus configured exclusions. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xlat_lpm4_key);
	__type(value, __u8);
} xlat_excl4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLAT_OUTCOME_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xlat_stats SEC(".maps");

static __always_inline const struct xlat_config *xlat_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&xlat_cfg, &zero);
}

static __always_inline void xlat_count(enum xlat_outcome outcome)
{
	__u32 key = outcome;
	__u64 *v = bpf_map_lookup_elem(&xlat_stats, &key);

	if (v)
		*v += 1;
}

#endif /* XLAT_CONFIG_H */
