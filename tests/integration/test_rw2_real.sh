#!/usr/bin/env bash
# Remote write 2.0 between real peers: a Prometheus 3.5 sender
# (protobuf_message: io.prometheus.write.v2.Request, Debian sid's 3.5 via
# deps/prometheus3.sh) scrapes itself and writes through the Access stand-in
# and kakikomi (site tokyo, on_mismatch: rewrite; the sender's external label
# is provider="osaka", so every series is rewritten) to
#   1. a fan-out of Prometheus 2.42 (1.0 only) behind protocol: v1 and
#      Prometheus 3.5 (--web.remote-write-receiver.accepted-protobuf-messages
#      with both messages) behind protocol: v2: the 2.42 leg gets the
#      down-converted body, the 3.5 leg the 2.0 body as it came; the sender
#      gets the smaller of the two legs' Written counts (both store all here,
#      so failed_total staying 0 shows the counts covered every batch; a leg
#      writing less is tests/unit/test_upstream.c test_written_minimum,
#      not shown with real peers yet);
#      3.5 answers a 1.0 body without Written headers (write_handler.go
#      ServeHTTP, the RemoteWriteProtoMsgV1 branch) and kakikomi makes a v2
#      leg's 2xx without them a 502, so no 5xx means 3.5 decoded 2.0;
#   2. after a reload, the same 3.5 receiver alone behind protocol: auto: the
#      empty 2.0 probe comes back with Written counts, so 2.0 goes as it is.
# Every raw sample the sender holds for each window is in each receiver,
# series by series, with provider="tokyo"; the sender counts nothing failed,
# dropped or partially written.  How 3.5 judges the answer
# (storage/remote/queue_manager.go, v3.5.3): sendV2SamplesWithBackoff treats a
# 2xx whose Written headers say 0 as a non-recoverable error, and
# updateMetrics adds every sample the headers do not cover to
# prometheus_remote_storage_{samples,histograms,exemplars}_failed_total and
# logs "we got 2xx status code from the Receiver yet statistics indicate some
# data was not written" -- so failed_total is the sender's partial-write meter.
. "$(dirname "$0")/../lib.sh"

P3=$(prometheus3_bin) || tap_bail "deps/prometheus3.sh could not provide Prometheus 3.5"
R2=$(free_port); R3=$(free_port); SITE=$(free_port); KK=$(free_port); KM=$(free_port)
receiver_config "$T_TMP/receiver.yml"
# Native histograms on every peer: the sender scrapes its own (protobuf
# scrape), 2.42 refuses them via remote write without the flag
# (tsdb/head_append.go AppendHistogram: ErrNativeHistogramsDisabled).
NH=--enable-feature=native-histograms
start_prometheus_with r2 "$R2" "$T_TMP/receiver.yml" "$(command -v prometheus)" "$NH" ||
    tap_bail "Prometheus 2.42 receiver did not start"
# 3.5 takes 1.0 only unless told (cmd/prometheus/main.go, the flag's default).
start_prometheus_with r3 "$R3" "$T_TMP/receiver.yml" "$P3" "$NH" \
    --web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest \
    --web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request ||
    tap_bail "Prometheus 3.5 receiver did not start"
tap_contains "receiver r3 is Prometheus 3.5" '"version":"3.5.' \
    "$(curl -s "http://127.0.0.1:$R3/api/v1/status/buildinfo")"
start_access_edge "$KK" || tap_bail "cfaccess did not start"
write_config "$T_TMP/kk" "$KK" "$KM" \
    "http://127.0.0.1:$R2/api/v1/write http://127.0.0.1:$R3/api/v1/write" ""
use_edge_keys "$T_TMP/kk/kakikomi.yml"
sed -i -e "s|\(:$R2/api/v1/write\", timeout: 2s\)|\1, protocol: v1|" \
    -e "s|\(:$R3/api/v1/write\", timeout: 2s\)|\1, protocol: v2|" "$T_TMP/kk/kakikomi.yml"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$KM" || tap_bail "kakikomi did not start"

t0=$(date +%s)
rw2_site_config "$T_TMP/site.yml" "$SITE" osaka
start_prometheus_with site "$SITE" "$T_TMP/site.yml" "$P3" "$NH" ||
    tap_bail "Prometheus 3.5 sender did not start"

# wait_writes N: until kakikomi has answered N more 204s than now.
wait_writes() {
	local want=$(( $(kk_status_count "$KM" 'status="204"') + $1 )) deadline=$((SECONDS + 60))
	until [ "$(kk_status_count "$KM" 'status="204"')" -ge "$want" ]; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}
# same_in RECEIVER_PORT T0 T1 WHAT: every raw sample the sender holds in
# (T0, T1] is in the receiver, series by series, as provider="tokyo".
same_in() {
	if wait_same_series "127.0.0.1:$SITE" "127.0.0.1:$1" "$2" "$3" 60; then
		tap_ok "$4 holds every sample of the window ($(sum_samples < "$T_TMP/series.want") in $(wc -l < "$T_TMP/series.want") series)"
	else
		tap_fail "$4 holds every sample of the window" "$(head -n 6 "$T_TMP/series.diff")"
	fi
}
only_tokyo() {
	tap_check "$2 stores only provider=\"tokyo\" (rewritten from osaka)" 0 \
	    "$(prom_query "$1" 'count({__name__=~".+",provider!="tokyo"}) or vector(0)' | jq -r '.data.result[0].value[1]')"
}
sender_clean() {
	tap_check "$1: sender counts nothing failed or dropped" 0 "$(sender_lost "127.0.0.1:$SITE")"
	tap_check "$1: no histogram or exemplar failed either" 0 \
	    "$(prom_counter "127.0.0.1:$SITE" '^prometheus_remote_storage_(histograms|exemplars)_failed_total')"
	tap_check "$1: sender logged no partial write and no non-recoverable error" "" \
	    "$(grep -E 'statistics indicate|non-recoverable|assumining failure' "$T_TMP/site.log" | head -n 2)"
}

