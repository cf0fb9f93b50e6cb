#!/usr/bin/env bash
# kakikomi in front of a real Prometheus (remote write receiver) and a recording
# Loki stand-in: writes arrive stored with exact series and values, captured
# bodies pass byte for byte, nothing secret travels upstream, and the HTTP front
# answers 404/405/413/415 as documented.
. "$(dirname "$0")/../lib.sh"

PROM=$(free_port); KK=$(free_port); KM=$(free_port); LOKI=$(free_port)
start_prometheus prom "$PROM" || tap_bail "prometheus did not become ready"
start_sink loki "$LOKI" || tap_bail "sink did not start"
write_config "$T_TMP/cfg" "$KK" "$KM" "http://127.0.0.1:$PROM/api/v1/write" \
    "http://127.0.0.1:$LOKI/loki/api/v1/push" "" "limits: { max_body_bytes: 1MiB }"
start_kakikomi "$T_TMP/cfg/kakikomi.yml" "$KM" || tap_bail "kakikomi did not become ready"
W=http://127.0.0.1:$KK/api/v1/write
L=http://127.0.0.1:$KK/loki/api/v1/push

# Captured bodies first: their samples are older than the ones built below,
# and Prometheus only takes samples no older than its head block allows.
rw="$T_DATA/prometheus-2.42"
tap_check "captured 353-series body accepted" "204 " "$(rw_post "$W" "$rw/rw1-353-series.body" "$T_TOKEN")"
tap_check "captured 2000-series body accepted" "204 " "$(rw_post "$W" "$rw/rw1-2000-series.body" "$T_TOKEN")"
tap_check "metadata-only body accepted" "204 " "$(rw_post "$W" "$rw/rw1-metadata-only.body" "$T_TOKEN")"

series=$(curl -s "http://127.0.0.1:$PROM/api/v1/series" --data-urlencode 'match[]={provider="tokyo",job="prometheus"}' \
    --data-urlencode start=0 | grep -o '"__name__"' | wc -l)
tap_check "captured series stored in Prometheus" 353 "$series"

now=$(( $(date +%s) * 1000 ))
"$T_BUILD/tools/rwgen" --series 3 --samples 1 --ts "$now" --name kk_forward_test \
    --label provider=tokyo --value 40 > "$T_TMP/built.body"
tap_check "built body accepted" "204 " "$(rw_post "$W" "$T_TMP/built.body" "$T_TOKEN")"
got=$(prom_query "$PROM" 'kk_forward_test{provider="tokyo"}' | grep -o '"series":"[0-9]*"},"value":\[[0-9.]*,"[0-9.]*"' \
    | sed 's/.*"series":"\([0-9]*\)".*"\([0-9.]*\)"$/\1=\2/' | sort | tr '\n' ' ')
tap_check "built series stored with exact values" "0=40 1=41 2=42 " "$got"

# Logs: the captured promtail body reaches the Loki side byte for byte,
# without any credential, and with the site's tenant.
lb="$T_DATA/promtail-2.8/push-304-entries.body"
res=$(post "$L" "$lb" -H "Content-Type: application/x-protobuf" \
    -H "Cf-Access-Jwt-Assertion: $T_TOKEN" -H "CF-Access-Client-Id: $T_TOKEN_CN" \
    -H "CF-Access-Client-Secret: s3cr3t" -H "Cookie: CF_Authorization=abc" \
    -H "Authorization: Basic Zm9vOmJhcg==" -H "X-Scope-OrgID: someone-else" \
    -H "User-Agent: promtail/2.8.0")
tap_check "promtail body accepted" "204 " "$res"
if cmp -s "$lb" "$T_TMP/loki/1.body"; then tap_ok "promtail body forwarded byte for byte"
else tap_fail "promtail body forwarded byte for byte" "upstream body differs"; fi
hdrs=$(cat "$T_TMP/loki/1.headers" 2>/dev/null)
leak=$(printf '%s\n' "$hdrs" | grep -icE '^(cf-access-jwt-assertion|cf-access-client-id|cf-access-client-secret|cookie|authorization):')
tap_check "no credential reaches the upstream" 0 "$leak"
tap_contains "tenant header set from the site" "X-Scope-OrgID: tokyo" "$hdrs"
tap_check "client tenant header dropped" 0 "$(printf '%s\n' "$hdrs" | grep -c someone-else)"
tap_contains "user agent passed through" "User-Agent: promtail/2.8.0" "$hdrs"
tap_contains "content type passed through" "Content-Type: application/x-protobuf" "$hdrs"

# The HTTP front.
tap_check "GET on the write path is 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' "$W")"
tap_check "unknown path is 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$KK/api/v1/other")"
head -c $((2 * 1024 * 1024)) /dev/zero > "$T_TMP/big.body"
tap_check "body over max_body_bytes is 413" 413 "$(rw_post "$W" "$T_TMP/big.body" "$T_TOKEN" | cut -d' ' -f1)"
tap_check "chunked body over max_body_bytes is 413" 413 \
    "$(rw_post "$W" "$T_TMP/big.body" "$T_TOKEN" -H 'Transfer-Encoding: chunked' | cut -d' ' -f1)"
res=$(post "$W" "$T_TMP/built.body" -H "Content-Type: text/plain" -H "Content-Encoding: snappy" \
    -H "Cf-Access-Jwt-Assertion: $T_TOKEN")
tap_check "wrong content type is 415" 415 "${res%% *}"
res=$(post "$W" "$T_TMP/built.body" -H "Content-Type: application/x-protobuf" \
    -H "Content-Encoding: zstd" -H "Cf-Access-Jwt-Assertion: $T_TOKEN")
tap_check "unknown content encoding is 415" 415 "${res%% *}"
printf 'not snappy at all' > "$T_TMP/garbage.body"
res=$(rw_post "$W" "$T_TMP/garbage.body" "$T_TOKEN")
tap_check "malformed body is 400" 400 "${res%% *}"
tap_check "refusal carries a one-line reason" 1 "$(wc -l < "$T_TMP/resp.body")"

m=$(curl -s "http://127.0.0.1:$KM/metrics")
tap_contains "build info exported" 'kakikomi_build_info{version="' "$m"
tap_contains "requests counted by signal, site and status" \
    'kakikomi_requests_total{signal="metrics",site="tokyo",status="204"} 4' "$m"
tap_contains "upstream latency histogram exported" 'kakikomi_upstream_duration_seconds_bucket{signal="metrics"' "$m"
tap_check "healthz" "ok" "$(curl -s "http://127.0.0.1:$KM/healthz")"
tap_done
