// SPDX-License-Identifier: MIT
/*
 * The names of the kernel's reasons (tcpevent_reason_name()): a drop's
 * enum skb_drop_reason, a sent reset's enum sk_rst_reason, as the running
 * kernel's BTF spells them, less the common prefix, as the kernel's own
 * tracepoint output prints them ("TCP_LISTEN_OVERFLOW", "NO_SOCKET").
 */
#include <string.h>

#include "kernel_btf.h"
#include "tcpevent.h"

static const char *without(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(name, prefix, n) ? name : name + n;
}

const char *tcpevent_reason_name(unsigned int kind, unsigned int reason)
{
	const char *name;

	if (kind == TCPEVENT_KIND_DROP) {
		name = te_btf_enum_name("skb_drop_reason", reason);
		return name ? without(name, "SKB_DROP_REASON_") : "";
	}
	if (kind == TCPEVENT_KIND_RESET) {
		name = te_btf_enum_name("sk_rst_reason", reason);
		return name ? without(name, "SK_RST_REASON_") : "";
	}
	return "";
}
