# Set-up and checks for a fresh Debian machine, as root. Every target is idempotent and quick when
# its work is already done.
#   make demo   install everything, then run examples/web-and-sidecar.yaml in the foreground
#   make test   install everything, then the unit tier and the root (integration) tier
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SANDBOX := $(VENV)/bin/sandbox
PYTHON ?= python3
# busybox-static: the test image; libcap-dev: python-prctl's build; musl-tools: the tiny static
# pause; iproute2, procps, util-linux: what the tests read the kernel's state with.
APT_PACKAGES := busybox-static libcap-dev musl-tools gcc libc6-dev make python3-venv python3-dev \
                iproute2 procps util-linux
BENCH_APT_PACKAGES := runc hyperfine
STAMPS := .stamps
NATIVE := $(wildcard native/*.c native/*.h native/*.py)

.PHONY: install demo test unit integration bench lint clean

install: $(STAMPS)/apt $(STAMPS)/venv $(STAMPS)/busybox
	@$(PY) -m compileall -q sandbox >/dev/null

demo: install
	$(SANDBOX) run examples/web-and-sidecar.yaml

test: install
	$(PY) -m pytest tests/unit -q -x
	$(PY) -m pytest tests/integration -q

unit: $(STAMPS)/venv
	$(PY) -m pytest tests/unit -q

integration: install
	$(PY) -m pytest tests/integration -q

bench: install
	@bash rootfs/apt-ensure.sh $(BENCH_APT_PACKAGES)
	$(PY) bench/pod_cycle.py

lint: $(STAMPS)/venv
	$(PY) -m pip install -q "ruff>=0.6" "mypy>=1.10"
	$(VENV)/bin/ruff check sandbox tests
	$(VENV)/bin/mypy sandbox

$(STAMPS)/apt: rootfs/apt-ensure.sh
	@bash rootfs/apt-ensure.sh $(APT_PACKAGES)
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: $(STAMPS)/apt pyproject.toml setup.py $(NATIVE)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# compat mode: a plain .pth path entry; the default editable finder costs ~10 ms per start-up
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/busybox: $(STAMPS)/venv rootfs/build-busybox.sh
	rootfs/build-busybox.sh $(SANDBOX)
	@mkdir -p $(STAMPS) && touch $@

clean:
	rm -rf $(VENV) $(STAMPS) build sandbox/_bin sandbox/_native*.so sandbox/_native.c *.egg-info
