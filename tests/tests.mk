# Tests (included by the top-level Makefile).
#   make test         build the library and every test, run them all (tests/run-all.sh);
#                     the last line is "N passed, N failed", the exit status non-zero on failure
#   make test-build   only build the test programs into build/tests/
#   make test-glibc   the same tests against the system allocator, into build/tests-glibc/
#                     (checks the tests themselves; death tests and crtheap-only contracts fail)
#   make test-deps    install the Debian packages the tests need (tests/install-deps.sh)
# CRTHEAP_STRESS_SECONDS=n sets the length of the threaded stress test (default 5).
#   make tsan         only the ThreadSanitizer test (tests/tsan_trim.c), which make test runs too
# make test also runs the Check suites against build/ubsan/, the library built with UBSan.
TEST_BIN     ?= build/tests
# How tests link the allocator; empty links nothing (the system malloc).
CRTHEAP_LIB  ?= -Lbuild -lcrtheap -Wl,-rpath,$(abspath build)
TEST_LIBDEPS ?= build/libcrtheap.so build/libcrtheap.a build/crtheap build/libcrtheap-probe.so
# Every malloc/free call must reach the allocator: no builtin folding.
TEST_CFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra $(WERROR) -pthread -Iinclude -Itests \
                -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
                $(shell pkg-config --cflags check 2>/dev/null)
TEST_LDLIBS  := $(shell pkg-config --libs check 2>/dev/null) -lpthread

DEATH_PROGRAMS := $(basename $(notdir $(wildcard tests/death/*.c)))

# The ThreadSanitizer test compiles the library sources into the program.  Every name
# the library exports is renamed there (the list is made from the built library's
# dynamic symbols, so it cannot fall behind), so TSan's own malloc and operator new stay
# the process allocator and the test reaches crtheap through the renamed ones.
TSAN_RENAMES   := build/tsan-renames.h
TSAN_CFLAGS    := -std=gnu11 -O1 -g -fsanitize=thread -Wall -Wextra $(WERROR) -pthread \
                  -Iinclude -Isrc -Itests -include $(TSAN_RENAMES)
TEST_PROGRAMS  := $(TEST_BIN)/test_api $(TEST_BIN)/test_threads $(TEST_BIN)/test_death \
                  $(addprefix $(TEST_BIN)/death/,$(DEATH_PROGRAMS)) \
                  $(if $(CRTHEAP_LIB),$(TEST_BIN)/test_api_static $(TEST_BIN)/test_crt $(TEST_BIN)/test_trim $(TEST_BIN)/test_mesh \
                                      $(TEST_BIN)/test_dropin $(TEST_BIN)/probe_options $(TEST_BIN)/tsan_trim \
                                      $(TEST_BIN)/asan_trim $(TEST_BIN)/ported_windows)

.PHONY: test test-build test-glibc test-deps

# The library with crtheap's invariant assertions (`make debug`, -DCRTHEAP_DEBUG: page
# counts against the side table, blocks inside their pages, queue links, claims held):
# tests/run-all.sh runs the Check suites against it too.
DEBUG_LIB := build/debug/$(SONAME)
$(DEBUG_LIB): $(SRCS) $(HDRS) tests/tests.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -O1 -DCRTHEAP_DEBUG -shared -Wl,-soname,$(SONAME) -Wl,-z,nodelete -o $@ $(SRCS) $(LDLIBS_LIB)
.PHONY: debug
debug: $(DEBUG_LIB)

# The library once more with UndefinedBehaviorSanitizer (aborting on the first report):
# tests/run-all.sh runs the Check suites against it through LD_LIBRARY_PATH.
UBSAN_LIB := build/ubsan/$(SONAME)
$(UBSAN_LIB): $(SRCS) $(HDRS) tests/tests.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -fsanitize=undefined -fno-sanitize-recover=all -shared -Wl,-soname,$(SONAME) -Wl,-z,nodelete \
		-o $@ $(SRCS) $(LDLIBS_LIB) -fsanitize=undefined

$(TEST_BIN)/test_%: tests/test_%.c tests/common.h tests/race.h tests/tests.mk $(TEST_LIBDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ $(CRTHEAP_LIB) $(TEST_LDLIBS)

# The drop-in suite runs the options probe from the same directory.
$(TEST_BIN)/test_dropin: TEST_CFLAGS += -DPROBE_DIR='"$(abspath $(TEST_BIN))"'
$(TEST_BIN)/probe_options: tests/probe_options.c tests/tests.mk $(TEST_LIBDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ $(CRTHEAP_LIB)

# A file written for the Microsoft runtime, compiled unchanged against crtheap's <malloc.h>.
$(TEST_BIN)/ported_windows: tests/ported_windows.c include/crtheap/msvc/malloc.h include/crtheap.h $(TEST_LIBDEPS)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra $(WERROR) -Iinclude/crtheap/msvc -Iinclude $< -o $@ $(CRTHEAP_LIB)

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

$(TSAN_RENAMES): build/libcrtheap.so tests/tests.mk
	nm -D --defined-only build/libcrtheap.so | \
		awk '$$2 == "T" || $$2 == "W" { print "#define " $$3 " crtheap_tsan_" $$3 }' > $@.tmp
	grep -q ' malloc ' $@.tmp && mv $@.tmp $@

# The same race under AddressSanitizer (and UBSan): the library sources built into the
# program, renamed as for TSan, so ASan's malloc stays the process allocator and ASan
# checks crtheap's own code (its metadata, stack and globals).
ASAN_CFLAGS := -std=gnu11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
               -Wall -Wextra $(WERROR) -pthread -Iinclude -Isrc -Itests -include $(TSAN_RENAMES)
$(TEST_BIN)/asan_trim: tests/tsan_trim.c tests/common.h tests/race.h tests/tests.mk $(SRCS) $(HDRS) $(TSAN_RENAMES)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) $(SRCS) $< -o $@

$(TEST_BIN)/tsan_trim: tests/tsan_trim.c tests/common.h tests/race.h tests/tests.mk $(SRCS) $(HDRS) $(TSAN_RENAMES)
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) $(SRCS) $< -o $@

.PHONY: tsan
tsan: $(TEST_BIN)/tsan_trim
	tests/run-tsan.sh $(TEST_BIN)/tsan_trim

test-build: $(TEST_PROGRAMS)

test: $(TEST_LIBDEPS) test-build $(if $(CRTHEAP_LIB),$(UBSAN_LIB) $(DEBUG_LIB))
	tests/run-all.sh $(TEST_BIN) $(if $(CRTHEAP_LIB),$(abspath build/libcrtheap.so) $(abspath $(dir $(UBSAN_LIB))) \
		$(abspath $(dir $(DEBUG_LIB))))

test-glibc:
	$(MAKE) --no-print-directory test TEST_BIN=build/tests-glibc CRTHEAP_LIB= TEST_LIBDEPS=

test-deps:
	tests/install-deps.sh
