/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* One packet API over the two hooks, so the same translation code runs at tc and at XDP.
 *
 * `struct pkt` wraps the program context with its kind. Every function here is always
 * inlined and every entry program passes a constant kind, so the compiler drops the other
 * hook's branch and each program only calls helpers its type may use.
 *
 *   tc  (struct __sk_buff): bpf_skb_{load,store}_bytes, bpf_skb_change_proto plus
 *       bpf_skb_adjust_room for header size changes, bpf_l4_csum_replace, which knows the
 *       skb's checksum state (CHECKSUM_PARTIAL: only pseudo-header changes are applied to the
 *       field; CHECKSUM_COMPLETE: skb->csum follows).
 *   XDP (struct xdp_md): bpf_xdp_{load,store}_bytes, bpf_xdp_adjust_head/_tail, checksum
 *       fields updated by hand with full-checksum semantics. XDP has no view of ip_summed:
 *       see docs/translator.md ("Checksums at XDP on veth") for why a veth feeding an XDP
 *       translator must not carry CHECKSUM_PARTIAL packets.
 *
 * Offsets are from the start of the Ethernet header at both hooks.
 */
#ifndef XLAT_CTX_H
#define XLAT_CTX_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "csum.h"

enum pkt_kind {
	PKT_SKB,
	PKT_XDP,
};

struct pkt {
	void *ctx;
	enum pkt_kind kind;
};

#define PKT_IS_XDP(p) ((p)->kind == PKT_XDP)
#define PKT_SKB(p) ((struct __sk_buff *)(p)->ctx)
#define PKT_XDP(p) ((struct xdp_md *)(p)->ctx)

static __always_inline __u32 pkt_len(const struct pkt *p)
{
	if (PKT_IS_XDP(p))
		return (__u32)bpf_xdp_get_buff_len(PKT_XDP(p));
	return PKT_SKB(p)->len;
}

/* A GSO packet (BIG TCP) whose IP payload may be longer than a 16-bit length field says:
 * only skbs are; XDP on veth gets no GSO packets (veth turns GSO off toward an XDP peer). */
static __always_inline bool pkt_big_gso(const struct pkt *p)
{
	if (PKT_IS_XDP(p))
		return false;
	return PKT_SKB(p)->gso_size && PKT_SKB(p)->len > ETH_HLEN + 0xffff;
}

/* Direct packet access: the linear part of the packet at both hooks (the skb's head, the
 * first buffer of an XDP frame). Headers normally lie there; reading and writing them through
 * it saves a helper call (and a copy) per access, which is most of what a translation costs
 * on the fast path. pkt_load()/pkt_store() serve whatever is not linear.
 *
 * The context fields are read in one instruction at a constant offset, the only form the
 * verifier accepts: left to itself, the compiler may compute the field's address once and
 * load through it later ("dereference of modified ctx ptr"). */
#define PKT_CTX_U32(ctx, field) ({							\
	__u64 __v;									\
	asm volatile("%0 = *(u32 *)(%1 + %2)"						\
		     : "=r"(__v) : "r"(ctx), "i"(offsetof(typeof(*(ctx)), field)));	\
	__v;										\
})

static __always_inline void *pkt_data(const struct pkt *p)
{
	if (PKT_IS_XDP(p))
		return (void *)(long)PKT_CTX_U32(PKT_XDP(p), data);
	return (void *)(long)PKT_CTX_U32(PKT_SKB(p), data);
}

static __always_inline void *pkt_data_end(const struct pkt *p)
{
	if (PKT_IS_XDP(p))
		return (void *)(long)PKT_CTX_U32(PKT_XDP(p), data_end);
	return (void *)(long)PKT_CTX_U32(PKT_SKB(p), data_end);
}

/* `len` (a constant) linear bytes at the constant offset `off`, or NULL. */
#define PKT_PTR(p, off, len) ({							\
	void *__d = pkt_data(p), *__e = pkt_data_end(p);			\
	__d + (off) + (len) > __e ? NULL : __d + (off);				\
})

