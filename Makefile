# kakikomi — build, test, sanitizers, fuzzing, benchmark.
#   make            build ./kakikomi
#   make test       unit + integration tests (+ a short fuzz run when clang is present)
#   make asan       the same tests against an ASan+UBSan build
#   make fuzz       each libFuzzer target for FUZZ_SECONDS
#   make bench      the benchmark table (tests/bench)
#   make soak       kakikomi under churn for SOAK_SECONDS (600; not in make test)

VERSION	?= 0.1.0
SOAK_SECONDS ?= 600
BUILD	?= build
CC	?= cc
PKGS	 = libevent libevent_openssl libevent_pthreads openssl jansson yaml-0.1 zlib
PKG_CFLAGS	:= $(shell pkg-config --cflags $(PKGS))
PKG_LIBS	:= $(shell pkg-config --libs $(PKGS)) -lsnappy -lpthread
# libjwt only in tests: they show what its jwt_decode would accept
TEST_LIBS	:= $(shell pkg-config --libs libjwt) -lcmocka
WARN	 = -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	   -Wmissing-declarations -Wshadow -Wpointer-arith -Wcast-qual -Wno-unused-parameter
OPT	?= -O2 -g
CFLAGS	+= -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANITIZE) $(PKG_CFLAGS) \
	   -DKAKIKOMI_VERSION='"$(VERSION)"'
LDFLAGS	+= $(SANITIZE)

SRCS	:= $(wildcard gateway/*.c)
LIBOBJS	:= $(patsubst gateway/%.c,$(BUILD)/%.o,$(filter-out gateway/main.c,$(SRCS)))
UNITS	:= $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
TOOLS	:= $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(wildcard tests/tools/*.c))

.PHONY: all test asan fuzz bench clean tools units demo soak

all: kakikomi

kakikomi: $(BUILD)/kakikomi
	cp $< $@

$(BUILD)/kakikomi: $(BUILD)/main.o $(LIBOBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/%.o: gateway/%.c gateway/*.h | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD) $(BUILD)/tests $(BUILD)/tools:
	mkdir -p $@

units: $(UNITS)
tools: $(TOOLS)

$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Igateway -o $@ $< $(LIBOBJS) $(LDFLAGS) $(PKG_LIBS) $(TEST_LIBS)

$(BUILD)/tools/%: tests/tools/%.c $(LIBOBJS) | $(BUILD)/tools
	$(CC) $(CFLAGS) -Igateway -o $@ $< $(LIBOBJS) $(LDFLAGS) $(PKG_LIBS)

test: $(BUILD)/kakikomi units tools
	KAKIKOMI_BUILD=$(BUILD) tests/run.sh

asan:
	$(MAKE) BUILD=build-asan OPT='-O1 -g -fno-omit-frame-pointer' \
	    SANITIZE='-fsanitize=address,undefined -fno-sanitize-recover=undefined' test

fuzz:
	tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: all tools
	tests/bench/run.sh

soak: all tools
	KAKIKOMI_BUILD=$(BUILD) SOAK_SECONDS=$(SOAK_SECONDS) tests/soak.sh

clean:
	rm -rf build build-asan build-fuzz kakikomi

demo: all tools
	tests/demo.sh
