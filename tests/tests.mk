# Tests (included by the top-level Makefile).
#   make test         build the library and every test, run them all (tests/run-all.sh);
#                     the last line is "N passed, N failed", the exit status non-zero on failure
#   make test-build   only build the test programs into build/tests/
#   make test-glibc   the same tests against the system allocator, into build/tests-glibc/
#                     (checks the tests themselves; death tests and crtheap-only contracts fail)
#   make test-deps    install the Debian packages the tests need (tests/install-deps.sh)
# CRTHEAP_STRESS_SECONDS=n sets the length of the threaded stress test (default 5).
TEST_BIN     ?= build/tests
# How tests link the allocator; empty links nothing (the system malloc).
CRTHEAP_LIB  ?= -Lbuild -lcrtheap -Wl,-rpath,$(abspath build)
TEST_LIBDEPS ?= build/libcrtheap.so build/libcrtheap.a
# Every malloc/free call must reach the allocator: no builtin folding.
TEST_CFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra $(WERROR) -pthread -Iinclude -Itests \
                -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
                $(shell pkg-config --cflags check 2>/dev/null)
TEST_LDLIBS  := $(shell pkg-config --libs check 2>/dev/null) -lpthread

DEATH_PROGRAMS := $(basename $(notdir $(wildcard tests/death/*.c)))
TEST_PROGRAMS  := $(TEST_BIN)/test_api $(TEST_BIN)/test_threads $(TEST_BIN)/test_death \
                  $(addprefix $(TEST_BIN)/death/,$(DEATH_PROGRAMS)) \
                  $(if $(CRTHEAP_LIB),$(TEST_BIN)/test_api_static $(TEST_BIN)/test_crt $(TEST_BIN)/test_trim)

.PHONY: test test-build test-glibc test-deps

$(TEST_BIN)/test_%: tests/test_%.c tests/common.h tests/tests.mk $(TEST_LIBDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ $(CRTHEAP_LIB) $(TEST_LDLIBS)

# The same API tests with the static library linked into the program.
$(TEST_BIN)/test_api_static: tests/test_api.c tests/common.h tests/tests.mk build/libcrtheap.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ build/libcrtheap.a $(TEST_LDLIBS)

$(TEST_BIN)/test_death: tests/test_death.c tests/tests.mk
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -DDEATH_DIR='"$(abspath $(TEST_BIN))/death"' $< -o $@ $(TEST_LDLIBS)

$(TEST_BIN)/death/%: tests/death/%.c tests/death/death.h tests/tests.mk $(TEST_LIBDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ $(CRTHEAP_LIB)

test-build: $(TEST_PROGRAMS)

test: $(TEST_LIBDEPS) test-build
	tests/run-all.sh $(TEST_BIN) $(if $(CRTHEAP_LIB),$(abspath build/libcrtheap.so))

test-glibc:
	$(MAKE) --no-print-directory test TEST_BIN=build/tests-glibc CRTHEAP_LIB= TEST_LIBDEPS=

test-deps:
	tests/install-deps.sh
