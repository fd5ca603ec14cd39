// SPDX-License-Identifier: MIT
/*
 * A program's global variables, found through the object's BTF: the
 * `const volatile` ones (.rodata) set before load, which the verifier then
 * treats as constants, and .bss ones shared with the running program.
 */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"
#include "loader.h"

/* Where a global of the program lives: the internal map of its section
 * (".rodata", ".bss") and its offset there; -ENOENT if it has none. */
static int find_global(struct bpf_object *obj, const char *section,
		       const char *name, size_t size, struct bpf_map **mapp,
		       size_t *offset)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec;
	struct bpf_map *map;
	int id;

	if (!btf)
		return -ENOENT;
	id = btf__find_by_name_kind(btf, section, BTF_KIND_DATASEC);
	if (id < 0)
		return -ENOENT;
	bpf_object__for_each_map(map, obj)
		if (bpf_map__is_internal(map) &&
		    strstr(bpf_map__name(map), section))
			break;
	if (!map)
		return -ENOENT;
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), name))
			continue;
		if (vs->size != size)
			return te_fail(EINVAL,
				       "program variable %s has size %u, expected %zu",
				       name, vs->size, size);
		*mapp = map;
		*offset = vs->offset;
		return 0;
	}
	return -ENOENT;
}

/* A .rodata global: the section's map and initial value, and its place. */
struct rodata_var {
	struct bpf_map *map;
	const void *init; /* the whole section, init_size bytes */
	size_t init_size;
	size_t offset; /* of the variable, whose size lies within init_size */
};

static int rodata_at(struct bpf_object *obj, const char *name, size_t size,
		     struct rodata_var *v)
{
	int err = find_global(obj, ".rodata", name, size, &v->map, &v->offset);

	if (err)
		return err;
	v->init = bpf_map__initial_value(v->map, &v->init_size);
	if (!v->init || v->offset + size > v->init_size)
		return te_fail(EINVAL,
			       "program variable %s is out of its section",
			       name);
	return 0;
}

int te_rodata_read(struct bpf_object *obj, const char *name, void *val,
		   size_t size)
{
	struct rodata_var v;
	int err = rodata_at(obj, name, size, &v);

	if (err)
		return err;
	memcpy(val, (const char *)v.init + v.offset, size);
	return 0;
}

int te_rodata_write(struct bpf_object *obj, const char *name, const void *val,
		    size_t size)
{
	struct rodata_var v;
	int err = rodata_at(obj, name, size, &v);

	if (err)
		return err;
	/* On the heap, not a VLA: the section is as large as the program
	 * makes it, and gcc 10 (Debian 11, where the wheel is built) rejects
	 * an unbounded VLA under -Werror (-Wvla-larger-than). */
	char *copy = malloc(v.init_size);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, v.init, v.init_size);
	memcpy(copy + v.offset, val, size);
	err = bpf_map__set_initial_value(v.map, copy, v.init_size);
	free(copy);
	return err;
}

/* libbpf 1.1 maps a loaded .bss only for skeletons: map it here. */
void *te_bss_var(struct bpf_object *obj, const char *name, size_t size,
		 void **memp, size_t *lenp)
{
	size_t offset, len;
	struct bpf_map *map;
	void *mem;

	if (find_global(obj, ".bss", name, size, &map, &offset))
		return NULL;
	len = bpf_map__value_size(map);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
		   bpf_map__fd(map), 0);
	if (mem == MAP_FAILED)
		return NULL;
	if (offset + size > len) {
		munmap(mem, len);
		return NULL;
	}
	*memp = mem;
	*lenp = len;
	return (char *)mem + offset;
}
