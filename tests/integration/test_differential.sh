#!/usr/bin/env bash
# Differential: the same request spelled every way a client can spell it,
# through the Access stand-in's edge into kakikomi, in front of recording
# upstreams (and a real Prometheus 2.42 beside the metrics sink).  Per case:
# kakikomi's exact answer AND the exact Content-Type / Content-Encoding / body
# bytes the upstream received, or that it received nothing.  kakikomi must
# forward only its own canonical strings and the bytes it checked, so the
# receiver's reading of the client's header (noted per case) never matters:
#   P  Prometheus >= 2.54 parseProtoMsg: parts[0] == "application/x-protobuf"
#      exactly, first parameter named exactly "proto" (no trimming) wins,
#      value compared exactly; CE "" or ToLower == "snappy".  2.42 reads neither.
#   G  Loki push (Go mime.ParseMediaType: Unicode ToLower/TrimSpace, OWS around
#      ";" "=", duplicate names an error): "application/json" is JSON, any other
#      type snappy protobuf; CE exactly "", snappy, gzip (compress/gzip) or
#      deflate (compress/flate, raw).
. "$(dirname "$0")/../lib.sh"

PROM=$(free_port); MS=$(free_port); LS=$(free_port); KK=$(free_port); KM=$(free_port)
start_prometheus prom "$PROM" || tap_bail "prometheus did not start"
start_sink m "$MS" || tap_bail "metrics sink did not start"
start_sink l "$LS" || tap_bail "logs sink did not start"
start_access_edge "$KK" "kyoto.access kyoto-secret" || tap_bail "cfaccess did not start"
write_config "$T_TMP/kk" "$KK" "$KM" \
    "http://127.0.0.1:$MS/api/v1/write http://127.0.0.1:$PROM/api/v1/write" \
    "http://127.0.0.1:$LS/loki/api/v1/push" "label: provider
