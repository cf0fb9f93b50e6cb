#!/usr/bin/env bash
# Remote write 2.0 senders are never told a lie, against real Prometheus 2.42
# receivers (1.0 only): a 2.0 body built from a captured 1.0 body
# (tests/tools/rw1to2) goes through kakikomi
#   - to an upstream marked protocol: v1: down-converted, stored exactly
#     (every series, every sample's timestamp and raw value bits) and
#     answered with the Written counts of what kakikomi sent;
#   - straight to Prometheus 2.42: 204 and nothing stored (the lie);
#   - to the same 2.42 marked protocol: v2: that 204 without Written headers
#     becomes a 502 (the sender keeps the data), nothing claimed written;
#   - marked protocol: auto: the empty 2.0 probe shows no Written headers, so
#     the body goes down-converted and is stored.
# A 1.0 body gets no Written headers (the 1.0 receiver sent none).
. "$(dirname "$0")/../lib.sh"

P1=$(free_port); P2=$(free_port); KK=$(free_port); KM=$(free_port)
start_prometheus p1 "$P1" || tap_bail "prometheus p1 did not become ready"
start_prometheus p2 "$P2" || tap_bail "prometheus p2 did not become ready"
W=http://127.0.0.1:$KK/api/v1/write
V1=$T_DATA/prometheus-2.42/rw1-2000-series.body
V2=$T_TMP/rw2-2000-series.body
"$T_BUILD/tools/rw1to2" < "$V1" > "$V2" || tap_bail "rw1to2 failed"
"$T_BUILD/tools/rw1to2" --dump --set provider=tokyo < "$V1" | sort > "$T_TMP/want.txt"
NSAMPLES=$(wc -l < "$T_TMP/want.txt")
# The newest sample, for the instant query's evaluation time.
LAST_MS=$(cut -f2 "$T_TMP/want.txt" | sort -n | tail -n 1)

# kakikomi with one metrics upstream PORT marked PROTOCOL.
kakikomi_for() {
	local port=$1 proto=$2
	if [ -n "${KK_PID:-}" ]; then
		kill "$KK_PID"; wait_gone "$KK_PID" 15; untrack_pid "$KK_PID"
	fi
	write_config "$T_TMP/cfg" "$KK" "$KM" "http://127.0.0.1:$port/api/v1/write" ""
	sed -i "s|timeout: 2s }|timeout: 2s, protocol: $proto }|" "$T_TMP/cfg/kakikomi.yml"
	start_kakikomi "$T_TMP/cfg/kakikomi.yml" "$KM" || tap_bail "kakikomi ($proto) did not become ready"
}

rw2_post() {
	post "$1" "$V2" -H "Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request" \
	    -H "Content-Encoding: snappy" -H "X-Prometheus-Remote-Write-Version: 2.0.0" \
	    -H "User-Agent: Prometheus/3.5.0" -H "Cf-Access-Jwt-Assertion: $T_TOKEN"
}

# What Prometheus PORT holds, in rw1to2 --dump's format: every raw sample of
# every series (a range selector on an instant query returns raw samples),
# values as their float64 bits (Prometheus formats them with strconv's
# shortest round-trip form, so parsing gives the stored bits back).
stored() {
	curl -s --max-time 20 "http://127.0.0.1:$1/api/v1/query" \
	    --data-urlencode 'query={provider="tokyo"}[1h]' \
	    --data-urlencode "time=$(( LAST_MS / 1000 + 1 ))" | python3 -c '
import json, math, struct, sys
for s in json.load(sys.stdin)["data"]["result"]:
    labels = ",".join("%s=%s" % kv for kv in sorted(s["metric"].items()))
    for t, v in s["values"]:
        f = float(v)
        bits = "nan" if math.isnan(f) else "%016x" % struct.unpack("<Q", struct.pack("<d", f))[0]
        print("%s\t%d\t%s" % (labels, round(t * 1000), bits))' | sort
}

