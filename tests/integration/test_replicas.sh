#!/usr/bin/env bash
# Several replicas.  Two kakikomi processes behind a round-robin nginx fan out
# to two real receivers; a real site Prometheus writes through the Access
# stand-in and nginx while one receiver is down for 20 s: nothing is lost and
# the sender gives up on nothing.
#
# Why that holds only with the receivers' out-of-order window: a write stored
# by r1 but not by r2 is answered 5xx and resent, and the resend may land on
# the other replica, whose acked memory (gateway/acked.h, per process) does
# not know r1 has it, so r1 gets the same samples again.  Prometheus 2.42
# (tsdb/head_append.go, memSeries.appendable) accepts a sample equal to the
# series' newest one silently, but one older than the newest is
# ErrOutOfOrderSample unless it lies within out_of_order_time_window; the
# remote write handler (storage/remote/write_handler.go) rolls the request
# back and answers 400, which kakikomi passes on once every other leg took
# the body, and the sender drops the batch and counts it failed (every
# receiver holds it, but the sender's failure counter and log say otherwise).
# Within the window the older sample goes to the out-of-order head
# (OOOChunk.Insert refuses a duplicate timestamp there, without an error),
# the answer is 204 and queries show each sample once.  The first part
# proves both answers on a real 2.42 with and without the window shipped in
# deploy/prometheus/prometheus.yml; the second the replicas with that window.
. "$(dirname "$0")/../lib.sh"

command -v nginx >/dev/null && command -v jq >/dev/null || {
	echo "ok 1 - replicas # SKIP needs nginx and jq"; echo "1..1"; exit 0; }

R0=$(free_port); R1=$(free_port); R2=$(free_port); NG=$(free_port); SITE=$(free_port)
KA=$(free_port); MA=$(free_port); KB=$(free_port); MB=$(free_port)
receiver_config "$T_TMP/receiver.yml"
grep -q 'out_of_order_time_window: [1-9]' "$T_TMP/receiver.yml" &&
    tap_ok "deploy/prometheus/prometheus.yml ships an out_of_order_time_window ($(awk '/out_of_order/ {print $2}' "$T_TMP/receiver.yml"))" ||
    tap_fail "deploy/prometheus/prometheus.yml ships an out_of_order_time_window" "$(cat "$T_TMP/receiver.yml")"
start_prometheus r0 "$R0" || tap_bail "r0 (no window) did not start"
start_prometheus_at r1 127.0.0.1 "$R1" "$T_TMP/receiver.yml" || tap_bail "r1 did not start"
start_prometheus_at r2 127.0.0.1 "$R2" "$T_TMP/receiver.yml" || tap_bail "r2 did not start"
R2_PID=$PROM_PID

# ---- 1. an identical resend of a batch of 5 samples per series -------------
"$T_BUILD/tools/rwgen" --series 20 --samples 5 --ts $(( ($(date +%s) - 60) * 1000 )) \
    --step 1000 --name kk_resend --label provider=tokyo > "$T_TMP/resend.body"
# stored: how many raw samples of kk_resend a receiver answers with
stored() {
	prom_query "$1" 'kk_resend[5m]' | jq '[.data.result[].values | length] | add // 0'
}
for r in "r0 $R0 400" "r1 $R1 204"; do
	set -- $r
	a=$(rw_post "http://127.0.0.1:$2/api/v1/write" "$T_TMP/resend.body" x)
	b=$(rw_post "http://127.0.0.1:$2/api/v1/write" "$T_TMP/resend.body" x)
	tap_check "$1: first write stored" 204 "${a%% *}"
	tap_check "$1: identical resend answered $3" "$3" "${b%% *}"
	tap_check "$1: 100 samples stored, each once" 100 "$(stored "$2")"
	[ "$1" = r0 ] && tap_contains "r0: the 400 is Prometheus' out of order refusal" \
	    "out of order" "$b"
done

