# pgferry — build, test and run. GNU make; libraries found with pkg-config.
#
#   make            build bin/pgferry
#   make check      install missing packages, build, run every test
#   make demo       the main job on an embedded default (see README)
#
# See CONTRIBUTING.md for the rest.

CC      ?= gcc
CLANG   ?= clang
PREFIX  ?= /usr/local
PG_BINDIR ?= $(shell pg_config --bindir 2>/dev/null)

PKGS    := libpq libzstd openssl libmicrohttpd libxxhash jansson libcurl
CPPFLAGS_BASE := -Iinclude -D_GNU_SOURCE
CFLAGS_BASE   := -std=c11 -Wall -Wextra -Werror -g -pthread
# pkg-config is asked only when a target compiles something, so that
# "make deps" works before pkg-config itself is installed
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

# relay/ has one folder per concern (see relay/README.md)
LIB_SRCS  := $(sort $(wildcard decoder/*.c) $(filter-out relay/cli/main.c,$(wildcard relay/*/*.c)))
MAIN_SRC  := relay/cli/main.c
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
HEADERS   := $(wildcard include/pgferry/*.h relay/*/*.h)
ALL_C     := $(LIB_SRCS) $(MAIN_SRC) $(UNIT_SRCS) tests/unit/unit_main.c $(FUZZ_SRCS) \
             tests/integration/faultproxy.c tests/integration/forge.c \
             $(wildcard bench/*.c) $(HEADERS)

# one object tree per build flavour
REL_DIR  := build/release
ASAN_DIR := build/asan
REL_FLAGS  := -O2
ASAN_FLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

REL_OBJS  := $(patsubst %.c,$(REL_DIR)/%.o,$(LIB_SRCS))
ASAN_OBJS := $(patsubst %.c,$(ASAN_DIR)/%.o,$(LIB_SRCS))

.PHONY: all deps deps-demo deps-test deps-bench check unit unit-asan integration demo fuzz fuzz-brief bench format \
        format-check lint lint-quick install clean deps-tools deb package-check soak

all: bin/pgferry

# package sets (tools/install-deps.sh): the build; the demo's; the tests'
deps:
	@bash tools/install-deps.sh build

deps-demo:
	@bash tools/install-deps.sh demo

deps-test:
	@bash tools/install-deps.sh test

deps-bench:
	@bash tools/install-deps.sh bench

deps-tools:
	@bash tools/install-deps.sh tools

$(REL_DIR)/%.o: %.c $(HEADERS) | deps
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_BASE) $(CFLAGS_BASE) $(REL_FLAGS) $(PKG_CFLAGS) -c $< -o $@

$(ASAN_DIR)/%.o: %.c $(HEADERS) | deps
	@mkdir -p $(dir $@)
	@echo "  CC/asan $<"
	@$(CC) $(CPPFLAGS_BASE) $(CFLAGS_BASE) $(ASAN_FLAGS) $(PKG_CFLAGS) -c $< -o $@

# unit tests need Check, which only the tests' package set has
$(REL_DIR)/tests/unit/%.o: tests/unit/%.c $(HEADERS) | deps-test
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_BASE) $(CFLAGS_BASE) $(REL_FLAGS) $(PKG_CFLAGS) -c $< -o $@

$(ASAN_DIR)/tests/unit/%.o: tests/unit/%.c $(HEADERS) | deps-test
	@mkdir -p $(dir $@)
	@echo "  CC/asan $<"
	@$(CC) $(CPPFLAGS_BASE) $(CFLAGS_BASE) $(ASAN_FLAGS) $(PKG_CFLAGS) -c $< -o $@

# the SQL files are assembled into the binary byte for byte
$(REL_DIR)/relay/dr/sql_embed.o $(ASAN_DIR)/relay/dr/sql_embed.o: $(wildcard sql/*.sql)

bin/pgferry: $(REL_OBJS) $(REL_DIR)/relay/cli/main.o
	@mkdir -p bin
	$(CC) $(CFLAGS_BASE) $(REL_FLAGS) -o $@ $^ $(PKG_LIBS)

bin/pgferry-asan: $(ASAN_OBJS) $(ASAN_DIR)/relay/cli/main.o
	@mkdir -p bin
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -o $@ $^ $(PKG_LIBS)

# Each tests/unit/test_NAME.c defines "Suite *NAME_suite(void)"; the list is
# generated so that adding a test file is all it takes.
build/unit_suites.h: $(UNIT_SRCS)
	@mkdir -p build
	@for f in $(UNIT_SRCS); do n=$$(basename $$f .c); echo "SUITE($${n#test_})"; done > $@.tmp
	@cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp

$(REL_DIR)/unit_tests: $(REL_OBJS) $(patsubst %.c,$(REL_DIR)/%.o,$(UNIT_SRCS)) tests/unit/unit_main.c build/unit_suites.h
	$(CC) $(CPPFLAGS_BASE) -Ibuild $(CFLAGS_BASE) $(REL_FLAGS) $(PKG_CFLAGS) -o $@ tests/unit/unit_main.c \
		$(filter %.o,$^) $(PKG_LIBS) $(CHECK_LIBS)

$(ASAN_DIR)/unit_tests: $(ASAN_OBJS) $(patsubst %.c,$(ASAN_DIR)/%.o,$(UNIT_SRCS)) tests/unit/unit_main.c build/unit_suites.h
	$(CC) $(CPPFLAGS_BASE) -Ibuild $(CFLAGS_BASE) $(ASAN_FLAGS) $(PKG_CFLAGS) -o $@ tests/unit/unit_main.c \
		$(filter %.o,$^) $(PKG_LIBS) $(CHECK_LIBS)

unit: $(REL_DIR)/unit_tests
	$(REL_DIR)/unit_tests

unit-asan: $(ASAN_DIR)/unit_tests
	$(ASAN_DIR)/unit_tests

# test-only helpers the integration tests run
build/faultproxy: tests/integration/faultproxy.c include/pgferry/wire.h
	@mkdir -p build
	$(CC) -std=c11 -D_GNU_SOURCE -Iinclude -Wall -Wextra -Werror -O2 -o $@ $<

# a hostile peer with a certificate the sink accepts (t_forge.sh)
build/forge: tests/integration/forge.c $(REL_OBJS)
	@mkdir -p build
	$(CC) $(CPPFLAGS_BASE) $(CFLAGS_BASE) $(REL_FLAGS) $(PKG_CFLAGS) -o $@ $^ $(PKG_LIBS)

# Integration tests against real PostgreSQL clusters; T=name runs one.
integration: deps-test bin/pgferry bin/pgferry-asan build/faultproxy build/forge
	@PG_BINDIR=$(PG_BINDIR) bash tests/integration/run.sh $(T)

# libFuzzer targets: one binary per tests/fuzz/fuzz_NAME.c, built with clang.
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_BINS  := $(patsubst tests/fuzz/fuzz_%.c,build/fuzz/fuzz_%,$(FUZZ_SRCS))
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRCS) $(HEADERS) | deps-test
	@mkdir -p build/fuzz
	$(CLANG) $(CPPFLAGS_BASE) -std=c11 -Wall -Wextra -Werror -pthread $(FUZZ_FLAGS) $(PKG_CFLAGS) \
		-o $@ $< $(LIB_SRCS) $(PKG_LIBS)

FUZZ_SECONDS ?= 600
fuzz: $(FUZZ_BINS)
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-brief: $(FUZZ_BINS)
	@bash tests/fuzz/run.sh brief $(FUZZ_BINS)

# Everything: unit tests plain and sanitized, brief fuzzing, integration.
check: deps-test bin/pgferry bin/pgferry-asan build/faultproxy build/forge $(REL_DIR)/unit_tests $(ASAN_DIR)/unit_tests $(FUZZ_BINS)
	@PG_BINDIR=$(PG_BINDIR) bash tests/run-all.sh $(FUZZ_BINS)

# The randomized fault campaign (not part of check): SOAK_SEED=N replays a
# schedule, SOAK_FAULTS=N sets how many faults (default 100, ~25 min).
soak: deps-test bin/pgferry build/faultproxy
	@PG_BINDIR=$(PG_BINDIR) bash tests/integration/soak.sh

demo: deps-demo bin/pgferry
	@PG_BINDIR=$(PG_BINDIR) bash tools/demo.sh

build/bench/decode_bench: bench/decode_bench.c $(REL_OBJS)
	@mkdir -p build/bench
	$(CC) $(CPPFLAGS_BASE) $(CFLAGS_BASE) $(REL_FLAGS) $(PKG_CFLAGS) -o $@ $^ $(PKG_LIBS)

bench: deps-bench bin/pgferry build/bench/decode_bench build/faultproxy
	@PG_BINDIR=$(PG_BINDIR) bash bench/run.sh

format: deps-tools
	clang-format -i $(ALL_C)

format-check: deps-tools
	clang-format --dry-run --Werror $(ALL_C)

# clang-tidy, cppcheck, no exported function that nothing calls
# (tools/lint-unused.sh), and a report of the functions over 80 lines and the
# files over 600 (tools/lint-lengths.sh: a report, not a failure)
lint: deps-tools $(REL_OBJS)
	clang-tidy --quiet $(LIB_SRCS) $(MAIN_SRC) -- $(CPPFLAGS_BASE) -std=c11 $(PKG_CFLAGS)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
		--suppress=missingIncludeSystem -Iinclude $(LIB_SRCS) $(MAIN_SRC)
	@bash tools/lint-unused.sh $(REL_OBJS)
	@bash tools/lint-lengths.sh $(LIB_SRCS) $(MAIN_SRC)

# the two checks of lint that need no extra tool, quick enough for every build
lint-quick: $(REL_OBJS)
	@bash tools/lint-unused.sh $(REL_OBJS)
	@bash tools/lint-lengths.sh $(LIB_SRCS) $(MAIN_SRC)

# Under PREFIX: the binary, the SQL, the certificate recipe, the Prometheus
# rules and Grafana dashboard, the sample
# configurations, the systemd units (pointing at this PREFIX) and the man
# page, which the binary writes from the tables --help prints.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MANDIR     ?= $(PREFIX)/share/man

build/pgferry.1: bin/pgferry
	@mkdir -p build
	bin/pgferry man >$@

install: bin/pgferry build/pgferry.1
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/pgferry/sql \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSCONFDIR)/pgferry $(DESTDIR)$(UNITDIR)
	install -m 755 bin/pgferry $(DESTDIR)$(PREFIX)/bin/pgferry
	install -m 644 sql/*.sql $(DESTDIR)$(PREFIX)/share/pgferry/sql/
	install -m 755 deploy/make-certs.sh $(DESTDIR)$(PREFIX)/share/pgferry/make-certs.sh
	install -d $(DESTDIR)$(PREFIX)/share/pgferry/prometheus
	install -m 644 deploy/prometheus/*.yml $(DESTDIR)$(PREFIX)/share/pgferry/prometheus/
	install -d $(DESTDIR)$(PREFIX)/share/pgferry/grafana
	install -m 644 deploy/grafana/*.json $(DESTDIR)$(PREFIX)/share/pgferry/grafana/
	install -m 644 deploy/source.conf.sample deploy/sink.conf.sample $(DESTDIR)$(SYSCONFDIR)/pgferry/
	install -m 644 build/pgferry.1 $(DESTDIR)$(MANDIR)/man1/pgferry.1
	for u in deploy/systemd/*.service; do \
		sed -e 's|/usr/bin/pgferry|$(PREFIX)/bin/pgferry|' -e 's|/etc/pgferry/|$(SYSCONFDIR)/pgferry/|g' \
			$$u >$(DESTDIR)$(UNITDIR)/$$(basename $$u) && chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done

# A Debian package of what install installs (PREFIX=/usr); the test installs
# it into a fresh root and checks units, man page, binary and lintian.
deb: bin/pgferry build/pgferry.1
	@bash tools/install-deps.sh package
	@bash tools/make-deb.sh bin/pgferry build/pgferry.1

package-check: deb
	@bash tests/package-check.sh

clean:
	rm -rf build bin
