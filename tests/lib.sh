# Shell helpers for kakikomi's integration tests.  Source it from a test:
#   . "$(dirname "$0")/../lib.sh"
# Provides TAP output (tap_ok / tap_fail / tap_check / tap_done), a temp dir
# ($T_TMP) and process tracking that are cleaned up on any exit, free loopback
# ports and readiness polling with bounded deadlines (never fixed sleeps).

set -u
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T_BUILD=$T_ROOT/${KAKIKOMI_BUILD:-build}
T_DATA=${KAKIKOMI_TESTDATA:-$T_ROOT/../shared/testdata}
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kakikomi-test.XXXXXX")
T_N=0
T_FAILED=0
T_PIDS=""

t_cleanup() {
	for pid in $T_PIDS; do
		kill "$pid" 2>/dev/null
	done
	for pid in $T_PIDS; do
		# bounded: a process that ignores SIGTERM gets SIGKILL after 5 s
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
	done
	if [ "$T_FAILED" -ne 0 ] && [ -n "${KEEP_TMP:-}" ]; then
		echo "# kept $T_TMP" >&2
	else
		rm -rf "$T_TMP"
	fi
}
trap t_cleanup EXIT
trap 'exit 130' INT TERM

# track_pid PID: kill this process when the test exits.
track_pid() { T_PIDS="$T_PIDS $1"; }
untrack_pid() { T_PIDS=$(echo " $T_PIDS " | sed "s/ $1 / /"); }

