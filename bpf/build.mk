# BPF objects: every bpf/*.c becomes build/bpf/<name>.o (BTF included); programs that only the
# tests use (tests/bpf/progs/*.c, e.g. one the verifier must reject) become build/bpf/tests/*.o.
# Header dependencies come from clang -MMD, so only objects whose sources changed are rebuilt.
# `bpf-objects` is the same without the Debian package check, for tests that build on demand.
BPF_CLANG  ?= clang
BPF_CFLAGS := -target bpf -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter \
              -I bpf/include -I /usr/include/$(shell uname -m)-linux-gnu
BPF_SRCS   := $(wildcard bpf/*.c)
BPF_OBJS   := $(patsubst bpf/%.c,$(BUILD)/bpf/%.o,$(BPF_SRCS))
BPF_TEST_SRCS := $(wildcard tests/bpf/progs/*.c)
BPF_TEST_OBJS := $(patsubst tests/bpf/progs/%.c,$(BUILD)/bpf/tests/%.o,$(BPF_TEST_SRCS))

.PHONY: bpf bpf-objects

bpf: $(STAMPS)/debian bpf-objects

bpf-objects: $(BPF_OBJS) $(BPF_TEST_OBJS)

$(BUILD)/bpf/%.o: bpf/%.c
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bpf/tests/%.o: tests/bpf/progs/%.c
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

-include $(BPF_OBJS:.o=.d) $(BPF_TEST_OBJS:.o=.d)
