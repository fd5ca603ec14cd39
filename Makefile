# tcpevent: `make run` and `make test` set up everything they need.
#
#   make run        install what is missing, build, trace (as root)
#   make test       install what is missing, build, run every test
#   make lint       ruff, mypy, and clang-format on csrc/ (csrc/.clang-format)
#   make bench      the benchmark suite (docs/performance.md)
#   make test-asan  the native library built with ASan/UBSan, tests again
#   make test-kernels  the real-kernel tests on Linux 5.10, 6.1 and 6.12 in VMs
#   make wheel      the sdist and the one wheel (abi3, manylinux) into dist/
#   make test-wheel that wheel and the sdist installed with pip in Debian 11,
#                   12 and 13 roots (debootstrap), checked on this kernel
#   make install-lib [LIBDIR=/opt/RealTimeKql/lib]   where old clients look
#                   (libtcpEvent.so, and libevent.so for C# [DllImport("event")];
#                   libudpEvent.so, the UDP flow tracer)

PYTHON ?= python3
LIBDIR ?= /opt/RealTimeKql/lib
LIB_SO ?= tcpevent/lib/libtcpEvent.so
UDP_LIB_SO ?= tcpevent/lib/libudpEvent.so
# What building and tracing need (`make run`): the BPF compiler, libelf and
# zlib, a C compiler and make. libbpf is not the system's: the build fetches
# its pinned release from Debian's archive (csrc/vendor/libbpf.py).
APT_RUN_PACKAGES := clang libelf-dev zlib1g-dev gcc make
PIP_RUN_PACKAGES := "setuptools>=64" wheel "cffi>=1.15"
# Only the tests' (`make test`, `make lint`, the kernel and sanitizer
# targets): clang-format, the C sources' style (lint); libbpf-dev, for the
# tests' own BPF objects and C drivers; bpftool and iproute2, the tests'
# views of the kernel;
# nftables: the lifecycle tests; mono-*: the C# example and its test;
# util-linux (setpriv) and systemd (systemd-analyze): the exporter's tests;
# podman, runc and busybox-static: the container tests run a real container
# (runc: crun refuses hybrid cgroup hosts; busybox-static: its root
# filesystem, no image registry needed).
APT_TEST_PACKAGES := clang-format libbpf-dev llvm bpftool pkg-config coreutils iproute2 nftables \
	mono-mcs mono-runtime util-linux systemd podman runc busybox-static
# Without their recommends: the Prometheus server the exporter's tests scrape
# with (not its node exporter).
# clickhouse-server and clickhouse-client: the ClickHouse (Debian's 18.16)
# `tcpevent ship` is tested and benchmarked against, run by the tests as a
# plain process on loopback (the package's own service is not used).
APT_TEST_LEAN_PACKAGES := prometheus clickhouse-server clickhouse-client
# The real servers the attribution tests run on loopback themselves, each
# comparing its own account with the events (PostgreSQL's backends with
# pgbench, sshd's per-connection child): installed with their services
# left stopped (a policy-rc.d that refuses, only while installing).
APT_TEST_SERVER_PACKAGES := postgresql openssh-server openssh-client
# PyYAML and bcrypt: --web.config.file (the extra tcpevent[web]).
PIP_TEST_PACKAGES := pytest pytest-mock pytest-timeout mypy ruff prometheus_client PyYAML bcrypt

.PHONY: all deps test-deps build run test lint bench test-asan test-kernels kernel-deps install-lib clean \
	wheel-deps wheel test-wheel

# $(call apt_install,PACKAGES[,apt-get options]): those not installed yet.
define apt_install
@missing=$$(for p in $(1); do \
	dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
done); \
if [ -n "$$missing" ]; then \
	echo "installing:$$missing"; \
	apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) $$missing; \
fi
endef

all: build

# deps: what `make run` needs; test-deps: that and the tests' own.
deps:
	$(call apt_install,$(APT_RUN_PACKAGES))
	@$(PYTHON) -c "import setuptools, wheel, cffi" 2>/dev/null || \
		$(PYTHON) -m pip install -q $(PIP_RUN_PACKAGES)

