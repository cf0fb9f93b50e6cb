#!/usr/bin/env bash
# jwks.c against a real TLS key server: `openssl s_server -WWW` serving the
# testdata certs.json with certificates from a throwaway CA.  Checks that the
# key set loads when the chain and the name verify, and is refused when the
# certificate names another host or its CA is not trusted.
. "$(dirname "$0")/../lib.sh"

FETCH=$T_BUILD/tools/jwks_fetch
CERTS=$T_DATA/access/certs.json
[ -x "$FETCH" ] || tap_bail "$FETCH not built (make tools)"
[ -f "$CERTS" ] || tap_bail "$CERTS missing"
command -v openssl >/dev/null || tap_bail "openssl CLI missing"
KID_CUR=$(cat "$T_DATA/access/current.kid")
KID_PREV=$(cat "$T_DATA/access/previous.kid")

cd "$T_TMP" || tap_bail "cannot enter $T_TMP"

# mkcert NAME SAN: a server key and certificate signed by the test CA.
mkcert() {
	openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" \
	    -subj "/CN=$1" >>openssl.log 2>&1 &&
	printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
	    "$2" >"$1.ext" &&
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
	    -days 2 -extfile "$1.ext" -out "$1.pem" >>openssl.log 2>&1
}

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=kakikomi test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" >>openssl.log 2>&1 ||
	tap_bail "cannot make the test CA: $(tail -n 3 openssl.log)"
mkcert localhost "DNS:localhost,IP:127.0.0.1" || tap_bail "cannot make the server certificate"
mkcert other.example "DNS:other.example" || tap_bail "cannot make the other-host certificate"

# s_server -WWW serves files relative to its working directory.
mkdir -p www
cp "$CERTS" www/certs.json
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >www/huge.json

# serve NAME CERT: starts a key server on a free port; sets PORT.  A port
# taken between free_port and bind makes s_server exit: try another one.
serve() {
	local pid deadline
	for _ in 1 2 3 4 5; do
		PORT=$(free_port) || tap_bail "no free port"
		(cd www && exec openssl s_server -quiet -WWW -accept "127.0.0.1:$PORT" \
		    -cert "../$2.pem" -key "../$2.key" </dev/null >"../$1.log" 2>&1) &
		pid=$!
		track_pid "$pid"
		deadline=$((SECONDS + 20))
		while [ "$SECONDS" -lt "$deadline" ] && kill -0 "$pid" 2>/dev/null; do
			(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
			sleep 0.05
		done
		untrack_pid "$pid"
	done
	tap_bail "s_server $1 did not start"
}

# fetch URL [CA]: runs jwks_fetch; sets RC, OUT, ERR.
fetch() {
	OUT=$("$FETCH" "$@" 2>fetch.err)
	RC=$?
	ERR=$(cat fetch.err)
}

serve good localhost
GOOD=$PORT
serve other other.example
OTHER=$PORT

fetch "https://127.0.0.1:$GOOD/certs.json" ca.pem
tap_check "IP address URL with the test CA loads the set" 0 "$RC"
tap_check "both kids loaded" "$KID_CUR $KID_PREV" "$(echo $OUT)"
tap_contains "load is logged with kid prefixes" "kids=${KID_CUR:0:8},${KID_PREV:0:8}" "$ERR"

fetch "https://localhost:$GOOD/certs.json" ca.pem
tap_check "host name URL (SNI, name check) loads the set" 0 "$RC"
tap_check "both kids loaded by name" "$KID_CUR $KID_PREV" "$(echo $OUT)"

fetch "https://127.0.0.1:$OTHER/certs.json" ca.pem
tap_check "certificate for another host is refused" 1 "$RC"
tap_contains "refusal names verification" "verification failed" "$ERR"
tap_check "nothing loaded from the other host" "" "$OUT"

fetch "https://localhost:$OTHER/certs.json" ca.pem
tap_check "another host's certificate refused by name too" 1 "$RC"
tap_contains "name mismatch reported" "hostname mismatch" "$ERR"

fetch "https://127.0.0.1:$GOOD/certs.json"
tap_check "untrusted CA is refused" 1 "$RC"
tap_contains "untrusted CA reported as verification failure" "verification failed" "$ERR"

fetch "https://127.0.0.1:$GOOD/certs.json" ca.pem cache.json
tap_check "fetch with certs_cache loads the set" 0 "$RC"
if cmp -s "$CERTS" cache.json; then tap_ok "certs_cache holds the fetched document byte for byte"
else tap_fail "certs_cache holds the fetched document byte for byte" "cache.json differs or is missing"; fi
tap_check "no temporary files left next to the cache" "cache.json" "$(ls cache.json* 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"

# Cloudflare unreachable at start: the last good set from certs_cache serves.
DEAD=$(free_port) || tap_bail "no free port"
fetch "https://127.0.0.1:$DEAD/certs.json" ca.pem cache.json
tap_check "unreachable key server: set loaded from certs_cache" 0 "$RC"
tap_check "cached kids" "$KID_CUR $KID_PREV" "$(echo $OUT)"
tap_contains "cache load is logged" "source=cache" "$ERR"

fetch "https://127.0.0.1:$GOOD/huge.json" ca.pem
tap_check "a response over the size cap is refused" 1 "$RC"
tap_contains "size cap reported" "response too large" "$ERR"

fetch "file://$CERTS"
tap_check "file:// URL loads the set" 0 "$RC"
tap_check "both kids loaded from file" "$KID_CUR $KID_PREV" "$(echo $OUT)"

fetch "http://127.0.0.1:$GOOD/certs.json"
tap_check "plain http:// is refused" 1 "$RC"
tap_contains "plain http:// reason" "https:// or file://" "$ERR"

tap_done
