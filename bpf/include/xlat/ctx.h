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

/* Flags for pkt_l4_csum_diff(). */
#define PKT_CSUM_PSEUDO   (1U << 0) /* the change is in the pseudo-header */
#define PKT_CSUM_UDP      (1U << 1) /* UDP: a zero field means "no checksum", never produce 0 */

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
 * on the fast path. pkt_load()/pkt_store() serve whatever is not linear. */
static __always_inline void *pkt_data(const struct pkt *p)
{
	if (PKT_IS_XDP(p))
		return (void *)(long)PKT_XDP(p)->data;
	return (void *)(long)PKT_SKB(p)->data;
}

static __always_inline void *pkt_data_end(const struct pkt *p)
{
	if (PKT_IS_XDP(p))
		return (void *)(long)PKT_XDP(p)->data_end;
	return (void *)(long)PKT_SKB(p)->data_end;
}

/* `len` (a constant) linear bytes at the constant offset `off`, or NULL. */
#define PKT_PTR(p, off, len) ({							\
	void *__d = pkt_data(p), *__e = pkt_data_end(p);			\
	__d + (off) + (len) > __e ? NULL : __d + (off);				\
})

/* The same with a variable offset, bounded by the constant `max` for the verifier. */
#define PKT_PTR_VAR(p, off, len, max) ({						\
	__u32 __o = (off);								\
	void *__r = NULL;								\
	barrier_var(__o);  /* bound-check the very register used below */		\
	if (__o <= (max)) {								\
		void *__d, *__e;							\
		__d = pkt_data(p);							\
		__e = pkt_data_end(p);							\
		if (__d + __o + (len) <= __e)						\
			__r = __d + __o;						\
	}										\
	__r;										\
})

/* Copies between the packet and the program's memory in 16-bit words: the packet's own
 * alignment (an Ethernet header starts 2 bytes off a 4-byte boundary) allows no more, and
 * the compiler would otherwise copy packed structs byte by byte. `len` even and constant. */
typedef __u16 __attribute__((__may_alias__)) pkt_half_t;

static __always_inline void pkt_copy16(void *to, const void *from, int len)
{
	pkt_half_t *t = to;
	const pkt_half_t *f = from;
	int i;

#pragma unroll
	for (i = 0; i < len / 2; i++)
		t[i] = f[i];
}

/* CHECKSUM_COMPLETE: skb->csum sums the packet from the network header on. Header bytes
 * written directly are accounted for here, by the sum of what they replaced subtracted from
 * the sum of what they are (`diff`); a no-op for any other checksum state, and at XDP. */
static __always_inline void pkt_csum_complete_update(const struct pkt *p, __u32 diff)
{
	if (!PKT_IS_XDP(p))
		bpf_csum_update(PKT_SKB(p), diff);
}

/* A GSO packet: segmented (and so sized) later, by the stack or the device. */
static __always_inline bool pkt_is_gso(const struct pkt *p)
{
	return !PKT_IS_XDP(p) && PKT_SKB(p)->gso_size;
}

static __always_inline int pkt_load(const struct pkt *p, __u32 off, void *to, __u32 len)
{
	if (PKT_IS_XDP(p))
		return (int)bpf_xdp_load_bytes(PKT_XDP(p), off, to, len);
	return (int)bpf_skb_load_bytes(PKT_SKB(p), off, to, len);
}

/* A 16-bit field (a checksum, a port) at `off`. */
static __always_inline int pkt_load_u16(const struct pkt *p, __u32 off, __u16 *to)
{
	__u16 *f = PKT_PTR_VAR(p, off, sizeof(*f), 0x7ff);

	if (f) {
		*to = *f;
		return 0;
	}
	return pkt_load(p, off, to, sizeof(*to));
}

/* Store bytes of the network or transport layer whose change is not otherwise accounted
 * for: at tc, a CHECKSUM_COMPLETE skb->csum is updated for them. */
static __always_inline int pkt_store(const struct pkt *p, __u32 off, const void *from, __u32 len)
{
	if (PKT_IS_XDP(p))
		return (int)bpf_xdp_store_bytes(PKT_XDP(p), off, (void *)from, len);
	return (int)bpf_skb_store_bytes(PKT_SKB(p), off, from, len, BPF_F_RECOMPUTE_CSUM);
}

