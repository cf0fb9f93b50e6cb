#!/usr/bin/env bash
# kakikomi's benchmark (`make bench`; see tests/bench/README.md for how to read it).
#
# One run, on this machine, prints one table: the same load generator
# (tests/bench/loadgen.c: keep-alive connections, fixed concurrency, real
# remote write bodies round-robin) against the same null upstream
# (tests/bench/nullup.c), direct and through nginx, vmauth, vmagent and
# kakikomi in its fast path, rewrite path, no-cache path and Loki paths, with
# each server's CPU per request, peak RSS and latency; then the in-process
# floor (tests/bench/floor.c), the RSA verify cost, kakikomi's RSS with 1,000
# idle connections and the issue's targets as ratios.  Every row is also one
# JSON line in $BUILD/bench/results.json.
#
# All traffic stays on 127.0.0.1; every process started here is killed on
# exit (tests/lib.sh's trap); a missing peer makes its row "skipped".
# Knobs (environment): BENCH_SECONDS (5) BENCH_WARMUP (1) BENCH_CONNS (16)
# BENCH_THREADS (loadgen threads, 1) BENCH_TOKENS (30000, no-cache row)
# BENCH_PERF=1 (also profile kakikomi's fast path with perf, outside the table).
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh

SECS=${BENCH_SECONDS:-5}
WARM=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNS:-16}
LTHREADS=${BENCH_THREADS:-1}
NTOKENS=${BENCH_TOKENS:-30000}
CORES=$(nproc)
BB=$T_BUILD/bench
RESULTS=$BB/results.json
B2000=$T_DATA/prometheus-2.42/rw1-2000-series.body
LOKI_PB=$T_DATA/promtail-2.8/push-304-entries.body
LOKI_JSON=$T_DATA/loki-json/push.json
LOKI_JSON_EQ=$T_TMP/push-304-entries.json	# LOKI_PB's content as JSON
B500=$T_TMP/rw1-500-series.body
RW_HEADERS=(-H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy'
	-H 'X-Prometheus-Remote-Write-Version: 0.1.0' -H 'User-Agent: Prometheus/2.42.0')

ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge 2100 ] || { echo "bench: ulimit -n is $(ulimit -n), need 2100" >&2; exit 1; }

die() { echo "bench: $*" >&2; for f in "$T_TMP"/*.log; do [ -f "$f" ] && tail -n 5 "$f" >&2; done; exit 1; }

# ---- build the bench tools --------------------------------------------------
build_tools() {
	local warn=(-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wstrict-prototypes
		-Wmissing-prototypes -Wmissing-declarations -Wshadow -Wpointer-arith -Wcast-qual)
	local objs=() o
	mkdir -p "$BB"
	for o in "$T_BUILD"/*.o; do [ "${o##*/}" = main.o ] || objs+=("$o"); done
	# shellcheck disable=SC2046  # word splitting of pkg-config's output is intended
	cc "${warn[@]}" -o "$BB/nullup" tests/bench/nullup.c -pthread &&
	cc "${warn[@]}" -o "$BB/loadgen" tests/bench/loadgen.c -pthread &&
	cc "${warn[@]}" -o "$BB/mint" tests/bench/mint.c -pthread -lcrypto &&
	cc "${warn[@]}" $(pkg-config --cflags libevent) -Igateway -o "$BB/floor" \
	    tests/bench/floor.c "${objs[@]}" $(pkg-config --libs libevent libevent_openssl \
	    libevent_pthreads openssl jansson libjwt yaml-0.1 zlib) -lsnappy -lpthread
}
build_tools || die "cannot build the bench tools (run make first)"
if [ ! -x "$T_BUILD/kakikomi" ] || [ ! -x "$T_BUILD/tools/rwgen" ]; then
	die "run make all tools first"
fi
: > "$RESULTS"

# ---- helpers ----------------------------------------------------------------
# peak_rss_mb PID...: sum of VmHWM.
peak_rss_mb() {
	local kb=0 p v
	for p in "$@"; do
		v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null)
		kb=$((kb + ${v:-0}))
	done
	awk -v kb="$kb" 'BEGIN { printf "%.1f", kb / 1024 }'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

