#!/usr/bin/env bash
# The status page on the metrics listener: GET /api/v1/status is JSON with
# every configured site (one that never wrote is "silent"), the key set's
# kids, version and uptime; GET / is the same as a self-contained HTML page
# (no script, no external asset).  What the request path feeds into it is
# unit-tested in tests/unit/test_status.c.
. "$(dirname "$0")/../lib.sh"

KK=$(free_port); KM=$(free_port)
write_config "$T_TMP/kk" "$KK" "$KM" "http://127.0.0.1:1/api/v1/write" ""
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"
S=http://127.0.0.1:$KM

code=$(curl -s -o "$T_TMP/status.json" -D "$T_TMP/status.headers" -w '%{http_code}' "$S/api/v1/status")
tap_check "GET /api/v1/status is 200" 200 "$code"
tap_check "as application/json" "application/json" \
    "$(awk -F': ' 'tolower($1) == "content-type" { sub(/\r/, "", $2); print $2 }' "$T_TMP/status.headers")"
tap_check "version" "0.1.0" "$(jq -r .version "$T_TMP/status.json")"
up=$(jq -r .uptime_seconds "$T_TMP/status.json")
[ "$up" -ge 0 ] 2>/dev/null && [ "$up" -lt 60 ] && tap_ok "uptime ${up}s" || tap_fail "uptime" "[$up]"
tap_check "the configured site is listed, silent, no write yet" "tokyo silent null null" \
    "$(jq -r '.sites[] | "\(.name) \(.state) \(.signals.metrics.last_write) \(.last_refusal)"' "$T_TMP/status.json")"
tap_check "the key set's kids (testdata certs.json)" \
    "$(jq -r '[.keys[].kid] | sort | join(",")' "$T_DATA/access/certs.json")" \
    "$(jq -r '.keyset.kids | sort | join(",")' "$T_TMP/status.json")"
tap_check "the key set's last load is noted, no error" "true null" \
    "$(jq -r '"\(.keyset.last_load != null) \(.keyset.last_error)"' "$T_TMP/status.json")"

code=$(curl -s -o "$T_TMP/status.html" -D "$T_TMP/page.headers" -w '%{http_code}' "$S/")
tap_check "GET / is 200 text/html" "200 text/html; charset=utf-8" \
    "$code $(awk -F': ' 'tolower($1) == "content-type" { sub(/\r/, "", $2); print $2 }' "$T_TMP/page.headers")"
tap_contains "the page names the site" "<b>tokyo</b><br><span class=\"silent\">silent</span>" "$(cat "$T_TMP/status.html")"
tap_contains "the page fits a phone" 'name="viewport"' "$(cat "$T_TMP/status.html")"
tap_check "no script, no external asset" 0 "$(grep -ciE '<script|src=|https?://' "$T_TMP/status.html")"
tap_done
