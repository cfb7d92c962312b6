/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Internet checksum arithmetic (RFC 1071, RFC 1624) on values kept in packet byte order.
 *
 * A 32-bit "wsum" is an unfolded ones' complement sum as the kernel's __wsum; a 16-bit value
 * as stored in a header is "folded". Every value is handled in the byte order it has in the
 * packet, so sums of header words can be added without byte swaps (ones' complement sums are
 * byte-order independent up to a swap of the result, which storing undoes).
 */
#ifndef XLAT_CSUM_H
#define XLAT_CSUM_H

#include <linux/types.h>

static __always_inline __u32 csum_add(__u32 a, __u32 b)
{
	__u32 r = a + b;

	return r + (r < b);
}

static __always_inline __u32 csum_sub(__u32 a, __u32 b)
{
	return csum_add(a, ~b);
}

/* Fold to 16 bits and complement: the value to store in a checksum field. */
static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* `sum` as a region starting at an odd offset contributes it to a message's sum: folded to
 * 16 bits, bytes swapped (RFC 1071 2.(B): the sum is byte-order independent up to a swap). */
static __always_inline __u32 csum_swab(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ((sum & 0xff) << 8) | (sum >> 8);
}

/* A stored checksum field applied a change of `diff` to the data it covers (RFC 1624 eqn. 3). */
static __always_inline __u16 csum_replace_diff(__u16 check, __u32 diff)
{
	return csum_fold(csum_add(diff, (__u16)~check));
}

/* Sum of `n` (a constant) 32-bit words, unfolded: what bpf_csum_diff(NULL, 0, w, 4 * n, 0)
 * gives, without the helper call. Header-sized sums on the fast path are done this way. */
typedef __u32 __attribute__((__may_alias__)) csum_word_t;  /* read over any header struct */

static __always_inline __u32 csum_words(const void *w, int n)
{
	const csum_word_t *v = w;
	__u64 s = 0;
	int i;

#pragma unroll
	for (i = 0; i < n; i++)
		s += v[i];
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	return (__u32)s;
}

/* Sum change when `old_words` 32-bit words become `new_words` others (an address pair of one
 * family becoming the other's in a pseudo-header): bpf_csum_diff() without the call. */
#define csum_words_diff(old, old_words, new, new_words)					\
	csum_add(csum_words(new, new_words), ~csum_words(old, old_words))

#endif /* XLAT_CSUM_H */
