/* Prints sizeof and every offset of struct udp_event_t as the C compiler
 * lays it out from the shipped header (the original's "common.h"), as JSON. */
#include <stddef.h>
#include <stdio.h>

#include "udp/common.h"

#define FIELD(f) printf("\"%s\": %zu, ", #f, offsetof(struct udp_event_t, f))

int main(void)
{
	printf("{");
	FIELD(family);
	FIELD(pid);
	FIELD(UserId);
	FIELD(EventTime);
	FIELD(SPT);
	FIELD(DPT);
	FIELD(task);
	FIELD(rx_b);
	FIELD(tx_b);
	FIELD(rxPkts);
	FIELD(txPkts);
	FIELD(SADDR);
	FIELD(DADDR);
	printf("\"sizeof\": %zu}\n", sizeof(struct udp_event_t));
	return 0;
}