# --- 1. fan-out: 2.42 behind v1, 3.5 behind v2 ---------------------------------
wait_writes 1 || tap_bail "no write arrived through the chain"
tap_contains "the sender is configured for 2.0" 'protobuf_message: io.prometheus.write.v2.Request' \
    "$(curl -s "http://127.0.0.1:$SITE/api/v1/status/config" | jq -r .data.yaml)"
wait_writes 8 || tap_bail "writes stopped"
t1=$(( $(date +%s) - 2 ))
same_in "$R2" "$t0" "$t1" "2.42 (protocol: v1, down-converted)"
same_in "$R3" "$t0" "$t1" "3.5 (protocol: v2, 2.0 as it came)"
only_tokyo "$R2" "2.42"
only_tokyo "$R3" "3.5"
sender_clean "fan-out"
tap_check "no 4xx or 5xx answered in the fan-out" 0 "$(kk_status_count "$KM" 'status="[45]')"
tap_check "nothing dropped in the down-conversion" "" \
    "$(curl -s "http://127.0.0.1:$KM/metrics" | grep '^kakikomi_rw2_downconvert_dropped_total')"

# sent_matches RECEIVER_PORT...: polls until the sender's counters of what it
# sent (samples, histograms, exemplars; minus resends) equal what each
# receiver appended (the receivers scrape nothing: their head holds only what
# came by remote write).  Prints the last "sender receivers..." figures.
sent_matches() {
	local deadline=$((SECONDS + 30)) kind sent got line ok
	while :; do
		ok=1 line=""
		for kind in samples:float histograms:histogram exemplars:; do
			sent=$(( $(prom_counter "127.0.0.1:$SITE" "^prometheus_remote_storage_${kind%:*}_total") -
			    $(prom_counter "127.0.0.1:$SITE" "^prometheus_remote_storage_${kind%:*}_retried_total") ))
			line="$line ${kind%:*} $sent:"
			for r in "$@"; do
				if [ -n "${kind#*:}" ]; then
					got=$(prom_counter "127.0.0.1:$r" "^prometheus_tsdb_head_samples_appended_total[{].*type=\"${kind#*:}\"")
				else
					got=$(prom_counter "127.0.0.1:$r" '^prometheus_tsdb_exemplar_exemplars_appended_total')
				fi
				line="$line $got"
				[ "$got" = "$sent" ] || ok=0
			done
		done
		[ "$ok" = 1 ] && { echo "$line"; return 0; }
		[ "$SECONDS" -lt "$deadline" ] || { echo "$line"; return 1; }
		sleep 0.3
	done
}
if figures=$(sent_matches "$R2" "$R3"); then
	tap_ok "sender's sent counters equal what both receivers appended ($figures)"
else
	tap_fail "sender's sent counters equal what both receivers appended" "$figures"
fi
h=$(prom_counter "127.0.0.1:$SITE" '^prometheus_remote_storage_histograms_total')
if [ "$h" -gt 0 ]; then tap_ok "native histograms went through both legs ($h)"
else tap_fail "native histograms went through both legs" "the sender sent none"; fi

# --- 2. the same 3.5 receiver alone behind protocol: auto ------------------------
write_config "$T_TMP/kk" "$KK" "$KM" "http://127.0.0.1:$R3/api/v1/write" ""
use_edge_keys "$T_TMP/kk/kakikomi.yml"
sed -i "s|\(:$R3/api/v1/write\", timeout: 2s\)|\1, protocol: auto|" "$T_TMP/kk/kakikomi.yml"
kill -HUP "$KK_PID"
wait_metric "$KM" 'kakikomi_config_reload_total{result="ok"}' 1 ||
    tap_bail "kakikomi did not reload to protocol: auto"
deadline=$((SECONDS + 30))
until grep -q "upstream http://127.0.0.1:$R3/api/v1/write (protocol: auto) answered" "$T_TMP/kakikomi.log"; do
	[ "$SECONDS" -lt "$deadline" ] || break
	sleep 0.1
done
tap_contains "auto: the empty 2.0 probe proved 3.5 reads 2.0" \
    "(protocol: auto) answered an empty remote write 2.0 request 204 with Written counts: sending it 2.0 as it comes" \
    "$(grep "upstream http://127.0.0.1:$R3/api/v1/write (protocol: auto)" "$T_TMP/kakikomi.log" | head -n 1)"
wait_writes 8 || tap_bail "writes stopped under protocol: auto"
t2=$(( $(date +%s) - 2 ))
same_in "$R3" "$t0" "$t2" "auto: 3.5 (both phases)"
only_tokyo "$R3" "auto: 3.5"
sender_clean "auto"
tap_check "no 4xx or 5xx answered under auto" 0 "$(kk_status_count "$KM" 'status="[45]')"
tap_check "no upstream judged misconfigured (every 2.0 leg answered with Written counts)" "" \
    "$(curl -s "http://127.0.0.1:$KM/metrics" | grep '^kakikomi_upstream_misconfigured_total')"
if figures=$(sent_matches "$R3"); then
	tap_ok "auto: sender's sent counters equal what 3.5 appended ($figures)"
else
	tap_fail "auto: sender's sent counters equal what 3.5 appended" "$figures"
fi
tap_done
