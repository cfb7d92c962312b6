/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU room for a packet's translation state.
 *
 * The state of xlat46.h/xlat64.h (parsed headers, chosen addresses) lives here rather than
 * on the 512-byte BPF stack, and so global functions (verified once, not per caller; see
 * PKT_GLOBAL in ctx.h) can take over a translation part way through: they get only the
 * context and scalars, and find the state here. A program handles one packet at a time per
 * CPU, so one slot per CPU is enough.
 */
#ifndef XLAT_SCRATCH_H
#define XLAT_SCRATCH_H

#include "xlat46.h"
#include "xlat64.h"

struct xlat_scratch {
	union {
		struct xlat46 x46;
		struct xlat64 x64;
	};
	__u32 ident_next;        /* this CPU's IPv4 Identification counter (siit.h) */
};

/* The map holds it as bytes: the layout is the datapath's own business, and its header
 * bitfields have no place in a map type the control plane would read. */
struct xlat_scratch_bytes {
	__u8 bytes[sizeof(struct xlat_scratch)];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlat_scratch_bytes);
} xlat_scratch SEC(".maps");

static __always_inline struct xlat_scratch *xlat_scratch_get(void)
{
	__u32 zero = 0;

	return (struct xlat_scratch *)bpf_map_lookup_elem(&xlat_scratch, &zero);
}

#endif /* XLAT_SCRATCH_H */
