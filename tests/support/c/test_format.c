/*
 * te_format_addr() must write exactly what glibc's inet_ntop() writes, for
 * every address: special ones, and millions of random ones biased towards
 * zero words (where the "::" rules live).
 *
 *   test_format [ITERATIONS]
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"

static int check(int family, const uint8_t *a)
{
	char want[TCPEVENT_ADDR_LEN], got[TCPEVENT_ADDR_LEN];

	inet_ntop(family, a, want, sizeof(want));
	memset(got, 'X', sizeof(got));
	te_format_addr(family, a, got);
	if (strcmp(want, got)) {
		printf("MISMATCH family %d: inet_ntop %s, ours %s\n", family,
		       want, got);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	static const char *special[] = {
		"::", "::1", "::ffff:127.0.0.1", "::1.2.3.4", "1::", "1::1",
		"1:0:0:1::1", "1:0:1:0:1:0:1:0", "0:0:1::", "fe80::1:2",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:0:0",
		"::ffff:0.0.0.1", "0:0:0:0:0:1:0:0", "2001:db8::ff00:42:8329",
		"::fffe:1.2.3.4", "0:0:0:0:1:ffff:1.2.3.4",
	};
	uint8_t a[16];
	int bad = 0;
	char none[TCPEVENT_ADDR_LEN] = "junk";

	for (size_t i = 0; i < sizeof(special) / sizeof(*special); i++) {
		if (inet_pton(AF_INET6, special[i], a) != 1) {
			printf("bad literal %s\n", special[i]);
			return 1;
		}
		bad |= check(AF_INET6, a);
	}
	srand(42);
	for (long i = 0; i < n; i++) {
		for (int w = 0; w < 8; w++) {
			unsigned int v = rand() % 3 ? 0 : (unsigned int)rand();
			unsigned int mask = (unsigned int[]){ 0xf, 0xff, 0xfff,
							      0xffff }[rand() % 4];

			a[2 * w] = (v & mask) >> 8;
			a[2 * w + 1] = v & mask;
		}
		if (rand() % 8 == 0) {	/* v4-mapped and v4-compatible */
			memset(a, 0, 10);
			a[10] = a[11] = rand() % 2 ? 0xff : 0;
		}
		bad |= check(AF_INET6, a);
		bad |= check(AF_INET, a);
	}
	te_format_addr(99, a, none);
	if (none[0]) {
		printf("unknown family must give \"\"\n");
		bad = 1;
	}
	printf(bad ? "FAILED\n" : "OK\n");
	return bad;
}
