/* SPDX-License-Identifier: MIT */
/* The UDP tracer's own instance of the lock-free queue (csrc/queue.c),
 * holding flow reports instead of TCP records. */
#ifndef UDPEVENT_UDP_QUEUE_H
#define UDPEVENT_UDP_QUEUE_H

#include "udpevent.h"

#define TE_QUEUE_ITEM struct udpevent_report
#include "queue.h"

#endif /* UDPEVENT_UDP_QUEUE_H */
