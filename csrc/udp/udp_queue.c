// SPDX-License-Identifier: MIT
/* csrc/queue.c compiled for struct udpevent_report (libudpEvent.so only). */
#include "udp_queue.h"
#include "../queue.c"
