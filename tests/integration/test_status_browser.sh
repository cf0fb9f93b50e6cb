#!/usr/bin/env bash
# The status page in a real browser: Debian's headless Chromium loads GET /
# from the metrics listener while a site's writes flow through the Access
# stand-in, and the test asserts on the DOM Chromium rendered:
#   tokyo  writes metrics and Loki lines all along: alive, last write seconds ago
#   osaka  configured, never wrote: silent, "never"
#   nagoya (on_mismatch: reject) sends another provider's series: silent, its
#          last refusal shows the status and the reason kakikomi answered
# Also keeps a phone-sized screenshot in the build directory
# ($KAKIKOMI_BUILD/status-page.png; the README's picture is made from it).
# The page is plain HTML (no script), so the rendered DOM is the served
# markup as the browser parsed it; the rows carry data-site/data-state hooks.
. "$(dirname "$0")/../lib.sh"

command -v chromium >/dev/null ||
    tap_bail "chromium is not installed: it is in deps/test.txt (sh deps/install.sh test, as root)"

KK=$(free_port); KM=$(free_port); PROM=$(free_port); LOKI=$(free_port)
start_sink prom "$PROM" || tap_bail "metrics sink did not start"
start_sink loki "$LOKI" || tap_bail "logs sink did not start"
NAGOYA_SECRET=secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
start_access_edge "$KK" "nagoya.access $NAGOYA_SECRET" || tap_bail "cfaccess did not start"
write_config "$T_TMP/kk" "$KK" "$KM" "http://127.0.0.1:$PROM/api/v1/write" \
    "http://127.0.0.1:$LOKI/loki/api/v1/push" "label: provider
