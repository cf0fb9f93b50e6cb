#!/usr/bin/env bash
# Tests of the Cloudflare Access stand-in itself (tests/tools/cfaccess.c):
# mint and its edits, the key set shape, and `serve` as Access edge +
# cloudflared in front of `cfaccess echo`: 403 without credentials and
# nothing forwarded, JWT injection, basic auth, status relay, 32 MiB bodies,
# concurrency, key rotation, 502 when the upstream is gone, clean SIGTERM.
# Listeners bind port 0 and the ports are read from the ready lines.
. "$(dirname "$0")/../lib.sh"

CFA=$T_BUILD/tools/cfaccess
KEYS=$T_DATA/access
CUR=$KEYS/current-private.pem
PREV=$KEYS/previous-private.pem
CUR_KID=$(cat "$KEYS/current.kid")
PREV_KID=$(cat "$KEYS/previous.kid")
ID=88bf3b6d86161464f6509f7219099e57.access
SECRET=0123456789abcdef-secret
AUD=4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2
TEAM=example.cloudflareaccess.com

[ -x "$CFA" ] || tap_bail "$CFA not built (make tools)"
command -v jq >/dev/null || tap_bail "jq not installed (deps/test.txt)"

seg() { printf %s "$1" | cut -d. -f"$2"; }
header_of() { b64url_json "$(seg "$1" 1)"; }
payload_of() { b64url_json "$(seg "$1" 2)"; }

# verify_rs256 TOKEN PUBLIC.pem: the RS256 signature over header.payload.
verify_rs256() {
	printf %s "${1%.*}" > "$T_TMP/msg"
	b64url_json "${1##*.}" > "$T_TMP/sig"
	openssl dgst -sha256 -verify "$2" -signature "$T_TMP/sig" "$T_TMP/msg" \
	    >/dev/null 2>&1
}

