#!/usr/bin/env bash
# Backpressure instead of unbounded memory: past max_requests or
# max_inflight_bytes kakikomi answers 503 + Retry-After at once; per-site
# rate limits answer 429 + Retry-After; 1,000 idle connections and a client
# trickling its body do not delay a valid request; a silent client is cut off
# after idle_timeout; RSS stays bounded under a flood.
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
    rate_limit: { requests_per_second: 0.5, burst: 2 }" "limits: { idle_timeout: 2s }"
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

# 5. a client that sends half a request and then nothing is cut off after idle_timeout.
exec {slow}<>"/dev/tcp/127.0.0.1/$KK"
printf 'POST /api/v1/write HTTP/1.1\r\nHost: x\r\n' >&"$slow"
start=$SECONDS
if read -r -t 10 -u "$slow" _; then :; fi
elapsed=$((SECONDS - start))
[ "$elapsed" -le 6 ] && tap_ok "silent client closed after idle_timeout (${elapsed}s)" ||
    tap_fail "silent client closed after idle_timeout" "still open after ${elapsed}s"
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
[ "$hwm" -lt $((200 * 1024)) ] && tap_ok "flood: peak RSS bounded (${hwm} kB for 300 MiB offered)" ||
    tap_fail "flood: peak RSS bounded" "${hwm} kB"
tap_done
