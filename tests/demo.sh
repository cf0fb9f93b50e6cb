#!/usr/bin/env bash
# The whole chain on this machine, no Cloudflare account needed:
#
#   site Prometheus (Debian's; scrapes itself, external label provider="tokyo",
#   remote_write with the service token as basic auth)
#     -> cfaccess (stand-in for Cloudflare Access + cloudflared: checks the
#        service token, adds a signed Cf-Access-Jwt-Assertion; serves the key
#        set over HTTPS with a local CA)
#     -> kakikomi (verifies the JWT against that key set, maps the token to
#        site tokyo, enforces provider, forwards)
#     -> central Prometheus (remote write receiver)
#
# Then it shows what arrived, a forged write being rewritten, a Loki push
# getting the site's provider (a recording upstream, tests/tools/sink, stands
# in for Loki), requests that did not pass Access being refused, and the
# status page's address.  DEMO_KEEP=1 keeps everything
# running until Ctrl-C.
. "$(dirname "$0")/lib.sh"

say() { printf '\n== %s\n' "$*"; }
die() {
	echo "demo: $*" >&2
	for f in "$T_TMP"/*.log; do echo "--- $f"; tail -n 15 "$f"; done >&2
	exit 1
}

CENTRAL=$(free_port); SITE=$(free_port); KK=$(free_port); KM=$(free_port); LOKI=$(free_port)

say "central Prometheus on 127.0.0.1:$CENTRAL"
start_prometheus central "$CENTRAL" || die "central Prometheus did not start"

say "Loki stand-in (a recording upstream) on 127.0.0.1:$LOKI"
start_sink loki "$LOKI" || die "the Loki stand-in did not start"

say "Access stand-in (key set over HTTPS with a local CA, edge for the site)"
start_access_edge "$KK" || die "cfaccess did not start"
echo "key set: https://$CFA_TLS/cdn-cgi/access/certs   edge: http://$CFA_EDGE"

say "kakikomi on 127.0.0.1:$KK (metrics on 127.0.0.1:$KM)"
write_config "$T_TMP/kk" "$KK" "$KM" "http://127.0.0.1:$CENTRAL/api/v1/write" \
    "http://127.0.0.1:$LOKI/loki/api/v1/push" "" \
    "$(printf 'limits: { max_body_bytes: 16MiB }')"
use_edge_keys "$T_TMP/kk/kakikomi.yml"
sed -i "s/log_level: debug/log_level: info/" "$T_TMP/kk/kakikomi.yml"
"$T_BUILD/kakikomi" --check-config -c "$T_TMP/kk/kakikomi.yml" || die "config check failed"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || die "kakikomi did not become ready"

say "site Prometheus on 127.0.0.1:$SITE, remote writing as site tokyo"
mkdir -p "$T_TMP/site"
site_prometheus_config "$T_TMP/site/prometheus.yml" "$SITE"
start_prometheus site "$SITE" "$T_TMP/site/prometheus.yml" || die "site Prometheus did not start"

say "waiting for the site's samples to arrive centrally"
deadline=$((SECONDS + 60)); n=0
while [ "$SECONDS" -lt "$deadline" ]; do
	n=$(prom_query "$CENTRAL" 'count({provider="tokyo"})' | sed -n 's/.*"value":\[[0-9.]*,"\([0-9]*\)".*/\1/p')
	[ -n "$n" ] && [ "$n" -gt 0 ] && break
	sleep 0.5
done
[ -n "$n" ] && [ "$n" -gt 0 ] || die "nothing arrived in 60 s"
echo "central Prometheus holds $n series with provider=\"tokyo\", e.g.:"
prom_query "$CENTRAL" 'up{provider="tokyo"}' | grep -o '"metric":{[^}]*}'

say "a forged write claiming provider=\"osaka\" through the same token is rewritten to tokyo"
"$T_BUILD/tools/rwgen" --name demo_forged --label provider=osaka --value 7 > "$T_TMP/forged.body"
curl -s -o /dev/null -w 'answer: %{http_code}\n' -u "$T_TOKEN_CN:$T_SECRET" \
    -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy' \
    --data-binary "@$T_TMP/forged.body" "http://$CFA_EDGE/api/v1/write"
prom_query "$CENTRAL" 'demo_forged' | grep -o '"metric":{[^}]*}'

say "a Loki push through the same token: its stream gets provider=\"tokyo\""
curl -s -o /dev/null -w 'answer: %{http_code}\n' -u "$T_TOKEN_CN:$T_SECRET" \
    -H 'Content-Type: application/json' --data-binary \
    "{\"streams\":[{\"stream\":{\"job\":\"demo\"},\"values\":[[\"$(date +%s%N)\",\"hello from tokyo\"]]}]}" \
    "http://$CFA_EDGE/loki/api/v1/push"
pushed=$(ls "$T_TMP/loki" | grep -c '\.body$')
[ "$pushed" -gt 0 ] || die "nothing reached the Loki stand-in"
echo "the Loki stand-in received:"
jq -c '.streams[] | {stream, values}' "$T_TMP/loki/$pushed.body" || die "the Loki stand-in holds no JSON push"

say "requests that did not pass Access are refused"
curl -s -w '  (%{http_code}) straight to kakikomi, no token\n' -o "$T_TMP/r1" \
    --data-binary "@$T_TMP/forged.body" "http://127.0.0.1:$KK/api/v1/write"; cat "$T_TMP/r1"
curl -s -w '  (%{http_code}) wrong service token secret at the edge\n' -o "$T_TMP/r2" \
    -u "$T_TOKEN_CN:wrong" --data-binary "@$T_TMP/forged.body" "http://$CFA_EDGE/api/v1/write"; cat "$T_TMP/r2"

say "kakikomi's log (last lines) and metrics"
tail -n 5 "$T_TMP/kakikomi.log"
curl -s "http://127.0.0.1:$KM/metrics" | grep -E '^kakikomi_(requests_total|series_total|rewritten_series_total|jwks_keys)'

say "status page: http://127.0.0.1:$KM/   (JSON: http://127.0.0.1:$KM/api/v1/status)"
curl -s "http://127.0.0.1:$KM/api/v1/status" |
    jq -r '.window_minutes as $w | .sites[] |
        "\(.name): \(.state), \(.writes.recent) writes in the last \($w) minutes"' ||
    die "the status page did not answer"

if [ -n "${DEMO_KEEP:-}" ]; then
	say "running; central Prometheus at http://127.0.0.1:$CENTRAL, status page at http://127.0.0.1:$KM/ — Ctrl-C stops everything"
	wait "$KK_PID"
fi
say "demo OK"
