#!/usr/bin/env bash
# Backpressure instead of unbounded memory: past max_requests or
# max_inflight_bytes kakikomi answers 503 + Retry-After at once; per-site
# rate limits answer 429 + Retry-After; 1,000 idle connections and a client
# trickling its body do not delay a valid request; RSS stays bounded under a
# flood because refusals happen before a body is read; 413 is answered from
# Content-Length alone; past max_connections a new connection is closed at
# once; header_timeout, body_timeout and idle_timeout cut slow clients off.
. "$(dirname "$0")/../lib.sh"
ulimit -n 8192 2>/dev/null


HANG=$(free_port); OK=$(free_port)
start_sink hang "$HANG" --hang || tap_bail "sink hang"
start_sink ok "$OK" || tap_bail "sink ok"
"$T_BUILD/tools/rwgen" --series 50 --label provider=tokyo > "$T_TMP/body" || tap_bail "rwgen"
hdr=(-H "Content-Type: application/x-protobuf" -H "Content-Encoding: snappy" -H "Cf-Access-Jwt-Assertion: $T_TOKEN")

# 1. max_requests: 3 requests held by a hanging upstream, the 4th is refused at once.
KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c1" "$KK" "$KM" "http://127.0.0.1:$HANG/api/v1/write" "" "" \
    "limits: { max_requests: 3 }"
start_kakikomi "$T_TMP/c1/kakikomi.yml" "$KM" || tap_bail "kakikomi (max_requests) did not start"
held=()
for i in 1 2 3; do
	curl -s -o /dev/null -w '%{http_code}\n' "${hdr[@]}" --data-binary "@$T_TMP/body" \
	    "http://127.0.0.1:$KK/api/v1/write" > "$T_TMP/held.$i" &
	held+=($!)