tap_ok() { T_N=$((T_N + 1)); echo "ok $T_N - $1"; }
tap_fail() {
	T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1))
	echo "not ok $T_N - $1: $2"
}
# tap_check NAME EXPECTED ACTUAL
tap_check() {
	if [ "$2" = "$3" ]; then tap_ok "$1"
	else tap_fail "$1" "expected [$2], got [$3]"; fi
}
# tap_contains NAME NEEDLE HAYSTACK
tap_contains() {
	case "$3" in
	*"$2"*) tap_ok "$1" ;;
	*) tap_fail "$1" "[$2] not found in [$(printf %s "$3" | head -c 400)]" ;;
	esac
}
tap_done() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
}
# tap_bail REASON: a set-up step failed; nothing after it can be tested.
tap_bail() {
	tap_fail "setup" "$1"
	for f in "$T_TMP"/*.log; do
		[ -f "$f" ] && { echo "# --- $f"; tail -n 20 "$f" | sed 's/^/# /'; }
	done
	tap_done
	exit 1
}

# free_port: a loopback TCP port nobody listens on now, below the kernel's
# ephemeral range so that no client socket of this machine can hold it.
free_port() {
	local lo p
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	for _ in $(seq 200); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
wait_port() {
	local deadline=$((SECONDS + ${2:-30}))
	while [ "$SECONDS" -lt "$deadline" ]; do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# wait_http URL [SECONDS]: until URL answers 2xx.
wait_http() {
	local deadline=$((SECONDS + ${2:-30}))
	while [ "$SECONDS" -lt "$deadline" ]; do
		curl -sf -o /dev/null --max-time 2 "$1" && return 0
		sleep 0.05
	done
	return 1
}

# wait_gone PID [SECONDS]: until the process has exited.
wait_gone() {
	local deadline=$((SECONDS + ${2:-30}))
	while [ "$SECONDS" -lt "$deadline" ]; do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

# start_prometheus NAME PORT [EXTRA_CONFIG_FILE]: a real Prometheus receiving
# remote write on 127.0.0.1:PORT, storage under $T_TMP/NAME; waits for /-/ready.
# Sets PROM_PID.
start_prometheus() {
	local name=$1 port=$2 cfg=${3:-}
	mkdir -p "$T_TMP/$name"
	if [ -z "$cfg" ]; then
		cfg=$T_TMP/$name/prometheus.yml
		printf 'global:\n  scrape_interval: 1h\n' > "$cfg"
	fi
	prometheus --config.file="$cfg" --storage.tsdb.path="$T_TMP/$name/data" \
	    --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver \
	    --web.enable-lifecycle --log.level=warn >"$T_TMP/$name.log" 2>&1 &
	PROM_PID=$!
	track_pid "$PROM_PID"
	wait_http "http://127.0.0.1:$port/-/ready" 60
}

# prom_query PORT PROMQL: the JSON answer of an instant query.
prom_query() {
	curl -s --max-time 10 "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2"
}

# b64url_json SEGMENT: decodes one base64url JWT segment.
b64url_json() {
	local s
	s=$(printf %s "$1" | tr '_-' '/+')
	while [ $(( ${#s} % 4 )) -ne 0 ]; do s="$s="; done
	printf %s "$s" | base64 -d 2>/dev/null
}

# ---- kakikomi under test ----------------------------------------------------
T_AUD=4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2
T_TEAM=example.cloudflareaccess.com
T_TOKEN_CN=88bf3b6d86161464f6509f7219099e57.access
T_TOKEN=$(cat "$T_DATA/access/service-token-aud-array.jwt" 2>/dev/null)

# write_config DIR KPORT MPORT METRICS_URLS LOGS_URLS [SITES_YAML] [EXTRA_TOP_YAML]
# URLS: space-separated upstream URLs ("" for none).  SITES_YAML replaces the
# default sites file (tokyo: the testdata service token and alice@example.com,
# rewrite, tenant tokyo).
write_config() {
	local dir=$1 kport=$2 mport=$3 murls=$4 lurls=$5 sites=${6:-} extra=${7:-} u
	mkdir -p "$dir"
	{
		echo "listen: 127.0.0.1:$kport"
		echo "metrics_listen: 127.0.0.1:$mport"
		echo "workers: 2"
		echo "log_level: debug"
		echo "shutdown_timeout: 10s"
		echo "access:"
		echo "  team_domain: $T_TEAM"
		echo "  audiences: [ \"$T_AUD\" ]"
		echo "  certs_url: file://$T_DATA/access/certs.json"
		echo "upstreams:"
		echo "  metrics:"
		for u in $murls; do echo "    - { url: \"$u\", timeout: 2s }"; done
		[ -n "$murls" ] || echo "    []"
		echo "  logs:"
		for u in $lurls; do echo "    - { url: \"$u\", timeout: 2s }"; done
		[ -n "$lurls" ] || echo "    []"
		echo "sites_file: sites.yml"
		[ -z "$extra" ] || printf '%s\n' "$extra"
	} > "$dir/kakikomi.yml"
	if [ -n "$sites" ]; then
		printf '%s\n' "$sites" > "$dir/sites.yml"
	else
		cat > "$dir/sites.yml" <<SITES
label: provider
sites:
  tokyo:
    tokens: [ "$T_TOKEN_CN" ]
    emails: [ "alice@example.com" ]
    provider: [ tokyo ]
    on_mismatch: rewrite
    signals: [ metrics, logs ]
    tenant: tokyo
SITES
	fi
}

# start_kakikomi CONFIG MPORT: starts ./kakikomi, waits for /readyz.  Sets KK_PID.
start_kakikomi() {
	"$T_BUILD/kakikomi" -c "$1" >>"$T_TMP/kakikomi.log" 2>&1 &
	KK_PID=$!
	track_pid "$KK_PID"
	wait_http "http://127.0.0.1:$2/readyz" 30
}

# start_sink NAME PORT [sink flags...]: a recording upstream; records in $T_TMP/NAME.
start_sink() {
	local name=$1 port=$2; shift 2
	mkdir -p "$T_TMP/$name"
	"$T_BUILD/tools/sink" --listen "127.0.0.1:$port" --dir "$T_TMP/$name" "$@" \
	    >"$T_TMP/$name.log" 2>&1 &
	SINK_PID=$!
	track_pid "$SINK_PID"
	wait_port "$port" 10
}

# post URL BODYFILE [curl args...]: prints "STATUS BODY" (body on one line).
post() {
	local url=$1 file=$2; shift 2
	curl -s --max-time 20 -o "$T_TMP/resp.body" -D "$T_TMP/resp.headers" \
	    -w '%{http_code}' --data-binary "@$file" "$@" "$url" > "$T_TMP/resp.code"
	printf '%s %s' "$(cat "$T_TMP/resp.code")" "$(tr -d '\r' < "$T_TMP/resp.body" | head -n 1)"
}

# rw_post URL BODYFILE TOKEN [curl args...]: a remote write as Prometheus sends it.
rw_post() {
	local url=$1 file=$2 tok=$3
	shift 3
	post "$url" "$file" -H "Content-Type: application/x-protobuf" \
	    -H "Content-Encoding: snappy" -H "X-Prometheus-Remote-Write-Version: 0.1.0" \
	    -H "User-Agent: Prometheus/2.42.0" -H "Cf-Access-Jwt-Assertion: $tok" "$@"
}

# resp_header NAME: a header of the last post's answer.
resp_header() {
	grep -i "^$1:" "$T_TMP/resp.headers" | head -n 1 | cut -d: -f2- | tr -d ' \r'
}

# make_test_ca DIR [SAN]: a throwaway CA (DIR/ca.pem) and a server certificate
# signed by it (DIR/server.pem, DIR/server.key) for SAN (default
# IP:127.0.0.1,DNS:localhost).
make_test_ca() {
	local dir=$1 san=${2:-IP:127.0.0.1,DNS:localhost}
	mkdir -p "$dir"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kakikomi test CA" \
	    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null &&
	openssl req -newkey rsa:2048 -nodes -subj "/CN=kakikomi test server" \
	    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null &&
	printf 'subjectAltName=%s\n' "$san" > "$dir/ext.cnf" &&
	openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
	    -CAcreateserial -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
}

# start_cfaccess LOG [serve flags...]: the Access stand-in; waits for its ready
# line and sets CFA_PID, CFA_TLS, CFA_EDGE, CFA_ADMIN (host:port, "-" if absent).
start_cfaccess() {
	local log=$1 line deadline=$((SECONDS + 30)); shift
	"$T_BUILD/tools/cfaccess" serve "$@" >"$log" 2>&1 &
	CFA_PID=$!
	track_pid "$CFA_PID"
	while [ "$SECONDS" -lt "$deadline" ]; do
		line=$(grep -m1 '^cfaccess ready' "$log")
		if [ -n "$line" ]; then
			CFA_TLS=$(printf %s "$line" | sed -n 's/.*tls_listen=\([^ ]*\).*/\1/p')
			CFA_EDGE=$(printf %s "$line" | sed -n 's/.* listen=\([^ ]*\).*/\1/p')
			CFA_ADMIN=$(printf %s "$line" | sed -n 's/.*admin_listen=\([^ ]*\).*/\1/p')
			return 0
		fi
		kill -0 "$CFA_PID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# start_access_edge KK_PORT [TOKEN_LINES]: a local CA, a service-token file
# with a random secret ($T_SECRET) for $T_TOKEN_CN (plus TOKEN_LINES, each
# "<client_id> <secret>"), and cfaccess serving the key set over HTTPS and the
# edge in front of kakikomi at 127.0.0.1:KK_PORT.
start_access_edge() {
	T_SECRET=secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	make_test_ca "$T_TMP/tls" || return 1
	printf '%s %s\n' "$T_TOKEN_CN" "$T_SECRET" > "$T_TMP/tokens"
	[ -z "${2:-}" ] || printf '%s\n' "$2" >> "$T_TMP/tokens"
	start_cfaccess "$T_TMP/cfaccess.log" --tls-listen 127.0.0.1:0 \
	    --tls-cert "$T_TMP/tls/server.pem" --tls-key "$T_TMP/tls/server.key" \
	    --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$1" --tokens "$T_TMP/tokens" \
	    --key "$T_DATA/access/current-private.pem" --team "$T_TEAM" --aud "$T_AUD"
}

# use_edge_keys CONFIG: point a written kakikomi.yml at the edge's HTTPS key set.
use_edge_keys() {
	sed -i "s|certs_url: .*|certs_url: https://$CFA_TLS/cdn-cgi/access/certs\n  certs_ca_file: $T_TMP/tls/ca.pem|" "$1"
}

# site_prometheus_config FILE SELF_PORT [INTERVAL] [PROVIDER] [ID] [SECRET]: a
# site Prometheus that scrapes itself and remote-writes through the edge as
# service token ID (default $T_TOKEN_CN), with provider=PROVIDER (tokyo) as
# external label and short retry backoff.
site_prometheus_config() {
	cat > "$1" <<YML
global:
  scrape_interval: ${3:-2s}
  external_labels: { provider: ${4:-tokyo} }
scrape_configs:
  - job_name: site
    static_configs: [ { targets: [ "127.0.0.1:$2" ] } ]
remote_write:
  - url: http://$CFA_EDGE/api/v1/write
    basic_auth: { username: "${5:-$T_TOKEN_CN}", password: "${6:-$T_SECRET}" }
    queue_config: { batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s }
YML
}

# ---- raw connections ----------------------------------------------------------
# raw_head LENGTH TOKEN [EXTRA_LINE]: a remote write request head.
raw_head() {
	printf 'POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n'
	printf 'Content-Encoding: snappy\r\nCf-Access-Jwt-Assertion: %s\r\nContent-Length: %s\r\n' \
	    "$2" "$1"
	[ -z "${3:-}" ] || printf '%s\r\n' "$3"
	printf '\r\n'
}
# status_line FD [SECONDS]: the status line read from FD ("" on EOF or timeout).
status_line() {
	local line=""
	read -r -t "${2:-5}" -u "$1" line
	printf '%s' "${line%$'\r'}"
}
# skip_head FD: reads the rest of an answer head (through the blank line).
skip_head() {
	local line
	while read -r -t 5 -u "$1" line && [ -n "${line%$'\r'}" ]; do :; done
}
# ms_since START: milliseconds since START (an $EPOCHREALTIME value).
ms_since() {
	local now=$EPOCHREALTIME
	echo $(( (${now/./} - ${1/./}) / 1000 ))
}
# metric MPORT NAME: the value of an unlabelled kakikomi metric.
metric() {
	curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2}'
}
# wait_metric MPORT NAME VALUE [SECONDS]: until the metric has VALUE.
wait_metric() {
	local deadline=$((SECONDS + ${4:-10}))
	until [ "$(metric "$1" "$2")" = "$3" ]; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# ---- faults, replicas, soak ---------------------------------------------------
# kk_status_count MPORT PATTERN: kakikomi's requests answered with a status
# matching PATTERN (e.g. 'status="204"', 'status="5').
kk_status_count() {
	curl -s "http://127.0.0.1:$1/metrics" |
	    awk -v p="$2" '$1 ~ "^kakikomi_requests_total" && $1 ~ p { s += $2 } END { print s + 0 }'
}
# proc_rss_kb PID / proc_fds PID: resident memory (kB) and open descriptors.
proc_rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null; }
proc_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# receiver_config FILE: a receiving Prometheus with the storage settings of
# deploy/prometheus/prometheus.yml (its out_of_order_time_window), no scrapes.
receiver_config() {
	local w
	w=$(awk '$1 == "out_of_order_time_window:" { print $2 }' \
	    "$T_ROOT/deploy/prometheus/prometheus.yml")
	printf 'global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n    out_of_order_time_window: %s\n' \
	    "${w:-0s}" > "$1"
}