# ---- 2. two replicas behind nginx ----------------------------------------------
start_access_edge "$NG" || tap_bail "cfaccess did not start"
for rep in "a $KA $MA" "b $KB $MB"; do
	set -- $rep
	write_config "$T_TMP/kk-$1" "$2" "$3" \
	    "http://127.0.0.1:$R1/api/v1/write http://127.0.0.1:$R2/api/v1/write" ""
	use_edge_keys "$T_TMP/kk-$1/kakikomi.yml"
	sed -i 's/log_level: debug/log_level: info/' "$T_TMP/kk-$1/kakikomi.yml"
	start_kakikomi "$T_TMP/kk-$1/kakikomi.yml" "$3" || tap_bail "replica $1 did not start"
done
d=$T_TMP/nginx
mkdir -p "$d"
cat > "$d/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 256; }
http {
	access_log off;
	client_max_body_size 16m;
	client_body_buffer_size 16m;
	client_body_temp_path $d/body;
	proxy_temp_path $d/proxy;
	# round robin; a write is never sent twice by nginx itself (POST is not
	# idempotent to it): the sender's retry is what may change replica
	upstream kakikomi { server 127.0.0.1:$KA; server 127.0.0.1:$KB; keepalive 8; }
	server {
		listen 127.0.0.1:$NG;
		location / {
			proxy_pass http://kakikomi;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_read_timeout 60s;
		}
	}
}
EOF
nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;' 2>"$T_TMP/nginx.log" &
NG_PID=$!
track_pid "$NG_PID"
wait_port "$NG" 10 || tap_bail "nginx did not start"
site_prometheus_config "$T_TMP/site.yml" "$SITE" 1s
start_prometheus site "$SITE" "$T_TMP/site.yml" || tap_bail "site Prometheus did not start"
S=127.0.0.1:$SITE

deadline=$((SECONDS + 60))
until [ "$(kk_status_count "$MA" 'status="204"')" -gt 1 ] &&
    [ "$(kk_status_count "$MB" 'status="204"')" -gt 1 ]; do
	[ "$SECONDS" -lt "$deadline" ] || tap_bail "writes did not reach both replicas"
	sleep 0.2
done
tap_ok "nginx spreads the writes over both replicas"
t0=$(date +%s)

kill "$R2_PID"; wait_gone "$R2_PID"; untrack_pid "$R2_PID"
fa=$(kk_status_count "$MA" 'status="5'); fb=$(kk_status_count "$MB" 'status="5')
sleep 20	# the outage itself: its length is the point of the test
fa=$(( $(kk_status_count "$MA" 'status="5') - fa )); fb=$(( $(kk_status_count "$MB" 'status="5') - fb ))
[ "$fa" -gt 0 ] && [ "$fb" -gt 0 ] && tap_ok "both replicas answered 5xx while r2 was down ($fa, $fb)" ||
    tap_fail "both replicas answered 5xx while r2 was down" "a $fa, b $fb"
start_prometheus_at r2 127.0.0.1 "$R2" "$T_TMP/receiver.yml" || tap_bail "r2 did not restart"

t1=$(( $(date +%s) + 5 ))
until [ "$(date +%s)" -gt $((t1 + 2)) ]; do sleep 0.2; done	# the window's end, written
for r in "r1 $R1" "r2 $R2"; do
	set -- $r
	wait_same_series "$S" "127.0.0.1:$2" "$t0" "$t1" 90 &&
	    tap_ok "$1 holds every sample the sender holds, series by series ($(sum_samples < "$T_TMP/series.want"))" ||
	    tap_fail "$1 holds every sample the sender holds" "$(head -c 600 "$T_TMP/series.diff")"
done
tap_check "the sender counts no failed or dropped sample" 0 "$(sender_lost "$S")"
tap_check "no 4xx answered by replica a" 0 "$(kk_status_count "$MA" 'status="4')"
tap_check "no 4xx answered by replica b" 0 "$(kk_status_count "$MB" 'status="4')"
echo "# replica a: $(kk_status_count "$MA" 'status="204"') x 204, replica b: $(kk_status_count "$MB" 'status="204"') x 204"
tap_done
