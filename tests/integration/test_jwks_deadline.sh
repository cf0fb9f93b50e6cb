#!/usr/bin/env bash
# The key set fetch has one deadline, access.fetch_timeout, for the whole
# exchange.  The key server (cfaccess serve, admin POST /trickle) answers 200
# and then one body byte every 2 s: each byte restarts the 10 s idle timeout,
# so without the deadline the fetch, and every refresh after it, would hang
# for ever.  kakikomi must give up at fetch_timeout, log and count it, and the
# next refresh must load the set once the server stops trickling; a trickle
# during a later periodic refresh must end the same way and keep the set.
. "$(dirname "$0")/../lib.sh"

[ -x "$T_BUILD/kakikomi" ] || tap_bail "$T_BUILD/kakikomi not built"
[ -x "$T_BUILD/tools/cfaccess" ] || tap_bail "cfaccess not built (make tools)"
KID_CUR=$(cat "$T_DATA/access/current.kid")
FETCH_TIMEOUT_S=3

make_test_ca "$T_TMP/tls" || tap_bail "openssl CA"
start_cfaccess "$T_TMP/cfaccess.log" --tls-listen 127.0.0.1:0 \
    --tls-cert "$T_TMP/tls/server.pem" --tls-key "$T_TMP/tls/server.key" \
    --admin-listen 127.0.0.1:0 --key "$T_DATA/access/current-private.pem" ||
	tap_bail "cfaccess did not start"
admin() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "http://$CFA_ADMIN/$1"; }
tap_check "key server set to trickle" 200 "$(admin trickle)"

KPORT=$(free_port) && MPORT=$(free_port) || tap_bail "no free port"
# the upstream is never reached: no write is sent
write_config "$T_TMP/kk" "$KPORT" "$MPORT" "http://127.0.0.1:9/api/v1/write" ""
use_edge_keys "$T_TMP/kk/kakikomi.yml"
sed -i "/certs_ca_file:/a\\  fetch_timeout: ${FETCH_TIMEOUT_S}s\\n  refresh_interval: 10s" \
    "$T_TMP/kk/kakikomi.yml"
LOG=$T_TMP/kakikomi.log

# now_ms: wall clock in ms (bash 5).
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# wait_lines FILE N PATTERN SECONDS: until FILE has N lines matching PATTERN.
wait_lines() {
	local deadline=$((SECONDS + $4))
	while [ "$SECONDS" -lt "$deadline" ]; do
		[ "$(grep -c -- "$3" "$1" 2>/dev/null)" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}
# metric SERIES: its value in /metrics, empty when absent.
metric() {
	curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics" |
	    awk -v s="$1" '$1 == s { print $2 }'
}
readyz() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$MPORT/readyz"; }
# wait_ready CODE SECONDS: until /readyz answers CODE.
wait_ready() {
	local deadline=$((SECONDS + $2))
	while [ "$SECONDS" -lt "$deadline" ]; do
		[ "$(readyz)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

T0=$(now_ms)
"$T_BUILD/kakikomi" -c "$T_TMP/kk/kakikomi.yml" >>"$LOG" 2>&1 &
KK_PID=$!
track_pid "$KK_PID"
wait_port "$MPORT" 30 || tap_bail "kakikomi did not start: $(tail -n 5 "$LOG")"

# 1. the first fetch trickles: it ends at the deadline, not at the idle timeout
if wait_lines "$LOG" 1 "key set fetch failed.*deadline exceeded" 20; then
	TOOK=$(( $(now_ms) - T0 ))
	tap_ok "trickled first fetch gave up (after ${TOOK} ms)"
	if [ "$TOOK" -ge $((FETCH_TIMEOUT_S * 1000 - 200)) ] && [ "$TOOK" -lt 8000 ]; then
		tap_ok "it gave up at fetch_timeout (${FETCH_TIMEOUT_S} s), before the 10 s idle timeout"
	else
		tap_fail "it gave up at fetch_timeout" "took ${TOOK} ms"
	fi
else
	tap_fail "trickled first fetch gave up" "no deadline line in 20 s: $(grep 'key set' "$LOG" | tail -n 3)"
fi
tap_contains "the log names the deadline" "fetch_timeout $((FETCH_TIMEOUT_S * 1000)) ms" \
    "$(grep 'deadline exceeded' "$LOG" | head -n 1)"
tap_check "counted as a failed refresh" 1 "$(metric 'kakikomi_jwks_refresh_total{result="error"}')"
tap_check "not ready without a key set" 503 "$(readyz)"
# cfaccess notices at its next tick, at most 2 s later, having sent a byte or more
if wait_lines "$T_TMP/cfaccess.log" 1 "certs trickle ended by the client after [1-9]" 10; then
	tap_ok "kakikomi closed the trickling connection"
else
	tap_fail "kakikomi closed the trickling connection" "$(tail -n 3 "$T_TMP/cfaccess.log")"
fi

# 2. the server answers again: the next refresh (the 10 s retry) loads the set
tap_check "key server steady again" 200 "$(admin steady)"
if wait_ready 200 30; then tap_ok "the next refresh loaded the set"
else tap_fail "the next refresh loaded the set" "$(grep 'key set' "$LOG" | tail -n 3)"; fi
tap_contains "loaded over https" "source=https keys=1 kids=${KID_CUR:0:8}" \
    "$(grep 'key set loaded' "$LOG" | tail -n 1)"
tap_check "one successful refresh" 1 "$(metric 'kakikomi_jwks_refresh_total{result="ok"}')"

# 3. a periodic refresh that trickles ends at the deadline too; the set stays
tap_check "key server set to trickle again" 200 "$(admin trickle)"
if wait_lines "$LOG" 2 "key set fetch failed.*deadline exceeded" 30; then
	tap_ok "a trickled periodic refresh gave up"
else
	tap_fail "a trickled periodic refresh gave up" "$(grep 'key set' "$LOG" | tail -n 3)"
fi
tap_check "two failed refreshes counted" 2 "$(metric 'kakikomi_jwks_refresh_total{result="error"}')"
tap_check "still ready with the previous set" 200 "$(readyz)"
tap_check "previous set kept" 1 "$(metric kakikomi_jwks_keys)"

tap_done
