#!/usr/bin/env bash
# Reload: SIGHUP and POST /-/reload re-read both files; a broken file is
# logged with file:line, counted, and the running configuration stays; a
# good one takes effect for the next request.  POST /-/reload works only
# with --web.enable-lifecycle (like Prometheus), and never for a request a
# browser could have sent cross-site.  Also --check-config's output.
. "$(dirname "$0")/../lib.sh"

UP=$(free_port); KK=$(free_port); KM=$(free_port)
start_sink up "$UP" || tap_bail "sink"
write_config "$T_TMP/kk" "$KK" "$KM" "http://127.0.0.1:$UP/api/v1/write" ""
# reload_post [curl args...]: POST /-/reload, prints "BODY STATUS".
reload_post() {
	curl -s -w ' %{http_code}' -X POST "$@" "http://127.0.0.1:$KM/-/reload" | tr -d '\n'
}

# Without the flag: 403 with the way to reload, and nothing is re-read.
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"
tap_check "without --web.enable-lifecycle POST /-/reload is 403" \
    "reload over HTTP is disabled: send SIGHUP, or start kakikomi with --web.enable-lifecycle 403" \
    "$(reload_post)"
tap_check "a refused reload is not a reload" "" \
    "$(curl -s "http://127.0.0.1:$KM/metrics" | grep '^kakikomi_config_reload_total')"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"

"$T_BUILD/kakikomi" --web.enable-lifecycle -c "$T_TMP/kk/kakikomi.yml" >>"$T_TMP/kakikomi.log" 2>&1 &
KK_PID=$!
track_pid "$KK_PID"
wait_http "http://127.0.0.1:$KM/readyz" 30 || tap_bail "kakikomi --web.enable-lifecycle did not start"

# With it, still no browser request: a cross-site page can POST to 127.0.0.1.
tap_check "reload with an Origin header is 403" \
    "reload refused: a request with an Origin header may come from a browser page 403" \
    "$(reload_post -H 'Origin: https://evil.example')"
tap_check "reload with Sec-Fetch-Site: cross-site is 403" \
    "reload refused: Sec-Fetch-Site says the request comes from another site 403" \
    "$(reload_post -H 'Sec-Fetch-Site: cross-site')"
tap_check "reload with Sec-Fetch-Site: same-site is 403" 403 \
    "$(reload_post -H 'Sec-Fetch-Site: same-site' | awk '{print $NF}')"
tap_check "GET /-/reload is 405 with Allow: POST" "405 POST" \
    "$(curl -s -o /dev/null -D - -w '%{http_code}' "http://127.0.0.1:$KM/-/reload" |
    awk -F': ' 'tolower($1) == "allow" { a = $2 } /^[0-9]+$/ { s = $1 } END { sub(/\r/, "", a); print s, a }')"
tap_check "reload with a body is 413" 413 "$(reload_post --data x | awk '{print $NF}')"
tap_check "reload with Sec-Fetch-Site: none (typed by a user) is applied" "configuration reloaded 200" \
    "$(reload_post -H 'Sec-Fetch-Site: none')"
W=http://127.0.0.1:$KK/api/v1/write
"$T_BUILD/tools/rwgen" --label provider=tokyo > "$T_TMP/body"
OSAKA=$("$T_BUILD/tools/cfaccess" mint --key "$T_DATA/access/current-private.pem" --common-name osaka.access)
metric() { curl -s "http://127.0.0.1:$KM/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

tap_check "good reload counted" 1 "$(metric 'kakikomi_config_reload_total{result="ok"}')"
tap_check "osaka unknown before the reload" 403 "$(rw_post "$W" "$T_TMP/body" "$OSAKA" | cut -d' ' -f1)"

# A broken sites file: SIGHUP keeps the old configuration.
cp "$T_TMP/kk/sites.yml" "$T_TMP/sites.good"
printf '  osaka:\n    tokens: [ osaka.access ]\n    provider: [ osaka ]\n    on_mismatch: sometimes\n' >> "$T_TMP/kk/sites.yml"
kill -HUP "$KK_PID"
deadline=$((SECONDS + 10))
until [ "$(metric 'kakikomi_config_reload_total{result="error"}')" = 1 ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
tap_check "broken reload counted" 1 "$(metric 'kakikomi_config_reload_total{result="error"}')"
tap_contains "broken reload logged with file:line" "sites.yml:13: on_mismatch" "$(cat "$T_TMP/kakikomi.log")"
tap_check "old configuration still serves tokyo" "204 " "$(rw_post "$W" "$T_TMP/body" "$T_TOKEN")"
tap_check "osaka still unknown" 403 "$(rw_post "$W" "$T_TMP/body" "$OSAKA" | cut -d' ' -f1)"
res=$(curl -s -w ' %{http_code}' -X POST "http://127.0.0.1:$KM/-/reload")
tap_contains "POST /-/reload reports the error" "sites.yml:13: on_mismatch" "$res"
tap_check "POST /-/reload answers 500 on a broken file" 500 "${res##* }"

# Fixed: POST /-/reload applies it.
sed -i 's/on_mismatch: sometimes/on_mismatch: reject/' "$T_TMP/kk/sites.yml"
"$T_BUILD/tools/rwgen" --label provider=osaka > "$T_TMP/osaka.body"
tap_check "POST /-/reload applies a good file" "configuration reloaded 200" \
    "$(curl -s -w ' %{http_code}' -X POST "http://127.0.0.1:$KM/-/reload" | tr -d '\n')"
tap_check "the new site writes at once" "204 " "$(rw_post "$W" "$T_TMP/osaka.body" "$OSAKA")"
tap_check "good reload counted" 2 "$(metric 'kakikomi_config_reload_total{result="ok"}')"

# Back to the first file by SIGHUP: osaka is gone again.
cp "$T_TMP/sites.good" "$T_TMP/kk/sites.yml"
kill -HUP "$KK_PID"
deadline=$((SECONDS + 10))
until [ "$(metric 'kakikomi_config_reload_total{result="ok"}')" = 3 ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
tap_check "SIGHUP applies a good file" 403 "$(rw_post "$W" "$T_TMP/osaka.body" "$OSAKA" | cut -d' ' -f1)"

# --check-config: every error as file:line: reason, exit 1; OK and exit 0.
printf 'listen: 127.0.0.1:1\nacess: {}\n' > "$T_TMP/bad.yml"
out=$("$T_BUILD/kakikomi" --check-config -c "$T_TMP/bad.yml" 2>&1); rc=$?
tap_check "--check-config exits 1 on errors" 1 "$rc"
tap_contains "--check-config names the unknown key" "$T_TMP/bad.yml:2: unknown key 'acess'" "$out"
out=$("$T_BUILD/kakikomi" --check-config -c "$T_TMP/kk/kakikomi.yml" 2>&1); rc=$?
tap_check "--check-config exits 0 when valid" 0 "$rc"
tap_contains "--check-config says OK" "configuration OK" "$out"
tap_check "--version" "kakikomi 0.1.0" "$("$T_BUILD/kakikomi" --version)"
tap_done
