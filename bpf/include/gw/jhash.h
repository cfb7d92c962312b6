/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bob Jenkins' lookup3 hash over 32-bit words (the kernel's jhash2()), for Maglev's flow hash:
 * fast, well mixed, and the same on every CPU, so a flow's table index never depends on
 * where its packets are processed. */
#ifndef GW_JHASH_H
#define GW_JHASH_H

#include <linux/types.h>

#define GW_JHASH_INITVAL 0xdeadbeef

static __always_inline __u32 gw_rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

#define GW_JHASH_MIX(a, b, c)					\
	do {							\
		a -= c; a ^= gw_rol32(c, 4);  c += b;		\
		b -= a; b ^= gw_rol32(a, 6);  a += c;		\
		c -= b; c ^= gw_rol32(b, 8);  b += a;		\
		a -= c; a ^= gw_rol32(c, 16); c += b;		\
		b -= a; b ^= gw_rol32(a, 19); a += c;		\
		c -= b; c ^= gw_rol32(b, 4);  b += a;		\
	} while (0)

#define GW_JHASH_FINAL(a, b, c)					\
	do {							\
		c ^= b; c -= gw_rol32(b, 14);			\
		a ^= c; a -= gw_rol32(c, 11);			\
		b ^= a; b -= gw_rol32(a, 25);			\
		c ^= b; c -= gw_rol32(b, 16);			\
		a ^= c; a -= gw_rol32(c, 4);			\
		b ^= a; b -= gw_rol32(a, 14);			\
		c ^= b; c -= gw_rol32(b, 24);			\
	} while (0)

/* Hash `n` words (a compile-time constant at every call site, so the loop unrolls). */
static __always_inline __u32 gw_jhash_words(const __u32 *k, __u32 n, __u32 seed)
{
	__u32 a, b, c;

	a = b = c = GW_JHASH_INITVAL + (n << 2) + seed;
#pragma unroll
	for (; n > 3; n -= 3, k += 3) {
		a += k[0];
		b += k[1];
		c += k[2];
		GW_JHASH_MIX(a, b, c);
	}
	switch (n) {
	case 3:
		c += k[2];
		/* fallthrough */
	case 2:
		b += k[1];
		/* fallthrough */
	case 1:
		a += k[0];
		GW_JHASH_FINAL(a, b, c);
		break;
	}
	return c;
}

#endif /* GW_JHASH_H */