sites:
  tokyo:
    tokens: [ \"$T_TOKEN_CN\" ]
    provider: [ tokyo ]
    on_mismatch: reject
  kyoto:
    tokens: [ kyoto.access ]
    provider: [ kyoto ]
    on_mismatch: rewrite"
use_edge_keys "$T_TMP/kk/kakikomi.yml"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"

PB=application/x-protobuf
RW2=$PB';proto=io.prometheus.write.v2.Request'
now=$(( $(date +%s) * 1000 ))
B=$T_TMP/bodies; mkdir -p "$B"
"$T_BUILD/tools/rwgen" --name kk_diff_ok --label provider=tokyo --ts "$now" > "$B/rw-ok"
"$T_BUILD/tools/rwgen" --name kk_diff_foreign --label provider=osaka --ts "$now" > "$B/rw-foreign"
# A remote write 2.0 body, snappy literal by hand: symbols "", __name__,
# kk_diff_v2, provider, osaka; one series {1,2,3,4} with one sample.
varint() { local v=$1 o=; while [ "$v" -ge 128 ]; do o="$o\\x$(printf %02x $(( (v & 127) | 128 )))"; v=$((v >> 7)); done; printf '%s\\x%02x' "$o" "$v"; }
printf '\x43\xf0\x42\x22\x00\x22\x08__name__\x22\x0akk_diff_v2\x22\x08provider\x22\x05osaka\x2a\x18\x0a\x04\x01\x02\x03\x04\x12\x10\x09\x00\x00\x00\x00\x00\x00\xf0\x3f\x10'"$(varint "$now")" > "$B/rw2-foreign"
cp "$T_DATA/promtail-2.8/push-304-entries.body" "$B/lp"
gzip -nc "$B/lp" > "$B/lp.gz"
tail -c +11 "$B/lp.gz" | head -c -8 > "$B/lp.deflate"	# the gzip member's raw DEFLATE
printf '{"streams":[{"stream":{"job":"x","provider":"tokyo"},"values":[["%s000000","line"]]}]}' "$now" > "$B/json"
gzip -nc "$B/json" > "$B/json.gz"
tail -c +11 "$B/json.gz" | head -c -8 > "$B/json.deflate"
# The same DEFLATE data wrapped as zlib (RFC 1950): 78 9c, data, Adler-32.
adler32() { local a=1 b=0 c; for c in $(od -An -v -tu1 "$1"); do a=$(( (a + c) % 65521 )); b=$(( (b + a) % 65521 )); done; printf '%08x' $(( (b << 16) | a )); }
{ printf '\x78\x9c'; cat "$B/json.deflate"; printf "$(adler32 "$B/json" | sed 's/../\\x&/g')"; } > "$B/json.zlib"

# via ID SECRET PATH BODY [curl args...]: a write through the Access edge.
via() {
	local id=$1 secret=$2 path=$3 body=$4; shift 4
	post "http://$CFA_EDGE$path" "$body" -H "CF-Access-Client-Id: $id" \
	    -H "CF-Access-Client-Secret: $secret" "$@"
}
tokyo_rw() { via "$T_TOKEN_CN" "$T_SECRET" /api/v1/write "$@"; }
kyoto_rw() { via kyoto.access kyoto-secret /api/v1/write "$@"; }
tokyo_push() { via "$T_TOKEN_CN" "$T_SECRET" /loki/api/v1/push "$@"; }

# dcase NAME STATUS SINK CT CE BODY SENDER SENDER_ARGS...: one variant.  CT/CE
# are the exact headers the sink must have got ("-": absent); BODY the file
# its body must equal, "*" any body, "-" nothing forwarded.  Leaves the
# recorded request in D_H / D_B.
dcase() {
	local name=$1 want=$2 sink=$T_TMP/$3 ct=$4 ce=$5 body=$6 n0 n1 res h; shift 6
	n0=$(ls "$sink" | grep -c '\.body$')
	res=$("$@")
	n1=$(ls "$sink" | grep -c '\.body$')
	if [ "${res%% *}" != "$want" ]; then tap_fail "$name" "answer '$res', want $want"; return; fi
	if [ "$body" = - ]; then
		if [ "$n1" = "$n0" ]; then tap_ok "$name"; else tap_fail "$name" "refused, but forwarded"; fi
		return
	fi
	[ "$n1" = $((n0 + 1)) ] || { tap_fail "$name" "upstream got $((n1 - n0)) requests"; return; }
	D_H=$sink/$n1.headers D_B=$sink/$n1.body
	h=$(tr -d '\r' < "$D_H")
	[ "$ce" = - ] && ce=
	if [ "$(printf '%s\n' "$h" | sed -n 's/^Content-Type: //p')" != "$ct" ]; then
		tap_fail "$name" "upstream Content-Type: $(grep -i '^content-type' "$D_H"), want $ct"
	elif [ "$(printf '%s\n' "$h" | sed -n 's/^Content-Encoding: //p')" != "$ce" ]; then
		tap_fail "$name" "upstream Content-Encoding: $(grep -i '^content-encoding' "$D_H"), want '$ce'"
	elif [ "$body" != '*' ] && ! cmp -s "$body" "$D_B"; then
		tap_fail "$name" "upstream body is not $body"
	else
		tap_ok "$name"
	fi
}

# ---- remote write ----------------------------------------------------------
# P: 1.0.  The bytes and canonical headers as Prometheus sends them.
dcase "rw: canonical 1.0 forwarded as is" 204 m "$PB" snappy "$B/rw-ok" \
    tokyo_rw "$B/rw-ok" -H "Content-Type: $PB" -H "Content-Encoding: snappy" \
    -H "X-Prometheus-Remote-Write-Version: 2.0.0" -H "Retry-Attempt: 3" -H "User-Agent: Prometheus/2.42.0"
tap_contains "rw: version header from the decoded message, not the client" \
    "X-Prometheus-Remote-Write-Version: 0.1.0" "$(cat "$D_H")"
tap_contains "rw: numeric Retry-Attempt passed" "Retry-Attempt: 3" "$(cat "$D_H")"
tap_contains "rw: printable User-Agent passed" "User-Agent: Prometheus/2.42.0" "$(cat "$D_H")"
# P: 415 (type compared exactly; 2.42 would store).  RFC: same type, any case.
dcase "rw: Application/X-Protobuf + SNAPPY: canonical headers" 204 m "$PB" snappy "$B/rw-ok" \
    tokyo_rw "$B/rw-ok" -H "Content-Type: Application/X-Protobuf" -H "Content-Encoding: SNAPPY" \
    -H "Retry-Attempt: 3x" -H $'User-Agent: Prom\xc3\xa9theus'
tap_check "rw: Retry-Attempt that is not a number dropped" 0 "$(grep -c '^Retry-Attempt' "$D_H")"
tap_check "rw: non-ASCII User-Agent dropped" 0 "$(grep -c '^User-Agent' "$D_H")"
# P: " proto" is not "proto": 1.0; quoted 1.0 name.  RFC: proto=1.0.
dcase "rw: ; proto=\"prometheus.WriteRequest\"" 204 m "$PB" snappy "$B/rw-ok" \
    tokyo_rw "$B/rw-ok" -H "Content-Type: $PB; proto=\"prometheus.WriteRequest\"" -H "Content-Encoding: snappy"
# P: absent CE = snappy.  kakikomi: same, and says so upstream.
dcase "rw: no Content-Encoding" 204 m "$PB" snappy "$B/rw-ok" \
    tokyo_rw "$B/rw-ok" -H "Content-Type: $PB"
# Issue item 1.  P: "Proto" skipped, proto=2.0 -> 2.0, foreign series stored.
# Old kakikomi took the first case-insensitive match (1.0), saw no series.
dcase "rw: ;Proto=1.0;proto=2.0 refused, nothing forwarded" 415 m - - - \
    tokyo_rw "$B/rw2-foreign" -H "Content-Type: $PB;Proto=prometheus.WriteRequest;proto=io.prometheus.write.v2.Request" \
    -H "Content-Encoding: snappy"
# P: " proto " is not "proto": 1.0.  mime.ParseMediaType: proto=2.0.
dcase "rw: ; proto =2.0 refused" 415 m - - - \
    tokyo_rw "$B/rw2-foreign" -H "Content-Type: $PB; proto =io.prometheus.write.v2.Request" -H "Content-Encoding: snappy"
# P: first exact "proto" wins: 1.0.  Go: duplicate parameter error.
dcase "rw: proto twice refused" 415 m - - - \
    tokyo_rw "$B/rw-ok" -H "Content-Type: $PB;proto=prometheus.WriteRequest;proto=io.prometheus.write.v2.Request"
# P: 415 ("io.prometheus.write.v2.request" is not a known message).
dcase "rw: proto value in another case refused" 415 m - - - \
    tokyo_rw "$B/rw2-foreign" -H "Content-Type: $PB;proto=io.prometheus.write.v2.request"
# P: parameter ignored: 1.0.
dcase "rw: unknown parameter refused" 415 m - - - \
    tokyo_rw "$B/rw-ok" -H "Content-Type: $PB;charset=utf-8"
# P: TrimSpace (Unicode) drops U+00A0: 1.0.
dcase "rw: trailing U+00A0 refused" 415 m - - - \
    tokyo_rw "$B/rw-ok" -H $'Content-Type: application/x-protobuf\xc2\xa0'
# P: 415.  Go: application/x-protobuf (U+0130 lowers to i).
dcase "rw: U+0130 look-alike refused" 415 m - - - \
    tokyo_rw "$B/rw-ok" -H $'Content-Type: appl\xc4\xb0cation/x-protobuf'
# P >= 2.54: 415.  2.42: snappy-decodes regardless.
dcase "rw: gzip refused" 415 m - - - tokyo_rw "$B/rw-ok" -H "Content-Type: $PB" -H "Content-Encoding: gzip"
dcase "rw: snappy, snappy refused" 415 m - - - tokyo_rw "$B/rw-ok" -H "Content-Type: $PB" -H "Content-Encoding: snappy, snappy"
dcase "rw: identity refused" 415 m - - - tokyo_rw "$B/rw-ok" -H "Content-Type: $PB" -H "Content-Encoding: identity"
# The canonical 2.0 type, foreign series, reject site.
dcase "rw: 2.0 foreign under reject is 403" 403 m - - - \
    tokyo_rw "$B/rw2-foreign" -H "Content-Type: $RW2" -H "Content-Encoding: snappy"
# RFC: name case-insensitive, so 2.0.  P with the client's string: 1.0 (no
# "proto").  kakikomi reads 2.0, checks it as 2.0, and (these upstreams are
# protocol: v1, the default) sends what it checked down-converted to 1.0
# with the 1.0 type and version, never the client's spelling.
dcase "rw: ; Proto=2.0 under rewrite: read as 2.0, sent as 1.0 to v1 upstreams" 204 m "$PB" snappy '*' \
    kyoto_rw "$B/rw2-foreign" -H "Content-Type: $PB; Proto=io.prometheus.write.v2.Request" \
    -H "Content-Encoding: snappy" -H "X-Prometheus-Remote-Write-Version: 0.1.0"
tap_contains "rw: the 1.0 version header for the converted body" "X-Prometheus-Remote-Write-Version: 0.1.0" "$(cat "$D_H")"
tap_check "rw: converted body carries the site's value, not the sender's" "1 0" \
    "$(grep -c kyoto "$D_B") $(grep -c osaka "$D_B")"
dcase "rw: foreign 1.0 under rewrite, CT in capitals" 204 m "$PB" snappy '*' \
    kyoto_rw "$B/rw-foreign" -H "Content-Type: APPLICATION/X-PROTOBUF" -H "Content-Encoding: Snappy"
stored() { prom_query "$PROM" "$1" | grep -o '"metric":{[^}]*}' | sort | tr '\n' ' '; }
tap_check "prometheus stored the checked 1.0 series" \
    '"metric":{"__name__":"kk_diff_ok","provider":"tokyo","series":"0"} ' "$(stored kk_diff_ok)"
tap_check "prometheus stored the rewrite, under the site's value" \
    '"metric":{"__name__":"kk_diff_foreign","provider":"kyoto","series":"0"} ' "$(stored kk_diff_foreign)"
tap_check "prometheus stored the 2.0 series only from the accepted spelling, rewritten" \
    '"metric":{"__name__":"kk_diff_v2","provider":"kyoto"} ' "$(stored kk_diff_v2)"

# ---- Loki push -------------------------------------------------------------
# G: protobuf, no CE.  The bytes promtail sent.
dcase "loki: protobuf as promtail sends it" 204 l "$PB" - "$B/lp" \
    tokyo_push "$B/lp" -H "Content-Type: $PB"
# G: CE snappy = the same.  Forwarded without CE.
dcase "loki: protobuf + CE snappy" 204 l "$PB" - "$B/lp" \
    tokyo_push "$B/lp" -H "Content-Type: $PB" -H "Content-Encoding: snappy"
# G: gunzip, then snappy.  Forwarded: the snappy bytes kakikomi checked.
dcase "loki: protobuf + gzip: inflated bytes forwarded" 204 l "$PB" - "$B/lp" \
    tokyo_push "$B/lp.gz" -H "Content-Type: $PB" -H "Content-Encoding: gzip"
# G: compress/flate (raw), then snappy.
dcase "loki: protobuf + raw deflate: inflated bytes forwarded" 204 l "$PB" - "$B/lp" \
    tokyo_push "$B/lp.deflate" -H "Content-Type: $PB" -H "Content-Encoding: deflate"
# G: gzip bytes are no raw DEFLATE for compress/flate: 400.
dcase "loki: gzip bytes sent as deflate refused" 400 l - - - \
    tokyo_push "$B/lp.gz" -H "Content-Type: $PB" -H "Content-Encoding: deflate"
# G: any non-JSON type is protobuf.
dcase "loki: application/octet-stream refused" 415 l - - - \
    tokyo_push "$B/lp" -H "Content-Type: application/octet-stream"
# G: 400 "mime: no media type".
dcase "loki: no Content-Type is 400" 400 l - - - tokyo_push "$B/lp" -H "Content-Type:"
# G: JSON.  Forwarded: the document checked.
dcase "loki: JSON" 204 l application/json - "$B/json" \
    tokyo_push "$B/json" -H "Content-Type: application/json"
# G: gunzip, JSON.  Forwarded inflated, canonical type.
dcase "loki: JSON gzip, charset=UTF-8" 204 l application/json - "$B/json" \
    tokyo_push "$B/json.gz" -H "Content-Type: application/json; charset=UTF-8" -H "Content-Encoding: gzip"
# G: 400 (CE compared exactly).  RFC: codings are case-insensitive.
dcase "loki: JSON CE GZIP" 204 l application/json - "$B/json" \
    tokyo_push "$B/json.gz" -H "Content-Type: application/json" -H "Content-Encoding: GZIP"
# G: compress/flate, JSON.  Forwarded inflated.
dcase "loki: JSON raw deflate" 204 l application/json - "$B/json" \
    tokyo_push "$B/json.deflate" -H "Content-Type: application/json" -H "Content-Encoding: deflate"
# G: compress/flate reads 78 as a stored block with bad LEN/NLEN: 400.  Old
# kakikomi sniffed the zlib header and inflated it as zlib.
dcase "loki: zlib-wrapped deflate refused" 400 l - - - \
    tokyo_push "$B/json.zlib" -H "Content-Type: application/json" -H "Content-Encoding: deflate"
# Issue item 3.  G: JSON (U+0130 lowers to ASCII i).
dcase "loki: applİcation/json refused" 415 l - - - \
    tokyo_push "$B/json" -H $'Content-Type: appl\xc4\xb0cation/json'
# G: JSON (TrimSpace drops U+00A0).
dcase "loki: application/json + U+00A0 refused" 415 l - - - \
    tokyo_push "$B/json" -H $'Content-Type: application/json\xc2\xa0'
# G: 400 (duplicate parameter).
dcase "loki: charset twice refused" 415 l - - - \
    tokyo_push "$B/json" -H "Content-Type: application/json;charset=utf-8;Charset=utf-8"
# G: JSON, spaces around "=" allowed.
dcase "loki: charset = utf-8 refused" 415 l - - - \
    tokyo_push "$B/json" -H "Content-Type: application/json; charset = utf-8"
# G: JSON decoder fed the raw bytes (snappy CE means nothing for JSON).
dcase "loki: JSON + CE snappy refused" 415 l - - - \
    tokyo_push "$B/json" -H "Content-Type: application/json" -H "Content-Encoding: snappy"
# G: 400 ("gzip, gzip" is no coding Loki knows).
dcase "loki: gzip, gzip refused" 415 l - - - \
    tokyo_push "$B/json.gz" -H "Content-Type: application/json" -H "Content-Encoding: gzip, gzip"
# Loki JSON keys.  Loki's decoder (jsoniter for the top level: ASCII case
# folded, last match wins; jsonparser for a stream's keys) would store the
# second spelling of a repeated key; kakikomi refuses any two keys equal under
# folding, and forwards its own canonical document, never the client's bytes.
# tokyo is a reject site: a foreign stream it could smuggle is a 403 or a 400.
jcase() { printf '%s' "$2" > "$B/$1"; }
v="[[\"${now}000000\",\"line\"]]"
jcase j-shadow "{\"streams\":[],\"Streams\":[{\"stream\":{\"provider\":\"osaka\"},\"values\":$v}]}"
jcase j-upper "{\"STREAMS\":[{\"Stream\":{\"provider\":\"tokyo\",\"job\":\"x\"},\"VALUES\":$v}]}"
jcase j-canon "{\"streams\":[{\"stream\":{\"job\":\"x\",\"provider\":\"tokyo\"},\"values\":$v}]}"
jcase j-stream-twice "{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":$v,\"Stream\":{\"provider\":\"osaka\"}}]}"
jcase j-escaped-key "{\"streams\":[{\"stream\":{\"\\u0070rovider\":\"osaka\"},\"values\":$v}]}"
jcase j-label-twice "{\"streams\":[{\"stream\":{\"provider\":\"tokyo\",\"provider\":\"osaka\"},\"values\":$v}]}"
jcase j-unknown "{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":$v}],\"streamz\":[]}"
jcase j-number-value "{\"streams\":[{\"stream\":{\"provider\":\"tokyo\",\"job\":7},\"values\":$v}]}"
dcase "loki JSON: streams then Streams (Loki stores the second) refused" 400 l - - - \
    tokyo_push "$B/j-shadow" -H "Content-Type: application/json"
