/* SPDX-License-Identifier: MIT */
/*
 * Error text. Every failing call leaves a sentence saying what failed, why
 * and what to do in a thread-local buffer (tcpevent_last_error()); the
 * legacy calls also print it, once, on stderr.
 */
#ifndef TCPEVENT_ERROR_H
#define TCPEVENT_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#define TE_ERROR_LEN 1024

/*
 * Set the last error of this thread and return -err, the library's return
 * value for a failure: "return te_fail(ENOENT, ...)".
 *
 * err is always a positive errno value, as errno and pthread functions
 * give it (EINVAL, errno, pthread_create()'s result); a negative result
 * being passed on is negated back: te_fail(-r, ...). Should a caller get
 * the sign wrong, the call still fails (0 gives -EINVAL, a negative err is
 * returned as it is), but every caller in the library follows this rule.
 */
int te_fail(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void te_error_clear(void);

/* Add a sentence to a tracer's warnings (size bytes at warning), after
 * "; " where there are some already; what does not fit is cut. */
void te_warning_vadd(char *warning, size_t size, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Route libbpf's messages into a per-thread log while we load, instead of
 * the host process's stderr; te_libbpf_log() returns the tail of it. */
void te_libbpf_capture_begin(void);
const char *te_libbpf_log(void);
void te_libbpf_capture_end(void);

#endif /* TCPEVENT_ERROR_H */
