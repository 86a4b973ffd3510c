# receiver - a webhook receiver for 1688 trade messages.
#
#   make            build build/receiver
#   make run        install what is missing, start a local PostgreSQL
#                   (unless DATABASE_URL is set), migrate, serve on :8080
#   make test       install what is missing, build, run every test (the
#                   C formatting and the layer check among them)
#   make check-layers  no module includes a higher layer (tests/check_layers.py)
#   make install    PREFIX=/usr/local DESTDIR=
#
# SAN=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer into
# build/asan instead of build.

PKGS     = libevent libevent_openssl openssl jansson libpq
CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
CONFIG  ?= receiver.toml

ifeq ($(SAN),1)
BUILD    = build/asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT      = -O1 -g
else
BUILD    = build
SANFLAGS =
OPT      = -O2 -g
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= $(OPT)
CFLAGS  += -std=c17 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
           -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
           -Ireceiver -I$(BUILD) $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -lm

SRCS       = $(wildcard receiver/*.c)
LIB_OBJS   = $(patsubst receiver/%.c,$(BUILD)/obj/%.o,$(filter-out receiver/main.c,$(SRCS))) \
             $(BUILD)/obj/migrations.o
MAIN_OBJ   = $(BUILD)/obj/main.o
UNIT_SRCS  = $(wildcard tests/unit/test_*.c)
UNIT_BINS  = $(patsubst tests/unit/%.c,$(BUILD)/%,$(UNIT_SRCS))
MIGRATIONS = $(sort $(wildcard sql/*.sql))
HELPER_SRCS = $(wildcard tests/helpers/*.c)
HELPER_BINS = $(patsubst tests/helpers/%.c,$(BUILD)/%,$(HELPER_SRCS))

.PHONY: all setup run test unit integration install clean check-format format check-layers

all: $(BUILD)/receiver

$(BUILD)/receiver: $(MAIN_OBJ) $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: receiver/%.c | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

# The migrations are compiled into the binary, so `receiver migrate` needs
# no path and the daemon knows which schema version it requires.
$(BUILD)/migrations.c: $(MIGRATIONS) receiver/embed-sql.sh | $(BUILD)/obj
	sh receiver/embed-sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/migrations.o: $(BUILD)/migrations.c
	$(CC) $(CFLAGS) -Wno-overlength-strings -c -o $@ $<

$(BUILD)/test_%: tests/unit/test_%.c $(LIB_OBJS)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%: tests/helpers/%.c $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj:
	mkdir -p $@

unit-bins: $(UNIT_BINS)
helper-bins: $(HELPER_BINS) build/clockshift.so

# An LD_PRELOAD shim that steps a daemon's wall clock (tests/shim): one
# build serves both binaries, it needs no sanitizer of its own.
build/clockshift.so: tests/shim/clockshift.c
	@mkdir -p build
	$(CC) -O2 -g -Wall -Wextra -Werror -shared -fPIC -o $@ $< -ldl

setup:
	@sh deploy/setup-debian.sh

run: setup
	@$(MAKE) --no-print-directory all
	@sh deploy/run-local.sh $(CONFIG)

# Every suite prints "N passed, N failed"; tests/run adds them up and exits
# non-zero when anything failed.
test: setup
	@$(MAKE) --no-print-directory all unit-bins helper-bins
	@$(MAKE) --no-print-directory SAN=1 all unit-bins helper-bins
	@sh tests/run

unit: all unit-bins
	@for t in $(UNIT_BINS); do $$t || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/receiver/sql \
	    $(DESTDIR)$(PREFIX)/share/doc/receiver $(DESTDIR)/etc/receiver
	install -m 0755 $(BUILD)/receiver $(DESTDIR)$(PREFIX)/bin/receiver
	install -m 0644 $(MIGRATIONS) $(DESTDIR)$(PREFIX)/share/receiver/sql/
	install -m 0644 deploy/receiver.service deploy/nginx.conf $(DESTDIR)$(PREFIX)/share/receiver/
	install -m 0644 README.md RELIABILITY.md $(DESTDIR)$(PREFIX)/share/doc/receiver/
	install -m 0640 receiver.toml $(DESTDIR)/etc/receiver/receiver.toml.example
	@echo "installed; copy /etc/receiver/receiver.toml.example to /etc/receiver/receiver.toml and edit it"

format:
	clang-format -i receiver/*.c receiver/*.h tests/unit/*.c tests/unit/*.h

check-format:
	clang-format --dry-run --Werror receiver/*.c receiver/*.h

# The modules' layers (tests/check_layers.py holds the map): no include of
# a higher layer, no module outside the map.
check-layers:
	python3 tests/check_layers.py receiver

clean:
	rm -rf build

# Benchmark: `make bench` builds the receiver and the bench tools (gen,
# baseline, rate: build/bench/) and runs tests/bench/run.sh, which starts its
# own PostgreSQL, drives the receiver, a bare evhttp baseline and the
# receiver without group commit with wrk, then at a constant rate, prints
# a table and checks every acknowledged push is stored (2-2.5 minutes).
# `make bench-relay` runs tests/bench/relay.sh: the relay's throughput (a
# backlog drained, a constant 2,000 pushes/s) and its latency from commit
# to a local consumer's 2xx (build/bench/sink) at 200 events/s, checking
# every event arrived exactly once (2-2.5 minutes).
BENCH_BINS   = build/bench/gen build/bench/baseline build/bench/rate build/bench/sink
BENCH_CFLAGS = -O2 -g -std=c17 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Wall -Wextra \
               -Werror $(shell pkg-config --cflags libevent openssl 2>/dev/null)
BENCH_LIBS   = $(shell pkg-config --libs libevent openssl 2>/dev/null) -lm

.PHONY: bench
bench:
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@RECEIVER_BIN=$(BUILD)/receiver sh tests/bench/run.sh

.PHONY: bench-relay
bench-relay:
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@RECEIVER_BIN=$(BUILD)/receiver sh tests/bench/relay.sh

$(BENCH_BINS): build/bench/%: tests/bench/%.c
	@mkdir -p build/bench
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(BENCH_LIBS)

# Fuzzing: `make fuzz` builds the libFuzzer targets in tests/fuzz/ (form
# decoding, signatures, the message parser, the TOML reader, the 1688
# gateway's answers and bodies) with clang,
# ASan and UBSan into build/fuzz/ (the receiver sources compiled afresh,
# not the gcc objects) and runs each for FUZZ_SECONDS seconds on a copy of
# its seed corpus, build/fuzz/corpus/<target>; crashes land in
# build/fuzz/crashes/<target>/ (replay one: build/fuzz/fuzz_<target> FILE).
# It ends with "fuzz: N passed, N failed" and fails when any target found
# something.  `make fuzz-build` only builds.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS  = form signature message config gateway
FUZZ_BINS     = $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
FUZZ_SAN      = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
FUZZ_CFLAGS   = -O1 -g $(FUZZ_SAN) -std=c17 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
                -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
                -Wformat=2 -Ireceiver $(PKG_CFLAGS) -MMD -MP
FUZZ_OPTS_form      = -max_len=65536 -dict=tests/fuzz/form.dict
FUZZ_OPTS_signature = -max_len=65536 -dict=tests/fuzz/form.dict
FUZZ_OPTS_message   = -max_len=65536 -dict=tests/fuzz/json.dict
FUZZ_OPTS_config    = -dict=tests/fuzz/toml.dict
FUZZ_OPTS_gateway   = -max_len=65536 -dict=tests/fuzz/json.dict

.PHONY: fuzz fuzz-build
fuzz: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(foreach t,$(FUZZ_TARGETS),'$(t) $(FUZZ_OPTS_$(t))')

fuzz-build: $(FUZZ_BINS)

# Each target links its harness and the receiver sources it exercises.
build/fuzz/fuzz_form:      build/fuzz/obj/form.o
build/fuzz/fuzz_signature: build/fuzz/obj/form.o build/fuzz/obj/signature.o
build/fuzz/fuzz_message:   build/fuzz/obj/message.o build/fuzz/obj/json.o
build/fuzz/fuzz_config:    build/fuzz/obj/toml.o
build/fuzz/fuzz_gateway:   build/fuzz/obj/gateway.o build/fuzz/obj/json.o build/fuzz/obj/signature.o \
                           build/fuzz/obj/form.o

$(FUZZ_BINS): build/fuzz/fuzz_%: build/fuzz/obj/fuzz_%.o
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS) -lm

build/fuzz/obj/fuzz_%.o: tests/fuzz/fuzz_%.c | build/fuzz/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

build/fuzz/obj/%.o: receiver/%.c | build/fuzz/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

build/fuzz/obj:
	mkdir -p $@

-include $(wildcard build/fuzz/obj/*.d)

-include $(wildcard $(BUILD)/obj/*.d) $(wildcard $(BUILD)/*.d)
