/*
 * The original UDP test client (udpEvent/Test/mainer.c), unchanged but for
 * SOFILE, which the build may override (-DSOFILE=...) to point at the
 * library it just built. It includes the original's "common.h": build it
 * with -iquote csrc/include/udp.
 */
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>
#include "common.h"

#ifndef SOFILE
#define SOFILE "/opt/RealTimeKql/lib/libudpEvent.so"
#endif

void (*cleanup)();

void signalHandler(int signum) {
    printf("Interrupted by signal %u\n", signum);
    cleanup();
    exit(signum);
}

void printEvent(struct udp_event_t *event) {
    if (!event) return;
    printf("---\n");
    printf("PID: %d\n", event->pid);
    printf("UID: %d\n", event->UserId);
    printf("Command: %s\n", event->task);
    printf("Source: %s:%d\n", event->SADDR, event->SPT);
    printf("Destination: %s:%d\n", event->DADDR, event->DPT);
    printf("Bytes received: %ld\n", event->rx_b);
    printf("Bytes sent: %ld\n", event->tx_b);
    printf("Packets received: %d\n", event->rxPkts);
    printf("Packets sent: %d\n", event->txPkts);
    printf("Event time: %ld\n", event->EventTime);
    printf("---\n");
}

int main() {
    // Load library
    void *handle = dlopen(SOFILE, RTLD_LAZY);
    if (!handle) {
        fprintf(stderr, "dlopen failed: %s\n", dlerror());
        exit(EXIT_FAILURE);
    }

    // Resolve symbols
    void (*AddProbe)() = dlsym(handle, "AddProbe");
    struct udp_event_t (*DequeuePerfEvent)() = dlsym(handle, "DequeuePerfEvent");
    cleanup = dlsym(handle, "cleanup");
    unsigned (*getStatus)() = dlsym(handle, "getStatus");

    // Check for errors (simplified)
    if (!AddProbe || !DequeuePerfEvent || !cleanup || !getStatus) {
        fprintf(stderr, "Failed to resolve symbols\n");
        exit(EXIT_FAILURE);
    }

    // Setup signal handler
    signal(SIGINT, signalHandler);

    // Attach the built-in UDP probe
    AddProbe();

    // Wait for initialization
    while (!getStatus()) {
        sleep(1);
    }

    // Main event loop
    while (1) {
        struct udp_event_t event = DequeuePerfEvent();
        printEvent(&event);
    }

    dlclose(handle);
    return 0;
}
