// SPDX-License-Identifier: MIT
#include <bpf/libbpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "tcpevent.h"

#define LIBBPF_LOG_LEN 4096

static __thread char last_error[TE_ERROR_LEN];
static __thread char libbpf_log[LIBBPF_LOG_LEN];
static __thread int capturing;
static libbpf_print_fn_t previous_print;
static pthread_once_t print_once = PTHREAD_ONCE_INIT;

int te_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	/* Names from a corrupt file must not make the text unprintable. */
	for (unsigned char *p = (unsigned char *)last_error; *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p >= 0x7f)
			*p = '?';
	/* The wrong sign, or 0, must still be a failure, never "success". */
	if (!err)
		err = EINVAL;
	return err > 0 ? -err : err;
}

void te_error_clear(void)
{
	last_error[0] = '\0';
}

void te_warning_vadd(char *warning, size_t size, const char *fmt, va_list ap)
{
	size_t len = strnlen(warning, size);

	if (len + 2 >= size)
		return;
	if (len) {
		strcpy(warning + len, "; ");
		len += 2;
	}
	vsnprintf(warning + len, size - len, fmt, ap);
}

const char *tcpevent_last_error(void)
{
	return last_error;
}

/* Keep the tail of what libbpf says: the verifier's verdict comes last. */
static void log_append(const char *fmt, va_list ap)
{
	char line[1024];
	size_t have = strlen(libbpf_log);
	size_t len;
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n <= 0)
		return;
	len = strlen(line);
	if (len >= LIBBPF_LOG_LEN)
		return;
	if (have + len >= LIBBPF_LOG_LEN) {
		size_t drop = have + len - LIBBPF_LOG_LEN + 1;

		memmove(libbpf_log, libbpf_log + drop, have - drop + 1);
		have -= drop;
	}
	memcpy(libbpf_log + have, line, len + 1);
}

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (!capturing)
		return previous_print ? previous_print(level, fmt, ap) : 0;
	if (level != LIBBPF_DEBUG)
		log_append(fmt, ap);
	return 0;
}

static void install_print(void)
{
	previous_print = libbpf_set_print(print_fn);
}

void te_libbpf_capture_begin(void)
{
	pthread_once(&print_once, install_print);
	libbpf_log[0] = '\0';
	capturing = 1;
}

const char *te_libbpf_log(void)
{
	return libbpf_log;
}

void te_libbpf_capture_end(void)
{
	capturing = 0;
}