# wait_line FILE REGEX PID: until the process logs a line matching REGEX.
wait_line() {
	local deadline=$((SECONDS + 20))
	while [ "$SECONDS" -lt "$deadline" ]; do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# field FILE NAME: NAME=value from the ready line.
field() { grep -m1 'ready' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# ---------------------------------------------------------------- mint

tok=$("$CFA" mint --key "$CUR" --kid "$CUR_KID")
tap_check "mint: header is Cloudflare's" \
    "{\"alg\":\"RS256\",\"kid\":\"$CUR_KID\",\"typ\":\"JWT\"}" "$(header_of "$tok")"
p=$(payload_of "$tok")
tap_check "mint: service-token claims in Cloudflare's order" \
    "type aud exp iss common_name iat sub" "$(jq -r 'keys_unsorted | join(" ")' <<<"$p")"
tap_check "mint: claim values" \
    "app [\"$AUD\"] https://$TEAM $ID  3600" \
    "$(jq -r '[.type, (.aud|tojson), .iss, .common_name, .sub, (.exp-.iat)] | join(" ")' <<<"$p")"
if verify_rs256 "$tok" "$KEYS/current-public.pem"; then
	tap_ok "mint: RS256 signature verifies with openssl"
else
	tap_fail "mint: RS256 signature verifies with openssl" "openssl dgst -verify failed"
fi
if verify_rs256 "$tok" "$KEYS/previous-public.pem"; then
	tap_fail "mint: signature fails with the other key" "verified with previous key"
else
	tap_ok "mint: signature fails with the other key"
fi

tap_check "mint: kid defaults to the .kid file next to the key" \
    "$CUR_KID" "$(header_of "$("$CFA" mint --key "$CUR")" | jq -r .kid)"
cp "$CUR" "$T_TMP/nokidfile.pem"
tap_check "mint: kid without a .kid file is SHA-256 of the DER public key" \
    "$CUR_KID" "$(header_of "$("$CFA" mint --key "$T_TMP/nokidfile.pem")" | jq -r .kid)"

tok=$("$CFA" mint --key "$CUR" --team t.example --aud A1 --common-name x.access \
    --set 'aud="x"' --set exp=1 --set iat=0 --set 'extra={"a":[1,2]}' --unset type \
    --header-set 'alg="HS256"' --header-unset typ --header-set 'kid="k1"')
tap_check "mint: --set/--unset edit the payload" \
    '{"aud":"x","exp":1,"iss":"https://t.example","common_name":"x.access","iat":0,"sub":"","extra":{"a":[1,2]}}' \
    "$(payload_of "$tok")"
tap_check "mint: --header-set/--header-unset edit the header" \
    '{"alg":"HS256","kid":"k1"}' "$(header_of "$tok")"
if verify_rs256 "$tok" "$KEYS/current-public.pem"; then
	tap_ok "mint: --header-set alg keeps the real RS256 signature"
else
	tap_fail "mint: --header-set alg keeps the real RS256 signature" "no RS256 signature"
fi

p=$(payload_of "$("$CFA" mint --key "$CUR" --email alice@example.com --ttl 60)")
tap_check "mint --email: person claims" \
    "aud email exp iat nbf iss type identity_nonce sub country" \
    "$(jq -r 'keys_unsorted | join(" ")' <<<"$p")"
tap_check "mint --email: values" "alice@example.com 60 true true" \
    "$(jq -r '[.email, (.exp-.iat), (.nbf==.iat), (.sub|test("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"))] | join(" ")' <<<"$p")"

# HS256 keyed with the public key PEM: the algorithm-confusion forgery.
tok=$("$CFA" mint --key "$CUR" --alg HS256)
want=$(printf %s "${tok%.*}" | openssl dgst -sha256 -binary -mac HMAC \
    -macopt "hexkey:$(od -An -v -tx1 "$KEYS/current-public.pem" | tr -d ' \n')" |
    base64 -w0 | tr '+/' '-_' | tr -d '=')
tap_check "mint --alg HS256: HMAC keyed with the public key PEM" "$want" "${tok##*.}"
tap_check "mint --alg HS256: header says HS256" HS256 "$(header_of "$tok" | jq -r .alg)"
tok=$("$CFA" mint --key "$CUR" --alg none)
tap_check "mint --alg none: empty signature" "none|" \
    "$(header_of "$tok" | jq -r .alg)|${tok##*.}"
tok=$("$CFA" mint --key "$CUR" --alg RS384)
printf %s "${tok%.*}" > "$T_TMP/msg"; b64url_json "${tok##*.}" > "$T_TMP/sig"
if openssl dgst -sha384 -verify "$KEYS/current-public.pem" -signature "$T_TMP/sig" \
    "$T_TMP/msg" >/dev/null 2>&1; then
	tap_ok "mint --alg RS384: RS384 signature"
else
	tap_fail "mint --alg RS384: RS384 signature" "openssl -sha384 -verify failed"
fi

for bad in "--set aud=x" "--set =1" "--alg ES256" "--ttl abc" "--bogus"; do
	# shellcheck disable=SC2086
	if out=$("$CFA" mint --key "$CUR" $bad 2>/dev/null); then
		tap_fail "mint rejects $bad" "exit 0, printed [$out]"
	else
		tap_ok "mint rejects $bad"
	fi
done

# ---------------------------------------------------------------- jwks

"$CFA" jwks --key "$CUR" --key "$PREV" > "$T_TMP/jwks.json"
tap_check "jwks: top-level shape" "keys public_cert public_certs" \
    "$(jq -r 'keys_unsorted | join(" ")' "$T_TMP/jwks.json")"
tap_check "jwks: keys in order, Cloudflare's fields" \
    "$CUR_KID kid kty alg use e n RSA RS256 sig AQAB|$PREV_KID kid kty alg use e n RSA RS256 sig AQAB" \
    "$(jq -r '[.keys[] | [.kid, (keys_unsorted|join(" ")), .kty, .alg, .use, .e] | join(" ")] | join("|")' "$T_TMP/jwks.json")"
tap_check "jwks: n equals the recorded key set's" \
    "$(jq -r --arg k "$CUR_KID" '.keys[] | select(.kid==$k) | .n' "$KEYS/certs.json")" \
    "$(jq -r '.keys[0].n' "$T_TMP/jwks.json")"
tap_check "jwks: public_cert is the newest, public_certs all" \
    "$CUR_KID|$CUR_KID $PREV_KID" \
    "$(jq -r '.public_cert.kid + "|" + ([.public_certs[].kid] | join(" "))' "$T_TMP/jwks.json")"
jq -r '.public_certs[1].cert' "$T_TMP/jwks.json" > "$T_TMP/prev-cert.pem"
tap_check "jwks: cert holds the key of its kid" \
    "$(openssl pkey -pubin -in "$KEYS/previous-public.pem" -outform DER | sha256sum)" \
    "$(openssl x509 -in "$T_TMP/prev-cert.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum)"

# ---------------------------------------------------------------- serve

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=cfaccess-test-ca \
    -keyout "$T_TMP/ca.key" -out "$T_TMP/ca.pem" >/dev/null 2>&1 &&
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$T_TMP/tls.key" -out "$T_TMP/tls.csr" >/dev/null 2>&1 &&
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$T_TMP/san.ext" &&
openssl x509 -req -in "$T_TMP/tls.csr" -CA "$T_TMP/ca.pem" -CAkey "$T_TMP/ca.key" \
    -CAcreateserial -days 1 -extfile "$T_TMP/san.ext" -out "$T_TMP/tls.pem" >/dev/null 2>&1 ||
    tap_bail "cannot make the test CA"
printf '# client_id client_secret\n\n%s %s\nother.access other-secret\n' "$ID" "$SECRET" \
    > "$T_TMP/tokens"

"$CFA" echo --listen 127.0.0.1:0 2> "$T_TMP/echo.log" &
ECHO_PID=$!
track_pid "$ECHO_PID"
wait_line "$T_TMP/echo.log" '^cfaccess echo ready' "$ECHO_PID" || tap_bail "echo not ready"
ECHO=$(field "$T_TMP/echo.log" listen)

"$CFA" serve --tls-listen 127.0.0.1:0 --tls-cert "$T_TMP/tls.pem" --tls-key "$T_TMP/tls.key" \
    --listen 127.0.0.1:0 --upstream "http://$ECHO" --tokens "$T_TMP/tokens" \
    --key "$CUR" --key "$PREV" --team "$TEAM" --aud "$AUD" \
    --admin-listen 127.0.0.1:0 2> "$T_TMP/serve.log" &
SERVE_PID=$!
track_pid "$SERVE_PID"
wait_line "$T_TMP/serve.log" '^cfaccess ready' "$SERVE_PID" || tap_bail "serve not ready"
TLS=$(field "$T_TMP/serve.log" tls_listen)
EDGE=$(field "$T_TMP/serve.log" listen)
ADMIN=$(field "$T_TMP/serve.log" admin_listen)
CERTS=https://$TLS/cdn-cgi/access/certs
echo "# echo=$ECHO tls=$TLS edge=$EDGE admin=$ADMIN"

curl -s --max-time 10 --cacert "$T_TMP/ca.pem" "$CERTS" > "$T_TMP/served.json"
tap_check "serve: key set over HTTPS, verified against the test CA" \
    "$CUR_KID $PREV_KID|$CUR_KID" \
    "$(jq -r '([.keys[].kid] | join(" ")) + "|" + .public_cert.kid' "$T_TMP/served.json" 2>&1)"
tap_check "serve: key set has the same n and e as jwks" \
    "$(jq -c '[.keys[] | [.kid, .n, .e]]' "$T_TMP/jwks.json")" \
    "$(jq -c '[.keys[] | [.kid, .n, .e]]' "$T_TMP/served.json")"
tap_check "serve: other paths on the TLS listener are 404" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$T_TMP/ca.pem" "https://$TLS/")"

echoed() { grep -c 'method=' "$T_TMP/echo.log"; }
before=$(echoed)
tap_check "edge: no credentials -> 403" 403 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -d x "http://$EDGE/api/v1/write")"
tap_check "edge: wrong secret -> 403" 403 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "CF-Access-Client-Id: $ID" \
    -H "CF-Access-Client-Secret: ${SECRET}x" "http://$EDGE/")"
