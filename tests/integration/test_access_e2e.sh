#!/usr/bin/env bash
# Cloudflare Access end to end: kakikomi fetches the key set over real HTTPS
# from the Access stand-in (local CA), every forged or misdirected token is
# refused with its reason and nothing reaches the upstream, key rotation is
# followed without losing writes, and the key-set cache carries a restart
# through a key-server outage.
. "$(dirname "$0")/../lib.sh"

CFA=$T_BUILD/tools/cfaccess
KEY=$T_DATA/access/current-private.pem
SINK=$(free_port); KK=$(free_port); KM=$(free_port); TLS=$(free_port)
start_sink up "$SINK" || tap_bail "sink"
make_test_ca "$T_TMP/tls" || tap_bail "openssl CA"
printf '%s s3cret\n' "$T_TOKEN_CN" > "$T_TMP/tokens"
start_cfaccess "$T_TMP/cfaccess.log" --tls-listen "127.0.0.1:$TLS" \
    --tls-cert "$T_TMP/tls/server.pem" --tls-key "$T_TMP/tls/server.key" \
    --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$KK" --tokens "$T_TMP/tokens" \
    --admin-listen 127.0.0.1:0 --key "$KEY" --team "$T_TEAM" --aud "$T_AUD" ||
    tap_bail "cfaccess did not start"
