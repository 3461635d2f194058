# crtheap — build, test, install.  `make`, `make test`, `make bench`, `make install PREFIX=...`
VERSION_MAJOR := 0
VERSION       := 0.1.0
PREFIX        ?= /usr/local
CC            ?= cc
OPT           ?= -O2
WERROR        ?=
CFLAGS_LIB    := -std=gnu11 $(OPT) -g -fPIC -Wall -Wextra $(WERROR) -fvisibility=hidden \
                 -fno-builtin-malloc -fno-builtin-free -fno-plt -ftls-model=initial-exec \
                 -Iinclude -Isrc $(EXTRA_CFLAGS)
LDLIBS_LIB    := -lpthread

SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,build/obj/%.o,$(SRCS))
HDRS := $(wildcard src/*.h) include/crtheap.h
SONAME := libcrtheap.so.$(VERSION_MAJOR)

.PHONY: all clean install test bench check
all: build/libcrtheap.so build/libcrtheap.a build/crtheap-demo build/crtheap build/libcrtheap-probe.so

build/obj/%.o: src/%.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

# operator new lets C++ exceptions unwind through it
build/obj/cxx.o: CFLAGS_LIB += -fexceptions

build/libcrtheap.so.$(VERSION): $(OBJS)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,-z,nodelete -o $@ $(OBJS) $(LDLIBS_LIB)
build/libcrtheap.so: build/libcrtheap.so.$(VERSION)
	ln -sf libcrtheap.so.$(VERSION) build/$(SONAME)
	ln -sf libcrtheap.so.$(VERSION) $@
build/libcrtheap.a: $(OBJS)
	rm -f $@; ar rcs $@ $(OBJS)

# The crtheap command (tools/crtheap.sh) and the probe `crtheap compare` preloads into
# both runs of a program (it measures RSS at exit under any allocator).
build/crtheap: tools/crtheap.sh
	@mkdir -p build
	install -m 755 $< $@
build/libcrtheap-probe.so: tools/probe.c src/statm.h
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -fPIC -shared -Wall -Wextra $(WERROR) -Isrc $< -o $@

# The demo is built against the system allocator and run twice: as it is, and with
# crtheap preloaded, so both trims are shown on the same workload.
build/crtheap-demo: demo/demo.c include/crtheap.h
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -Wall -Wextra $(WERROR) -Iinclude $< -o $@ -lpthread -ldl

.PHONY: demo
demo: build/crtheap-demo build/libcrtheap.so
	@build/crtheap-demo
	@echo
	@LD_PRELOAD=$(CURDIR)/build/libcrtheap.so build/crtheap-demo

build/%.pc: %.pc.in Makefile
	@mkdir -p build
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# crtheap-msvc.pc points ported Windows code at include/crtheap/msvc/malloc.h, which adds
# the Microsoft runtime's <malloc.h> declarations to the system's.
install: all build/crtheap.pc build/crtheap-msvc.pc
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/man/man3 \
		$(DESTDIR)$(PREFIX)/include/crtheap/msvc $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/crtheap \
		$(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 build/crtheap $(DESTDIR)$(PREFIX)/bin/
	install -m 644 build/libcrtheap-probe.so $(DESTDIR)$(PREFIX)/lib/crtheap/
	install -m 644 man/man1/crtheap.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 build/libcrtheap.so.$(VERSION) build/libcrtheap.a $(DESTDIR)$(PREFIX)/lib/
	ln -sf libcrtheap.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf libcrtheap.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcrtheap.so
	install -m 644 include/crtheap.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 build/crtheap.pc build/crtheap-msvc.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 644 include/crtheap/msvc/malloc.h $(DESTDIR)$(PREFIX)/include/crtheap/msvc/
	if ls man/man3/*.3 >/dev/null 2>&1; then install -m 644 man/man3/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/; fi

# Removes what install put there (the same PREFIX and DESTDIR).
.PHONY: uninstall
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libcrtheap.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME) \
		$(DESTDIR)$(PREFIX)/lib/libcrtheap.so $(DESTDIR)$(PREFIX)/lib/libcrtheap.a \
		$(DESTDIR)$(PREFIX)/include/crtheap.h $(DESTDIR)$(PREFIX)/include/crtheap/msvc/malloc.h \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/crtheap.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/crtheap-msvc.pc \
		$(DESTDIR)$(PREFIX)/bin/crtheap $(DESTDIR)$(PREFIX)/lib/crtheap/libcrtheap-probe.so \
		$(DESTDIR)$(PREFIX)/share/man/man1/crtheap.1 $(addprefix $(DESTDIR)$(PREFIX)/share/man/man3/,$(notdir $(wildcard man/man3/*.3)))
	-rmdir $(DESTDIR)$(PREFIX)/include/crtheap/msvc $(DESTDIR)$(PREFIX)/include/crtheap $(DESTDIR)$(PREFIX)/lib/crtheap 2>/dev/null

# Static checks; each can fail: cppcheck, clang-tidy (any warning fails), and the layer
# rule of src/modules.h (no file calls a layer above its own).
check: build/libcrtheap.so
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability -Iinclude -Isrc src
	@out=$$(clang-tidy --quiet src/*.c -- -std=gnu11 -Iinclude -Isrc 2>/dev/null | grep -E "warning|error"); \
		if [ -n "$$out" ]; then echo "$$out"; echo "clang-tidy: warnings"; exit 1; fi; echo "clang-tidy: clean"
	python3 scripts/layers.py build/obj

clean:
	rm -rf build

# Tests and benchmarks live in their own makefile fragments.
-include tests/tests.mk
-include bench/bench.mk
