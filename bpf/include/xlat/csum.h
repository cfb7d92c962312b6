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
#include <bpf/bpf_endian.h>

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

/* A stored checksum field applied a change of `diff` to the data it covers (RFC 1624 eqn. 3). */
static __always_inline __u16 csum_replace_diff(__u16 check, __u32 diff)
{
	return csum_fold(csum_add(diff, (__u16)~check));
}

/* The checksum field holds the unfolded, uncomplemented pseudo-header sum (CHECKSUM_PARTIAL):
 * the change adds to it instead. */
static __always_inline __u16 csum_partial_replace_diff(__u16 check, __u32 diff)
{
	return (__u16)~csum_fold(csum_add(diff, check));
}

/* Sum of a 16-bit value in host order, as it contributes when stored big-endian. */
static __always_inline __u32 csum_u16(__u16 host)
{
	return (__u32)bpf_htons(host);
}

#endif /* XLAT_CSUM_H */
