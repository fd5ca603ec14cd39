// SPDX-License-Identifier: MIT
/*
 * What a BPF object must be before it is loaded: built with a record
 * layout this library reads, and without a map so large that creating it
 * would take the host's memory. Custom objects are checked as the built-in
 * one is (docs/custom-programs.md).
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>

#include "error.h"
#include "loader.h"

int te_check_record_layout(struct bpf_object *obj)
{
	__u32 size;

	if (te_rodata_read(obj, "tcpevent_record_size", &size, sizeof(size)))
		return 0; /* no marker: records are checked one by one */
	if (size != sizeof(struct tcpevent_record) &&
	    size != TCPEVENT_RECORD_V1_SIZE && size != TCPEVENT_RECORD_V2_SIZE)
		return te_fail(EINVAL,
			       "the program was built with a struct tcpevent_record of %u bytes; this library reads %zu (or an earlier layout's %d or %d): rebuild it with this version's tcpevent_record.h",
			       size, sizeof(struct tcpevent_record),
			       TCPEVENT_RECORD_V1_SIZE,
			       TCPEVENT_RECORD_V2_SIZE);
	return 0;
}

/*
 * A map the tracer does not size itself (all but "events" and "sockets")
 * gets its size from the object. A corrupted or hostile object can ask for
 * tens of GiB there (a flipped bit in max_entries), and the kernel then
 * tries to allocate it, per-CPU arrays element by element, until the host
 * runs out of memory. Such objects are refused before load.
 */
#define TE_MAX_MAP_BYTES (1ULL << 30)

static bool is_per_cpu(enum bpf_map_type type)
{
	return type == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

int te_check_map_sizes(struct bpf_object *obj)
{
	int ncpu = libbpf_num_possible_cpus();
	unsigned long long bytes;
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj) {
		const char *name = bpf_map__name(map);

		if (!strcmp(name, "events") || !strcmp(name, "sockets"))
			continue;
		/* Per entry: key and value, and ~64 bytes of kernel overhead. */
		bytes = (unsigned long long)bpf_map__max_entries(map) *
			(bpf_map__key_size(map) + bpf_map__value_size(map) +
			 64ULL);
		if (is_per_cpu(bpf_map__type(map)) && ncpu > 0)
			bytes *= (unsigned long long)ncpu;
		if (bytes > TE_MAX_MAP_BYTES)
			return te_fail(E2BIG,
				       "the BPF object's map \"%s\" asks for %u entries of %u-byte values, about %llu MiB: over the %llu MiB allowed for a map the tracer does not size itself (a corrupted object?)",
				       name, bpf_map__max_entries(map),
				       bpf_map__value_size(map), bytes >> 20,
				       TE_MAX_MAP_BYTES >> 20);
	}
	return 0;
}
