/* SPDX-License-Identifier: MIT */
/*
 * legacy_calls.h - the six original calls of libtcpEvent.so, looked up with
 * dlopen() and dlsym() as an existing client looks them up, into pointers of
 * the types tcpevent_legacy.h declares (so a changed signature breaks the
 * build of every program that uses them). For the C programs of benchmarks/
 * and of tests/support/c/; needs csrc/include on the include path, as they
 * all have.
 *
 * It lives here, in benchmarks/, because the tests already build and run
 * the benchmarks' programs (churn.c, run.py) and nothing in benchmarks/
 * uses tests/: the dependency keeps one direction. The test drivers include
 * it by its path relative to theirs, so no build needs another -I.
 */
#ifndef TCPEVENT_BENCH_LEGACY_CALLS_H
#define TCPEVENT_BENCH_LEGACY_CALLS_H

#include <dlfcn.h>
#include <stdio.h>

#include "tcpevent_legacy.h"

struct legacy_calls {
	tcpevent_AddProbe_fn *AddProbe;
	tcpevent_setupBPF_fn *setupBPF;
	tcpevent_getStatus_fn *getStatus;
	tcpevent_DequeuePerfEvent_fn *DequeuePerfEvent;
	tcpevent_printCharArray_fn *printCharArray;
	tcpevent_cleanup_fn *cleanup;
};

/*
 * dlopen() the library at path and fill *calls with its six calls. Returns
 * the handle (for other symbols, and dlclose()), or NULL once it has said
 * on stderr what is missing.
 */
static inline void *legacy_calls_open(const char *path,
				      struct legacy_calls *calls)
{
	void *lib = dlopen(path, RTLD_NOW);

	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return NULL;
	}
	calls->AddProbe = (tcpevent_AddProbe_fn *)dlsym(lib, "AddProbe");
	calls->setupBPF = (tcpevent_setupBPF_fn *)dlsym(lib, "setupBPF");
	calls->getStatus = (tcpevent_getStatus_fn *)dlsym(lib, "getStatus");
	calls->DequeuePerfEvent =
		(tcpevent_DequeuePerfEvent_fn *)dlsym(lib, "DequeuePerfEvent");
	calls->printCharArray =
		(tcpevent_printCharArray_fn *)dlsym(lib, "printCharArray");
	calls->cleanup = (tcpevent_cleanup_fn *)dlsym(lib, "cleanup");
	if (!calls->AddProbe || !calls->setupBPF || !calls->getStatus ||
	    !calls->DequeuePerfEvent || !calls->printCharArray ||
	    !calls->cleanup) {
		fprintf(stderr, "dlsym: %s lacks one of the six calls\n", path);
		dlclose(lib);
		return NULL;
	}
	return lib;
}

#endif /* TCPEVENT_BENCH_LEGACY_CALLS_H */
