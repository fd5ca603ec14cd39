/* SPDX-License-Identifier: MIT */
/*
 * The legacy calls' numbers from the environment (TCPEVENT_* in
 * libtcpEvent.so, UDPEVENT_* in libudpEvent.so): one parser for both.
 */
#ifndef TCPEVENT_ENV_H
#define TCPEVENT_ENV_H

#include <stdint.h>

/*
 * The variable `name` times `scale`, as a uint32_t; 0 when it is unset or
 * empty. A value that is not a non-negative number, or whose scaled value
 * does not fit, is ignored (0) with one line on stderr naming `who`, the
 * library ("tcpevent", "udpevent"): a bad setting never stops the caller.
 */
uint32_t te_env_u32(const char *who, const char *name, double scale);

#endif /* TCPEVENT_ENV_H */
