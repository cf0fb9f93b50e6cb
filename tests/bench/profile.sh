#!/usr/bin/env bash
# Instruction counts per request of kakikomi's in-process body paths, under
# callgrind (repeatable on a loaded machine, unlike wall clock):
#   tests/bench/profile.sh [CALLS]      (after make all; default 20 calls)
# One line per body and path: Ir per call of floor's op_only (decode,
# compress, fast, rewrite), i.e. payload_check() alone.  Annotated profiles
# stay in build/bench/callgrind.<body>.<op>.out (callgrind_annotate them).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${KAKIKOMI_BUILD:-build}
BB=$BUILD/bench
DATA=../shared/testdata
CALLS=${1:-20}
command -v valgrind >/dev/null || { echo "profile: valgrind not installed" >&2; exit 1; }
mkdir -p "$BB"
objs=()
for o in "$BUILD"/*.o; do [ "${o##*/}" = main.o ] || objs+=("$o"); done
# shellcheck disable=SC2046  # word splitting of pkg-config's output is intended
cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror $(pkg-config --cflags libevent) -Igateway \
    -o "$BB/floor" tests/bench/floor.c "${objs[@]}" $(pkg-config --libs libevent \
    libevent_openssl libevent_pthreads openssl jansson libjwt yaml-0.1 zlib) -lsnappy -lpthread ||
    exit 1
run() {	# NAME FLAG FILE OP
	local out=$BB/callgrind.$1.$4.out ir
	valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect=op_only \
	    "$BB/floor" --calls "$CALLS" --only "$4" "$2" "$3" >/dev/null 2>&1 || return
	ir=$(awk '/^summary:/ { print $2 }' "$out")
	printf '%-10s %-9s %12d Ir/call\n' "$1" "$4" "$((ir / CALLS))"
}
for op in decode compress fast rewrite; do
	run rw2000 --metrics "$DATA/prometheus-2.42/rw1-2000-series.body" "$op"
done
for op in fast rewrite; do run lokipb --loki-pb "$DATA/promtail-2.8/push-304-entries.body" "$op"; done
run lokijson --loki-json "$DATA/loki-json/push.json" fast