dcase "loki JSON: STREAMS/Stream/VALUES forwarded as canonical lower-case keys" 204 l application/json - "$B/j-canon" \
    tokyo_push "$B/j-upper" -H "Content-Type: application/json"
dcase "loki JSON: stream and Stream in one object refused" 400 l - - - \
    tokyo_push "$B/j-stream-twice" -H "Content-Type: application/json"
dcase "loki JSON: \\u0070rovider is provider (foreign under reject: 403)" 403 l - - - \
    tokyo_push "$B/j-escaped-key" -H "Content-Type: application/json"
dcase "loki JSON: a label named twice (Go's map keeps the last) refused" 400 l - - - \
    tokyo_push "$B/j-label-twice" -H "Content-Type: application/json"
dcase "loki JSON: an unknown key (a jsoniter hash twin could alias streams) refused" 400 l - - - \
    tokyo_push "$B/j-unknown" -H "Content-Type: application/json"
dcase "loki JSON: a number as a label value (jsonparser would take it) refused" 400 l - - - \
    tokyo_push "$B/j-number-value" -H "Content-Type: application/json"
# Two Content-Type lines: Go's Header.Get and kakikomi would both take the
# first, but a proxy in between might keep the other: refused outright.
dcase "rw: Content-Type twice refused" 400 m - - - \
    tokyo_rw "$B/rw-ok" -H "Content-Type: $RW2" -H "Content-Type: $PB" -H "Content-Encoding: snappy"
tap_done