/* Room for packet bytes the helpers copy or sum, per CPU (a program handles one
 * packet at a time on its CPU): bpf_csum_diff() takes at most 512 bytes at a time, more than
 * the BPF stack can spare. */
#define PKT_CHUNK    512
#define PKT_CSUM_MAX 0xffff /* a whole IP payload: ICMP errors, UDP without checksum */

struct pkt_chunk {
	__u8 b[PKT_CHUNK + 4];  /* slack: the verifier bounds (tail + 3) & ~3 by 514 */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pkt_chunk);
} pkt_chunks SEC(".maps");

static __always_inline struct pkt_chunk *pkt_chunk_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&pkt_chunks, &zero);
}

/* A value read back from memory the verifier does not track (the per-CPU scratch, a map
 * value), which forgets how it was computed. A packet offset computed from header lengths
 * (ihl, an extension header chain) is exact for the verifier along each way it took; checked
 * for direct access, it is marked precise back to those lengths, and every way is then
 * walked on separately to the end of the program (400k instructions instead of 90k). So
 * variable offsets for PKT_PTR_VAR() come from PKT_OPAQUE() reads of the lengths in the
 * scratch (or are arguments of a global function, which the verifier sees as unknown). */
#define PKT_OPAQUE(lval) (*(volatile typeof(lval) *)&(lval))

/* The same with a variable offset, bounded by the constant `max` for the verifier (a
 * constant one goes straight to PKT_PTR()). */
#define PKT_PTR_VAR(p, off, len, max) ({						\
	void *__r = NULL;								\
	if (__builtin_constant_p(off)) {						\
		__r = PKT_PTR(p, off, len);						\
	} else {									\
		__u32 __o = (off);							\
		barrier_var(__o);  /* bound-check the very register used below */	\
		if (__o <= (max)) {							\
			void *__d, *__e;						\
			__d = pkt_data(p);						\
			__e = pkt_data_end(p);						\
			if (__d + __o + (len) <= __e)					\
				__r = __d + __o;					\
		}									\
	}										\
	__r;										\
})

/* The skb's checksum state, read from the kernel's struct sk_buff (bpf_cast_to_kern_ctx(),
 * kernel 6.3+; the field found by CO-RE in the running kernel's BTF). tc cannot see
 * ip_summed in struct __sk_buff, yet the right checksum arithmetic depends on it:
 *   CHECKSUM_PARTIAL   a local sender's (veth passes them on): the transport checksum field
 *                      holds the pseudo-header's sum, the kernel completes it at
 *                      csum_start/csum_offset when the packet leaves;
 *   CHECKSUM_COMPLETE  a NIC's with full receive checksums: skb->csum sums the packet from
 *                      the network header on, and must follow every byte changed there;
 *   CHECKSUM_NONE, _UNNECESSARY: every checksum field is complete, nothing else to follow.
 * At XDP: PKT_CSUM_FULL (an xdp_buff has no checksum state; see docs/translator.md for why a
 * veth feeding an XDP translator must not carry CHECKSUM_PARTIAL). */
enum pkt_csum_state {
	PKT_CSUM_FULL,
	PKT_CSUM_COMPLETE,
	PKT_CSUM_PARTIAL,
};

