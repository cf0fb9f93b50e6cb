#!/usr/bin/env bash
# valgrind --leak-check=full over a request mix: accepted, rewritten and
# refused writes of both signals, upstream failures, reload, then SIGTERM.
# No leak and no memory error may be reported.
. "$(dirname "$0")/../lib.sh"
command -v valgrind >/dev/null || { echo "ok 1 - valgrind # SKIP not installed"; exit 0; }
# AddressSanitizer and valgrind do not run together; the plain build covers this.
if ldd "$T_BUILD/kakikomi" | grep -q libasan; then
	echo "ok 1 - valgrind # SKIP $T_BUILD/kakikomi is an AddressSanitizer build"
	exit 0
fi

UP=$(free_port); LOKI=$(free_port); DOWN=$(free_port); KK=$(free_port); KM=$(free_port)
start_sink up "$UP" || tap_bail "sink"
start_sink loki "$LOKI" || tap_bail "sink"
write_config "$T_TMP/kk" "$KK" "$KM" \
    "http://127.0.0.1:$UP/api/v1/write http://127.0.0.1:$DOWN/api/v1/write" \
    "http://127.0.0.1:$LOKI/loki/api/v1/push"
sed -i 's/workers: 2/workers: 1/' "$T_TMP/kk/kakikomi.yml"
valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=99 --log-file="$T_TMP/valgrind.log" \
    "$T_BUILD/kakikomi" --web.enable-lifecycle -c "$T_TMP/kk/kakikomi.yml" >"$T_TMP/kakikomi.log" 2>&1 &
KK_PID=$!
track_pid "$KK_PID"
wait_http "http://127.0.0.1:$KM/readyz" 60 || tap_bail "kakikomi under valgrind did not become ready"

W=http://127.0.0.1:$KK/api/v1/write
L=http://127.0.0.1:$KK/loki/api/v1/push
"$T_BUILD/tools/rwgen" --series 20 --label provider=osaka > "$T_TMP/foreign.body"
codes=""
add() { codes="$codes ${1%% *}"; }
add "$(rw_post "$W" "$T_DATA/prometheus-2.42/rw1-353-series.body" "$T_TOKEN")"
add "$(rw_post "$W" "$T_TMP/foreign.body" "$T_TOKEN")"
add "$(rw_post "$W" "$T_TMP/foreign.body" "$(cat "$T_DATA/access/service-token-expired.jwt")")"
add "$(rw_post "$W" "$T_TMP/foreign.body" "garbage")"
add "$(post "$W" "$T_TMP/foreign.body" -H 'Content-Type: application/x-protobuf')"
add "$(rw_post "$W" "$T_DATA/loki-json/push.json" "$T_TOKEN")"
add "$(post "$L" "$T_DATA/promtail-2.8/push-304-entries.body" -H 'Content-Type: application/x-protobuf' -H "Cf-Access-Jwt-Assertion: $T_TOKEN")"
add "$(post "$L" "$T_DATA/loki-json/push.json.gz" -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' -H "Cf-Access-Jwt-Assertion: $T_TOKEN")"
add "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$KK/nope")"
curl -s -X POST -o /dev/null "http://127.0.0.1:$KM/-/reload"
curl -s -o /dev/null "http://127.0.0.1:$KM/metrics"
tap_check "request mix answered as expected" " 502 502 403 403 401 400 204 204 404" "$codes"

kill -TERM "$KK_PID"
wait "$KK_PID"; rc=$?
untrack_pid "$KK_PID"
tap_check "kakikomi exits 0 on SIGTERM under valgrind (99: valgrind found errors)" 0 "$rc"
summary=$(grep -E "definitely lost|indirectly lost|ERROR SUMMARY" "$T_TMP/valgrind.log" | sed 's/^==[0-9]*== *//' | tr '\n' ';')
tap_contains "no memory errors" "ERROR SUMMARY: 0 errors" "$summary"
if grep -qE "definitely lost: [1-9]|indirectly lost: [1-9]" "$T_TMP/valgrind.log"; then
	tap_fail "no leaks" "$summary"
	grep -A12 "definitely lost in" "$T_TMP/valgrind.log" | head -40 | sed 's/^/# /'
else
	tap_ok "no leaks"
fi
tap_done
