#!/usr/bin/env bash
# Status mapping for upstream trouble: an upstream that refuses the data (400,
# 413, 429), refuses kakikomi itself (401, 403, 404, 405, 415: kakikomi's
# configuration is wrong), fails (500), hangs (timeout) or is down, alone and
# fanned out with a healthy one.  Senders must retry exactly the 5xx and keep
# data kakikomi's own configuration could not store: each case asserts the
# status, the one-line reason (naming the upstream by role, never its URL or
# address), Retry-After on every 5xx, and that kakikomi's log has the URL.
. "$(dirname "$0")/../lib.sh"

OK=$(free_port); BAD=$(free_port); FAIL=$(free_port); HANG=$(free_port); DOWN=$(free_port)
BIG=$(free_port); SLOW=$(free_port)
start_sink ok "$OK" || tap_bail "sink ok"
start_sink bad "$BAD" --status 400 --body "out of order sample" || tap_bail "sink bad"
start_sink big "$BIG" --status 413 --body "request too large" || tap_bail "sink big"
start_sink slow "$SLOW" --status 429 --body "ingestion rate limit exceeded" --retry-after 7 ||
    tap_bail "sink slow"
# A 5xx body may name the receiver's insides: it goes to the log only.
start_sink fail "$FAIL" --status 500 --body "failed pushing to ingester 10.1.2.3:9095: tsdb is sad" ||
    tap_bail "sink fail"
start_sink hang "$HANG" --hang || tap_bail "sink hang"
declare -A MIS
for code in 401 403 404 405 415; do
	MIS[$code]=$(free_port)
	start_sink "mis$code" "${MIS[$code]}" --status "$code" --body "no org id" ||
	    tap_bail "sink $code"
done
now=$(( $(date +%s) * 1000 ))
"$T_BUILD/tools/rwgen" --series 2 --ts "$now" --label provider=tokyo > "$T_TMP/body" || tap_bail "rwgen"

url() { echo "http://127.0.0.1:$1/api/v1/write"; }

n=0
# case_run NAME "UPSTREAM PORTS" STATUS REASON [LOGGED_PORT LOG_PART]
#   REASON: the exact answer body; LOGGED_PORT: the upstream whose URL the new
#   log lines must name, with LOG_PART in the same line.
case_run() {
	local name=$1 ports=$2 want=$3 reason=$4 lport=${5:-} lpart=${6:-}
	local urls="" p KK KM res ra off logged
	for p in $ports; do urls="$urls $(url "$p")"; done
	n=$((n + 1)); KK=$(free_port); KM=$(free_port)
	write_config "$T_TMP/c$n" "$KK" "$KM" "$urls" ""
	off=$(stat -c %s "$T_TMP/kakikomi.log" 2>/dev/null || echo 0)
	if ! start_kakikomi "$T_TMP/c$n/kakikomi.yml" "$KM"; then
		tap_fail "$name" "kakikomi did not start"; return
	fi
	res=$(rw_post "http://127.0.0.1:$KK/api/v1/write" "$T_TMP/body" "$T_TOKEN")
	ra=$(resp_header Retry-After)
	tap_check "$name: status" "$want" "${res%% *}"
	tap_check "$name: reason" "$reason" "${res#* }"
	if grep -qiE '127\.0\.0\.1|http://|10\.1\.2\.3' "$T_TMP/resp.headers" "$T_TMP/resp.body"; then
		tap_fail "$name: answer names no address" "$(cat "$T_TMP/resp.headers" "$T_TMP/resp.body")"
	else
		tap_ok "$name: answer names no address"
	fi
	if [ "$want" -ge 500 ]; then
		[ -n "$ra" ] && tap_ok "$name: Retry-After set ($ra)" || tap_fail "$name: Retry-After set" "missing"
	elif [ "$want" -eq 429 ]; then
		tap_check "$name: upstream's Retry-After relayed" "7" "$ra"
	else
		tap_check "$name: no Retry-After on 4xx" "" "$ra"
	fi
	if [ -n "$lport" ]; then
		logged=$(tail -c +"$((off + 1))" "$T_TMP/kakikomi.log" | grep -F "($(url "$lport"))" |
		    grep -F -- "$lpart")
		[ -n "$logged" ] && tap_ok "$name: log names $(url "$lport")" ||
		    tap_fail "$name: log names the upstream URL" "no line with $(url "$lport") and [$lpart]"
	fi
	LAST_KM=$KM
	kill "$KK_PID"; wait_gone "$KK_PID" 10; untrack_pid "$KK_PID"
}

