# Petrel build. `make` builds build/petrel; `make test` runs every test;
# `make run` starts a development server under ./var.
CC      ?= cc
PKGS     = libevent libevent_openssl libevent_pthreads openssl sqlite3 gmime-3.0 \
           libgsasl libcrypt libcares inih zlib
BUILD   ?= build
SAN     ?=
OPT     ?= -O2 -g
CFLAGS_BASE = -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Isrc $(OPT) $(SAN) \
              -fno-strict-aliasing -MMD -MP
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS_ALL  = $(CFLAGS_BASE) $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL  = $(PKG_LIBS) -lpthread $(LDLIBS)

SRCS    := $(sort $(wildcard src/*/*.c))
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
LIBOBJS := $(filter-out $(BUILD)/src/cli/%,$(OBJS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all bootstrap run test unit integration asan clean fuzz
all: $(BUILD)/petrel

$(BUILD)/petrel: $(OBJS)
	$(CC) $(SAN) -o $@ $(OBJS) $(LDLIBS_ALL)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBOBJS) $(LDLIBS_ALL) -lcmocka

bootstrap:
	@scripts/bootstrap

run: bootstrap
	@$(MAKE) --no-print-directory all
	@scripts/devrun

unit: $(UNIT_BINS)
	@scripts/run-tests unit $(BUILD)

integration: $(BUILD)/petrel
	@scripts/run-tests integration $(BUILD)

# Everything: plain build, then the whole suite again under ASan+UBSan.
test: bootstrap
	@$(MAKE) --no-print-directory all $(UNIT_BINS)
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g" \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		build-asan/petrel $(UNIT_BINS:$(BUILD)/%=build-asan/%)
	@scripts/run-tests all

# libFuzzer targets (clang): build/fuzz/fuzz_*; see fuzz/README.md
fuzz:
	$(MAKE) -C fuzz

clean:
	rm -rf build build-asan

-include $(OBJS:.o=.d)
