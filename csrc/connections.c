// SPDX-License-Identifier: MIT
/* tcpevent_connections(): sock_diag's listing with the library's error text. */
#include "error.h"
#include "sockdiag.h"

int tcpevent_connections(const struct tcpevent_conn_query *q,
			 struct tcpevent_conn **out, size_t *count)
{
	int err = sockdiag_connections(q, out, count);

	if (err)
		return te_fail(err, "%s", sockdiag_last_error());
	te_error_clear();
	return 0;
}
