# BPF objects: every bpf/*.c becomes build/bpf/<name>.o (BTF included).
BPF_CLANG  ?= clang
BPF_CFLAGS := -target bpf -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter \
              -I bpf/include -I /usr/include/$(shell uname -m)-linux-gnu
BPF_SRCS   := $(wildcard bpf/*.c)
BPF_OBJS   := $(patsubst bpf/%.c,$(BUILD)/bpf/%.o,$(BPF_SRCS))
BPF_HDRS   := $(wildcard bpf/include/*.h bpf/include/*/*.h)

bpf: $(STAMPS)/debian $(BPF_OBJS)

$(BUILD)/bpf/%.o: bpf/%.c $(BPF_HDRS)
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

-include $(BPF_OBJS:.o=.d)
