#!/usr/bin/env bash
# One site cannot starve the others (issue 10, item 7).  Site A opens 16+
# requests declaring Content-Length 16 MiB and sends one byte of each: nothing
# is reserved or allocated from the declared length, so site B's writes are
# still answered 204 at once and kakikomi's RSS stays small.  A's bodies that
# really hold bytes are capped by A's share of the in-flight budget
# (limits.max_inflight_bytes_per_site): past it A gets 503 naming its share,
# B does not notice, and the share survives a reload.  The trickling bodies end
# in 408 from limits.min_body_rate after body_rate_grace, long before
# body_timeout; every reservation is released once they are gone.
. "$(dirname "$0")/../lib.sh"

CFA=$T_BUILD/tools/cfaccess
KEY=$T_DATA/access/current-private.pem
TOK_A=$("$CFA" mint --key "$KEY" --common-name site-a.access) || tap_bail "mint A"
TOK_B=$("$CFA" mint --key "$KEY" --common-name site-b.access) || tap_bail "mint B"
OK=$(free_port)
start_sink ok "$OK" || tap_bail "sink"
"$T_BUILD/tools/rwgen" --series 20 --label provider=b > "$T_TMP/body.b" || tap_bail "rwgen"
"$T_BUILD/tools/rwgen" --series 20 --label provider=a > "$T_TMP/body.a" || tap_bail "rwgen"
head -c $((3 * 1024 * 1024)) /dev/zero > "$T_TMP/3mib"
head -c $((2 * 1024 * 1024)) /dev/zero > "$T_TMP/2mib"

