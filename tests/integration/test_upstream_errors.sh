#!/usr/bin/env bash
# Status mapping for upstream trouble: an upstream that refuses (400), fails
# (500), hangs (timeout) or is down, alone and fanned out with a healthy one.
# Senders must retry exactly the 5xx: each case asserts the status kakikomi
# answers, its one-line reason, and Retry-After on every 5xx.
. "$(dirname "$0")/../lib.sh"

OK=$(free_port); BAD=$(free_port); FAIL=$(free_port); HANG=$(free_port); DOWN=$(free_port)
start_sink ok "$OK" || tap_bail "sink ok"
start_sink bad "$BAD" --status 400 --body "out of order sample" || tap_bail "sink bad"
start_sink fail "$FAIL" --status 500 --body "tsdb is sad" || tap_bail "sink fail"
start_sink hang "$HANG" --hang || tap_bail "sink hang"
now=$(( $(date +%s) * 1000 ))
"$T_BUILD/tools/rwgen" --series 2 --ts "$now" --label provider=tokyo > "$T_TMP/body" || tap_bail "rwgen"

n=0
# case NAME "UPSTREAM PORTS" EXPECTED_STATUS EXPECTED_REASON_PART
case_run() {
	local name=$1 ports=$2 want=$3 reason=$4 urls="" p KK KM res ra
	for p in $ports; do urls="$urls http://127.0.0.1:$p/api/v1/write"; done
	n=$((n + 1)); KK=$(free_port); KM=$(free_port)
	write_config "$T_TMP/c$n" "$KK" "$KM" "$urls" ""
	if ! start_kakikomi "$T_TMP/c$n/kakikomi.yml" "$KM"; then
		tap_fail "$name" "kakikomi did not start"; return
	fi
	res=$(rw_post "http://127.0.0.1:$KK/api/v1/write" "$T_TMP/body" "$T_TOKEN")
	ra=$(resp_header Retry-After)
	tap_check "$name: status" "$want" "${res%% *}"
	tap_contains "$name: reason" "$reason" "$res"
	if [ "$want" -ge 500 ]; then
		[ -n "$ra" ] && tap_ok "$name: Retry-After set ($ra)" || tap_fail "$name: Retry-After set" "missing"
	else
		tap_check "$name: no Retry-After on 4xx" "" "$ra"
	fi
	kill "$KK_PID"; wait_gone "$KK_PID" 10; untrack_pid "$KK_PID"
}

case_run "refusing upstream" "$BAD" 400 "answered 400: out of order sample"
case_run "failing upstream" "$FAIL" 500 "answered 500: tsdb is sad"
case_run "hanging upstream" "$HANG" 504 "timed out"
case_run "upstream down" "$DOWN" 502 "unreachable"
case_run "fan-out, one refuses" "$OK $BAD" 400 "answered 400"
case_run "fan-out, one fails beats one refuses" "$BAD $FAIL" 500 "answered 500"
case_run "fan-out, one down" "$OK $DOWN" 502 "unreachable"
case_run "fan-out, all accept" "$OK $OK" 204 ""
tap_done
