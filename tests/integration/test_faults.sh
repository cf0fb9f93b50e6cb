#!/usr/bin/env bash
# Faults across a real network, nothing lost.  A real site Prometheus
# remote-writes through the Access stand-in and kakikomi into two real
# receivers: r1 through tests/tools/faultproxy, r2 in its own network
# namespace over a veth pair.  Everything runs in two namespaces this test
# creates (kk-fa-PID: sender, edge, kakikomi, proxy, r1; kk-fb-PID: r2,
# 10.231.13.0/30) and deletes at exit; partitions are nftables rules in a
# table of the test's own inside kk-fa.  Faults, one after the other:
#   300 ms latency each way on r1, a stall mid-body past the upstream timeout,
#   a 20 s partition dropping kakikomi -> r2, then 5 s each dropping r2 ->
#   kakikomi and rejecting (RST) each way, r2 frozen with SIGSTOP past the
#   upstream timeout, resets after half the request body, truncated answers,
#   and kakikomi killed with SIGKILL while the sender catches up, restarted.
# Then: every raw sample the sender holds for the window is in both receivers
# (series by series, exactly), the sender counts no failed or dropped sample,
# and kakikomi's RSS and descriptors are back near their baseline.
# The receivers keep deploy/prometheus/prometheus.yml's out_of_order_time_window:
# a SIGKILL forgets which receiver already stored a batch (gateway/acked.h),
# and the resend it causes is then accepted (see test_replicas.sh).
. "$(dirname "$0")/../lib.sh"

NA=kk-fa-$$ NB=kk-fb-$$ VA=kkfa$$ VB=kkfb$$
R2_ADDR=10.231.13.2
if [ "${1:-}" != inner ]; then
	[ "$(id -u)" -eq 0 ] && command -v nft >/dev/null && command -v jq >/dev/null || {
		echo "ok 1 - faults # SKIP needs root, nft and jq"; echo "1..1"; exit 0; }
	netns_add "$NA" && netns_add "$NB" &&
	    netns_link "$NA" "$VA" 10.231.13.1/30 "$NB" "$VB" "$R2_ADDR/30" ||
	    tap_bail "cannot create the test namespaces"
	ip netns exec "$NA" bash "$0" inner "$NA" "$NB" "$VA"
	exit $?
fi
NA=$2 NB=$3 VA=$4

R1=$(free_port); PX=$(free_port); R2=$(free_port); SITE=$(free_port)
KK=$(free_port); KM=$(free_port)
receiver_config "$T_TMP/receiver.yml"
start_prometheus_at r1 127.0.0.1 "$R1" "$T_TMP/receiver.yml" || tap_bail "r1 did not start"
start_prometheus_at r2 "$R2_ADDR" "$R2" "$T_TMP/receiver.yml" ip netns exec "$NB" ||
    tap_bail "r2 did not start in $NB"
R2_PID=$PROM_PID
echo pass > "$T_TMP/fault"
"$T_BUILD/tools/faultproxy" --listen "127.0.0.1:$PX" --upstream "127.0.0.1:$R1" \
    --control "$T_TMP/fault" 2>"$T_TMP/faultproxy.log" &
FP_PID=$!
track_pid "$FP_PID"
wait_port "$PX" 10 || tap_bail "faultproxy did not start"
start_access_edge "$KK" || tap_bail "cfaccess did not start"
write_config "$T_TMP/kk" "$KK" "$KM" \
    "http://127.0.0.1:$PX/api/v1/write http://$R2_ADDR:$R2/api/v1/write" ""
use_edge_keys "$T_TMP/kk/kakikomi.yml"
sed -i 's/log_level: debug/log_level: info/' "$T_TMP/kk/kakikomi.yml"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"
site_prometheus_config "$T_TMP/site.yml" "$SITE" 1s
start_prometheus site "$SITE" "$T_TMP/site.yml" || tap_bail "site Prometheus did not start"
S=127.0.0.1:$SITE

deadline=$((SECONDS + 60))
until [ "$(kk_status_count "$KM" 'status="204"')" -gt 3 ]; do
	[ "$SECONDS" -lt "$deadline" ] || tap_bail "no write arrived through the chain"
	sleep 0.2
done
t0=$(date +%s)
# baseline once the pools and caches are warm: a few more seconds of writes
n=$(kk_status_count "$KM" 'status="204"')
until [ "$(kk_status_count "$KM" 'status="204"')" -gt $((n + 5)) ]; do sleep 0.2; done
rss0=$(proc_rss_kb "$KK_PID"); fds0=$(proc_fds "$KK_PID")

PHASES=""
# phase NAME: marks where a fault begins (its samples are counted per phase).
phase() { PHASES="$PHASES $1:$(date +%s)"; echo "# $(date +%T) $1"; }
# fault MODE...: switches the proxy and waits until it applied the mode.
fault() {
	local gen
	gen=$(grep -c '^faultproxy mode' "$T_TMP/faultproxy.log")
	echo "$*" > "$T_TMP/fault"
	kill -HUP "$FP_PID"
	until [ "$(grep -c '^faultproxy mode' "$T_TMP/faultproxy.log")" -gt "$gen" ]; do sleep 0.05; done
}
# partition HOOK VERDICT SECONDS: an nftables rule in kk-fa on the veth end
# (output: kakikomi -> r2, input: r2 -> kakikomi) for SECONDS, then healed.
partition() {
	local dir=oifname
	[ "$1" = input ] && dir=iifname
	nft add table inet kk_faults &&
	nft add chain inet kk_faults "$1" "{ type filter hook $1 priority 0; }" &&
	nft add rule inet kk_faults "$1" "$dir" "$VA" $2 ||
	    { tap_fail "partition $1 $2" "nft refused the rule"; return; }
	# the partition itself: its length is the point.  Writes in flight
	# when it began end within the 2 s upstream timeout; count after them.
	sleep 3
	ok=$(kk_status_count "$KM" 'status="2')
	sleep $(( $3 - 3 ))
	tap_check "no 2xx while r2 was cut off ($1 $2, $3 s)" "$ok" \
	    "$(kk_status_count "$KM" 'status="2')"
	nft delete table inet kk_faults
}

