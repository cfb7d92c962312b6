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
RUN_ARGS ?=
TEST_ARGS ?=

.PHONY: all run test deps venv bpf clean distclean

all: bpf

# The default suite of scenarios/ (RUN_ARGS="--quick" for a first look in ~1 minute);
# results and reports in results/run-<time>/, results/latest points to them.
run: deps bpf
	$(LAB) doctor
	$(LAB) run $(RUN_ARGS)

test: deps bpf
	$(PYTEST) $(TEST_ARGS)

deps: $(STAMPS)/debian $(STAMPS)/venv

# Re-checked whenever the package list changes; install-deps itself is a no-op when all is there.
$(STAMPS)/debian: tools/debian-packages.txt tools/install-deps
	@mkdir -p $(STAMPS)
	tools/install-deps tools/debian-packages.txt
	@touch $@

$(STAMPS)/venv: requirements.txt pyproject.toml $(STAMPS)/debian
	@mkdir -p $(STAMPS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

venv: $(STAMPS)/venv

include bpf/build.mk

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(VENV)