# --- protocol: v1 -------------------------------------------------------------
kakikomi_for "$P1" v1
tap_check "2.0 body to a v1 upstream accepted" "204 " "$(rw2_post "$W")"
tap_check "Samples-Written is what kakikomi sent" "$NSAMPLES" "$(resp_header X-Prometheus-Remote-Write-Samples-Written)"
tap_check "Histograms-Written" "0" "$(resp_header X-Prometheus-Remote-Write-Histograms-Written)"
tap_check "Exemplars-Written" "0" "$(resp_header X-Prometheus-Remote-Write-Exemplars-Written)"
stored "$P1" > "$T_TMP/got.txt"
tap_check "all $NSAMPLES samples stored" "$NSAMPLES" "$(wc -l < "$T_TMP/got.txt")"
if cmp -s "$T_TMP/want.txt" "$T_TMP/got.txt"; then
	tap_ok "stored exactly: series, timestamps, raw value bits"
else
	tap_fail "stored exactly: series, timestamps, raw value bits" \
	    "$(diff "$T_TMP/want.txt" "$T_TMP/got.txt" | head -n 5)"
fi
tap_check "nothing dropped in the conversion" "" \
    "$(curl -s "http://127.0.0.1:$KM/metrics" | grep '^kakikomi_rw2_downconvert_dropped_total')"
tap_check "1.0 body accepted" "204 " "$(rw_post "$W" "$V1" "$T_TOKEN")"
tap_check "no Written header for a 1.0 body (the receiver sent none)" "" \
    "$(grep -i '^X-Prometheus-Remote-Write-' "$T_TMP/resp.headers")"

# --- the lie: a 2.0 body straight to Prometheus 2.42 ----------------------------
tap_check "Prometheus 2.42 answers a 2.0 body 204" "204 " \
    "$(rw2_post "http://127.0.0.1:$P2/api/v1/write")"
tap_check "... without Written headers" "" "$(grep -i '^X-Prometheus-Remote-Write-' "$T_TMP/resp.headers")"
tap_check "... and stores nothing" "0" "$(stored "$P2" | wc -l)"

# --- protocol: v2 on a 1.0-only receiver ----------------------------------------
kakikomi_for "$P2" v2
res=$(rw2_post "$W")
tap_check "2xx without Written headers from a v2 upstream is a 502" "502" "${res%% *}"
tap_contains "reason names the upstream by role, not the data" "metrics upstream 1 answered 204" "$res"
tap_check "with Retry-After, so the sender keeps the data" "5" "$(resp_header Retry-After)"
tap_check "no Written header claimed" "" "$(grep -i '^X-Prometheus-Remote-Write-' "$T_TMP/resp.headers")"
tap_contains "logged at error level with the fix" "set protocol: v1" "$(grep 'upstream misconfigured' "$T_TMP/kakikomi.log" | tail -n 1)"
tap_contains "counted as misconfigured" 'kakikomi_upstream_misconfigured_total{upstream="metrics upstream 1",status="204"} 1' \
    "$(curl -s "http://127.0.0.1:$KM/metrics")"

# --- protocol: auto on a 1.0-only receiver ---------------------------------------
kakikomi_for "$P2" auto
tap_check "2.0 body to an auto upstream accepted" "204 " "$(rw2_post "$W")"
tap_check "Samples-Written (down-converted: not proven 2.0)" "$NSAMPLES" \
    "$(resp_header X-Prometheus-Remote-Write-Samples-Written)"
stored "$P2" > "$T_TMP/got2.txt"
if cmp -s "$T_TMP/want.txt" "$T_TMP/got2.txt"; then tap_ok "auto: stored exactly"
else tap_fail "auto: stored exactly" "$(diff "$T_TMP/want.txt" "$T_TMP/got2.txt" | head -n 5)"; fi
deadline=$((SECONDS + 10))
until grep -q 'protocol: auto) answered an empty remote write 2.0 request 204 without Written' "$T_TMP/kakikomi.log"; do
	[ "$SECONDS" -lt "$deadline" ] || break
	sleep 0.05
done
tap_contains "the probe saw no Written headers and says so" "sending it 1.0 (down-converted)" \
    "$(grep 'protocol: auto' "$T_TMP/kakikomi.log" | tail -n 1)"
tap_check "a resend is down-converted again (identical resend: 204)" "204 " "$(rw2_post "$W")"
tap_done