done
deadline=$((SECONDS + 10))
until [ "$(curl -s "http://127.0.0.1:$KM/metrics" | awk '/^kakikomi_inflight_requests /{print $2}')" = 3 ] ||
    [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
res=$(rw_post "http://127.0.0.1:$KK/api/v1/write" "$T_TMP/body" "$T_TOKEN")
tap_check "request over max_requests is 503" 503 "${res%% *}"
tap_contains "overload reason" "overloaded" "$res"
tap_check "overload carries Retry-After" 1 "$(resp_header Retry-After)"
wait "${held[@]}"
tap_check "held requests end as 504 when the upstream times out" "504 504 504" \
    "$(cat "$T_TMP"/held.* | sort | tr '\n' ' ' | sed 's/ $//')"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"

# 2. max_inflight_bytes: one body held, a second that would pass the cap is refused.
KK=$(free_port); KM=$(free_port)
size=$(stat -c %s "$T_TMP/body")
write_config "$T_TMP/c2" "$KK" "$KM" "http://127.0.0.1:$HANG/api/v1/write" "" "" \
    "limits: { max_inflight_bytes: $((size * 3 / 2)) }"
start_kakikomi "$T_TMP/c2/kakikomi.yml" "$KM" || tap_bail "kakikomi (inflight bytes) did not start"
curl -s -o /dev/null "${hdr[@]}" --data-binary "@$T_TMP/body" "http://127.0.0.1:$KK/api/v1/write" &
held=($!)
deadline=$((SECONDS + 10))
until [ "$(curl -s "http://127.0.0.1:$KM/metrics" | awk '/^kakikomi_inflight_requests /{print $2}')" = 1 ] ||
    [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
res=$(rw_post "http://127.0.0.1:$KK/api/v1/write" "$T_TMP/body" "$T_TOKEN")
tap_check "body past max_inflight_bytes is 503" 503 "${res%% *}"
wait "${held[@]}"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"

# 3. per-site rate limit: burst 2 at 0.5 request/s, the third is 429.
KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c3" "$KK" "$KM" "http://127.0.0.1:$OK/api/v1/write" "" "label: provider
sites:
  tokyo:
    tokens: [ \"$T_TOKEN_CN\" ]
    provider: [ tokyo ]
    rate_limit: { requests_per_second: 0.5, burst: 2 }" "limits: { header_timeout: 2s }"
start_kakikomi "$T_TMP/c3/kakikomi.yml" "$KM" || tap_bail "kakikomi (rate limit) did not start"
W=http://127.0.0.1:$KK/api/v1/write
codes=""
for i in 1 2 3; do codes="$codes $(rw_post "$W" "$T_TMP/body" "$T_TOKEN" | cut -d' ' -f1)"; done
tap_check "burst of 2 then 429" " 204 204 429" "$codes"
ra=$(resp_header Retry-After)
[ -n "$ra" ] && [ "$ra" -ge 1 ] && [ "$ra" -le 3 ] && tap_ok "429 carries Retry-After ($ra s)" ||
    tap_fail "429 carries Retry-After" "got [$ra]"

# 4. 1,000 idle connections and a trickling body, then a valid request.
#    (the rate limit above allows one request per 2 s; wait for the token)
fds=()
for i in $(seq 1000); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$KK" || break
	fds+=("$fd")
done
tap_check "1000 idle connections open" 1000 "${#fds[@]}"
( printf 'POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n'
  for _ in $(seq 40); do printf 'x'; sleep 0.25; done ) > "/dev/tcp/127.0.0.1/$KK" 2>/dev/null &
trickle=$!
track_pid "$trickle"
sleep 2	# refill one rate-limit token (0.5/s)
res=$(rw_post "$W" "$T_TMP/body" "$T_TOKEN" --max-time 5)
tap_check "valid request answered beside idle and trickling clients" "204 " "$res"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$KK_PID/status")
[ "$rss" -lt $((64 * 1024)) ] && tap_ok "RSS with 1000 open connections below 64 MiB (${rss} kB)" ||
    tap_fail "RSS with 1000 open connections below 64 MiB" "${rss} kB"
for fd in "${fds[@]}"; do exec {fd}>&-; done

# 5. a client that sends half a request head and then nothing is cut off after header_timeout.
exec {slow}<>"/dev/tcp/127.0.0.1/$KK"
printf 'POST /api/v1/write HTTP/1.1\r\nHost: x\r\n' >&"$slow"
start=$SECONDS
if read -r -t 10 -u "$slow" _; then :; fi
elapsed=$((SECONDS - start))
[ "$elapsed" -le 6 ] && tap_ok "silent client closed after header_timeout (${elapsed}s)" ||
    tap_fail "silent client closed after header_timeout" "still open after ${elapsed}s"
exec {slow}>&-
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"

# 6. a flood: 300 concurrent 1 MiB bodies against max_requests 16: fast 503s,
#    never more than the caps in memory.
KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c5" "$KK" "$KM" "http://127.0.0.1:$OK/api/v1/write" "" "" \
    "limits: { max_requests: 16, max_inflight_bytes: 16MiB }"
sed -i 's/workers: 2/workers: 1/' "$T_TMP/c5/kakikomi.yml"
start_kakikomi "$T_TMP/c5/kakikomi.yml" "$KM" || tap_bail "kakikomi (flood) did not start"
"$T_BUILD/tools/rwgen" --series 6000 --label provider=tokyo --raw | head -c 1048576 > "$T_TMP/mib"
args=()
for i in $(seq 300); do args+=(-o /dev/null "http://127.0.0.1:$KK/api/v1/write"); done
curl -s -Z --parallel-max 300 "${hdr[@]}" --data-binary "@$T_TMP/mib" -w '%{http_code}\n' "${args[@]}" \
    > "$T_TMP/flood.codes"
total=$(wc -l < "$T_TMP/flood.codes")
other=$(grep -cvE '^(400|503)$' "$T_TMP/flood.codes")
tap_check "flood: every request answered" 300 "$total"
tap_check "flood: only 400 (not snappy) or 503 (overload)" 0 "$other"
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$KK_PID/status")
cap=120	# MiB; ASan's quarantine keeps freed bodies resident for a while
ldd "$T_BUILD/kakikomi" 2>/dev/null | grep -q libasan && cap=240
[ "$hwm" -lt $((cap * 1024)) ] && tap_ok "flood: peak RSS below $cap MiB (${hwm} kB for 300 MiB offered)" ||
    tap_fail "flood: peak RSS below $cap MiB" "${hwm} kB"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"

# ---- raw connections: what is answered before the body, and the deadlines ----
# req_head LENGTH [EXTRA_LINE]: a remote write head with the test token.
req_head() { raw_head "$1" "$T_TOKEN" "${2:-}"; }

KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c6" "$KK" "$KM" "http://127.0.0.1:$OK/api/v1/write" "" "" \
    "limits: { max_body_bytes: 1MiB, header_timeout: 2s, body_timeout: 2s, idle_timeout: 2s }"
start_kakikomi "$T_TMP/c6/kakikomi.yml" "$KM" || tap_bail "kakikomi (deadlines) did not start"
W=http://127.0.0.1:$KK/api/v1/write
bodylen=$(stat -c %s "$T_TMP/body")

# 7. 413 from Content-Length: curl waits for 100 Continue and gets 413 instead.
head -c $((2 * 1024 * 1024)) /dev/zero > "$T_TMP/big.body"
res=$(rw_post "$W" "$T_TMP/big.body" "$T_TOKEN" -H 'Expect: 100-continue')
tap_check "Content-Length over max_body_bytes is 413" 413 "${res%% *}"
tap_check "413 comes without 100 Continue" 0 "$(grep -c '^HTTP/1.1 100' "$T_TMP/resp.headers")"
tap_contains "413 reason names the limit" "over max_body_bytes (1048576)" "$res"
tap_check "413 reason is one line" 1 "$(wc -l < "$T_TMP/resp.body")"
tap_contains "413 is logged" 'status="413" reason="body of 2097152 bytes is over max_body_bytes (1048576)"' \
    "$(cat "$T_TMP/kakikomi.log")"
tap_check "chunked body within the limits is forwarded" "204 " \
    "$(rw_post "$W" "$T_TMP/body" "$T_TOKEN" -H 'Transfer-Encoding: chunked')"
# ... and answered to a head alone: no byte of the body is needed.
exec {fd}<>"/dev/tcp/127.0.0.1/$KK"
req_head 2097152 >&"$fd"
tap_check "413 answered to the head alone" "HTTP/1.1 413 Payload Too Large" "$(status_line "$fd" 3)"
exec {fd}>&-
# An unauthenticated head is refused before its body, too.
exec {fd}<>"/dev/tcp/127.0.0.1/$KK"
printf 'POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n' >&"$fd"
tap_check "401 answered to the head alone" "HTTP/1.1 401 Unauthorized" "$(status_line "$fd" 3)"
exec {fd}>&-

# Framing that could smuggle a second request is refused, with its reason.
exec {fd}<>"/dev/tcp/127.0.0.1/$KK"
printf 'POST /api/v1/write HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n' >&"$fd"
line=$(status_line "$fd" 3); skip_head "$fd"
read -r -t 3 -u "$fd" why
tap_check "Transfer-Encoding with Content-Length is 400" \
    "HTTP/1.1 400 Bad Request|both Transfer-Encoding and Content-Length" "$line|${why%$'\r'}"
exec {fd}>&-
# A chunk size with a space inside ("39 6": 0x39 to kakikomi before, an
# invalid byte to Go) is refused, not guessed at.
exec {fd}<>"/dev/tcp/127.0.0.1/$KK"
{ req_head 0 | sed '/^Content-Length/d; /^\r$/d'; printf 'Transfer-Encoding: chunked\r\n\r\n39 6\r\n'; } >&"$fd"
line=$(status_line "$fd" 3); skip_head "$fd"
read -r -t 3 -u "$fd" why
tap_check "chunk size '39 6' is 400" \
    "HTTP/1.1 400 Bad Request|malformed chunk size line (expected ';' or CRLF)" "$line|${why%$'\r'}"
exec {fd}>&-

# 8. keep-alive: two requests on one connection, then closed after idle_timeout.
exec {fd}<>"/dev/tcp/127.0.0.1/$KK"
{ req_head "$bodylen"; cat "$T_TMP/body"; } >&"$fd"
first=$(status_line "$fd"); skip_head "$fd"
{ req_head "$bodylen"; cat "$T_TMP/body"; } >&"$fd"
second=$(status_line "$fd"); skip_head "$fd"
tap_check "two requests on one kept-alive connection" "HTTP/1.1 204 No Content|HTTP/1.1 204 No Content" \
    "$first|$second"
start=$EPOCHREALTIME
line=$(status_line "$fd" 8)
ms=$(ms_since "$start")
[ -z "$line" ] && [ "$ms" -ge 1500 ] && [ "$ms" -le 4000 ] &&
    tap_ok "idle keep-alive connection closed after idle_timeout (${ms} ms, silently)" ||
    tap_fail "idle keep-alive connection closed after idle_timeout" "after ${ms} ms, read [$line]"
exec {fd}>&-

# 9, 10. header_timeout and body_timeout: a head trickled one line, or an
# admitted body one byte, every 0.5 s is answered 408 after ~2 s.
trickle_head() {
	printf 'POST /api/v1/write HTTP/1.1\r\n'
	for i in $(seq 20); do printf 'X-Slow-%d: y\r\n' "$i"; sleep 0.5; done
}
trickle_body() {
	req_head 1000
	for _ in $(seq 20); do printf 'x'; sleep 0.5; done
}
# trickle_case WHAT PRODUCER
trickle_case() {
	local start line ms pid
	exec {fd}<>"/dev/tcp/127.0.0.1/$KK"
	"$2" >&"$fd" 2>/dev/null &
	pid=$!
	start=$EPOCHREALTIME
	line=$(status_line "$fd" 8)
	ms=$(ms_since "$start")
	tap_check "trickled $1 answered 408" "HTTP/1.1 408 Request Timeout" "$line"
	[ "$ms" -ge 1500 ] && [ "$ms" -le 4000 ] && tap_ok "trickled $1 cut off after its timeout (${ms} ms)" ||
	    tap_fail "trickled $1 cut off after its timeout" "${ms} ms"
	kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
	exec {fd}>&-
}
trickle_case head trickle_head
trickle_case body trickle_body
tap_contains "body timeout is logged" 'status="408" reason="request body not complete within body_timeout"' \
    "$(cat "$T_TMP/kakikomi.log")"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"

# 11. max_connections: the 51st connection is closed at once; the 50 still work.
KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c7" "$KK" "$KM" "http://127.0.0.1:$OK/api/v1/write" "" "" \
    "limits: { max_connections: 50 }"
start_kakikomi "$T_TMP/c7/kakikomi.yml" "$KM" || tap_bail "kakikomi (max_connections) did not start"
fds=()
for i in $(seq 50); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$KK" || break
	fds+=("$fd")
done
deadline=$((SECONDS + 10))
until [ "$(curl -s "http://127.0.0.1:$KM/metrics" | awk '/^kakikomi_open_connections /{print $2}')" = 50 ] ||
    [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
exec {extra}<>"/dev/tcp/127.0.0.1/$KK"
start=$EPOCHREALTIME
line=$(status_line "$extra" 5)
ms=$(ms_since "$start")
[ -z "$line" ] && [ "$ms" -lt 1000 ] && tap_ok "51st connection closed at once (${ms} ms)" ||
    tap_fail "51st connection closed at once" "after ${ms} ms, read [$line]"
exec {extra}>&-
fd=${fds[0]}
{ req_head "$bodylen"; cat "$T_TMP/body"; } >&"$fd"
tap_check "a request on one of the 50 connections still works" "HTTP/1.1 204 No Content" \
    "$(status_line "$fd")"
tap_contains "refused connections counted" "kakikomi_connections_refused_total 1" \
    "$(curl -s "http://127.0.0.1:$KM/metrics")"
for fd in "${fds[@]}"; do exec {fd}>&-; done
deadline=$((SECONDS + 10))
until [ "$(curl -s "http://127.0.0.1:$KM/metrics" | awk '/^kakikomi_open_connections /{print $2}')" = 0 ] ||
    [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
tap_check "connections are accepted again once closed" "204 " \
    "$(rw_post "http://127.0.0.1:$KK/api/v1/write" "$T_TMP/body" "$T_TOKEN")"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"

# 12. SIGTERM drains: idle connections close at once, new ones are refused,
#     the request in flight is still answered (with Connection: close).
KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c8" "$KK" "$KM" "http://127.0.0.1:$HANG/api/v1/write" ""
start_kakikomi "$T_TMP/c8/kakikomi.yml" "$KM" || tap_bail "kakikomi (drain) did not start"
exec {busy}<>"/dev/tcp/127.0.0.1/$KK"
exec {idle}<>"/dev/tcp/127.0.0.1/$KK"
{ req_head "$bodylen"; cat "$T_TMP/body"; } >&"$busy"
deadline=$((SECONDS + 10))
until [ "$(curl -s "http://127.0.0.1:$KM/metrics" | awk '/^kakikomi_inflight_requests /{print $2}')" = 1 ] ||
    [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
kill -TERM "$KK_PID"
start=$EPOCHREALTIME
line=$(status_line "$idle" 5)
ms=$(ms_since "$start")
[ -z "$line" ] && [ "$ms" -lt 1000 ] && tap_ok "drain closes idle connections at once (${ms} ms)" ||
    tap_fail "drain closes idle connections at once" "after ${ms} ms, read [$line]"
if (exec 3<>"/dev/tcp/127.0.0.1/$KK") 2>/dev/null; then tap_fail "drain stops accepting" "connected"
else tap_ok "drain stops accepting"; fi
tap_check "request in flight answered during drain" "HTTP/1.1 504 Gateway Timeout" "$(status_line "$busy")"
hdrs=""
while read -r -t 5 -u "$busy" h && [ -n "${h%$'\r'}" ]; do hdrs="$hdrs${h%$'\r'};"; done
tap_contains "drained answer closes the connection" "Connection: close" "$hdrs"
exec {busy}>&- {idle}>&-
wait_gone "$KK_PID" 15 && tap_ok "kakikomi exits after the drain" || tap_fail "kakikomi exits after the drain" "still running"
untrack_pid "$KK_PID"

# 13. an open-file limit below max_connections: kakikomi caps connections
#     under it (and says so) instead of spinning on accept errors.
KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c9" "$KK" "$KM" "http://127.0.0.1:$OK/api/v1/write" ""
(ulimit -Sn 400 && ulimit -Hn 800 && exec "$T_BUILD/kakikomi" -c "$T_TMP/c9/kakikomi.yml") \
    >>"$T_TMP/kakikomi.log" 2>&1 &
KK_PID=$!
track_pid "$KK_PID"
wait_http "http://127.0.0.1:$KM/readyz" 30 || tap_bail "kakikomi (fd limit) did not start"
tap_contains "the cap is logged" "is above what the open-file limit (800) allows" "$(cat "$T_TMP/kakikomi.log")"
fds=()
for i in $(seq 900); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$KK" 2>/dev/null || break
	fds+=("$fd")
done
cpu0=$(awk '{print $14 + $15}' "/proc/$KK_PID/stat")
sleep 1	# a second in which a listener spinning on EMFILE would burn a core
cpu1=$(awk '{print $14 + $15}' "/proc/$KK_PID/stat")
for fd in "${fds[@]}"; do exec {fd}>&-; done
[ $((cpu1 - cpu0)) -lt 30 ] && tap_ok "no accept loop past the limit ($((cpu1 - cpu0)) ticks in 1 s)" ||
    tap_fail "no accept loop past the limit" "$((cpu1 - cpu0)) clock ticks of CPU in 1 s"
tap_check "still serving after the connection storm" "204 " \
    "$(rw_post "http://127.0.0.1:$KK/api/v1/write" "$T_TMP/body" "$T_TOKEN")"
tap_done
