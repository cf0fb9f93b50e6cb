#!/usr/bin/env bash
# The metrics listener is bounded like the write front: at most 64
# connections (a new one evicts the oldest that has sent nothing, so idle
# sockets cannot lock /healthz out), header_timeout and idle_timeout, no
# request body, and its descriptors inside the one open-file budget.  A storm
# of idle connections against it (and ~1,200 against both listeners under
# `ulimit -n 1024`) leaves writes and /healthz served, the CPU idle and the
# descriptor count bounded, back to its baseline once the clients close.
. "$(dirname "$0")/../lib.sh"
ulimit -n 8192 2>/dev/null

ADMIN_CAP=64	# ADMIN_MAX_CONNECTIONS in gateway/admin.h
OK=$(free_port)
start_sink ok "$OK" || tap_bail "sink"
"$T_BUILD/tools/rwgen" --series 20 --label provider=tokyo > "$T_TMP/body"
HZ=$(getconf CLK_TCK)

fd_count() { ls "/proc/$KK_PID/fd" | wc -l; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$KK_PID/stat"; }
# wait_fds OP N [SECONDS]: until the descriptor count compares (-le, -ge, -eq) to N.
wait_fds() {
	local deadline=$((SECONDS + ${3:-10}))
	until [ "$(fd_count)" "$1" "$2" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
	[ "$(fd_count)" "$1" "$2" ]
}
# open_conns PORT N: N idle connections, their descriptors appended to CONNS.
open_conns() {
	local fd
	for _ in $(seq "$2"); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
		CONNS+=("$fd")
	done
}
close_conns() {
	local fd
	for fd in "${CONNS[@]}"; do exec {fd}>&-; done
	CONNS=()
}
# cpu_start, then cpu_check NAME: kakikomi's CPU from cpu_start through 3 s
# more stays below 20% of one core (a listener spinning on accept errors
# burns ~100% while the storm arrives and after).
cpu_start() { CPU0=$(cpu_ticks); WALL0=$EPOCHREALTIME; }
cpu_check() {
	local t1 ms pct now
	sleep 3
	t1=$(cpu_ticks); now=$EPOCHREALTIME
	ms=$(( (${now/./} - ${WALL0/./}) / 1000 ))
	pct=$(( (t1 - CPU0) * 100000 / (ms * HZ) ))
	[ "$pct" -lt 20 ] && tap_ok "$1: CPU ${pct}% of one core over ${ms} ms" ||
	    tap_fail "$1: CPU below 20% of one core" "${pct}% ($((t1 - CPU0)) ticks in ${ms} ms)"
}
# serving NAME: a write through the recording upstream and /healthz, answered now.
serving() {
	tap_check "$1: a write is stored (204)" "204 " \
	    "$(rw_post "http://127.0.0.1:$KK/api/v1/write" "$T_TMP/body" "$T_TOKEN" --max-time 5)"
	tap_check "$1: /healthz answers" "ok 200" \
	    "$(curl -s --max-time 5 -w ' %{http_code}' "http://127.0.0.1:$KM/healthz" | tr -d '\n')"
}
# warm_up: writes that open the upstream keep-alive connections, so the
# baseline descriptor count includes them.
warm_up() {
	for _ in 1 2 3 4 5 6; do rw_post "http://127.0.0.1:$KK/api/v1/write" "$T_TMP/body" "$T_TOKEN" >/dev/null; done
}
# raw_admin REQUEST: the status line the metrics listener answers to raw bytes.
raw_admin() {
	local fd line=""
	exec {fd}<>"/dev/tcp/127.0.0.1/$KM"
	printf '%b' "$1" >&"$fd"
	read -r -t 5 -u "$fd" line
	exec {fd}>&-
	printf '%s' "${line%$'\r'}"
}
# closed_after FD: milliseconds until the server closes FD (reading nothing).
closed_after() {
	local start=$EPOCHREALTIME now line=""
	read -r -t 10 -u "$1" line
	now=$EPOCHREALTIME
	[ -z "$line" ] || { echo "read [$line]"; return; }
	echo $(( (${now/./} - ${start/./}) / 1000 ))
}
CONNS=()

# ---- 1. the admin cap, its deadlines and its refusals (short timeouts) ----
KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c1" "$KK" "$KM" "http://127.0.0.1:$OK/api/v1/write" "" "" \
    "limits: { header_timeout: 3s, idle_timeout: 1s }"
start_kakikomi "$T_TMP/c1/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"
warm_up
base=$(fd_count)
cpu_start
open_conns "$KM" 100 || tap_bail "could not open 100 connections"
wait_fds -eq $((base + ADMIN_CAP)) 5
tap_check "100 idle admin connections hold exactly $ADMIN_CAP descriptors" $((base + ADMIN_CAP)) "$(fd_count)"
serving "past the admin cap"
cpu_check "past the admin cap"
# The storm is cut off by header_timeout (3 s): back to the baseline.
wait_fds -le "$base" 8 && tap_ok "idle admin connections closed after header_timeout" ||
    tap_fail "idle admin connections closed after header_timeout" "$(fd_count) descriptors, baseline $base"
close_conns

exec {fd}<>"/dev/tcp/127.0.0.1/$KM"
ms=$(closed_after "$fd")
exec {fd}>&-
[ "${ms// /}" -ge 2500 ] 2>/dev/null && [ "$ms" -le 4500 ] &&
    tap_ok "a silent admin connection is closed after header_timeout (${ms} ms)" ||
    tap_fail "a silent admin connection is closed after header_timeout (3 s)" "$ms"
exec {fd}<>"/dev/tcp/127.0.0.1/$KM"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
while read -r -t 5 -u "$fd" line && [ "${line%$'\r'}" != ok ]; do :; done
ms=$(closed_after "$fd")
exec {fd}>&-
[ "${ms// /}" -ge 700 ] 2>/dev/null && [ "$ms" -le 2000 ] &&
    tap_ok "a kept-alive admin connection is closed after idle_timeout (${ms} ms)" ||
    tap_fail "a kept-alive admin connection is closed after idle_timeout (1 s)" "$ms"

tap_check "GET with a Content-Length body is 413" "HTTP/1.1 413 Payload Too Large" \
    "$(raw_admin 'GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello')"
tap_check "GET with a chunked body is 413" "HTTP/1.1 413 Payload Too Large" \
    "$(raw_admin 'GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')"
tap_check "an empty Content-Length is fine" "HTTP/1.1 200 OK" \
    "$(raw_admin 'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')"
tap_check "a malformed head is 400" "HTTP/1.1 400 Bad Request" \
    "$(raw_admin 'GET /healthz HTTP/1.1\r\nHost x\r\n\r\n')"
tap_check "POST /metrics is 405" "HTTP/1.1 405 Method Not Allowed" \
    "$(raw_admin 'POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"

# ---- 2. ~1,200 idle connections against both listeners, open-file limit 1024 ----
# The write listener's cap is 1024 - (64 + 64 admin + 128 per worker) = 640:
# 500 of its connections are held, the admin listener keeps 64 of its 700,
# and kakikomi stays under its limit.  Long deadlines: nothing here is cut off
# by a timer, every descriptor is freed by the clients closing.
KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c2" "$KK" "$KM" "http://127.0.0.1:$OK/api/v1/write" "" "" \
    "limits: { header_timeout: 60s, idle_timeout: 60s }"
(ulimit -n 1024 && exec "$T_BUILD/kakikomi" -c "$T_TMP/c2/kakikomi.yml") >>"$T_TMP/kakikomi.log" 2>&1 &
KK_PID=$!
track_pid "$KK_PID"
wait_http "http://127.0.0.1:$KM/readyz" 30 || tap_bail "kakikomi under ulimit -n 1024 did not start"
limit=$(awk '/^Max open files/ { print $4 }' "/proc/$KK_PID/limits")
tap_check "kakikomi runs with an open-file limit of 1024" 1024 "$limit"
warm_up
base=$(fd_count)
cpu_start
open_conns "$KK" 500 || tap_bail "could not open 500 write connections"
open_conns "$KM" 700 || tap_bail "could not open 700 admin connections"
wait_fds -ge $((base + 500 + ADMIN_CAP)) 10
n=$(fd_count)
[ "$n" -le $((base + 500 + ADMIN_CAP + 2)) ] && [ "$n" -lt "$limit" ] &&
    tap_ok "1,200 idle connections: $n descriptors (baseline $base, limit $limit)" ||
    tap_fail "1,200 idle connections: at most baseline + 500 + $ADMIN_CAP descriptors" "$n (baseline $base)"
cpu_check "1,200 idle connections"
serving "1,200 idle connections"
tap_check "no accept error was logged" 0 "$(grep -c 'Too many open files' "$T_TMP/kakikomi.log")"
close_conns
wait_fds -le $((base + 2)) 10 && tap_ok "descriptors back to baseline once the clients close ($(fd_count), baseline $base)" ||
    tap_fail "descriptors back to baseline once the clients close" "$(fd_count), baseline $base"
serving "after the storm"
kill "$KK_PID"; wait_gone "$KK_PID" && tap_ok "kakikomi exits after the storm" ||
    tap_fail "kakikomi exits after the storm" "still running"
untrack_pid "$KK_PID"
tap_done
