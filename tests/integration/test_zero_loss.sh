#!/usr/bin/env bash
# Nothing accepted is lost.  A real site Prometheus remote-writes through the
# Access stand-in and kakikomi into a real central Prometheus while things
# break: the central Prometheus stops for 30 s, kakikomi is restarted
# (SIGTERM, start) and reloaded (SIGHUP in a loop), and one of two fanned-out
# receivers is down.  Afterwards every sample the site scraped in the window
# must be in each receiver (counted in the site's own TSDB and in the
# receivers), and kakikomi must have answered 5xx, never 2xx or 4xx, while a
# receiver was away.
. "$(dirname "$0")/../lib.sh"

R1=$(free_port); R2=$(free_port); SITE=$(free_port); KK=$(free_port); KM=$(free_port)
start_prometheus r1 "$R1" || tap_bail "receiver 1 did not start"
R1_PID=$PROM_PID
start_prometheus r2 "$R2" || tap_bail "receiver 2 did not start"
R2_PID=$PROM_PID
start_access_edge "$KK" || tap_bail "cfaccess did not start"
write_config "$T_TMP/kk" "$KK" "$KM" \
    "http://127.0.0.1:$R1/api/v1/write http://127.0.0.1:$R2/api/v1/write" ""
use_edge_keys "$T_TMP/kk/kakikomi.yml"
sed -i 's/log_level: debug/log_level: info/' "$T_TMP/kk/kakikomi.yml"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"
t0=$(date +%s)
site_prometheus_config "$T_TMP/site.yml" "$SITE" 1s
start_prometheus site "$SITE" "$T_TMP/site.yml" || tap_bail "site Prometheus did not start"

# samples PORT T0 T1 [MATCH]: how many samples of the site's own scrape a
# Prometheus holds in [T0, T1].
samples() {
	local range=$(( $3 - $2 ))
	# raw samples of every series (count_over_time would merge series whose
	# labels differ only by metric name)
	prom_query "$1" "{job=\"site\"${4:-}}[${range}s] @ $3" | grep -o '\[[0-9.]*,"[^"]*"\]' | wc -l
}
status_count() {
	curl -s "http://127.0.0.1:$KM/metrics" |
	    awk -v p="$1" '$1 ~ "^kakikomi_requests_total" && $1 ~ p { s += $2 } END { print s + 0 }'
}
# wait_until_caught_up PORT T1: until the receiver holds what the site holds.
caught_up() {
	local want got deadline=$((SECONDS + 90))
	want=$(samples "$SITE" "$t0" "$2")
	while [ "$SECONDS" -lt "$deadline" ]; do
		got=$(samples "$1" "$t0" "$2" ',provider="tokyo"')
		[ -n "$want" ] && [ "$got" = "$want" ] && break
		sleep 0.5
	done
	echo "$want $got"
}

wait_first() {
	local deadline=$((SECONDS + 60))
	while [ "$SECONDS" -lt "$deadline" ]; do
		[ "$(status_count 'status="204"')" -gt 0 ] && return 0
		sleep 0.2
	done
	return 1
}
wait_first || tap_bail "no write arrived through the chain"

# 1. both receivers down for 30 s: kakikomi must answer 5xx the whole time.
kill "$R1_PID" "$R2_PID"; wait_gone "$R1_PID"; wait_gone "$R2_PID"
untrack_pid "$R1_PID"; untrack_pid "$R2_PID"
ok_before=$(status_count 'status="204"')
sleep 30	# the outage itself: its length is the point of the test
ok_during=$(status_count 'status="204"')
tap_check "no 2xx while the receivers were down" "$ok_before" "$ok_during"
tap_check "no 4xx while the receivers were down" 0 "$(status_count 'status="4')"
fails=$(status_count 'status="50')
[ "$fails" -gt 0 ] && tap_ok "5xx answered while the receivers were down ($fails)" ||
    tap_fail "5xx answered while the receivers were down" "none counted"
start_prometheus r1 "$R1" || tap_bail "receiver 1 did not restart"
start_prometheus r2 "$R2" || tap_bail "receiver 2 did not restart"
R2_PID=$PROM_PID

# 2. kakikomi restarted, then reloaded again and again, under the same load.
kill -TERM "$KK_PID"
wait_gone "$KK_PID" 15 && tap_ok "kakikomi drained and exited on SIGTERM" ||
    tap_fail "kakikomi drained and exited on SIGTERM" "still running after 15 s"
untrack_pid "$KK_PID"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not restart"
for _ in $(seq 25); do kill -HUP "$KK_PID"; sleep 0.2; done
reloads=$(curl -s "http://127.0.0.1:$KM/metrics" | awk '/^kakikomi_config_reload_total\{result="ok"\}/ { print $2 }')
tap_check "25 reloads applied" 25 "$reloads"

# 3. one of the two receivers down: the sender keeps retrying until it is back.
kill "$R2_PID"; wait_gone "$R2_PID"; untrack_pid "$R2_PID"
sleep 5	# the outage itself
start_prometheus r2 "$R2" || tap_bail "receiver 2 did not restart"

t1=$(( $(date +%s) - 3 ))
read -r want got <<<"$(caught_up "$R1" "$t1")"
[ -n "$want" ] && [ "$want" -gt 0 ] || tap_bail "the site's own TSDB holds no samples"
tap_check "receiver 1 holds every sample the site scraped ($want)" "$want" "$got"
read -r want got <<<"$(caught_up "$R2" "$t1")"
tap_check "receiver 2 holds every sample the site scraped ($want)" "$want" "$got"
tap_check "no 4xx answered at all" 0 "$(status_count 'status="4')"
tap_done
