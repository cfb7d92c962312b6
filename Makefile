# The datapath lab. Two commands do all set-up on a fresh Debian 12 / Ubuntu 24.04 machine:
#   make run    the main job (the scenarios that reproduce the talk)
#   make test   the test suite
# Both install what is missing first; a second call installs nothing.

PYTHON   ?= python3
VENV     := .venv
BUILD    := build
STAMPS   := $(BUILD)/stamps
LAB      := $(VENV)/bin/lab
PYTEST   := $(VENV)/bin/pytest
# --vm: scenarios this kernel cannot run (netkit) run in the kernel VM (lab vm) instead.
RUN_ARGS ?= --vm
TEST_ARGS ?=

# The kernel matrix (issue 13): `make test-kernels` runs every BPF packet test (tests/bpf) and
# the netkit tests here and in one VM boot per kernel of KERNELS (`make test` runs a sample of
# them on the newest 7.x and 6.12); `make run-kernels` runs the MATRIX_SCENARIOS natively and
# on each of KERNELS into one results.json and report with a kernel column.
KERNELS ?= 6.12,7.2,7.3
MATRIX_SCENARIOS ?= bigtcp bigtcp-nat46 pods-netkit
MATRIX_ARGS ?= --quick

.PHONY: all run test test-long test-kernels run-kernels deps venv bpf clean distclean

all: bpf

# The default suite of scenarios/ (about 21 minutes; RUN_ARGS=--quick for a first look in
# about 2 minutes, without the VM);
# results and reports in results/run-<time>/, results/latest points to them.
run: deps bpf
	$(LAB) doctor
	$(LAB) run $(RUN_ARGS)

# make test leaves out the minutes-long system tests (marker long: the soak, two VM hosts) to
# stay within 20 minutes; make test-long runs them, and CI (.ci/run) runs both.
test: deps bpf
	$(PYTEST) --durations=30 -m "not long" $(TEST_ARGS)

test-long: deps bpf
	$(PYTEST) --durations=10 -m long $(TEST_ARGS)

test-kernels: deps bpf
	LAB_TEST_KERNELS=$(KERNELS) LAB_TEST_BPF_SELECTION=full \
		$(PYTEST) tests/bpf tests/netkit tests/vm/test_bpf_in_vm.py $(TEST_ARGS)

run-kernels: deps bpf
	$(LAB) run --kernels host,$(KERNELS) $(MATRIX_ARGS) $(MATRIX_SCENARIOS)

deps: $(STAMPS)/debian $(STAMPS)/venv $(STAMPS)/netperf

# Re-checked whenever the package list changes; install-deps itself is a no-op when all is there.
DEBIAN_LISTS := tools/debian-packages.txt tools/debian-packages-vm.txt

$(STAMPS)/debian: $(DEBIAN_LISTS) tools/install-deps
	@mkdir -p $(STAMPS)
	tools/install-deps $(DEBIAN_LISTS)
	@touch $@

$(STAMPS)/venv: requirements.txt pyproject.toml $(STAMPS)/debian
	@mkdir -p $(STAMPS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

venv: $(STAMPS)/venv

# netperf, the published figures' tool: apt installs it where the distribution offers it
# (`netperf?` above); on Debian 12 (non-free only) lab fetches Debian's package, verified with
# gpgv, into /var/cache/lab/tools without touching the apt sources. If that fails the rest of
# the set-up still succeeds; `lab doctor` says why, netperf steps are skipped, and the next
# `make` tries again.
$(STAMPS)/netperf: $(STAMPS)/venv
	@$(VENV)/bin/python -m lab.traffic.netperf_package && touch $@ || true

include bpf/build.mk

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(VENV)