tap_check "edge: wrong secret of the same length -> 403" 403 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "CF-Access-Client-Id: $ID" \
    -H "CF-Access-Client-Secret: ${SECRET%?}X" "http://$EDGE/")"
tap_check "edge: id without secret -> 403" 403 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "CF-Access-Client-Id: $ID" "http://$EDGE/")"
tap_check "edge: secret of another client -> 403" 403 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "CF-Access-Client-Id: $ID" \
    -H "CF-Access-Client-Secret: other-secret" "http://$EDGE/")"
tap_check "edge: wrong basic auth -> 403" 403 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -u "$ID:nope" "http://$EDGE/")"
tap_check "edge: garbage Authorization -> 403" 403 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Authorization: Basic %%%' "http://$EDGE/")"
tap_check "edge: nothing refused reached the upstream" "$before" "$(echoed)"

out=$(curl -s --max-time 10 -w '\nstatus=%{http_code}' -H "CF-Access-Client-Id: $ID" \
    -H "CF-Access-Client-Secret: $SECRET" -H 'Authorization: Bearer x' \
    -H 'Content-Type: application/x-protobuf' --data-binary hello \
    "http://$EDGE/api/v1/write?a=b")
tap_contains "edge: headers -> 200 from upstream" "status=200" "$out"
tap_contains "edge: method, path and query forwarded" "POST /api/v1/write?a=b" "$out"
tap_contains "edge: body forwarded" \
    "body-sha256: $(printf hello | sha256sum | cut -d' ' -f1)" "$out"
