/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* RFC 4884 extensions in translated ICMP errors (RFC 7915 4.2, 5.2: "the ICMPv6 Extension
 * length attribute MUST be adjusted accordingly").
 *
 * An error with extensions holds the quoted packet in an "original datagram" field of at
 * least 128 bytes, zero-padded to 32-bit words (ICMPv4) or 64-bit words (ICMPv6), its length
 * in the header, and then the extension structure. Translation changes the quoted packet's
 * header size, so the field is laid out anew and the extension, opaque, moves behind it. When
 * the whole does not fit the size limit of a translated error (1280 bytes toward IPv6, 576
 * toward IPv4) the quote gives way first, down to 128 bytes; an extension that still does not
 * fit is removed whole with its length attribute, as a cut one would fail its own checksum
 * (RFC 4884 7) and be discarded anyway.
 */
#ifndef XLAT_ICMP_EXT_H
#define XLAT_ICMP_EXT_H

#include "ctx.h"
#include "outcome.h"
#include "proto.h"

#define ICMP_EXT_MIN_DGRAM 128   /* RFC 4884 4.1: the original datagram field's minimum */

struct icmp_ext_layout {
	__u32 keep;     /* bytes of the quoted packet kept after its translated header */
	__u32 dgram;    /* the field: translated header, `keep` bytes and zero padding */
	__u32 ext;      /* extension bytes kept after it, 0: none (no length attribute) */
};

/* Plan the translated error's payload. `room`: bytes after the outer IP and ICMP headers;
 * `hdr`: the quoted packet's translated header length; `rest`: its bytes after the header
 * that are present; `ext`: the extension's length; `unit`: 8 toward ICMPv6, 4 toward ICMPv4. */
static __always_inline void icmp_ext_plan(struct icmp_ext_layout *l, __u32 room, __u32 hdr,
					  __u32 rest, __u32 ext, __u32 unit)
{
	if (ext && ICMP_EXT_MIN_DGRAM + ext > room)
		ext = 0;
	l->ext = ext;
	if (!ext) {
		l->keep = rest < room - hdr ? rest : room - hdr;
		l->dgram = hdr + l->keep;
		return;
	}
	l->keep = rest < room - ext - hdr ? rest : room - ext - hdr;
	l->dgram = (hdr + l->keep + unit - 1) & ~(unit - 1);
	if (l->dgram < ICMP_EXT_MIN_DGRAM)
		l->dgram = ICMP_EXT_MIN_DGRAM;
	if (l->dgram > room - ext) {
		l->dgram = (room - ext) & ~(unit - 1);
		l->keep = l->dgram - hdr;
	}
}

/* With the headers translated: move the extension from `ext_cur` to `ext_new` (the packet's
 * new end is right after it) and zero the padding between the kept quote's end and it. */
static __always_inline int icmp_ext_move(const struct pkt *p, __u32 quote_end, __u32 ext_cur,
					 __u32 ext_new, __u32 ext)
{
	if (ext_new > ext_cur) {
		if (pkt_set_len(p, ext_new + ext) || pkt_move(p, ext_cur, ext_new, ext))
			return -1;
	} else if (pkt_move(p, ext_cur, ext_new, ext) || pkt_set_len(p, ext_new + ext)) {
		return -1;
	}
	if (ext_new < quote_end)
		return -1;
	return pkt_move(p, PKT_MOVE_ZERO, quote_end, ext_new - quote_end);
}

/* Whether the ICMP error of `plen` bytes at `l4off` arrived intact (its translation sums the
 * message afresh, which would hide damage): XLAT_DROP_ICMP_CSUM if not, 0 if so. `seed`: the
 * sum it starts from (ICMPv6's pseudo-header, 0 for ICMPv4). With an extension, whose layout
 * moves bytes, the message is summed whole. Without one, in the one pass over the quote the
 * translation needs: `parsed` is the sum of the ICMP header and the quoted base header of
 * `in_base` bytes as parsed, the rest of the quoted header (options, extension headers: up to
 * `in_hlen`) and the bytes after it are summed from the packet, and `*kept` gets the sum of
 * the `l->keep` of those the translated error carries unchanged but for the fields it fixes,
 * so that its checksum is that sum plus the new headers. */
static __always_inline int icmp_err_check(const struct pkt *p, const struct icmp_ext_layout *l,
					  __u32 l4off, __u32 plen, __u32 seed, __u32 parsed,
					  __u32 in_base, __u32 in_hlen, __u32 *kept)
{
	__u32 qoff = l4off + ICMP_HLEN + in_hlen, rest = plen - ICMP_HLEN - in_hlen;
	__u32 sum = seed, cut = 0;

	*kept = 0;
	if (l->ext) {
		if (pkt_csum_range(p, l4off, plen, &sum))
			return XLAT_DROP_TOO_BIG;
		return csum_fold(sum) ? XLAT_DROP_ICMP_CSUM : 0;
	}
	sum = csum_add(sum, parsed);
	if (in_hlen > in_base &&
	    pkt_csum_range(p, l4off + ICMP_HLEN + in_base, in_hlen - in_base, &sum))
		return XLAT_DROP_TOO_BIG;
	if (pkt_csum_range(p, qoff, l->keep, kept))
		return XLAT_DROP_TOO_BIG;
	if (rest > l->keep) {
		/* the bytes cut off, for the check only */
		if (pkt_csum_range(p, qoff + l->keep, rest - l->keep, &cut))
			return XLAT_DROP_TOO_BIG;
		if (l->keep & 1)
			cut = csum_swab(cut);
	}
	sum = csum_add(sum, csum_add(*kept, cut));
	return csum_fold(sum) ? XLAT_DROP_ICMP_CSUM : 0;
}

#endif /* XLAT_ICMP_EXT_H */
