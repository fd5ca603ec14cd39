/* SPDX-License-Identifier: MIT */
/* What the original UDP test client includes as "common.h": the event. */
#ifndef UDPEVENT_COMMON_H
#define UDPEVENT_COMMON_H

#include "../udpevent_legacy.h"

#endif /* UDPEVENT_COMMON_H */