SITES="label: provider
sites:
  a: { tokens: [ \"site-a.access\" ], provider: [ a ] }
  b: { tokens: [ \"site-b.access\" ], provider: [ b ] }"

# The share must fit in the whole budget: a file:line error.
write_config "$T_TMP/bad" "$(free_port)" "$(free_port)" "http://127.0.0.1:$OK/api/v1/write" "" "$SITES" \
    "limits:
  max_inflight_bytes: 8MiB
  max_inflight_bytes_per_site: 9MiB"
out=$("$T_BUILD/kakikomi" --check-config -c "$T_TMP/bad/kakikomi.yml" 2>&1)
line=$(grep -n max_inflight_bytes_per_site "$T_TMP/bad/kakikomi.yml" | cut -d: -f1)
tap_contains "share over the budget is refused with file:line" \
    "$T_TMP/bad/kakikomi.yml:$line: max_inflight_bytes_per_site: 9437184 is over max_inflight_bytes (8388608)" "$out"

# Defaults otherwise (max_inflight_bytes 256 MiB, body_timeout 60 s,
# min_body_rate 500 B/s after 10 s); A's share is 4 MiB to keep the test small.
KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/c" "$KK" "$KM" "http://127.0.0.1:$OK/api/v1/write" "" "$SITES" \
    "limits: { max_inflight_bytes_per_site: 4MiB, max_requests_per_site: 22 }"
start_kakikomi "$T_TMP/c/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"
W=http://127.0.0.1:$KK/api/v1/write
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$KK_PID/status")

# b_write NAME: one write of site B, answered 204 within 2 s (generous: it
# takes a few ms when nothing starves it).
b_write() {
	local res ms t0=$EPOCHREALTIME
	res=$(rw_post "$W" "$T_TMP/body.b" "$TOK_B")
	ms=$(ms_since "$t0")
	[ "$res" = "204 " ] && [ "$ms" -lt 2000 ] && tap_ok "$1: site B answered 204 in ${ms} ms" ||
	    tap_fail "$1: site B answered 204 promptly" "got [$res] (${ms} ms)"
}

# 1. 20 of A's heads declare 16 MiB each (320 MiB, past the 256 MiB budget)
#    and send one byte.
slow=(); start=$EPOCHREALTIME
for i in $(seq 20); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$KK" || break
	{ raw_head 16777216 "$TOK_A"; printf x; } >&"$fd"
	slow+=("$fd")
done
wait_metric "$KM" kakikomi_inflight_requests 20 || tap_fail "20 slow requests admitted" \
    "in flight: $(metric "$KM" kakikomi_inflight_requests)"
wait_metric "$KM" kakikomi_inflight_bytes 20 && tap_ok "20 declared 16 MiB bodies hold 20 bytes, not 320 MiB" ||
    tap_fail "slow bodies hold only what they sent" "inflight bytes $(metric "$KM" kakikomi_inflight_bytes)"
b_write "beside 20 slow 16 MiB heads"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$KK_PID/status")
[ $((rss - rss0)) -lt $((16 * 1024)) ] &&
    tap_ok "RSS grew by $(( (rss - rss0) / 1024 )) MiB for 20 open 16 MiB requests (bound 16 MiB)" ||
    tap_fail "RSS stays small with the slow requests open" "${rss0} kB -> ${rss} kB"

# 2. A's bodies that really hold bytes: 3 MiB fits A's 4 MiB share, 2 MiB more
#    does not; B is not affected.
exec {hold}<>"/dev/tcp/127.0.0.1/$KK"
{ raw_head 16777216 "$TOK_A"; cat "$T_TMP/3mib"; } >&"$hold"
wait_metric "$KM" kakikomi_inflight_bytes $((20 + 3 * 1024 * 1024)) ||
    tap_fail "3 MiB held" "inflight bytes $(metric "$KM" kakikomi_inflight_bytes)"
# over_share WHAT: A sends 2 MiB more on a new request, gets 503 naming its share.
over_share() {
	local fd line why ra=""
	exec {fd}<>"/dev/tcp/127.0.0.1/$KK"
	{ raw_head 16777216 "$TOK_A"; cat "$T_TMP/2mib"; } >&"$fd" 2>/dev/null
	line=$(status_line "$fd" 5)
	while read -r -t 5 -u "$fd" h && [ -n "${h%$'\r'}" ]; do
		case "$h" in Retry-After:*) ra=${h#Retry-After: }; ra=${ra%$'\r'} ;; esac
	done
	read -r -t 5 -u "$fd" why
	exec {fd}>&-
	tap_check "$1: A past its share is 503 + Retry-After" "HTTP/1.1 503 Service Unavailable|5" "$line|$ra"
	tap_check "$1: the reason names A's share" \
	    "overloaded: site a holds its whole share of in-flight body bytes (max_inflight_bytes_per_site 4194304), retry later" \
	    "${why%$'\r'}"
}
over_share "first"
b_write "while A holds its whole share"
# The share is keyed by site name: it survives a reload.
kill -HUP "$KK_PID"
deadline=$((SECONDS + 10))
until curl -s "http://127.0.0.1:$KM/metrics" | grep -q 'kakikomi_config_reload_total{result="ok"} 1' ||
    [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
over_share "after a reload"
b_write "after the reload"

# Request slots are shared per site too (limits.max_requests_per_site): A
# holds 21 of its 22, one more is admitted, the next is refused; B is not.
exec {extra}<>"/dev/tcp/127.0.0.1/$KK"
raw_head 100 "$TOK_A" >&"$extra"
wait_metric "$KM" kakikomi_inflight_requests 22 ||
    tap_fail "A's 22nd request admitted" "in flight: $(metric "$KM" kakikomi_inflight_requests)"
exec {fd}<>"/dev/tcp/127.0.0.1/$KK"
raw_head 100 "$TOK_A" >&"$fd"
line=$(status_line "$fd" 5); skip_head "$fd"; read -r -t 5 -u "$fd" why; exec {fd}>&-
tap_check "A past its request share is 503" "HTTP/1.1 503 Service Unavailable" "$line"
tap_check "the reason names A's request share" "overloaded: site a has its whole share of \
requests in flight (max_requests_per_site 22), retry later" "${why%$'\r'}"
b_write "while A holds all of its request slots"
exec {extra}>&-

# 3. The one-byte bodies fall under min_body_rate: 408 after the 10 s grace,
#    not after the 60 s body_timeout.
codes=""; whys=""
for fd in "${slow[@]}"; do
	line=$(status_line "$fd" 30); skip_head "$fd"
	read -r -t 5 -u "$fd" why
	codes="$codes${line#HTTP/1.1 } "
	whys="$whys${why%%:*}|"
	exec {fd}>&-
done
ms=$(ms_since "$start")
tap_check "every trickling request is 408" "$(printf '408 Request Timeout %.0s' $(seq 20))" "$codes"
tap_check "408 reason names min_body_rate" \
    "$(printf 'request body slower than min_body_rate (500 bytes/s)|%.0s' $(seq 20))" "$whys"
[ "$ms" -ge 9000 ] && [ "$ms" -lt 20000 ] && tap_ok "trickling requests cut off after the grace (${ms} ms < 60 s)" ||
    tap_fail "trickling requests cut off after the grace" "${ms} ms"

# 4. Every path released what it held, exactly once: the 3 MiB holder goes away.
exec {hold}>&-
wait_metric "$KM" kakikomi_inflight_requests 0 && wait_metric "$KM" kakikomi_inflight_bytes 0 &&
    tap_ok "no request or byte left reserved" ||
    tap_fail "no request or byte left reserved" \
    "requests $(metric "$KM" kakikomi_inflight_requests) bytes $(metric "$KM" kakikomi_inflight_bytes)"
res=$(rw_post "$W" "$T_TMP/body.a" "$TOK_A")
tap_check "A writes again once its requests are gone" "204 " "$res"
tap_contains "share refusals are counted" 'reason="site_share"' "$(curl -s "http://127.0.0.1:$KM/metrics")"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"
tap_done
