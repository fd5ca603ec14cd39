/* Prints sizeof and every offset of struct tcp_event_t as the C compiler
 * lays it out from the shipped header, as JSON. */
#include <stddef.h>
#include <stdio.h>

#include "common.h"

#define FIELD(f) printf("\"%s\": %zu, ", #f, offsetof(struct tcp_event_t, f))

int main(void)
{
	printf("{");
	FIELD(EventTime);
	FIELD(pid);
	FIELD(UserId);
	FIELD(rx_b);
	FIELD(tx_b);
	FIELD(tcpi_segs_out);
	FIELD(tcpi_segs_in);
	FIELD(family);
	FIELD(SPT);
	FIELD(DPT);
	FIELD(task);
	FIELD(SADDR);
	FIELD(DADDR);
	printf("\"sizeof\": %zu}\n", sizeof(struct tcp_event_t));
	return 0;
}