test-deps: deps
	$(call apt_install,$(APT_TEST_PACKAGES))
	$(call apt_install,$(APT_TEST_LEAN_PACKAGES),--no-install-recommends)
	@policy=/usr/sbin/policy-rc.d; made=; \
	if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy; \
		chmod 0755 $$policy; made=1; fi; \
	missing=$$(for p in $(APT_TEST_SERVER_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	done); rc=0; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$$missing || rc=$$?; fi; \
	[ -z "$$made" ] || rm -f $$policy; exit $$rc
	@$(PYTHON) -c "import pytest, pytest_mock, pytest_timeout, mypy, prometheus_client, yaml, \
		bcrypt" 2>/dev/null || $(PYTHON) -m pip install -q $(PIP_TEST_PACKAGES)
	@command -v ruff >/dev/null || $(PYTHON) -m pip install -q ruff

build: deps
	$(PYTHON) -m pip install -q --no-build-isolation -e .

run: build
	$(PYTHON) -m tcpevent

test: test-deps build
	TCPEVENT_REQUIRE_BPF=1 $(PYTHON) -m pytest -q -ra

# The C sources clang-format checks: all of csrc/ but two headers it would
# only disfigure, bpf/vmlinux_min.h (kernel types, kept as the kernel lays
# them out, to compare with it) and include/common.h (the original
# examples' header: the original BCC program, as text).
C_FORMAT_FILES = $(filter-out csrc/bpf/vmlinux_min.h csrc/include/common.h, \
	$(sort $(wildcard csrc/*.[ch] csrc/*/*.[ch])))

lint: test-deps
	ruff check .
	ruff format --check .
	$(PYTHON) -m mypy
	clang-format --dry-run --Werror $(C_FORMAT_FILES)

# bpftrace is only the benchmarks' reference point: without it (no package
# for this system) its row is left out, the rest still runs.
bench: test-deps build
	@command -v bpftrace >/dev/null || { echo "installing: bpftrace"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bpftrace; } || \
		echo "bpftrace could not be installed: the benchmarks run without its reference row"
	$(PYTHON) benchmarks/run.py

# The sanitized build goes to build/asan (library, extension and a copy of
# the Python sources) and the suite runs from there, so the normal in-place
# build, which others may be using, is never replaced. Python itself is not
# instrumented: libasan is preloaded and its leak check is off; the C drivers
# the tests build with -fsanitize check leaks themselves.
ASAN_DIR := build/asan
# Left out under the sanitizers: what exercises no more of the library than
# the rest of the suite does (packaging builds wheels with the compilers; the
# ClickHouse fault and web-configuration tests drive Python plumbing).
ASAN_IGNORE := test_packaging.py test_ship_faults.py test_webconfig.py
test-asan: test-deps
	rm -rf $(ASAN_DIR)
	TCPEVENT_SANITIZE=address,undefined $(PYTHON) setup.py -q build_ext \
		--build-lib $(ASAN_DIR) --build-temp $(ASAN_DIR)/tmp
	cd tcpevent && find . -name '*.py' -o -name py.typed | \
		xargs -I{} install -D -m 0644 {} $(CURDIR)/$(ASAN_DIR)/tcpevent/{}
	nm -D $(ASAN_DIR)/tcpevent/lib/libtcpEvent.so | grep -q __asan_report
	cd $(ASAN_DIR) && LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" \
		ASAN_OPTIONS=detect_leaks=0 $(PYTHON) -c 'import sys, tcpevent.abi as a; \
		p = str(a.library_path()); sys.exit("/build/asan/" not in p and "not the sanitized build: " + p)'
	mkdir -p $(ASAN_DIR)/reports
	@# A crash inside te_trial()'s child is libbpf failing on a corrupt
	@# custom object: contained by design, and tested. Any other report fails.
	@# GCC's UBSan ignores log_path and writes to stderr, then exits: pytest
	@# captures by sys, not fd, so that report reaches this log.
	cd $(ASAN_DIR) && TCPEVENT_REQUIRE_BPF=1 TCPEVENT_ASAN=1 \
		LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" \
		ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_DIR)/reports/asan \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_DIR)/reports/ubsan \
		$(PYTHON) -m pytest -q -ra -p no:cacheprovider --capture=sys \
		$(addprefix --ignore=$(CURDIR)/tests/,$(ASAN_IGNORE)) \
		$(PYTEST_ARGS) $(CURDIR)/tests; \
	rc=$$?; bad=$$(grep -L ' in te_trial ' reports/* 2>/dev/null); \
	if [ -n "$$bad" ]; then cat $$bad; exit 1; fi; \
	echo "sanitizer report files: none but $$(ls reports | wc -l) contained te_trial crash(es)"; \
	exit $$rc

# Debian's kernels (the newest package of each series, installed with
# apt-get; docs/kernels.md), booted by virtme-ng under qemu with this
# machine's filesystem; the tests run inside against the build above.
# virtme-ng needs busybox for the initramfs that loads the kernels' 9p and
# virtio modules.
KERNEL_APT_PACKAGES := qemu-system-x86 busybox-static
kernel-deps: test-deps
	$(call apt_install,$(KERNEL_APT_PACKAGES),--no-install-recommends)
	@$(PYTHON) -c "import virtme_ng" 2>/dev/null || $(PYTHON) -m pip install -q virtme-ng
	$(PYTHON) tests/kernels/run.py install

test-kernels: build kernel-deps
	$(PYTHON) tests/kernels/run.py

# The wheel is built in a Debian 11 root (glibc 2.31) made with debootstrap,
# the checks run in Debian 11, 12 and 13 roots; all cached in
# /var/cache/tcpevent/roots (TCPEVENT_ROOTS), made again when missing or a
# month old (tests/wheel/roots.py). test-wheel makes them all at once first.
WHEEL_APT_PACKAGES := debootstrap binutils
wheel-deps: deps
	$(call apt_install,$(WHEEL_APT_PACKAGES),--no-install-recommends)

wheel: wheel-deps
	$(PYTHON) tests/wheel/build.py

test-wheel: wheel-deps
	$(PYTHON) tests/wheel/roots.py
	$(PYTHON) tests/wheel/build.py
	$(PYTHON) tests/wheel/run.py

# libevent.so is the name C# clients load ([DllImport("event")]). It is also
# the name of the unrelated libevent's development link: keep LIBDIR a
# directory of its own, not /usr/lib or /usr/local/lib.
install-lib: build
	install -D -m 0755 $(LIB_SO) $(LIBDIR)/libtcpEvent.so
	install -D -m 0755 $(UDP_LIB_SO) $(LIBDIR)/libudpEvent.so
	ln -sfn libtcpEvent.so $(LIBDIR)/libevent.so
	@echo "installed $(LIBDIR)/libtcpEvent.so, $(LIBDIR)/libudpEvent.so and $(LIBDIR)/libevent.so -> libtcpEvent.so"

clean:
	rm -rf build dist *.egg-info tcpevent/lib tcpevent/include tcpevent/_native*.so \
		tcpevent/_native.c tcpevent/_udp_native*.so tcpevent/_udp_native.c
