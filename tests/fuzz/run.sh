#!/bin/sh
# tests/fuzz/run.sh [SECONDS] — build each libFuzzer target into build-fuzz/,
# seed its corpus from ../shared/testdata (decoded bodies too), run it for
# SECONDS (default 10) and print one TAP line per target.  Exits non-zero
# when a target fails to build or finds a crash (the log and the crashing
# input stay in build-fuzz/).
set -u
secs=${1:-10}
[ -n "$secs" ] || secs=10
cd "$(dirname "$0")/../.." || exit 1
out=build-fuzz
td=../shared/testdata
cc_fuzz=${FUZZ_CC:-clang}
targets="fuzz_rwconv fuzz_promrw fuzz_lokipb fuzz_labels fuzz_lokijson fuzz_http fuzz_mediatype"
srcs="gateway/pb.c gateway/codec.c gateway/labels.c gateway/promrw.c gateway/rwconv.c gateway/loki.c gateway/lokijson.c gateway/payload.c gateway/http.c gateway/log.c gateway/metrics.c gateway/mediatype.c"
cflags="-std=c11 -D_GNU_SOURCE -DKAKIKOMI_VERSION=\"fuzz\" -g -O1 -Igateway $(pkg-config --cflags jansson zlib)"
libs="$(pkg-config --libs jansson zlib libevent) -lsnappy -lpthread"

echo "1..$(echo $targets | wc -w)"
if ! command -v "$cc_fuzz" >/dev/null 2>&1; then
	n=0
	for t in $targets; do n=$((n + 1)); echo "ok $n - $t # SKIP $cc_fuzz not found"; done
	exit 0
fi
rm -rf "$out/seeds"
mkdir -p "$out/seeds" || exit 1

# Seeds: decoded protobuf bodies (cut to whole fields so mutation stays
# fast), JSON, labels strings.
seed() {
	mkdir -p "$out/seeds/$1"
}
${CC:-cc} $cflags -o "$out/seeds-tool" tests/fuzz/seeds.c gateway/pb.c gateway/codec.c $libs || exit 1
seed fuzz_promrw
# a 2.0 body built from a captured 1.0 one (tests/tools/rw1to2)
${CC:-cc} $cflags -o "$out/rw1to2" tests/tools/rw1to2.c gateway/pb.c gateway/codec.c $libs -lm || exit 1
"$out/rw1to2" < "$td/prometheus-2.42/rw1-353-series.body" > "$out/rw2-353-series.body" || exit 1
for f in rw1-353-series rw1-2000-series rw1-metadata-only; do
	"$out/seeds-tool" snappy "$td/prometheus-2.42/$f.body" "$out/seeds/fuzz_promrw/$f" 4096
done
"$out/seeds-tool" snappy "$td/prometheus-2.42/rw1-353-series.body" "$out/seeds/fuzz_promrw/small" 600
# remote write 2.0: symbols "", provider, tokyo, __name__, up; one series.
printf '\042\000\042\010provider\042\005tokyo\042\010__name__\042\002up\052\021\012\004\003\004\001\002\022\011\011\000\000\000\000\000\000\360\077' \
    >"$out/seeds/fuzz_promrw/v2"
seed fuzz_rwconv
cp "$out/seeds/fuzz_promrw/v2" "$out/seeds/fuzz_rwconv/v2"
"$out/seeds-tool" snappy "$out/rw2-353-series.body" "$out/seeds/fuzz_rwconv/rw2-353" 4096
seed fuzz_lokipb
"$out/seeds-tool" snappy "$td/promtail-2.8/push-304-entries.body" "$out/seeds/fuzz_lokipb/promtail" 8192
seed fuzz_lokijson
cat "$td/loki-json/push.json" >"$out/seeds/fuzz_lokijson/push.json"
printf '%s' '{"streams":[{"stream":{"provider":"osaka","a":""},"values":[["-5","x",{"k":"v"}]]}]}' \
    >"$out/seeds/fuzz_lokijson/small.json"
printf '%s' ' {"STREAMS":[{"Values":[["007","\u00e9\ud83d\ude00\/",{"Provider":"x","provider":"tokyo"}]],"sTream":{"\u0070rovider":"osaka"}}]} ' \
    >"$out/seeds/fuzz_lokijson/variants.json"
seed fuzz_http
printf 'POST /api/v1/write HTTP/1.1\r\nHost: kakikomi:8080\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: 41690\r\nCf-Access-Jwt-Assertion: e30.e30.sig\r\n\r\n' >"$out/seeds/fuzz_http/post"
printf 'POST /loki/api/v1/push HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n' >"$out/seeds/fuzz_http/chunked"
seed fuzz_mediatype
i=0
for s in 'application/x-protobuf;proto=io.prometheus.write.v2.Request' \
    'application/json; charset="UTF-8"' 'a/b;x="q\"uo\\te";Y=1' \
    'application/x-protobuf;Proto=prometheus.WriteRequest;proto=io.prometheus.write.v2.Request' \
    'snappy' ' gzip, deflate'; do
	i=$((i + 1))
	printf '%s' "$s" >"$out/seeds/fuzz_mediatype/seed$i"
done
seed fuzz_labels
i=0
for s in '{filename="/tmp/a.log", host="nas-01", job="recorder", note="quote \" backslash \\ tab\tunicode ✓ 録画", provider="tokyo"}' \
    "up{a='x\\x41\\101\\u00e9\\U0001F600', b=\`raw\`,}" '{}' 'ns:metric' '{a=~"b"}'; do
	i=$((i + 1))
	printf '%s' "$s" >"$out/seeds/fuzz_labels/seed$i"
done

n=0
status=0
for t in $targets; do
	n=$((n + 1))
	if ! "$cc_fuzz" $cflags -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o "$out/$t" "tests/fuzz/$t.c" \
	    $srcs $libs >"$out/$t.build.log" 2>&1; then
		echo "not ok $n - $t does not build"
		sed 's/^/# /' "$out/$t.build.log" | head -20
		status=1
		continue
	fi
	mkdir -p "$out/corpus/$t" "$out/crashes/$t"
	"$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix="$out/crashes/$t/" \
	    "$out/corpus/$t" "$out/seeds/$t" >"$out/$t.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
	if [ "$rc" -eq 0 ]; then
		echo "ok $n - $t ${secs}s, ${runs:-0} runs"
	else
		echo "not ok $n - $t crashed (exit $rc), see $out/$t.log and $out/crashes/$t/"
		grep -E 'ERROR|SUMMARY|Test unit written' "$out/$t.log" | head -5 | sed 's/^/# /'
		status=1
	fi
done
exit $status
