#!/usr/bin/env bash
# make soak: kakikomi under churn for SOAK_SECONDS (600).  Three real site
# Prometheus instances (sites tokyo, nagoya, sapporo) remote-write through
# the Access stand-in and kakikomi into two real receivers (the storage
# settings of deploy/prometheus/prometheus.yml) while kakikomi is reloaded
# (SIGHUP) every SOAK_RELOAD seconds (3), one receiver is restarted every
# SOAK_RESTART seconds (60, alternating), and a fourth site, osaka, posts
# hostile bodies (tests/tools/hostile) every SOAK_HOSTILE seconds (2).
# Prints RSS, descriptors and answers every SOAK_REPORT seconds (15), then,
# per sender and receiver, the samples sent vs stored (series by series:
# they must be equal), and ends "N passed, N failed".  Not part of make test.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh

DUR=${SOAK_SECONDS:-600}
RELOAD=${SOAK_RELOAD:-3}
RESTART=${SOAK_RESTART:-60}
HOSTILE=${SOAK_HOSTILE:-2}
REPORT=${SOAK_REPORT:-15}
SITES="tokyo nagoya sapporo"
command -v jq >/dev/null || { echo "soak: needs jq"; exit 1; }

R1=$(free_port); R2=$(free_port); KK=$(free_port); KM=$(free_port)
receiver_config "$T_TMP/receiver.yml"
start_prometheus_at r1 127.0.0.1 "$R1" "$T_TMP/receiver.yml" || tap_bail "r1 did not start"
P_r1=$PROM_PID
start_prometheus_at r2 127.0.0.1 "$R2" "$T_TMP/receiver.yml" || tap_bail "r2 did not start"
P_r2=$PROM_PID

# tokyo is the testdata token; the others get client ids of their own
secret() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }
declare -A CN SECRET
extra=""
for s in nagoya sapporo osaka; do
	CN[$s]=$s-soak.access SECRET[$s]=$(secret)
	extra="$extra${CN[$s]} ${SECRET[$s]}"$'\n'
