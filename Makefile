# Set-up and checks for a fresh Debian machine, as root. Every target is idempotent and quick when
# its work is already done.
#   make demo   install everything, then run examples/web-and-sidecar.yaml in the foreground
#               (busybox:1.36 from the local store: IfNotPresent, no registry needed)
#   make test   install everything, then the unit tier and the root (integration) tier
#   make lock   refresh requirements/*.txt (then `make test` against it before committing it)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SANDBOX := $(VENV)/bin/sandbox
PYTHON ?= python3
# busybox-static: the test image; libcap-dev: python-prctl's build; musl-tools: the tiny static
# pause and the tests' syscall probe; libseccomp2: the seccomp filters (dlopen'ed, no headers);
# iproute2, procps, util-linux: what the tests read the kernel's state with; libnftables1 and
# nftables: hostPort rules (dlopen'ed) and the tests' view of them; containernetworking-plugins:
# the CNI plugins `--network cni` is tested with; zstd: zstd-compressed image layers; attr,
# docker-registry, skopeo: the image tests (xattrs seen from outside, a registry on loopback,
# pushes); redis-tools, php-cli, tini, curl: the redis-php test images (rootfs/build-test-images.sh);
# zlib1g-dev: <zlib.h> for the layer extractor (native/extract.c dlopens libz and libcrypto);
# libisal-dev (and its libisal2): isa-l's inflate for gzip layers, 2-3x zlib's on real layers
# (extract.c builds against <isa-l/igzip_lib.h> and dlopens libisal.so.2; without either, zlib).
APT_PACKAGES := busybox-static libcap-dev musl-tools libseccomp2 gcc libc6-dev make python3-venv zlib1g-dev libisal-dev \
                python3-dev iproute2 procps util-linux libnftables1 nftables containernetworking-plugins \
                docker-registry skopeo zstd attr redis-tools php-cli tini curl systemd dbus-daemon
# make bench's peers and tools: the OCI runtimes and podman (with conmon and catatonit) it compares with,
# hyperfine (timing), gnuplot-nox (bench/latency.png), iperf3 (the issue's throughput peer, at hand for
# manual checks; bench/net_throughput.py measures with rootfs/netbench.c)
BENCH_APT_PACKAGES := runc crun podman conmon catatonit hyperfine iperf3 gnuplot-nox
# the benchmarks start pods: they wait for the integration tests' lock (their leak checks see every pod)
BENCH_LOCK := flock -o /tmp/sandbox-integ.lock
STAMPS := .stamps
# Every Python package of the venv, pinned with hashes (README.md, "Locked Python packages")
LOCK := requirements/lock.txt
BUILD_LOCK := requirements/build.txt
PIP := $(PY) -m pip --disable-pip-version-check
PIP_TOOLS := pip-tools==7.6.2
LOCK_VENV := $(or $(TMPDIR),/tmp)/sandbox-lock-venv
LOCK_ARGS ?= --upgrade
NATIVE := $(wildcard native/*.c native/*.h native/*.py)

.PHONY: install demo test unit integration bench bench-check bench-baseline lint lock clean

install: $(STAMPS)/apt $(STAMPS)/venv $(STAMPS)/busybox
	@# -o 2: the launcher runs python -OO (requirements/launcher.py); -o 0: tests import sandbox too
	@$(PY) -m compileall -q -o 0 -o 2 sandbox >/dev/null
	@# the launcher's byte-code bundle (sandbox/codebundle.py), for its python -OO
	@$(PY) -m sandbox.codebundle 2

demo: install
	$(SANDBOX) run examples/web-and-sidecar.yaml

test: install
	$(PY) -m pytest tests/unit -q -x
	$(PY) -m pytest tests/integration -q
	$(PY) -m pytest tests/security -q
	$(PY) -m pytest tests/cgroups -q

unit: $(STAMPS)/venv
	$(PY) -m pytest tests/unit -q

integration: install
	$(PY) -m pytest tests/integration -q

# bench: every benchmark, every peer, bench/results.md and bench/latency.png (~6 min);
# bench-check: a quicker run whose ratios must stay within 15% of bench/baseline.json (exit 1 names
# each one that worsened); bench-baseline: a full run that also rewrites bench/baseline.json
bench: install
	@bash rootfs/apt-ensure.sh $(BENCH_APT_PACKAGES)
	$(BENCH_LOCK) $(PY) bench/all.py

bench-check: install
	@bash rootfs/apt-ensure.sh $(BENCH_APT_PACKAGES)
	$(BENCH_LOCK) $(PY) bench/all.py --quick --check

bench-baseline: install
	@bash rootfs/apt-ensure.sh $(BENCH_APT_PACKAGES)
	$(BENCH_LOCK) $(PY) bench/all.py --write-baseline

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check sandbox tests
	$(VENV)/bin/mypy sandbox

$(STAMPS)/apt: rootfs/apt-ensure.sh
	@bash rootfs/apt-ensure.sh $(APT_PACKAGES)
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: $(STAMPS)/apt pyproject.toml setup.py $(NATIVE) $(LOCK) $(BUILD_LOCK) requirements/launcher.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# Only locked files, each checked against its hash. The installer and build tools come first,
	@# so python-prctl (an sdist) and the project build with them, not in an isolated environment
	@# filled with whatever setuptools the index has that day.
	$(PIP) install -q --require-hashes -r $(BUILD_LOCK)
	$(PIP) install -q --require-hashes --no-build-isolation -r $(LOCK)
	@# compat mode: a plain .pth path entry; the default editable finder costs ~10 ms per start-up
	$(PIP) install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	$(PY) requirements/check.py --sync
	@# setuptools' distutils-precedence.pth runs at every interpreter start: it imports
	@# _distutils_hack and puts a finder in front of every import, ~1.4 ms of each `sandbox`
	@# command. Only builds need setuptools, and they import it (and its distutils) themselves.
	rm -f $(VENV)/lib/python3*/site-packages/distutils-precedence.pth
	$(PY) requirements/launcher.py
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/busybox: $(STAMPS)/venv rootfs/build-busybox.sh $(wildcard rootfs/*.c)
	rootfs/build-busybox.sh $(SANDBOX)
	@mkdir -p $(STAMPS) && touch $@

# Resolve pyproject.toml's dependencies and its test and lint extras, the project's build
# requirements and pip anew in a throwaway venv (LOCK_ARGS= keeps the current pins where they
# still fit). The venv's stamp depends on the lock, so the next `make test` installs the new set
# and runs against it; commit requirements/ only when that passes.
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --disable-pip-version-check $(PIP_TOOLS)
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile -q $(LOCK_ARGS) --generate-hashes \
	    --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --extra test --extra lint \
	    --build-deps-for editable -o $(LOCK) pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile -q $(LOCK_ARGS) --generate-hashes \
	    --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o $(BUILD_LOCK) requirements/build.in
	rm -rf $(LOCK_VENV)
	@echo "requirements/ refreshed: run make test against it, and commit it only if that passes"

clean:
	rm -rf $(VENV) $(STAMPS) build sandbox/_bin sandbox/_native*.so sandbox/_native.c *.egg-info
