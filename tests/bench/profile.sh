#!/usr/bin/env bash
# Instruction counts per request of kakikomi's in-process body paths, under
# callgrind (repeatable on a loaded machine, unlike wall clock):
#   tests/bench/profile.sh [CALLS]      (after make all; default 20 calls)
# One line per body and path: Ir per call of floor's op_only (decode,
# compress, fast, rewrite), i.e. payload_check() alone; then access_verify()
# on CALLS * 25 tokens minted here (mint's Access shape, 810 B with jti):
# "verify" a new token each call, "cached" the same token, "rsa" the bare
# RSA-2048 verify of one.  Annotated profiles stay in
# build/bench/callgrind.<body>.<op>.out (callgrind_annotate them).
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
run() {	# NAME FLAG FILE OP [FILE2]
	local out=$BB/callgrind.$1.$4.out ir
	valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect=op_only \
	    "$BB/floor" --calls "$CALLS" --only "$4" "$2" "$3" ${5:+"$5"} >/dev/null 2>&1 || return
	ir=$(awk '/^summary:/ { print $2 }' "$out")
	printf '%-11s %-9s %12d Ir/call\n' "$1" "$4" "$((ir / CALLS))"
}
for op in decode compress fast rewrite; do
	run rw2000 --metrics "$DATA/prometheus-2.42/rw1-2000-series.body" "$op"
done
for op in fast rewrite; do run lokipb --loki-pb "$DATA/promtail-2.8/push-304-entries.body" "$op"; done
run lokijson --loki-json "$DATA/loki-json/push.json" fast
# the protobuf body's 304 entries as JSON (bench row 8c against 8a)
"$BB/floor" --to-json "$DATA/promtail-2.8/push-304-entries.body" > "$BB/push-304-entries.json" &&
    run lokijson304 --loki-json "$BB/push-304-entries.json" fast
TOKENS=$BB/profile-tokens
"$BB/mint" --key "$DATA/access/current-private.pem" --kid "$(cat "$DATA/access/current.kid")" \
    --count "$((CALLS * 25))" > "$TOKENS" || exit 1
CALLS=$((CALLS * 25))
for op in verify cached rsa; do run access --access "$DATA/access/certs.json" "$op" "$TOKENS"; done
