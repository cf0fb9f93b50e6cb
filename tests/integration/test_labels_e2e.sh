#!/usr/bin/env bash
# Per-site label enforcement through the daemon into a real Prometheus: a
# site's write under a foreign provider is stored under the site's own value
# (on_mismatch: rewrite) or not stored at all (on_mismatch: reject, 403 naming
# the first offending series); Loki bodies are rewritten on their way to the
# logs upstream.
. "$(dirname "$0")/../lib.sh"

PROM=$(free_port); LOKI=$(free_port); KK=$(free_port); KM=$(free_port)
start_prometheus prom "$PROM" || tap_bail "prometheus did not start"
start_sink loki "$LOKI" || tap_bail "sink did not start"
write_config "$T_TMP/kk" "$KK" "$KM" "http://127.0.0.1:$PROM/api/v1/write" \
    "http://127.0.0.1:$LOKI/loki/api/v1/push" "label: provider
sites:
  tokyo:
    tokens: [ \"$T_TOKEN_CN\" ]
    provider: [ tokyo ]
    on_mismatch: rewrite
  osaka:
    tokens: [ osaka.access ]
    provider: [ osaka, osaka-2 ]
    on_mismatch: reject"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"
W=http://127.0.0.1:$KK/api/v1/write
L=http://127.0.0.1:$KK/loki/api/v1/push
OSAKA=$("$T_BUILD/tools/cfaccess" mint --key "$T_DATA/access/current-private.pem" --common-name osaka.access --ttl 600)
now=$(( $(date +%s) * 1000 ))
stored() {	# PROMQL -> sorted label sets of the result
	prom_query "$PROM" "$1" | grep -o '"metric":{[^}]*}' | sort | tr '\n' ' '
}

# tokyo (rewrite) claims osaka, and leaves the label out: both stored as tokyo.
"$T_BUILD/tools/rwgen" --name kk_forged --label provider=osaka --ts "$now" > "$T_TMP/forged.body"
"$T_BUILD/tools/rwgen" --name kk_unlabelled --ts "$now" > "$T_TMP/bare.body"
tap_check "foreign value rewritten: accepted" "204 " "$(rw_post "$W" "$T_TMP/forged.body" "$T_TOKEN")"
tap_check "missing label added: accepted" "204 " "$(rw_post "$W" "$T_TMP/bare.body" "$T_TOKEN")"
tap_check "foreign value stored under the site's own value" \
    '"metric":{"__name__":"kk_forged","provider":"tokyo","series":"0"} ' "$(stored 'kk_forged')"
tap_check "missing label stored with the site's value" \
    '"metric":{"__name__":"kk_unlabelled","provider":"tokyo","series":"0"} ' "$(stored 'kk_unlabelled')"

# osaka (reject) claims tokyo: refused, nothing stored; its own values pass.
"$T_BUILD/tools/rwgen" --name kk_osaka_forged --label provider=tokyo --ts "$now" > "$T_TMP/o-forged.body"
res=$(rw_post "$W" "$T_TMP/o-forged.body" "$OSAKA")
tap_check "reject: 403" 403 "${res%% *}"
tap_contains "reject: names the series and site" '{__name__="kk_osaka_forged", provider="tokyo", series="0"}' "$res"
tap_contains "reject: names the site" "osaka" "$res"
tap_check "reject: nothing stored" "" "$(stored 'kk_osaka_forged')"
"$T_BUILD/tools/rwgen" --name kk_osaka_ok --label provider=osaka-2 --ts "$now" > "$T_TMP/o-ok.body"
tap_check "second allowed value passes" "204 " "$(rw_post "$W" "$T_TMP/o-ok.body" "$OSAKA")"
tap_check "second allowed value stored as sent" \
    '"metric":{"__name__":"kk_osaka_ok","provider":"osaka-2","series":"0"} ' "$(stored 'kk_osaka_ok')"
# The captured 353-series body carries provider="tokyo": osaka may not send it.
res=$(rw_post "$W" "$T_DATA/prometheus-2.42/rw1-353-series.body" "$OSAKA")
tap_check "captured body under the wrong site: 403" 403 "${res%% *}"

# Loki JSON: the stream without provider gets tokyo's; the labelled one stays.
res=$(post "$L" "$T_DATA/loki-json/push.json" -H "Content-Type: application/json" \
    -H "Cf-Access-Jwt-Assertion: $T_TOKEN")
tap_check "Loki JSON rewrite accepted" "204 " "$res"
n=$(ls "$T_TMP/loki" | grep -c body)
streams=$(jq -c '[.streams[].stream.provider]' "$T_TMP/loki/$n.body" 2>/dev/null)
tap_check "every forwarded stream carries provider=tokyo" '["tokyo","tokyo"]' "$streams"
meta=$(jq -c '[.streams[].values[] | select(length == 3) | .[2]]' "$T_TMP/loki/$n.body" 2>/dev/null)
tap_contains "structured metadata left alone" '{' "$meta"
# Loki protobuf from promtail, under osaka (reject): refused.
res=$(post "$L" "$T_DATA/promtail-2.8/push-304-entries.body" -H "Content-Type: application/x-protobuf" \
    -H "Cf-Access-Jwt-Assertion: $OSAKA")
tap_check "promtail body under the wrong site: 403" 403 "${res%% *}"

m=$(curl -s "http://127.0.0.1:$KM/metrics")
tap_contains "rewrites counted" 'kakikomi_rewritten_series_total{site="tokyo",signal="metrics"} 2' "$m"
tap_contains "rejections counted by reason" 'kakikomi_rejected_requests_total{site="osaka",signal="metrics",reason="label"} 2' "$m"
tap_contains "last write per site exported" 'kakikomi_site_last_write_timestamp_seconds{site="osaka",signal="metrics"}' "$m"
tap_done