write_config "$T_TMP/kk" "$KK" "$KM" "http://127.0.0.1:$SINK/api/v1/write" "" "label: provider
sites:
  tokyo:
    tokens: [ \"$T_TOKEN_CN\" ]
    emails: [ alice@example.com ]
    provider: [ tokyo ]
  logsonly:
    tokens: [ \"logs-only.access\" ]
    provider: [ logsonly ]
    signals: [ logs ]"
use_edge_keys "$T_TMP/kk/kakikomi.yml"
sed -i "s|certs_ca_file: .*|&\n  certs_cache: $T_TMP/certs-cache.json|" "$T_TMP/kk/kakikomi.yml"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not become ready"
W=http://127.0.0.1:$KK/api/v1/write
"$T_BUILD/tools/rwgen" --label provider=tokyo > "$T_TMP/body"
mint() { "$CFA" mint --key "$KEY" "$@"; }
received() { find "$T_TMP/up" -name '*.body' | wc -l; }

# Accepted: the testdata tokens (aud as array and as string, a person).
for t in service-token-aud-array service-token-aud-string person; do
	tap_check "accepted: $t" "204 " "$(rw_post "$W" "$T_TMP/body" "$(cat "$T_DATA/access/$t.jwt")")"
done
tap_check "accepted: freshly minted service token" "204 " "$(rw_post "$W" "$T_TMP/body" "$(mint)")"
before=$(received)

# Refused: status and reason; nothing may reach the upstream.
refuse() {	# NAME STATUS REASON TOKEN
	local res
	res=$(rw_post "$W" "$T_TMP/body" "$4")
	tap_check "refused: $1" "$2 $3" "$res"
}
res=$(post "$W" "$T_TMP/body" -H "Content-Type: application/x-protobuf" -H "Content-Encoding: snappy")
tap_check "refused: no header" "401 access: no token" "$res"
res=$(post "$W" "$T_TMP/body" -H "Content-Type: application/x-protobuf" -H "Content-Encoding: snappy" \
    -H "Cf-Access-Jwt-Assertion;")	# curl's way to send a header with an empty value
tap_check "refused: empty header" "403 access: malformed" "$res"
refuse "garbage" 403 "access: malformed" "garbage"
refuse "two segments" 403 "access: malformed" "eyJhbGciOiJSUzI1NiJ9.eyJ9"
refuse "alg none" 403 "access: alg" "$(mint --alg none)"
refuse "alg none claimed over an RS256 signature" 403 "access: alg" "$(mint --header-set 'alg="none"')"
refuse "HS256 keyed with the public key" 403 "access: alg" "$(mint --alg HS256)"
refuse "RS384 with the right key" 403 "access: alg" "$(mint --alg RS384)"
refuse "RS512 with the right key" 403 "access: alg" "$(mint --alg RS512)"
refuse "kid missing" 403 "access: malformed" "$(mint --header-unset kid)"
zero=$(mint --header-set 'kid="0000000000000000000000000000000000000000000000000000000000000000"')
refuse "unknown kid: the key set is refetched, the sender asked to retry" 503 \
    "access: unknown kid; key set refresh started, retry" "$zero"
refuse "unknown kid again (key set fresh): refused" 403 "access: unknown kid" "$zero"
refuse "right kid, other key's signature" 403 "access: bad signature" \
    "$("$CFA" mint --key "$T_DATA/access/previous-private.pem" --kid "$(cat "$T_DATA/access/current.kid")")"
tok=$(mint); IFS=. read -r h p s <<<"$tok"
forged=$(b64url_json "$p" | sed 's/88bf3b6d/88bf3b6e/' | base64 -w0 | tr '+/' '-_' | tr -d '=')
refuse "payload tampered after signing" 403 "access: bad signature" "$h.$forged.$s"
refuse "expired" 403 "access: expired" "$(cat "$T_DATA/access/service-token-expired.jwt")"
refuse "nbf in the future" 403 "access: not yet valid" "$(mint --set "nbf=$(( $(date +%s) + 3600 ))")"
refuse "issuer of another team" 403 "access: issuer" "$(mint --team other.cloudflareaccess.com)"
refuse "audience of another application" 403 "access: audience" "$(mint --aud 0123456789abcdef)"
refuse "no exp" 403 "access: malformed" "$(mint --unset exp)"
refuse "identity not in sites.yml" 403 "identity stranger.access is not listed in any site" \
    "$(mint --common-name stranger.access)"
refuse "signal not allowed" 403 "signal not allowed: site logsonly may not write metrics" \
    "$(mint --common-name logs-only.access)"
refuse "huge header" 403 "access: too large" "$(head -c 9000 /dev/zero | tr '\0' a)"
tap_check "nothing refused reached the upstream" "$before" "$(received)"
tap_check "expired within leeway is accepted" "204 " \
    "$(rw_post "$W" "$T_TMP/body" "$(mint --ttl -10)")"
tap_check "the log never holds a whole token" 0 "$(grep -c "$(mint | cut -c1-60)" "$T_TMP/kakikomi.log")"

# Restart during a key-server outage: the cache file carries it.
kill "$CFA_PID"; wait_gone "$CFA_PID"; untrack_pid "$CFA_PID"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"
[ -s "$T_TMP/certs-cache.json" ] && tap_ok "key set cached to disk" || tap_fail "key set cached to disk" "no cache file"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" && tap_ok "ready from the cache while the key server is down" ||
    tap_fail "ready from the cache while the key server is down" "not ready"
tap_check "cached key set verifies" "204 " "$(rw_post "$W" "$T_TMP/body" "$T_TOKEN")"
start_cfaccess "$T_TMP/cfaccess2.log" --tls-listen "127.0.0.1:$TLS" \
    --tls-cert "$T_TMP/tls/server.pem" --tls-key "$T_TMP/tls/server.key" \
    --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$KK" --tokens "$T_TMP/tokens" \
    --admin-listen 127.0.0.1:0 --key "$KEY" --team "$T_TEAM" --aud "$T_AUD" ||
    tap_bail "cfaccess did not restart"

# Rotation: the stand-in signs with a new key; kakikomi refetches on the
# unknown kid and the sender's retry goes through.  Then the old key is
# retired and tokens of it are refused once kakikomi has refetched (unknown-kid
# refetches are rate-limited to one per 30 s, so this waits up to 45 s).
E=http://$CFA_EDGE/api/v1/write
via_edge() { curl -s -o /dev/null -w '%{http_code}' -H 'CF-Access-Client-Id: '"$T_TOKEN_CN" \
    -H 'CF-Access-Client-Secret: s3cret' -H 'Content-Type: application/x-protobuf' \
    -H 'Content-Encoding: snappy' --data-binary "@$T_TMP/body" "$E"; }
tap_check "through the edge before rotation" 204 "$(via_edge)"
curl -s -X POST "http://$CFA_ADMIN/rotate" > /dev/null
first=$(via_edge)
deadline=$((SECONDS + 10)); code=$first
while [ "$code" != 204 ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; code=$(via_edge); done
tap_check "first write with the new kid asks for a retry" 503 "$first"
tap_check "the retry is accepted after one refetch" 204 "$code"
curl -s -X POST "http://$CFA_ADMIN/retire" > /dev/null
deadline=$((SECONDS + 45)); code=""
while [ "$SECONDS" -lt "$deadline" ]; do
	code=$(rw_post "$W" "$T_TMP/body" "$T_TOKEN" | cut -d' ' -f1)
	[ "$code" = 403 ] && break
	# an unknown kid asks for a refetch (granted once per 30 s)
	rw_post "$W" "$T_TMP/body" "$(mint --header-set 'kid="ff"')" > /dev/null
	sleep 0.5
done
tap_check "token of a retired key refused once it is gone" 403 "$code"
tap_check "through the edge after retirement" 204 "$(via_edge)"
kill "$CFA_PID"; wait_gone "$CFA_PID"; untrack_pid "$CFA_PID"
kill "$KK_PID"; wait_gone "$KK_PID"; untrack_pid "$KK_PID"

# No cache, no key server: 503 and not ready; ready once the server is up.
rm -f "$T_TMP/certs-cache.json"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" 2 && tap_fail "not ready without keys" "ready" || tap_ok "not ready without keys"
res=$(rw_post "$W" "$T_TMP/body" "$T_TOKEN")
tap_check "no key set: 503" 503 "${res%% *}"
tap_check "no key set: Retry-After" 10 "$(resp_header Retry-After)"
start_cfaccess "$T_TMP/cfaccess2.log" --tls-listen "127.0.0.1:$TLS" \
    --tls-cert "$T_TMP/tls/server.pem" --tls-key "$T_TMP/tls/server.key" --key "$KEY" ||
    tap_bail "cfaccess did not restart"
wait_http "http://127.0.0.1:$KM/readyz" 30 && tap_ok "ready once the key server is up" ||
    tap_fail "ready once the key server is up" "still not ready after 30 s"
tap_check "and verifies" "204 " "$(rw_post "$W" "$T_TMP/body" "$T_TOKEN")"
tap_done