# The data's fault: passed on with the upstream's first line (Prometheus' 400
# text says what is wrong with the batch).
case_run "refusing upstream" "$BAD" 400 "metrics upstream 1 answered 400: out of order sample" \
    "$BAD" 'level=info msg="upstream refused the data"'
case_run "upstream: too large" "$BIG" 413 "metrics upstream 1 answered 413: request too large"
case_run "upstream: rate limited" "$SLOW" 429 \
    "metrics upstream 1 answered 429: ingestion rate limit exceeded"
case_run "failing upstream" "$FAIL" 500 "metrics upstream 1 answered 500" \
    "$FAIL" "answered 500: failed pushing to ingester 10.1.2.3:9095: tsdb is sad"
case_run "hanging upstream" "$HANG" 504 "metrics upstream 1 timed out after 2000ms" \
    "$HANG" "timed out"
case_run "upstream down" "$DOWN" 502 "metrics upstream 1 unreachable (connection failed or closed)" \
    "$DOWN" "unreachable"

# kakikomi's fault (Cortex/Mimir without tenant: 401 "no org id"): 502 so the
# sender keeps the data; the log says what to fix, at error level.
declare -A HINT=(
	[401]="check tenant / credentials" [403]="check credentials"
	[404]="check the upstream URL path" [405]="check the upstream URL: it does not take POST"
	[415]="check the upstream's protocol / content type support"
)
for code in 401 403 404 405 415; do
	case_run "misconfigured upstream $code" "${MIS[$code]}" 502 \
	    "metrics upstream 1 answered $code: kakikomi's upstream configuration needs fixing; retry later" \
	    "${MIS[$code]}" "answered $code: ${HINT[$code]}"
done
logged=$(grep -F "($(url "${MIS[401]}"))" "$T_TMP/kakikomi.log" | grep -F 'msg="upstream misconfigured"')
tap_contains "misconfigured upstream: logged at error level" "level=error" "$logged"
tap_contains "misconfigured upstream: log keeps the upstream's words" "upstream said: no org id" "$logged"

# Counted: run 401 once more and read /metrics before stopping kakikomi.
n=$((n + 1)); KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c$n" "$KK" "$KM" "$(url "${MIS[401]}")" ""
if start_kakikomi "$T_TMP/c$n/kakikomi.yml" "$KM"; then
	rw_post "http://127.0.0.1:$KK/api/v1/write" "$T_TMP/body" "$T_TOKEN" >/dev/null
	page=$(curl -s --max-time 10 "http://127.0.0.1:$KM/metrics")
	tap_contains "misconfigured upstream: counted" \
	    'kakikomi_upstream_misconfigured_total{upstream="metrics upstream 1",status="401"} 1' "$page"
	ready=$(curl -s --max-time 10 -w ' %{http_code}' "http://127.0.0.1:$KM/readyz")
	tap_contains "misconfigured upstream: /readyz stays 200 and says what to fix" \
	    "ready; last upstream misconfiguration: " "$ready"
	tap_contains "misconfigured upstream: /readyz names the upstream and the hint" \
	    "metrics upstream 1 ($(url "${MIS[401]}")) answered 401: check tenant / credentials" "$ready"
	kill "$KK_PID"; wait_gone "$KK_PID" 10; untrack_pid "$KK_PID"
else
	tap_fail "misconfigured upstream: counted" "kakikomi did not start"
fi

case_run "fan-out, one refuses" "$OK $BAD" 400 "metrics upstream 2 answered 400: out of order sample" \
    "$BAD" "answered 400"
case_run "fan-out, one fails beats one refuses" "$BAD $FAIL" 500 "metrics upstream 2 answered 500" \
    "$FAIL" "answered 500"
case_run "fan-out, misconfigured beats one refuses" "$BAD ${MIS[401]}" 502 \
    "metrics upstream 2 answered 401: kakikomi's upstream configuration needs fixing; retry later" \
    "${MIS[401]}" "check tenant / credentials"
case_run "fan-out, one down" "$OK $DOWN" 502 \
    "metrics upstream 2 unreachable (connection failed or closed)" "$DOWN" "unreachable"
case_run "fan-out, all accept" "$OK $OK" 204 ""
tap_done