tap_contains "edge: Content-Type forwarded" "Content-Type: application/x-protobuf" "$out"
tap_contains "edge: CF-Access-Client-Id kept" "CF-Access-Client-Id: $ID" "$out"
tap_check "edge: Authorization removed" 0 "$(grep -ci '^Authorization:' <<<"$out")"
tok=$(sed -n 's/^Cf-Access-Jwt-Assertion: //p' <<<"$out")
tap_check "edge: JWT header names the first key" \
    "{\"alg\":\"RS256\",\"kid\":\"$CUR_KID\",\"typ\":\"JWT\"}" "$(header_of "$tok")"
tap_check "edge: JWT claims" "app $ID https://$TEAM [\"$AUD\"] 3600" \
    "$(payload_of "$tok" | jq -r '[.type, .common_name, .iss, (.aud|tojson), (.exp-.iat)] | join(" ")')"
if verify_rs256 "$tok" "$KEYS/current-public.pem"; then
	tap_ok "edge: JWT verifies with the current key"
else
	tap_fail "edge: JWT verifies with the current key" "openssl dgst -verify failed"
fi
tap_check "edge: log has no secret and no token" 0 \
    "$(grep -cF -e "$SECRET" -e "$(seg "$tok" 3)" "$T_TMP/serve.log")"

out=$(curl -s --max-time 10 -w '\nstatus=%{http_code}' -u "$ID:$SECRET" "http://$EDGE/basic")
tap_contains "edge: basic auth -> 200" "status=200" "$out"
tap_check "edge: basic auth: Authorization removed" 0 "$(grep -ci '^Authorization:' <<<"$out")"
tok=$(sed -n 's/^Cf-Access-Jwt-Assertion: //p' <<<"$out")
tap_check "edge: basic auth: JWT common_name" "$ID" "$(payload_of "$tok" | jq -r .common_name)"

hdrs=$(curl -s --max-time 10 -o /dev/null -D - -H "CF-Access-Client-Id: $ID" \
    -H "CF-Access-Client-Secret: $SECRET" -H 'X-Echo-Status: 503' "http://$EDGE/x" | tr -d '\r')
tap_contains "edge: upstream status relayed" "HTTP/1.1 503" "$hdrs"
tap_contains "edge: upstream Retry-After relayed" "Retry-After: 7" "$hdrs"

head -c $((32 * 1024 * 1024)) /dev/urandom > "$T_TMP/big"
out=$(curl -s --max-time 60 -H "CF-Access-Client-Id: $ID" -H "CF-Access-Client-Secret: $SECRET" \
    --data-binary @"$T_TMP/big" "http://$EDGE/big")
tap_check "edge: 32 MiB body forwarded intact" \
    "33554432 $(sha256sum < "$T_TMP/big" | cut -d' ' -f1)" \
    "$(sed -n 's/^body-length: //p' <<<"$out") $(sed -n 's/^body-sha256: //p' <<<"$out")"
rm -f "$T_TMP/big"