nullup_stat() { curl -s --max-time 2 "http://127.0.0.1:$NULL_PORT/stats"; }

stop_pid() {
	kill "$1" 2>/dev/null
	wait_gone "$1" 10 || kill -9 "$1" 2>/dev/null
	untrack_pid "$1"
}

# skip_row ID NAME WHY
skip_row() {
	jq -cn --arg id "$1$SFX" --arg name "$2" --arg why "$3" --arg body "$ROW_BODY" \
	    '{kind:"row", id:$id, name:$name, skipped:$why, body:$body}' >> "$RESULTS"
}

# measure ID NAME NOTE "PIDS" URL [loadgen args...]: one table row.
measure() {
	local id=$1$SFX name=$2 note=$3 pids=$4 url=$5 p out up0 up1
	local pidargs=()
	shift 5
	for p in $pids; do pidargs+=(--pid "$p"); done
	up0=$(nullup_stat)
	out=$("$BB/loadgen" --url "$url" --connections "$CONNS" --threads "$LTHREADS" \
	    --warmup "$WARM" --duration "$SECS" "${pidargs[@]}" "$@") ||
	    { skip_row "$id" "$name" "loadgen failed"; return 1; }
	up1=$(nullup_stat)
	# shellcheck disable=SC2086
	printf '%s\n' "$out" | jq -c --arg id "$id" --arg name "$name" --arg note "$note" \
	    --argjson rss "$(peak_rss_mb $pids)" --arg up0 "$up0" --arg up1 "$up1" \
	    --arg body "$ROW_BODY" '
	    def n(s; k): (s | capture(k + "=(?<v>[0-9]+)").v | tonumber) // 0;
	    {kind:"row", id:$id, name:$name, note:$note, peak_rss_mb:$rss, body:$body} + . +
	    {upstream_requests: (n($up1; "requests") - n($up0; "requests")),
	     upstream_bytes: (n($up1; "bytes") - n($up0; "bytes"))}' >> "$RESULTS"
}

# ---- inputs -----------------------------------------------------------------
"$T_BUILD/tools/rwgen" --series 500 --label provider=tokyo > "$B500" || die "rwgen failed"
for f in "$B2000" "$LOKI_PB" "$LOKI_JSON"; do [ -r "$f" ] || die "missing $f"; done
"$BB/floor" --to-json "$LOKI_PB" > "$LOKI_JSON_EQ" || die "floor --to-json failed"
"$BB/floor" --seconds 0.25 --metrics "$B2000" "$B500" --loki-pb "$LOKI_PB" \
    --loki-json "$LOKI_JSON" "$LOKI_JSON_EQ" > "$T_TMP/floor.json" || die "floor failed"
jq -c '{kind:"floor"} + .' "$T_TMP/floor.json" >> "$RESULTS"
fl() { jq -r --arg b "$1" "select(.body == \$b) | .$2" "$T_TMP/floor.json"; }
S2000=$(fl "$B2000" samples)
S500=$(fl "$B500" samples)
E_PB=$(fl "$LOKI_PB" entries)
E_JSON=$(fl "$LOKI_JSON" entries)
E_JSON_EQ=$(fl "$LOKI_JSON_EQ" entries)
MIX_BODIES=(--body "$B2000:$S2000" --body "$B500:$S500")
ONE_BODY=(--body "$B2000:$S2000")
# Rows 1-7 run twice (rows_rw): on the 2000-series body alone (ids N-2000,
# body "2000": what Prometheus sends by default; the targets use these), then
# on the mix (ids N, body "mix", as in earlier results.json).
SFX= ROW_BODY=

printf '%s\n' "$T_TOKEN" > "$T_TMP/token"
"$BB/mint" --key "$T_DATA/access/current-private.pem" --kid "$(cat "$T_DATA/access/current.kid")" \
    --count "$NTOKENS" --threads "$CORES" > "$T_TMP/tokens" || die "mint failed"
