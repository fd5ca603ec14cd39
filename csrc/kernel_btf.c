// SPDX-License-Identifier: MIT
/* The running kernel's BTF: its enums and its tracepoints (kernel_btf.h). */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kernel_btf.h"

static pthread_once_t btf_once = PTHREAD_ONCE_INIT;
static struct btf *vmlinux;

static void load_btf(void)
{
	/* Into the caller's libbpf capture, if it has one (loader.c). */
	vmlinux = btf__load_vmlinux_btf();
	if (libbpf_get_error(vmlinux))
		vmlinux = NULL;
}

/* Freed when the library is unloaded (dlclose(), exit): it is the
 * process's for as long as the library is. */
__attribute__((destructor)) static void free_btf(void)
{
	btf__free(vmlinux);
	vmlinux = NULL;
}

const struct btf *te_kernel_btf(void)
{
	pthread_once(&btf_once, load_btf);
	return vmlinux;
}

static const struct btf_type *find_enum(const struct btf *btf, const char *name)
{
	int id = btf__find_by_name_kind(btf, name, BTF_KIND_ENUM);

	if (id < 0)
		id = btf__find_by_name_kind(btf, name, BTF_KIND_ENUM64);
	return id < 0 ? NULL : btf__type_by_id(btf, id);
}

/* Member i of an enum or enum64 type: its name and value. */
static const char *member(const struct btf *btf, const struct btf_type *t,
			  int i, int64_t *val)
{
	if (btf_is_enum64(t)) {
		const struct btf_enum64 *e = btf_enum64(t) + i;

		*val = (int64_t)btf_enum64_value(e);
		return btf__name_by_offset(btf, e->name_off);
	}
	*val = btf_enum(t)[i].val;
	return btf__name_by_offset(btf, btf_enum(t)[i].name_off);
}

int te_btf_enum_value(const char *name, const char *wanted, int64_t *val)
{
	const struct btf *btf = te_kernel_btf();
	const struct btf_type *t = btf ? find_enum(btf, name) : NULL;

	for (int i = 0; t && i < btf_vlen(t); i++) {
		const char *n = member(btf, t, i, val);

		if (n && !strcmp(n, wanted))
			return 0;
	}
	return -ENOENT;
}

const char *te_btf_enum_name(const char *name, int64_t val)
{
	const struct btf *btf = te_kernel_btf();
	const struct btf_type *t = btf ? find_enum(btf, name) : NULL;
	int64_t v;

	for (int i = 0; t && i < btf_vlen(t); i++) {
		const char *n = member(btf, t, i, &v);

		if (v == val)
			return n;
	}
	return NULL;
}

int te_btf_tracepoint_args(const char *tp)
{
	const struct btf *btf = te_kernel_btf();
	const struct btf_type *t;
	char name[128];
	int id;

	if (!btf)
		return -ENOENT;
	snprintf(name, sizeof(name), "btf_trace_%s", tp);
	id = btf__find_by_name_kind(btf, name, BTF_KIND_TYPEDEF);
	if (id < 0)
		return -ENOENT;
	/* typedef -> pointer -> function prototype (void *ctx, args...) */
	t = btf__type_by_id(btf, btf__type_by_id(btf, id)->type);
	if (!t || !btf_is_ptr(t))
		return -ENOENT;
	t = btf__type_by_id(btf, t->type);
	if (!t || !btf_is_func_proto(t) || btf_vlen(t) < 1)
		return -ENOENT;
	return btf_vlen(t) - 1;
}