/* Store bytes whose change is compensated in the same checksum-covered region (a
 * transport field together with its checksum update), or bytes outside skb->csum (L2). */
static __always_inline int pkt_store_nocsum(const struct pkt *p, __u32 off, const void *from,
					    __u32 len)
{
	if (PKT_IS_XDP(p))
		return (int)bpf_xdp_store_bytes(PKT_XDP(p), off, (void *)from, len);
	return (int)bpf_skb_store_bytes(PKT_SKB(p), off, from, len, 0);
}

/* Write the Ethernet header and the `hlen` bytes (20, 40 or 48) of network-layer header
 * after it, over header bytes whose sum was `old_sum` (kept in skb->csum's account). */
static __always_inline int pkt_write_l3(const struct pkt *p, const struct ethhdr *eth,
					const void *hdr, __u32 hlen, __u32 old_sum)
{
	__u32 sum;
	void *d;

	if (hlen == 20) {
		d = PKT_PTR(p, 0, ETH_HLEN + 20);
		if (!d)
			goto slow;
		pkt_copy16(d + ETH_HLEN, hdr, 20);
		sum = csum_words(hdr, 20 / 4);
	} else if (hlen == 40) {
		d = PKT_PTR(p, 0, ETH_HLEN + 40);
		if (!d)
			goto slow;
		pkt_copy16(d + ETH_HLEN, hdr, 40);
		sum = csum_words(hdr, 40 / 4);
	} else if (hlen == 48) {
		d = PKT_PTR(p, 0, ETH_HLEN + 48);
		if (!d)
			goto slow;
		pkt_copy16(d + ETH_HLEN, hdr, 48);
		sum = csum_words(hdr, 48 / 4);
	} else {
		return -1;
	}
	pkt_copy16(d, eth, ETH_HLEN);
	pkt_csum_complete_update(p, csum_add(sum, ~old_sum));
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

/* Apply a change of `diff` (a bpf_csum_diff() result) to the transport checksum at `off`. */
static __always_inline int pkt_l4_csum_diff(const struct pkt *p, __u32 off, __u32 diff,
					    __u32 flags)
{
	__u16 check, *f;

	if (!PKT_IS_XDP(p)) {
		__u64 f = 0;

		if (flags & PKT_CSUM_PSEUDO)
			f |= BPF_F_PSEUDO_HDR;
		if (flags & PKT_CSUM_UDP)
			f |= BPF_F_MARK_MANGLED_0;
		return (int)bpf_l4_csum_replace(PKT_SKB(p), off, 0, diff, f);
	}
	f = PKT_PTR_VAR(p, off, sizeof(*f), 0x7ff);
	if (f)
		check = *f;
	else if (bpf_xdp_load_bytes(PKT_XDP(p), off, &check, sizeof(check)))
		return -1;
	if ((flags & PKT_CSUM_UDP) && check == 0)
		return 0;
	check = csum_replace_diff(check, diff);
	if ((flags & PKT_CSUM_UDP) && check == 0)
		check = 0xffff;
	if (f) {
		*f = check;
		return 0;
	}
	return (int)bpf_xdp_store_bytes(PKT_XDP(p), off, &check, sizeof(check));
}

/* Whether the skb's transport checksum is still to be completed (CHECKSUM_PARTIAL): a local
 * sender on veth hands such skbs over, and the kernel finishes the checksum at
 * csum_start/csum_offset when the packet leaves. tc cannot read ip_summed, but
 * bpf_l4_csum_replace() applies a change outside the pseudo-header only to a full checksum and
 * ignores it for a partial one: probe the 2 bytes at `scratch_off`, which the caller
 * overwrites afterwards. At XDP the answer is no: an XDP_TX frame carries no checksum state. */
static __always_inline bool pkt_csum_partial(const struct pkt *p, __u32 scratch_off)
{
	__u16 v = 0x5555;

	if (PKT_IS_XDP(p))
		return false;
	if (bpf_skb_store_bytes(PKT_SKB(p), scratch_off, &v, sizeof(v), 0) ||
	    bpf_l4_csum_replace(PKT_SKB(p), scratch_off, 0, 1, 0) ||
	    bpf_skb_load_bytes(PKT_SKB(p), scratch_off, &v, sizeof(v)))
		return false;
	return v == 0x5555;
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

/* Room for packet bytes the helpers below copy or sum, per CPU (a program handles one
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