# start_prometheus_at NAME ADDR PORT CONFIG [COMMAND PREFIX...]: as
# start_prometheus on ADDR, run through the prefix (e.g. ip netns exec NS).
# Sets PROM_PID (the prefix must exec, as ip netns exec does).
start_prometheus_at() {
	local name=$1 addr=$2 port=$3 cfg=$4; shift 4
	mkdir -p "$T_TMP/$name"
	"$@" prometheus --config.file="$cfg" --storage.tsdb.path="$T_TMP/$name/data" \
	    --web.listen-address="$addr:$port" --web.enable-remote-write-receiver \
	    --web.enable-lifecycle --log.level=warn >>"$T_TMP/$name.log" 2>&1 &
	PROM_PID=$!
	track_pid "$PROM_PID"
	wait_http "http://$addr:$port/-/ready" 60
}

# series_samples HOST:PORT T0 T1 [MATCH]: one line per series of the site's
# own scrape ({job="site"}), "labels count" with the raw samples (floats and
# native histograms) in (T0, T1],
# the provider label left out (the sender's TSDB does not hold it, the
# receivers do), sorted.
series_samples() {
	curl -s --max-time 20 "http://$1/api/v1/query" \
	    --data-urlencode "query={job=\"site\"${4:-}}[$(( $3 - $2 ))s] @ $3" |
	    jq -r '.data.result[] | (.metric | del(.provider) | to_entries |
		sort_by(.key) | map("\(.key)=\(.value)") | join(",")) +
		" " + ((.values // []) + (.histograms // []) | length | tostring)' | sort
}
# sum_samples: the total of series_samples' counts on stdin.
sum_samples() { awk '{ s += $NF } END { print s + 0 }'; }

# wait_same_series SENDER RECEIVER T0 T1 [SECONDS] [SITE]: polls until the
# receiver holds, series by series, exactly the samples the sender (of SITE,
# default tokyo) holds in (T0, T1].
# Leaves the last difference in $T_TMP/series.diff; returns 1 on timeout.
wait_same_series() {
	local deadline=$((SECONDS + ${5:-90}))
	series_samples "$1" "$3" "$4" > "$T_TMP/series.want"
	while :; do
		series_samples "$2" "$3" "$4" ",provider=\"${6:-tokyo}\"" > "$T_TMP/series.got"
		diff "$T_TMP/series.want" "$T_TMP/series.got" > "$T_TMP/series.diff" &&
		    [ -s "$T_TMP/series.want" ] && return 0
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}

# sender_lost HOST:PORT: samples a sending Prometheus gave up on (failed +
# dropped, every remote_write queue).
sender_lost() {
	curl -s "http://$1/metrics" | awk '$1 ~ /^prometheus_remote_storage_samples_(failed|dropped)_total/ { s += $2 } END { print s + 0 }'
}

# netns_add NAME: a network namespace (loopback up), deleted by name when the
# test exits.  Nothing on the host's own interfaces or routes is touched.
T_NETNS=""
netns_cleanup() { for n in $T_NETNS; do ip netns del "$n" 2>/dev/null; done; }
netns_add() {
	ip netns add "$1" || return 1
	T_NETNS="$T_NETNS $1"
	trap 't_cleanup; netns_cleanup' EXIT
	ip -n "$1" link set lo up
}
# netns_link NS_A IF_A CIDR_A NS_B IF_B CIDR_B: a veth pair created inside the
# two namespaces (never on the host), addressed and up.
netns_link() {
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" &&
	ip -n "$1" addr add "$3" dev "$2" && ip -n "$4" addr add "$6" dev "$5" &&
	ip -n "$1" link set "$2" up && ip -n "$4" link set "$5" up
}

# ---- remote write 2.0 peers ---------------------------------------------------
# prometheus3_bin: Prometheus 3.5 (a remote write 2.0 sender and receiver),
# fetched from Debian sid by deps/prometheus3.sh on first use; "" if that
# failed (the script says why on stderr).
prometheus3_bin() { "$T_ROOT/deps/prometheus3.sh"; }

# start_prometheus_with NAME PORT CONFIG BINARY [FLAGS...]: start_prometheus_at
# on 127.0.0.1 with another binary and extra flags (a wrapper that execs, so
# PROM_PID is the Prometheus itself).
start_prometheus_with() {
	local name=$1 port=$2 cfg=$3 bin=$4 f; shift 4
	mkdir -p "$T_TMP/$name.bin"
	{
		echo '#!/bin/sh'
		printf 'exec %q' "$bin"
		for f in "$@"; do printf ' %q' "$f"; done
		echo ' "$@"'
	} > "$T_TMP/$name.bin/prometheus"
	chmod +x "$T_TMP/$name.bin/prometheus"
	start_prometheus_at "$name" 127.0.0.1 "$port" "$cfg" env PATH="$T_TMP/$name.bin:$PATH"
}

# rw2_site_config FILE SELF_PORT PROVIDER: site_prometheus_config sending
# remote write 2.0 (Prometheus >= 3.0) with the native histograms it holds
# (off by default), with PROVIDER as external label.
rw2_site_config() {
	site_prometheus_config "$1" "$2" 1s "$3"
	printf '    protobuf_message: io.prometheus.write.v2.Request\n    send_native_histograms: true\n' >> "$1"
}

# prom_counter HOST:PORT REGEX: the sum of a Prometheus' own metrics whose
# name (with labels) matches REGEX.
prom_counter() {
	curl -s --max-time 10 "http://$1/metrics" |
	    awk -v r="$2" '$1 ~ r { s += $2 } END { printf "%d\n", s }'
}