phase latency;	fault latency 300;	sleep 10
phase stall;	fault stall 20000 3000;	sleep 8
fault pass
phase drop-out;	partition output drop 20
phase drop-in;	partition input drop 5
phase reject-out; partition output "reject with tcp reset" 5
phase reject-in; partition input reject 5
phase sigstop
kill -STOP "$R2_PID"
sleep 6	# past the 2 s upstream timeout
kill -CONT "$R2_PID"
phase reset;	fault reset;	sleep 6
phase truncate;	fault truncate 40;	sleep 5
fault pass
tap_check "no 4xx answered through the faults" 0 "$(kk_status_count "$KM" 'status="4')"
n5=$(kk_status_count "$KM" 'status="5')
[ "$n5" -gt 0 ] && tap_ok "5xx answered while a receiver was unreachable ($n5)" ||
    tap_fail "5xx answered while a receiver was unreachable" "none counted"

# the same process once it has caught up: back to its baseline
tm=$(( $(date +%s) - 2 ))
wait_same_series "$S" "127.0.0.1:$R1" "$t0" "$tm" 120 ||
    tap_fail "r1 caught up after the faults" "$(head -c 600 "$T_TMP/series.diff")"
wait_same_series "$S" "$R2_ADDR:$R2" "$t0" "$tm" 60 ||
    tap_fail "r2 caught up after the faults" "$(head -c 600 "$T_TMP/series.diff")"
rss1=$(proc_rss_kb "$KK_PID"); fds1=$(proc_fds "$KK_PID")
echo "# kakikomi before faults: rss ${rss0} kB, ${fds0} fds; after: rss ${rss1} kB, ${fds1} fds"
[ "$rss1" -le $((rss0 + rss0 / 2 + 8192)) ] && tap_ok "RSS back near its baseline (${rss0} -> ${rss1} kB)" ||
    tap_fail "RSS back near its baseline" "${rss0} -> ${rss1} kB"
# keep-alive pools may hold a few more upstream connections than at baseline
[ "$fds1" -le $((fds0 + 8)) ] && tap_ok "descriptors back near their baseline (${fds0} -> ${fds1})" ||
    tap_fail "descriptors back near their baseline" "${fds0} -> ${fds1}"

echo "# first kakikomi's answers: $(curl -s "http://127.0.0.1:$KM/metrics" |
    awk '$1 ~ /^kakikomi_requests_total/ { gsub(/.*status="|"}/, "", $1); printf "%s x %s  ", $1, $2 }')"

# SIGKILL under load: the sender has a backlog from a short partition
phase sigkill
partition output drop 5
n=$(kk_status_count "$KM" 'status="204"')
until [ "$(kk_status_count "$KM" 'status="204"')" -gt "$n" ]; do sleep 0.05; done
kill -KILL "$KK_PID"; wait_gone "$KK_PID" 5; untrack_pid "$KK_PID"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not restart"
phase end
t1=$(( $(date +%s) - 2 ))
wait_same_series "$S" "127.0.0.1:$R1" "$t0" "$t1" 120 &&
    tap_ok "r1 holds every sample the sender holds, series by series ($(sum_samples < "$T_TMP/series.want"))" ||
    tap_fail "r1 holds every sample the sender holds" "$(head -c 600 "$T_TMP/series.diff")"
wait_same_series "$S" "$R2_ADDR:$R2" "$t0" "$t1" 60 &&
    tap_ok "r2 holds every sample the sender holds, series by series ($(sum_samples < "$T_TMP/series.want"))" ||
    tap_fail "r2 holds every sample the sender holds" "$(head -c 600 "$T_TMP/series.diff")"
tap_check "the sender counts no failed or dropped sample" 0 "$(sender_lost "$S")"
rss2=$(proc_rss_kb "$KK_PID"); fds2=$(proc_fds "$KK_PID")
echo "# kakikomi restarted after SIGKILL: rss ${rss2} kB, ${fds2} fds"
[ "$rss2" -le $((rss0 + rss0 / 2 + 8192)) ] && [ "$fds2" -le $((fds0 + 8)) ] &&
    tap_ok "restarted kakikomi within the first one's baseline" ||
    tap_fail "restarted kakikomi within the first one's baseline" "rss $rss2 kB fds $fds2"

# figures: samples the sender holds vs each receiver, per fault
set -- $PHASES
echo "# phase        sent     r1       r2"
while [ $# -gt 1 ]; do
	a=${1#*:} b=${2#*:}
	[ "$b" -gt "$t1" ] && b=$t1
	[ "$b" -gt "$a" ] || { shift; continue; }
	printf '# %-12s %-8s %-8s %s\n' "${1%%:*}" \
	    "$(series_samples "$S" "$a" "$b" | sum_samples)" \
	    "$(series_samples "127.0.0.1:$R1" "$a" "$b" ',provider="tokyo"' | sum_samples)" \
	    "$(series_samples "$R2_ADDR:$R2" "$a" "$b" ',provider="tokyo"' | sum_samples)"
	shift
done
tap_done