sites:
  tokyo:
    tokens: [ \"$T_TOKEN_CN\" ]
    provider: [ tokyo ]
    on_mismatch: rewrite
    signals: [ metrics, logs ]
  osaka:
    tokens: [ osaka.access ]
    provider: [ osaka ]
  nagoya:
    tokens: [ nagoya.access ]
    provider: [ nagoya ]
    on_mismatch: reject"
use_edge_keys "$T_TMP/kk/kakikomi.yml"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"
S=http://127.0.0.1:$KM
EDGE=http://$CFA_EDGE

# tokyo writes a sample and a log line every 0.2 s until the test ends.
"$T_BUILD/tools/rwgen" --name kk_alive --label provider=tokyo > "$T_TMP/alive.body"
writer() {
	while :; do
		curl -s -o /dev/null --max-time 5 -u "$T_TOKEN_CN:$T_SECRET" \
		    -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy' \
		    --data-binary "@$T_TMP/alive.body" "$EDGE/api/v1/write"
		curl -s -o /dev/null --max-time 5 -u "$T_TOKEN_CN:$T_SECRET" \
		    -H 'Content-Type: application/json' --data-binary \
		    "{\"streams\":[{\"stream\":{\"job\":\"demo\"},\"values\":[[\"$(date +%s%N)\",\"alive\"]]}]}" \
		    "$EDGE/loki/api/v1/push"
		sleep 0.2
	done
}
writer >/dev/null 2>&1 &
track_pid $!

# nagoya (reject) claims tokyo's provider: refused with a reason.
"$T_BUILD/tools/rwgen" --name kk_foreign --label provider=tokyo > "$T_TMP/foreign.body"
refusal=$(curl -s -w ' %{http_code}' --max-time 10 -u "nagoya.access:$NAGOYA_SECRET" \
    -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy' \
    --data-binary "@$T_TMP/foreign.body" "$EDGE/api/v1/write" | tr -d '\n')
tap_check "nagoya's foreign series is refused" 403 "${refusal##* }"
reason=${refusal% *}
tap_contains "the refusal names the series" 'kk_foreign' "$reason"

# Wait (bounded) until the status JSON has both signals of tokyo stored.
deadline=$((SECONDS + 20))
until [ "$(curl -s "$S/api/v1/status" | jq -r '.sites[] | select(.name == "tokyo") |
    [.signals[].last_write != null] | all')" = true ]; do
	[ "$SECONDS" -lt "$deadline" ] || tap_bail "tokyo's writes never showed on /api/v1/status"
	sleep 0.1
done
tap_ok "tokyo's metrics and logs are stored while the page loads"

# browse OUT ARGS...: one headless Chromium run with a fresh profile, stopped
# by pid if it has not finished in 60 s; stdout to OUT, stderr to a log.
browse() {
	local out=$1 pid rc; shift
	rm -rf "$T_TMP/profile"
	chromium --headless --no-sandbox --disable-gpu --no-first-run \
	    --disable-background-networking --disable-component-update --disable-sync \
	    --disable-quic --user-data-dir="$T_TMP/profile" "$@" >"$out" 2>>"$T_TMP/chromium.log" &
	pid=$!
	track_pid "$pid"
	wait_gone "$pid" 60 || { kill "$pid"; wait_gone "$pid" 5 || kill -9 "$pid"; }
	wait "$pid"
	rc=$?
	untrack_pid "$pid"
	[ "$rc" -eq 0 ] || tail -n 5 "$T_TMP/chromium.log" | sed 's/^/# chromium: /'
	return "$rc"
}

t0=$EPOCHREALTIME
browse "$T_TMP/dom.html" --dump-dom "$S/" || tap_fail "chromium --dump-dom" "exit $?"
echo "# chromium --dump-dom: $(ms_since "$t0") ms"
dom=$(cat "$T_TMP/dom.html")
row() { grep -m1 "<tr data-site=\"$1\"" "$T_TMP/dom.html"; }
tap_contains "Chromium rendered the page" "<title>kakikomi status</title>" "$dom"
tap_check "one row per configured site, in config order" "tokyo osaka nagoya" \
    "$(grep -o '<tr data-site="[^"]*"' "$T_TMP/dom.html" | cut -d'"' -f2 | tr '\n' ' ' | sed 's/ $//')"

r=$(row tokyo)
tap_contains "tokyo shows alive" 'data-state="alive"><td><b>tokyo</b><br><span class="alive">alive</span>' "$r"
[[ "$r" =~ \<span\ data-signal=\"metrics\"\>metrics:\ ([0-9]+)s\ ago\</span\> ]] &&
    [ "${BASH_REMATCH[1]}" -le 10 ] && tap_ok "tokyo's last metrics write ${BASH_REMATCH[1]}s ago" ||
    tap_fail "tokyo's last metrics write is recent" "[$r]"
[[ "$r" =~ \<span\ data-signal=\"logs\"\>logs:\ ([0-9]+)s\ ago\</span\> ]] &&
    [ "${BASH_REMATCH[1]}" -le 10 ] && tap_ok "tokyo's last log push ${BASH_REMATCH[1]}s ago" ||
    tap_fail "tokyo's last log push is recent" "[$r]"
tap_contains "tokyo has no refusal" '<td data-last-refusal="">none</td>' "$r"

r=$(row osaka)
tap_contains "osaka (never wrote) shows silent" \
    'data-state="silent"><td><b>osaka</b><br><span class="silent">silent</span>' "$r"
tap_contains "osaka's last write: never" '<span data-signal="metrics">metrics: never</span>' "$r"

r=$(row nagoya)
tap_contains "nagoya (every write refused) shows silent" \
    'data-state="silent"><td><b>nagoya</b><br><span class="silent">silent</span>' "$r"
# The reason as the browser shows it: the answer's text, HTML-escaped by the
# page and unescaped again by the parser, then re-escaped by the serializer.
esc_reason=$(printf %s "$reason" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g')
tap_contains "nagoya's last refusal shows 403 and its reason" \
    "<td data-last-refusal=\"\">403 " "$r"
tap_contains "... the reason kakikomi answered" "<span class=\"reason\">$esc_reason</span>" "$r"
tap_contains "the upstreams are listed by role" "<td>metrics upstream 1</td><td>204</td>" "$dom"
tap_check "nothing in the rendered page runs or loads anything" 0 \
    "$(grep -ciE '<script|<img|<link|src=' "$T_TMP/dom.html")"

# A phone-sized screenshot, kept for the README.
shot=$T_BUILD/status-page.png
rm -f "$shot"
t0=$EPOCHREALTIME
browse "$T_TMP/shot.out" --hide-scrollbars --window-size=420,900 --screenshot="$shot" "$S/" ||
    tap_fail "chromium --screenshot" "exit $?"
echo "# chromium --screenshot: $(ms_since "$t0") ms"
# PNG signature, then IHDR width and height (big-endian) at bytes 16..23.
tap_check "screenshot is a 420x900 PNG" "89504e47 420 900" \
    "$(od -An -N4 -tx1 "$shot" 2>/dev/null | tr -d ' \n') $(od -An -j16 -N4 -tu1 "$shot" 2>/dev/null |
    awk '{print $1*16777216 + $2*65536 + $3*256 + $4}') $(od -An -j20 -N4 -tu1 "$shot" 2>/dev/null |
    awk '{print $1*16777216 + $2*65536 + $3*256 + $4}')"
echo "# screenshot: $shot ($(stat -c %s "$shot" 2>/dev/null) bytes)"
n=$(ls "$T_TMP/prom" | grep -c '\.body$'); m=$(ls "$T_TMP/loki" | grep -c '\.body$')
[ "$n" -gt 0 ] && [ "$m" -gt 0 ] && tap_ok "the upstreams received $n writes and $m pushes" ||
    tap_fail "writes reached the upstreams" "metrics $n, logs $m"
tap_done