done
start_access_edge "$KK" "${extra%$'\n'}" || tap_bail "cfaccess did not start"
CN[tokyo]=$T_TOKEN_CN SECRET[tokyo]=$T_SECRET
sites="label: provider
sites:"
for s in $SITES osaka; do
	sites="$sites
  $s:
    tokens: [ \"${CN[$s]}\" ]
    provider: [ $s ]
    on_mismatch: rewrite
    signals: [ metrics ]"
done
write_config "$T_TMP/kk" "$KK" "$KM" \
    "http://127.0.0.1:$R1/api/v1/write http://127.0.0.1:$R2/api/v1/write" "" "$sites"
use_edge_keys "$T_TMP/kk/kakikomi.yml"
sed -i 's/log_level: debug/log_level: warn/' "$T_TMP/kk/kakikomi.yml"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"

declare -A SPORT
for s in $SITES; do
	SPORT[$s]=$(free_port)
	site_prometheus_config "$T_TMP/site-$s.yml" "${SPORT[$s]}" 1s "$s" "${CN[$s]}" "${SECRET[$s]}"
	start_prometheus "site-$s" "${SPORT[$s]}" "$T_TMP/site-$s.yml" ||
	    tap_bail "site Prometheus $s did not start"
done

H=$T_BUILD/tools/hostile
KINDS="rw1-empty-labels rw1-tiny-series rw2-symbols"
for k in $KINDS; do "$H" "$k" $((4 << 20)) > "$T_TMP/hostile-$k" || tap_bail "hostile $k"; done
hostile_post() {
	local ct=application/x-protobuf v=0.1.0
	[ "$1" = rw2-symbols ] && ct="$ct;proto=io.prometheus.write.v2.Request" v=2.0.0
	curl -s --max-time 30 -o /dev/null -w '%{http_code}' -u "${CN[osaka]}:${SECRET[osaka]}" \
	    -H "Content-Type: $ct" -H 'Content-Encoding: snappy' \
	    -H "X-Prometheus-Remote-Write-Version: $v" \
	    --data-binary "@$T_TMP/hostile-$1" "http://$CFA_EDGE/api/v1/write"
}

deadline=$((SECONDS + 60))
until [ "$(kk_status_count "$KM" 'status="204"')" -ge 9 ]; do
	[ "$SECONDS" -lt "$deadline" ] || tap_bail "no writes arrived through the chain"
	sleep 0.2
done
t0=$(date +%s)
rss0=$(proc_rss_kb "$KK_PID"); fds0=$(proc_fds "$KK_PID")
echo "# soak ${DUR}s: reload every ${RELOAD}s, a receiver restarted every ${RESTART}s, hostile every ${HOSTILE}s"
echo "# t(s)  rss(kB) fds  204     5xx    4xx    reloads"
report() {
	printf '# %-5s %-7s %-4s %-7s %-6s %-6s %s\n' "$(( $(date +%s) - t0 ))" \
	    "$(proc_rss_kb "$KK_PID")" "$(proc_fds "$KK_PID")" \
	    "$(kk_status_count "$KM" 'status="204"')" "$(kk_status_count "$KM" 'status="5')" \
	    "$(kk_status_count "$KM" 'status="4')" \
	    "$(curl -s "http://127.0.0.1:$KM/metrics" | awk '/^kakikomi_config_reload_total\{result="ok"\}/ { print $2 }')"
}
report

declare -A HOSTILE_SEEN
next_reload=$RELOAD next_restart=$RESTART next_hostile=$HOSTILE next_report=$REPORT
restarts=0 reloads=0 hi=0 victim=r1
while :; do
	now=$(( $(date +%s) - t0 ))
	[ "$now" -lt "$DUR" ] || break
	if [ "$now" -ge "$next_reload" ]; then
		kill -HUP "$KK_PID"; reloads=$((reloads + 1)); next_reload=$((now + RELOAD))
	fi
	if [ "$now" -ge "$next_hostile" ]; then
		set -- $KINDS; shift $((hi % $#)); k=$1; hi=$((hi + 1))
		c=$(hostile_post "$k")
		HOSTILE_SEEN[$k]="${HOSTILE_SEEN[$k]:-} $c"
		next_hostile=$(( $(date +%s) - t0 + HOSTILE ))
	fi
	if [ "$now" -ge "$next_restart" ]; then
		pid_var=P_$victim port_var=R${victim#r}
		kill "${!pid_var}"; wait_gone "${!pid_var}" 30; untrack_pid "${!pid_var}"
		start_prometheus_at "$victim" 127.0.0.1 "${!port_var}" "$T_TMP/receiver.yml" ||
		    tap_bail "$victim did not restart"
		printf -v "$pid_var" %s "$PROM_PID"
		restarts=$((restarts + 1))
		[ "$victim" = r1 ] && victim=r2 || victim=r1
		next_restart=$(( $(date +%s) - t0 + RESTART ))
	fi
	if [ "$now" -ge "$next_report" ]; then report; next_report=$((now + REPORT)); fi
	kill -0 "$KK_PID" 2>/dev/null || tap_bail "kakikomi died"
	sleep 0.2
done
t1=$(( $(date +%s) - 2 ))
report
echo "# $reloads reloads sent, $restarts receiver restarts, $hi hostile bodies"

tap_check "every reload applied" "$reloads" \
    "$(curl -s "http://127.0.0.1:$KM/metrics" | awk '/^kakikomi_config_reload_total\{result="ok"\}/ { print $2 }')"
for k in $KINDS; do
	codes=$(printf '%s\n' ${HOSTILE_SEEN[$k]:-} | sort | uniq -c | awk '{ printf "%s x %s ", $2, $1 }')
	# a 5xx is fair while a receiver restarts; no answer at all is not
	case " ${HOSTILE_SEEN[$k]:-} " in
	*" 000 "*|"  ") tap_fail "hostile $k answered every time" "$codes" ;;
	*) tap_ok "hostile $k answered every time ($codes)" ;;
	esac
done
echo "# sender     receiver  sent     stored"
for s in $SITES; do
	for r in "r1 $R1" "r2 $R2"; do
		set -- $r
		if wait_same_series "127.0.0.1:${SPORT[$s]}" "127.0.0.1:$2" "$t0" "$t1" 120 "$s"; then
			tap_ok "$s -> $1: every sample, series by series"
		else
			tap_fail "$s -> $1: every sample" "$(head -c 400 "$T_TMP/series.diff")"
		fi
		printf '# %-10s %-9s %-8s %s\n' "$s" "$1" "$(sum_samples < "$T_TMP/series.want")" \
		    "$(sum_samples < "$T_TMP/series.got")"
	done
	tap_check "$s: the sender counts no failed or dropped sample" 0 \
	    "$(sender_lost "127.0.0.1:${SPORT[$s]}")"
done
rss1=$(proc_rss_kb "$KK_PID"); fds1=$(proc_fds "$KK_PID")
echo "# kakikomi at start: rss $rss0 kB, $fds0 fds; at the end: rss $rss1 kB, $fds1 fds"
[ "$rss1" -le $((rss0 * 2 + 16384)) ] && tap_ok "RSS bounded ($rss0 -> $rss1 kB)" ||
    tap_fail "RSS bounded" "$rss0 -> $rss1 kB"
[ "$fds1" -le $((fds0 + 16)) ] && tap_ok "descriptors bounded ($fds0 -> $fds1)" ||
    tap_fail "descriptors bounded" "$fds0 -> $fds1"
tap_done
echo "$((T_N - T_FAILED)) passed, $T_FAILED failed"
[ "$T_FAILED" -eq 0 ]
