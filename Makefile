# tcpevent: `make run` and `make test` set up everything they need.
#
#   make run        install what is missing, build, trace (as root)
#   make test       install what is missing, build, run every test
#   make lint       ruff + mypy
#   make bench      the benchmark suite (docs/performance.md)
#   make test-asan  the native library built with ASan/UBSan, tests again
#   make install-lib [LIBDIR=/opt/RealTimeKql/lib]   where old clients look

PYTHON ?= python3
LIBDIR ?= /opt/RealTimeKql/lib
APT_PACKAGES := clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool gcc make \
	pkg-config coreutils iproute2
PIP_PACKAGES := "setuptools>=64" wheel "cffi>=1.15" pytest pytest-mock \
	pytest-timeout mypy ruff

.PHONY: all deps build run test lint bench test-asan install-lib clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@$(PYTHON) -c "import setuptools, wheel, cffi, pytest, pytest_mock, pytest_timeout, mypy" \
		2>/dev/null || $(PYTHON) -m pip install -q $(PIP_PACKAGES)
	@command -v ruff >/dev/null || $(PYTHON) -m pip install -q ruff

build: deps
	$(PYTHON) -m pip install -q --no-build-isolation -e .

run: build
	$(PYTHON) -m tcpevent

test: build
	TCPEVENT_REQUIRE_BPF=1 $(PYTHON) -m pytest -q -ra

lint: deps
	ruff check .
	ruff format --check .
	$(PYTHON) -m mypy

bench: build
	$(PYTHON) benchmarks/run.py

test-asan: deps
	TCPEVENT_SANITIZE=address,undefined $(PYTHON) -m pip install -q --no-build-isolation -e .
	TCPEVENT_REQUIRE_BPF=1 TCPEVENT_ASAN=1 \
		LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
		ASAN_OPTIONS=detect_leaks=0 $(PYTHON) -m pytest -q -ra -m "not slow"
	$(PYTHON) -m pip install -q --no-build-isolation -e .

install-lib: build
	install -D -m 0755 tcpevent/lib/libtcpEvent.so $(LIBDIR)/libtcpEvent.so
	@echo "installed $(LIBDIR)/libtcpEvent.so"

clean:
	rm -rf build dist *.egg-info tcpevent/lib tcpevent/include tcpevent/_native*.so \
		tcpevent/_native.c
