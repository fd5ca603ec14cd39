// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <stdlib.h>

#include "env.h"

uint32_t te_env_u32(const char *who, const char *name, double scale)
{
	const char *v = getenv(name);
	char *end;
	double d;

	if (!v || !*v)
		return 0;
	d = strtod(v, &end);
	if (*end || d < 0 || d * scale > UINT32_MAX) {
		fprintf(stderr, "%s: ignoring %s=%s: not a valid number\n", who,
			name, v);
		return 0;
	}
	return (uint32_t)(d * scale);
}