struct sk_buff___xlat {
	__u8 ip_summed:2;
	__u32 csum;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

#define PKT_CHECKSUM_COMPLETE 2 /* include/linux/skbuff.h */
#define PKT_CHECKSUM_PARTIAL  3

static __always_inline enum pkt_csum_state pkt_csum_state(const struct pkt *p)
{
	struct sk_buff___xlat *kskb;
	__u32 summed;

	if (PKT_IS_XDP(p))
		return PKT_CSUM_FULL;
	kskb = bpf_cast_to_kern_ctx(PKT_SKB(p));
	summed = BPF_CORE_READ_BITFIELD(kskb, ip_summed);
	if (summed == PKT_CHECKSUM_PARTIAL)
		return PKT_CSUM_PARTIAL;
	return summed == PKT_CHECKSUM_COMPLETE ? PKT_CSUM_COMPLETE : PKT_CSUM_FULL;
}

/* Whether the skb's transport checksum is still to be completed (CHECKSUM_PARTIAL). */
static __always_inline bool pkt_csum_partial(const struct pkt *p)
{
	return pkt_csum_state(p) == PKT_CSUM_PARTIAL;
}

/* Copies of a constant `len` bytes in the widest words the length allows, between the
 * packet and the program's memory. Packet words are often unaligned (an IPv4 header starts
 * 14 bytes into the frame): the verifier lets programs access them so where the kernel has
 * CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS (x86-64, arm64, ...), as Cilium's datapath does.
 * Storing the parts of a word and loading it whole would stall the store-to-load forwarding
 * of x86 CPUs: the copies and the header builders below write whole words. */
typedef __u64 __attribute__((__may_alias__)) pkt_u64_t;
typedef __u32 __attribute__((__may_alias__)) pkt_u32_t;
typedef __u16 __attribute__((__may_alias__)) pkt_u16_t;
typedef __u8 __attribute__((__may_alias__)) pkt_u8_t;

static __always_inline void pkt_copy(void *to, const void *from, const int len)
{
	int i = 0;

#pragma unroll
	for (; i + 8 <= len; i += 8)
		*(pkt_u64_t *)(to + i) = *(const pkt_u64_t *)(from + i);
	if (len - i >= 4) {
		*(pkt_u32_t *)(to + i) = *(const pkt_u32_t *)(from + i);
		i += 4;
	}
	if (len - i >= 2) {
		*(pkt_u16_t *)(to + i) = *(const pkt_u16_t *)(from + i);
		i += 2;
	}
	if (len - i >= 1)
		*(pkt_u8_t *)(to + i) = *(const pkt_u8_t *)(from + i);
}

/* The same in 32-bit words (`len` a multiple of 4): for headers the builders wrote so. */
static __always_inline void pkt_copy_words(void *to, const void *from, const int len)
{
	int i;

#pragma unroll
	for (i = 0; i + 4 <= len; i += 4)
		*(pkt_u32_t *)(to + i) = *(const pkt_u32_t *)(from + i);
}

/* Sum of a constant `len` bytes at `b`, as bpf_csum_diff() would give it (an odd last byte
 * padded with zero). */
static __always_inline __u32 pkt_sum(const void *b, const int len)
{
	__u64 s = 0;
	int i = 0;

#pragma unroll
	for (; i + 4 <= len; i += 4)
		s += *(const pkt_u32_t *)(b + i);
	if (len - i >= 2) {
		s += *(const pkt_u16_t *)(b + i);
		i += 2;
	}
	if (len - i >= 1)
		s += *(const pkt_u8_t *)(b + i);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	return (__u32)s;
}

/* CHECKSUM_COMPLETE: skb->csum sums the packet from the network header on. Bytes written
 * directly are accounted for here, by the sum of what they replaced subtracted from the sum
 * of what they are (`diff`); only for such skbs. */
static __always_inline void pkt_csum_complete_update(const struct pkt *p, __u32 diff)
{
	if (pkt_csum_state(p) == PKT_CSUM_COMPLETE)
		bpf_csum_update(PKT_SKB(p), diff);
}

/* A GSO packet: segmented (and so sized) later, by the stack or the device. */
static __always_inline bool pkt_is_gso(const struct pkt *p)
{
	return !PKT_IS_XDP(p) && PKT_SKB(p)->gso_size;
}

/* Loads and stores of a constant length up to PKT_DIRECT_MAX at offsets up to
 * PKT_DIRECT_OFF go straight to the packet where its bytes are linear (headers always are,
 * on veth and real NICs alike); the helpers copy the rest. */
#define PKT_DIRECT_MAX 64
#define PKT_DIRECT_OFF 0x7ff
#ifndef PKT_DIRECT_MIN
#define PKT_DIRECT_MIN 0
#endif
#define PKT_DIRECT(len) (__builtin_constant_p(len) && (len) <= PKT_DIRECT_MAX && (len) >= PKT_DIRECT_MIN)

/* Through the helper only: inside loops, where a second way to each byte would multiply the
 * states the verifier walks through (and the loops walk option lists, not the fast path). */
static __always_inline int pkt_load_copy(const struct pkt *p, __u32 off, void *to, __u32 len)
{
	if (PKT_IS_XDP(p))
		return (int)bpf_xdp_load_bytes(PKT_XDP(p), off, to, len);
	return (int)bpf_skb_load_bytes(PKT_SKB(p), off, to, len);
}

/* Bytes that are not linear are copied by the helper into the per-CPU chunk first, so that
 * both ways end in the same copy into `to`: a helper writing the caller's stack directly
 * would leave it in another state than the direct copy does, and the verifier would walk
 * everything after each load twice (it did: 90k instructions became 400k). */
static __always_inline int pkt_load(const struct pkt *p, __u32 off, void *to, __u32 len)
{
	if (PKT_DIRECT(len)) {
		const void *src = PKT_PTR_VAR(p, off, len, PKT_DIRECT_OFF);

		if (!src) {
			struct pkt_chunk *buf = pkt_chunk_get();

			if (!buf || pkt_load_copy(p, off, buf->b, len))
				return -1;
			src = buf->b;
		}
		pkt_copy(to, src, len);
		return 0;
	}
	return pkt_load_copy(p, off, to, len);
}

/* A 16-bit field (a checksum, a port) at `off`. */
static __always_inline int pkt_load_u16(const struct pkt *p, __u32 off, __u16 *to)
{
	return pkt_load(p, off, to, sizeof(*to));
}

/* Store bytes whose change is compensated in the same checksum-covered region (a
 * transport field together with its checksum update), or bytes outside skb->csum (L2). */
static __always_inline int pkt_store_nocsum(const struct pkt *p, __u32 off, const void *from,
					    __u32 len)
{
	if (PKT_DIRECT(len)) {
		void *d = PKT_PTR_VAR(p, off, len, PKT_DIRECT_OFF);

		if (d) {
			pkt_copy(d, from, len);
			return 0;
		}
	}
	if (PKT_IS_XDP(p))
		return (int)bpf_xdp_store_bytes(PKT_XDP(p), off, (void *)from, len);
	return (int)bpf_skb_store_bytes(PKT_SKB(p), off, from, len, 0);
}

/* Store bytes of the network or transport layer whose change is not otherwise accounted
 * for: at tc, a CHECKSUM_COMPLETE skb->csum is updated for them. */
static __always_inline int pkt_store(const struct pkt *p, __u32 off, const void *from, __u32 len)
{
	/* the word sums below need an even offset from the network header (ETH_HLEN is even) */
	if (PKT_DIRECT(len) && !(off & 1)) {
		void *d = PKT_PTR_VAR(p, off, len, PKT_DIRECT_OFF);

		if (d) {
			__u32 old = 0;
			bool complete = pkt_csum_state(p) == PKT_CSUM_COMPLETE;

			if (complete)
				old = pkt_sum(d, len);
			pkt_copy(d, from, len);
			if (complete)
				bpf_csum_update(PKT_SKB(p), csum_add(pkt_sum(from, len), ~old));
			return 0;
		}
	}
	if (PKT_IS_XDP(p))
		return (int)bpf_xdp_store_bytes(PKT_XDP(p), off, (void *)from, len);
	return (int)bpf_skb_store_bytes(PKT_SKB(p), off, from, len, BPF_F_RECOMPUTE_CSUM);
}

/* Write the Ethernet header and the `hlen` bytes (20, 40 or 48) of network-layer header
 * after it, over the `old_words` 32-bit words of header at `old` (skb->csum's account). */
static __always_inline int pkt_write_l3(const struct pkt *p, const struct ethhdr *eth,
					const void *hdr, __u32 hlen, const void *old,
					int old_words)
{
	void *d;

	if (hlen == 20) {
		d = PKT_PTR(p, 0, ETH_HLEN + 20);
		if (!d)
			goto slow;
		pkt_copy_words(d + ETH_HLEN, hdr, 20);
	} else if (hlen == 40) {
		d = PKT_PTR(p, 0, ETH_HLEN + 40);
		if (!d)
			goto slow;
		pkt_copy_words(d + ETH_HLEN, hdr, 40);
	} else if (hlen == 48) {
		d = PKT_PTR(p, 0, ETH_HLEN + 48);
		if (!d)
			goto slow;
		pkt_copy_words(d + ETH_HLEN, hdr, 48);
	} else {
		return -1;
	}
	pkt_copy(d, eth, ETH_HLEN);
	if (pkt_csum_state(p) == PKT_CSUM_COMPLETE) {
		__u32 sum = hlen == 20 ? csum_words(hdr, 5) :
			    hlen == 40 ? csum_words(hdr, 10) : csum_words(hdr, 12);

		bpf_csum_update(PKT_SKB(p), csum_add(sum, ~csum_words(old, old_words)));
	}
	return 0;

slow:	/* headers outside the linear part: the helpers copy, and keep skb->csum themselves */
	if (pkt_store_nocsum(p, 0, eth, ETH_HLEN))
		return -1;
	if (hlen == 20)
		return pkt_store(p, ETH_HLEN, hdr, 20);
	if (hlen == 40)
		return pkt_store(p, ETH_HLEN, hdr, 40);
	return pkt_store(p, ETH_HLEN, hdr, 48);
}

/* Update the transport checksum at `off` for a change of the data it covers by `data` (the
 * caller stores those bytes with pkt_store_nocsum(): the field compensates them) and of the
 * pseudo-header by `pseudo` (addresses, length: outside the packet's transport bytes), as
 * bpf_l4_csum_replace() would, knowing the skb's checksum state: a complete checksum follows
 * both; a partial one (the pseudo-header's sum, CHECKSUM_PARTIAL) only the pseudo-header's;
 * a CHECKSUM_COMPLETE skb->csum the field's change for the pseudo-header's part. `udp`: a
 * zero field means "no checksum" and stays so, and a result of zero is written 0xffff. */
static __always_inline int pkt_l4_csum_update(const struct pkt *p, __u32 off, __u32 data,
					      __u32 pseudo, bool udp)
{
	enum pkt_csum_state state = pkt_csum_state(p);
	__u16 check, new, *f;

	f = PKT_PTR_VAR(p, off, sizeof(*f), PKT_DIRECT_OFF);
	if (f)
		check = *f;
	else if (pkt_load(p, off, &check, sizeof(check)))
		return -1;
	if (udp && check == 0)
		return 0;
	if (state == PKT_CSUM_PARTIAL)
		new = ~csum_fold(csum_add(check, pseudo));
	else
		new = csum_replace_diff(check, csum_add(data, pseudo));
	if (udp && new == 0)
		new = 0xffff;
	if (f)
		*f = new;
	else if (pkt_store_nocsum(p, off, &new, sizeof(new)))
		return -1;
	if (state == PKT_CSUM_COMPLETE && pseudo)
		/* the field moved by -(data + pseudo); the data's own change, +data, is not told */
		bpf_csum_update(PKT_SKB(p), csum_add(csum_add(new, ~(__u32)check), data));
	return 0;
}

/* Replace the `old_len` bytes of network-layer headers that follow the Ethernet header by
 * `new_len` bytes of room, and switch the packet to `proto` (ETH_P_IP or ETH_P_IPV6,
 * different from the current one). The room's contents are undefined: the caller rewrites
 * the Ethernet header and all `new_len` bytes. Everything after the old headers is kept. */
static __always_inline int pkt_change_l3(const struct pkt *p, __u16 proto, int old_len,
					 int new_len)
{
	int delta = new_len - old_len;

	if (PKT_IS_XDP(p))
		return delta ? (int)bpf_xdp_adjust_head(PKT_XDP(p), -delta) : 0;

	/* bpf_skb_change_proto() adds or removes exactly the 20 bytes between an IPv4 and an
	 * IPv6 base header, right after L2, and fixes skb->protocol and the GSO type. The rest
	 * (IPv4 options, IPv6 extension headers, ICMP inner headers) is inserted or removed right
	 * after the new base header, inside the region the caller rewrites. gso_size stays: each
	 * segment keeps its payload, as the translated packet would have. */
	if (bpf_skb_change_proto(PKT_SKB(p), bpf_htons(proto), 0))
		return -1;
	delta += proto == ETH_P_IPV6 ? -20 : 20;
	if (delta && bpf_skb_adjust_room(PKT_SKB(p), delta, BPF_ADJ_ROOM_NET,
					 BPF_F_ADJ_ROOM_FIXED_GSO))
		return -1;
	return 0;
}

/* Grow (positive) or shrink the headroom right after the Ethernet header without changing
 * the protocol: used to wrap a packet into an ICMP error about it. */
static __always_inline int pkt_push_l3(const struct pkt *p, int len)
{
	if (PKT_IS_XDP(p))
		return (int)bpf_xdp_adjust_head(PKT_XDP(p), -len);
	return (int)bpf_skb_adjust_room(PKT_SKB(p), len, BPF_ADJ_ROOM_MAC, 0);
}

/* Cut the packet to `len` bytes (never grows it). */
static __always_inline int pkt_trim(const struct pkt *p, __u32 len)
{
	__u32 cur = pkt_len(p);

	if (len >= cur)
		return 0;
	if (PKT_IS_XDP(p))
		return (int)bpf_xdp_adjust_tail(PKT_XDP(p), (int)len - (int)cur);
	return (int)bpf_skb_change_tail(PKT_SKB(p), len, 0);
}

/* Routines with loops are global functions, one per hook: the verifier checks a global
 * function once, on its own, instead of once per call site and caller state. Their
 * arguments are the context and scalars only. PKT_GLOBAL(name, params, args) defines
 * name_skb() and name_xdp() around the inline `name_body(const struct pkt *p, params)`. */
#define PKT_UNPAREN(...) __VA_ARGS__
#define PKT_GLOBAL(name, params, args)							\
	__attribute__((noinline)) __s64 name##_skb(struct __sk_buff *ctx, PKT_UNPAREN params)	\
	{										\
		struct pkt p = { .ctx = ctx, .kind = PKT_SKB };				\
		return name##_body(&p, PKT_UNPAREN args);				\
	}										\
	__attribute__((noinline)) __s64 name##_xdp(struct xdp_md *ctx, PKT_UNPAREN params)	\
	{										\
		struct pkt p = { .ctx = ctx, .kind = PKT_XDP };				\
		return name##_body(&p, PKT_UNPAREN args);				\
	}
#define PKT_GLOBAL0(ret, name)								\
	__attribute__((noinline)) ret name##_skb(struct __sk_buff *ctx)			\
	{										\
		struct pkt p = { .ctx = ctx, .kind = PKT_SKB };				\
		return name##_body(&p);							\
	}										\
	__attribute__((noinline)) ret name##_xdp(struct xdp_md *ctx)			\
	{										\
		struct pkt p = { .ctx = ctx, .kind = PKT_XDP };				\
		return name##_body(&p);							\
	}
#define PKT_CALL0(p, name)								\
	(PKT_IS_XDP(p) ? name##_xdp(PKT_XDP(p)) : name##_skb(PKT_SKB(p)))
#define PKT_CALL(p, name, ...)								\
	(PKT_IS_XDP(p) ? name##_xdp(PKT_XDP(p), __VA_ARGS__) : name##_skb(PKT_SKB(p), __VA_ARGS__))

/* Ones' complement sum of `len` packet bytes from `off` added to `seed`, or -1. Bytes are
 * summed as 16-bit big-endian words from `off`, which callers keep even. */
#define PKT_CSUM_LINEAR_MAX 1536  /* summed straight from the packet: errors, MTU-sized UDP */

/* Add the sum of a constant `n` bytes at `*at` (linear packet data) to `*s`, and step on.
 * bpf_csum_diff() reads the packet itself: no copy, at most 512 bytes a call. */
#define PKT_CSUM_STEP(at, end, n, s) ({							\
	int __r = -1;									\
	if ((void *)(at) + (n) <= (void *)(end)) {					\
		__s64 __v = bpf_csum_diff(NULL, 0, (void *)(at), (n), *(s));		\
		if (__v >= 0) {								\
			*(s) = (__u32)__v;						\
			(at) += (n);							\
			__r = 0;							\
		}									\
	}										\
	__r;										\
})

/* The sum of linear packet bytes: -1 if they are not all linear. */
static __always_inline __s64 pkt_csum_linear(const struct pkt *p, __u32 off, __u32 len,
					     __u32 seed)
{
	void *at = pkt_data(p), *end = pkt_data_end(p);
	__u32 s = seed, w = 0;
	int i;

	/* bounded so that the verifier can follow the pointer (its ranges stop at 64 KiB);
	 * the very register checked is the one added */
	barrier_var(off);
	if (off > 0x1fff || len > PKT_CSUM_LINEAR_MAX)
		return -1;
	at += off;
	if (at + len > end)
		return -1;
	for (i = 0; i < PKT_CSUM_LINEAR_MAX / 512 && len >= 512; i++, len -= 512)
		if (PKT_CSUM_STEP(at, end, 512, &s))
			return -1;
	if ((len & 256 && PKT_CSUM_STEP(at, end, 256, &s)) ||
	    (len & 128 && PKT_CSUM_STEP(at, end, 128, &s)) ||
	    (len & 64 && PKT_CSUM_STEP(at, end, 64, &s)) ||
	    (len & 32 && PKT_CSUM_STEP(at, end, 32, &s)) ||
	    (len & 16 && PKT_CSUM_STEP(at, end, 16, &s)) ||
	    (len & 8 && PKT_CSUM_STEP(at, end, 8, &s)) ||
	    (len & 4 && PKT_CSUM_STEP(at, end, 4, &s)))
		return -1;
	/* the last 1-3 bytes, zero-padded to a 32-bit word */
	if (len & 3) {
		if (at + 3 <= end) {
			__builtin_memcpy(&w, at, 3);
		} else if (at + 2 <= end) {
			__builtin_memcpy(&w, at, 2);
		} else if (at + 1 <= end) {
			__builtin_memcpy(&w, at, 1);
		} else {
			return -1;
		}
		/* keep only the bytes in range (the packet goes on past them) */
		if ((len & 3) == 1)
			w &= bpf_htonl(0xff000000);
		else if ((len & 3) == 2)
			w &= bpf_htonl(0xffff0000);
		else
			w &= bpf_htonl(0xffffff00);
		s = csum_add(s, w);
	}
	return s;
}

static __always_inline __s64 pkt_csum_range_body(const struct pkt *p, __u32 off, __u32 len,
						 __u32 seed)
{
	struct pkt_chunk *buf = pkt_chunk_get();
	__u32 chunks = len / PKT_CHUNK, s = seed;
	__u64 tail = len % PKT_CHUNK;
	__s64 r;
	__u32 i;

	if (!buf || len > PKT_CSUM_MAX)
		return -1;
	r = pkt_csum_linear(p, off, len, seed);
	if (r >= 0)
		return r;
	/* whole chunks: constant sizes keep the verifier's work linear */
	for (i = 0; i < PKT_CSUM_MAX / PKT_CHUNK && i < chunks; i++) {
		if (pkt_load(p, off, buf->b, PKT_CHUNK))
			return -1;
		r = bpf_csum_diff(NULL, 0, (void *)buf->b, PKT_CHUNK, s);
		if (r < 0)
			return -1;
		s = (__u32)r;
		off += PKT_CHUNK;
	}
	if (!tail)
		return s;
	/* the tail, zero-padded to whole 32-bit words */
	barrier_var(tail);
	if (tail == 0 || tail >= PKT_CHUNK)
		return -1;
	*(__u32 *)&buf->b[tail & ~3ULL] = 0;
	if (pkt_load(p, off, buf->b, tail))
		return -1;
	r = bpf_csum_diff(NULL, 0, (void *)buf->b, (tail + 3) & ~3ULL, s);
	return r < 0 ? -1 : (__u32)r;
}

PKT_GLOBAL(pkt_csum_range, (__u32 off, __u32 len, __u32 seed), (off, len, seed))

/* Add the sum of `len` bytes at `off` to *sum. */
static __always_inline int pkt_csum_range(const struct pkt *p, __u32 off, __u32 len, __u32 *sum)
{
	__s64 r = PKT_CALL(p, pkt_csum_range, off, len, *sum);

	if (r < 0)
		return -1;
	*sum = (__u32)r;
	return 0;
}

/* Copy `len` (<= PKT_MOVE_MAX) packet bytes from `from` to `to`, the two ranges possibly
 * overlapping (a memmove), or write `len` zero bytes at `to` when `from` is PKT_MOVE_ZERO.
 * ICMP errors with RFC 4884 extensions move the extension behind the translated quote. */
#define PKT_MOVE_MAX  1536
#define PKT_MOVE_ZERO 0xffffffffU

static __always_inline __s64 pkt_move_body(const struct pkt *p, __u32 from, __u32 to,
					   __u32 len)
{
	struct pkt_chunk *buf = pkt_chunk_get();
	bool zero = from == PKT_MOVE_ZERO, back = !zero && to > from;
	__u32 i, src, dst;
	__u64 n;

	if (!buf || len > PKT_MOVE_MAX)
		return -1;
	if (zero)
		__builtin_memset(buf->b, 0, PKT_CHUNK);
	for (i = 0; i < PKT_MOVE_MAX / PKT_CHUNK && len; i++) {
		n = len < PKT_CHUNK ? len : PKT_CHUNK;
		barrier_var(n);
		if (n == 0 || n > PKT_CHUNK)
			return -1;
		/* moving toward the end: last chunk first, so nothing is overwritten unread */
		src = back ? from + len - (__u32)n : from;
		dst = back ? to + len - (__u32)n : to;
		if (!zero && pkt_load(p, src, buf->b, n))
			return -1;
		if (pkt_store(p, dst, buf->b, n))
			return -1;
		if (!back) {
			from += (__u32)n;
			to += (__u32)n;
		}
		len -= (__u32)n;
	}
	return len ? -1 : 0;
}

PKT_GLOBAL(pkt_move, (__u32 from, __u32 to, __u32 len), (from, to, len))

static __always_inline int pkt_move(const struct pkt *p, __u32 from, __u32 to, __u32 len)
{
	if (!len || from == to)
		return 0;
	return PKT_CALL(p, pkt_move, from, to, len) ? -1 : 0;
}

/* Make the packet exactly `len` bytes long: cut, or grow it at the end (new bytes undefined). */
static __always_inline int pkt_set_len(const struct pkt *p, __u32 len)
{
	__u32 cur = pkt_len(p);

	if (len == cur)
		return 0;
	if (PKT_IS_XDP(p))
		return (int)bpf_xdp_adjust_tail(PKT_XDP(p), (int)len - (int)cur);
	return (int)bpf_skb_change_tail(PKT_SKB(p), len, 0);
}

#endif /* XLAT_CTX_H */