for i in $(seq 24); do
	curl -s --max-time 30 -o /dev/null -w '%{http_code}\n' -H "CF-Access-Client-Id: $ID" \
	    -H "CF-Access-Client-Secret: $SECRET" -d "n=$i" "http://$EDGE/c/$i" \
	    > "$T_TMP/conc.$i" &
done
wait_all=$((SECONDS + 40))
while [ "$(cat "$T_TMP"/conc.* 2>/dev/null | wc -l)" -lt 24 ] && [ "$SECONDS" -lt "$wait_all" ]; do
	sleep 0.05
done
tap_check "edge: 24 concurrent requests all 200" 24 "$(cat "$T_TMP"/conc.* | grep -c '^200$')"

# ---------------------------------------------------------------- rotation

NEW_KID=$(curl -s --max-time 30 -X POST "http://$ADMIN/rotate" | head -n 1)
tap_check "admin: rotate publishes a new kid first" "3 $NEW_KID $CUR_KID $PREV_KID" \
    "$(curl -s --max-time 10 "http://$ADMIN/kids" | wc -l) $(curl -s --max-time 10 "http://$ADMIN/kids" | tr '\n' ' ' | sed 's/ $//')"
tap_check "admin: new kid is 64 hex" 1 "$(grep -cE '^[0-9a-f]{64}$' <<<"$NEW_KID")"
curl -s --max-time 10 --cacert "$T_TMP/ca.pem" "$CERTS" > "$T_TMP/rotated.json"
tap_check "serve: key set after rotate" "$NEW_KID|$NEW_KID" \
    "$(jq -r '.keys[0].kid + "|" + .public_cert.kid' "$T_TMP/rotated.json")"
jq -r '.public_cert.cert' "$T_TMP/rotated.json" | openssl x509 -noout -pubkey > "$T_TMP/new-pub.pem"
out=$(curl -s --max-time 10 -H "CF-Access-Client-Id: $ID" -H "CF-Access-Client-Secret: $SECRET" \
    "http://$EDGE/after-rotate")
tok=$(sed -n 's/^Cf-Access-Jwt-Assertion: //p' <<<"$out")
tap_check "edge: after rotate the JWT names the new kid" "$NEW_KID" "$(header_of "$tok" | jq -r .kid)"
if verify_rs256 "$tok" "$T_TMP/new-pub.pem"; then
	tap_ok "edge: after rotate the JWT verifies with the published new key"
else
	tap_fail "edge: after rotate the JWT verifies with the published new key" "openssl dgst -verify failed"
fi
curl -s --max-time 10 -X POST -o /dev/null "http://$ADMIN/retire"
tap_check "admin: retire leaves only the newest" "$NEW_KID" "$(curl -s --max-time 10 "http://$ADMIN/kids")"
tap_check "serve: key set after retire" "$NEW_KID" \
    "$(curl -s --max-time 10 --cacert "$T_TMP/ca.pem" "$CERTS" | jq -r '[.keys[].kid, .public_certs[].kid] | unique | join(" ")')"
tap_check "admin: unknown route 404" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$ADMIN/rotate")"

# ---------------------------------------------------------------- failure, exit

kill "$ECHO_PID"
if wait_gone "$ECHO_PID" 10; then
	wait "$ECHO_PID"
	tap_check "echo: exits 0 on SIGTERM" 0 "$?"
	untrack_pid "$ECHO_PID"
else
	tap_fail "echo: exits 0 on SIGTERM" "still running 10 s after SIGTERM"
fi
tap_check "edge: upstream gone -> 502" 502 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "CF-Access-Client-Id: $ID" \
    -H "CF-Access-Client-Secret: $SECRET" "http://$EDGE/gone")"
kill "$SERVE_PID"
if wait_gone "$SERVE_PID" 10; then
	wait "$SERVE_PID"
	tap_check "serve: exits 0 on SIGTERM" 0 "$?"
	untrack_pid "$SERVE_PID"
else
	tap_fail "serve: exits 0 on SIGTERM" "still running 10 s after SIGTERM"
fi
tap_check "serve: one log line per request" \
    "$(grep -c 'method=' "$T_TMP/serve.log")" \
    "$(grep -cE '^cfaccess: (edge|certs|admin) method=[A-Z]+ uri="[^"]*" status=[0-9]{3}' "$T_TMP/serve.log")"

tap_done