TOKEN_BYTES=$(head -n 1 "$T_TMP/tokens" | tr -d '\n' | wc -c)

RSA_US=$(openssl speed -seconds 2 rsa2048 2>/dev/null |
    awk '/^rsa 2048 bits/ { printf "%.1f", 1e6 / $NF }')
jq -cn --argjson us "${RSA_US:-0}" --argjson tb "$TOKEN_BYTES" \
    '{kind:"rsa", verify_us:$us, source:"openssl speed -seconds 2 rsa2048", token_bytes:$tb}' >> "$RESULTS"

# ---- the null upstream ------------------------------------------------------
NULL_PORT=$(free_port)
"$BB/nullup" --listen "127.0.0.1:$NULL_PORT" --threads "$CORES" 2>"$T_TMP/nullup.log" &
NULL_PID=$!
track_pid "$NULL_PID"
wait_port "$NULL_PORT" 10 || die "nullup did not start"
NULL_URL=http://127.0.0.1:$NULL_PORT

# ---- 2. nginx -----------------------------------------------------------------
row_nginx() {
	local port d=$T_TMP/nginx pid workers
	command -v nginx >/dev/null || { skip_row 2 "nginx proxy_pass" "skipped: not installed"; return; }
	port=$(free_port)
	mkdir -p "$d"
	cat > "$d/nginx.conf" <<EOF
worker_processes $CORES;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_max_body_size 16m;
	client_body_buffer_size 1m;
	upstream null { server 127.0.0.1:$NULL_PORT; keepalive 64; }
	server {
		listen 127.0.0.1:$port;
		location / {
			proxy_pass http://null;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF
	nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;' 2>"$T_TMP/nginx.log" &
	pid=$!
	track_pid "$pid"
	wait_port "$port" 10 || { skip_row 2 "nginx proxy_pass" "failed to start"; stop_pid "$pid"; return; }
	workers=$(ps -o pid= --ppid "$pid" | tr -d ' ' | tr '\n' ' ')
	for w in $workers; do track_pid "$w"; done
	measure 2 "nginx proxy_pass" "keepalive upstream, request buffering on (default, in memory)" \
	    "$pid $workers" "http://127.0.0.1:$port/api/v1/write" "${RW_HEADERS[@]}" \
	    "${RWB[@]}" --tokens "$T_TMP/token"
	stop_pid "$pid"
	for w in $workers; do stop_pid "$w"; done
}

# ---- 3. vmauth ----------------------------------------------------------------
row_vmauth() {
	local port pid
	command -v vmauth >/dev/null || { skip_row 3 "vmauth" "skipped: not installed"; return; }
	port=$(free_port)
	printf 'users:\n- bearer_token: "bench-bearer"\n  url_prefix: "%s"\n' "$NULL_URL" \
	    > "$T_TMP/vmauth.yml"
	vmauth -auth.config="$T_TMP/vmauth.yml" -httpListenAddr="127.0.0.1:$port" \
	    -loggerLevel=ERROR >"$T_TMP/vmauth.log" 2>&1 &
	pid=$!
	track_pid "$pid"
	wait_port "$port" 10 || { skip_row 3 "vmauth" "failed to start"; stop_pid "$pid"; return; }
	measure 3 "vmauth" "bearer token (Authorization header), proxies bytes" "$pid" \
	    "http://127.0.0.1:$port/api/v1/write" "${RW_HEADERS[@]}" "${RWB[@]}" \
	    -H 'Authorization: Bearer bench-bearer' --tokens "$T_TMP/token"
	stop_pid "$pid"
}

# ---- 4. vmagent ---------------------------------------------------------------
row_vmagent() {
	local port pid
	command -v vmagent >/dev/null || { skip_row 4 "vmagent relabel" "skipped: not installed"; return; }
	port=$(free_port)
	printf -- '- target_label: provider\n  replacement: tokyo\n' > "$T_TMP/relabel.yml"
	vmagent -httpListenAddr="127.0.0.1:$port" -remoteWrite.url="$NULL_URL/api/v1/write" \
	    -remoteWrite.relabelConfig="$T_TMP/relabel.yml" \
	    -remoteWrite.tmpDataPath="$T_TMP/vmagent-data" -loggerLevel=ERROR \
	    >"$T_TMP/vmagent.log" 2>&1 &
	pid=$!
	track_pid "$pid"
	wait_http "http://127.0.0.1:$port/health" 20 ||
	    { skip_row 4 "vmagent relabel" "failed to start"; stop_pid "$pid"; return; }
	measure 4 "vmagent relabel" "acks BEFORE forwarding (queues); decode+relabel+re-encode" \
	    "$pid" "http://127.0.0.1:$port/api/v1/write" "${RW_HEADERS[@]}" "${RWB[@]}" \
	    --tokens "$T_TMP/token"
	stop_pid "$pid"
}

# ---- 5-8. kakikomi ------------------------------------------------------------
KK_PORT=$(free_port)
KK_MPORT=$(free_port)
KK_URL=http://127.0.0.1:$KK_PORT

# kk_start SITES_YAML: kakikomi with workers = cores, log_level warn.  Sets KK_PID.
kk_start() {
	local dir=$T_TMP/kk
	rm -rf "$dir"
	write_config "$dir" "$KK_PORT" "$KK_MPORT" "$NULL_URL/api/v1/write" \
	    "$NULL_URL/loki/api/v1/push" "$1"
	sed -i -e "s/^workers: .*/workers: $CORES/" -e 's/^log_level: .*/log_level: warn/' \
	    "$dir/kakikomi.yml"
	start_kakikomi "$dir/kakikomi.yml" "$KK_MPORT" || die "kakikomi did not become ready"
}
OSAKA_SITES="label: provider
sites:
  tokyo:
    tokens: [ \"$T_TOKEN_CN\" ]
    provider: [ osaka ]
    on_mismatch: rewrite
    signals: [ metrics, logs ]
    tenant: tokyo"

kk_row() {
	local id=$1 name=$2 note=$3 sites=$4
	shift 4
	kk_start "$sites"
	measure "$id" "$name" "$note" "$KK_PID" "$@"
	stop_pid "$KK_PID"
}
# rows_rw: rows 1-7 for the bodies in RWB, ids suffixed with SFX.
rows_rw() {
	# 1. direct
	measure 1 "direct to null upstream" "harness ceiling; CPU is the null upstream's" \
	    "$NULL_PID" "$NULL_URL/api/v1/write" "${RW_HEADERS[@]}" "${RWB[@]}" \
	    --tokens "$T_TMP/token"
	row_nginx
	row_vmauth
	row_vmagent
	kk_row 5 "kakikomi fast path" "provider=tokyo allowed: checked, forwarded byte for byte" "" \
	    "$KK_URL/api/v1/write" "${RW_HEADERS[@]}" "${RWB[@]}" --tokens "$T_TMP/token"
	# Latency at half of kakikomi's maximum: the same paced load direct and
	# through kakikomi; the difference of the p99s is what kakikomi adds.
	HALF=$(jq -r --arg sfx "$SFX" 'select(.kind == "row" and .id == "5\($sfx)") | (.rps // 0) / 2 | floor' "$RESULTS")
	if [ "${HALF:-0}" -gt 0 ]; then
		measure 1h "direct, paced at half of 5" "$HALF req/s offered" "$NULL_PID" \
		    "$NULL_URL/api/v1/write" "${RW_HEADERS[@]}" "${RWB[@]}" --tokens "$T_TMP/token" \
		    --rate "$HALF"
		kk_row 5h "kakikomi, paced at half of 5" "$HALF req/s offered" "" \
		    "$KK_URL/api/v1/write" "${RW_HEADERS[@]}" "${RWB[@]}" --tokens "$T_TMP/token" \
		    --rate "$HALF"
	fi
	kk_row 6 "kakikomi rewrite" "site allows only osaka: every series rewritten, re-encoded" \
	    "$OSAKA_SITES" "$KK_URL/api/v1/write" "${RW_HEADERS[@]}" "${RWB[@]}" \
	    --tokens "$T_TMP/token"
	kk_row 7 "kakikomi no token cache" "new token every request (${TOKEN_BYTES} B, with jti): RSA verify ${RSA_US} us (openssl)" \
	    "" "$KK_URL/api/v1/write" "${RW_HEADERS[@]}" "${RWB[@]}" \
	    --tokens "$T_TMP/tokens" --unique
}
for ROW_BODY in 2000 mix; do
	if [ "$ROW_BODY" = 2000 ]; then SFX=-2000 RWB=("${ONE_BODY[@]}")
	else SFX= RWB=("${MIX_BODIES[@]}"); fi
	rows_rw
done
SFX= ROW_BODY=
kk_row 8a "kakikomi Loki protobuf" "promtail body, 304 entries, fast path" "" \
    "$KK_URL/loki/api/v1/push" -H 'Content-Type: application/x-protobuf' \
    --body "$LOKI_PB:$E_PB" --tokens "$T_TMP/token"
kk_row 8b "kakikomi Loki JSON" "2 streams, 1 lacks provider: rewritten each time" "" \
    "$KK_URL/loki/api/v1/push" -H 'Content-Type: application/json' \
    --body "$LOKI_JSON:$E_JSON" --tokens "$T_TMP/token"
kk_row 8c "kakikomi Loki JSON, as 8a" "8a's 304 entries as JSON, fast path" "" \
    "$KK_URL/loki/api/v1/push" -H 'Content-Type: application/json' \
    --body "$LOKI_JSON_EQ:$E_JSON_EQ" --tokens "$T_TMP/token"

# ---- idle connections ---------------------------------------------------------
kk_idle() {
	local before after lpid
	kk_start ""
	before=$(rss_kb "$KK_PID")
	"$BB/loadgen" --idle 1000 --url "$KK_URL/" --hold 30 2>"$T_TMP/idle.log" &
	lpid=$!
	track_pid "$lpid"
	for _ in $(seq 100); do grep -q 'idle ready' "$T_TMP/idle.log" && break; sleep 0.1; done
	sleep 1	# let the workers accept the backlog
	after=$(rss_kb "$KK_PID")
	jq -cn --argjson b "${before:-0}" --argjson a "${after:-0}" \
	    --argjson ready "$(grep -c 'idle ready' "$T_TMP/idle.log")" \
	    '{kind:"idle", connections:1000, ready:($ready > 0), rss_before_kb:$b,
	      rss_after_kb:$a, kb_per_conn:(($a - $b) / 1000)}' >> "$RESULTS"
	stop_pid "$lpid"
	stop_pid "$KK_PID"
}
kk_idle

# ---- optional profile of the fast path (not part of the table) ---------------
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
	kk_start ""
	perf record -F 999 -g -o "$T_TMP/perf.data" -p "$KK_PID" -- sleep "$((SECS + 1))" \
	    >/dev/null 2>&1 &
	perf_pid=$!
	"$BB/loadgen" --url "$KK_URL/api/v1/write" --connections "$CONNS" --threads "$LTHREADS" \
	    --warmup 0.5 --duration "$SECS" "${RW_HEADERS[@]}" "${RWB[@]}" \
	    --tokens "$T_TMP/token" >/dev/null
	wait "$perf_pid"
	perf report -i "$T_TMP/perf.data" --stdio --no-children --sort symbol \
	    --percent-limit 0.5 -g none 2>/dev/null | grep -E '^ +[0-9]' | head -n 25 |
	    awk '{ printf "  %7s %s %s\n", $1, $2, $3 }' > "$BB/perf-fastpath.txt"
	stop_pid "$KK_PID"
fi

# ---- the table ----------------------------------------------------------------
tests/bench/table.sh "$RESULTS" "$SECS" "$CONNS" "$LTHREADS" "$CORES"
if [ -s "$BB/perf-fastpath.txt" ]; then
	echo
	echo "perf, kakikomi fast path (self time, top 10):"
	head -n 10 "$BB/perf-fastpath.txt"
fi
