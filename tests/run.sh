#!/usr/bin/env bash
# Runs every kakikomi test and ends with one line: "N passed, N failed"
# (", N skipped" when a test was skipped: TAP "ok ... # SKIP").
#   unit tests:        $BUILD/tests/test_*  (cmocka, TAP output)
#   integration tests: tests/integration/test_*.sh (TAP output)
#   fuzz smoke run:    tests/fuzz/run.sh with a short budget, when clang is present
# A test program that exits non-zero without a "not ok" line counts as one failure.
# ONLY=pattern runs the matching tests only.
set -u
cd "$(dirname "$0")/.."
BUILD=${KAKIKOMI_BUILD:-build}
export KAKIKOMI_BUILD=$BUILD
pass=0
fail=0
skip=0
failed_names=""

run_one() {
	local name=$1; shift
	local out rc np nf
	out=$("$@" 2>"$BUILD/$name.stderr")
	rc=$?
	printf '%s\n' "$out" | grep -E '^(not )?ok ' | sed "s|^|[$name] |"
	np=$(printf '%s\n' "$out" | grep -E '^ok ' | grep -cv '# SKIP')
	ns=$(printf '%s\n' "$out" | grep -E '^ok ' | grep -c '# SKIP')
	nf=$(printf '%s\n' "$out" | grep -cE '^not ok ')
	if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
		nf=1
		echo "[$name] not ok - exited $rc; stderr tail:"
		tail -n 15 "$BUILD/$name.stderr" | sed 's/^/#   /'
	elif [ "$nf" -ne 0 ]; then
		printf '%s\n' "$out" | grep -E '^#' | head -n 40 | sed "s|^|[$name] |"
		echo "[$name] stderr tail:"; tail -n 15 "$BUILD/$name.stderr" | sed 's/^/#   /'
	fi
	pass=$((pass + np))
	skip=$((skip + ns))
	fail=$((fail + nf))
	[ "$nf" -eq 0 ] || failed_names="$failed_names $name"
}

selected() { [ -z "${ONLY:-}" ] || [[ "$1" == *$ONLY* ]]; }

for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	selected "$name" || continue
	CMOCKA_MESSAGE_OUTPUT=TAP run_one "$name" "$t"
done
# Tests that never run the build under test (the container image is built
# from the Dockerfile; the alert rules are Prometheus'): once, not again
# under make asan.
not_per_build="test_image test_compose test_alerts"
for t in tests/integration/test_*.sh; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .sh)
	selected "$name" || continue
	[ "$BUILD" = build-asan ] && [[ " $not_per_build " == *" $name "* ]] && continue
	run_one "$name" bash "$t"
done
# The fuzz build has its own sanitizers: run it once, not again under make asan.
if command -v clang >/dev/null && [ -x tests/fuzz/run.sh ] && selected fuzz &&
    [ "$BUILD" != build-asan ]; then
	run_one fuzz tests/fuzz/run.sh "${FUZZ_SECONDS:-5}"
fi

[ -z "$failed_names" ] || echo "failed:$failed_names"
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
