#!/usr/bin/env bash
# The real container image: a private dockerd builds the repository's
# Dockerfile unchanged (on a debian:bookworm-slim made here, tests/docker.sh)
# and the image is run the way deploy/docker-compose.yml runs it (read-only
# root, cap_drop ALL, no-new-privileges, the shipped kakikomi.yml and
# sites.yml).  Proves: --version, --check-config on the shipped files, the
# process's uid / capabilities / no_new_privs, the HEALTHCHECK turning
# healthy (and its message when nothing listens), a remote write with a token
# minted by tests/tools/cfaccess, whose key set the container fetches over
# HTTPS from the host (trusting the stand-in's CA through certs_ca_file),
# stored exactly in a real Prometheus (Debian's package, in a second image),
# and SIGTERM draining an in-flight write and exiting 0.
# Fails, never skips, when the engine cannot start.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../docker.sh"
cd "$T_ROOT" || exit 1
IMG=kakikomi:local			# the tag docker-compose.yml gives it
PIMG=kakikomi-test/prometheus:local
N=kk-image-$$
KKC=$N-kakikomi
PROMC=$N-prometheus
[ -x "$T_BUILD/tools/cfaccess" ] && [ -x "$T_BUILD/tools/rwgen" ] || tap_bail "tools not built (make tools)"

# Containers, volume and network go at exit, before dockerd is stopped.
img_cleanup() {
	dk rm -f "$KKC" "$PROMC" >/dev/null 2>&1
	dk volume rm "$N-state" >/dev/null 2>&1
	dk network rm "$N" >/dev/null 2>&1
	t_cleanup
}
trap img_cleanup EXIT

phase engine
dockerd_start
phase base-image
base_image
phase build
kakikomi_image "$IMG"
prometheus_image "$PIMG"
tap_check "the image runs as the Dockerfile's user" "kakikomi:kakikomi" "$(dk image inspect -f '{{.Config.User}}' "$IMG")"
echo "# image size: $(( $(dk image inspect -f '{{.Size}}' "$IMG") / 1000000 )) MB"

phase one-shot
tap_check "--version in the image is the tree's" "$("$T_BUILD/kakikomi" --version)" \
    "$(dk run --rm --label kakikomi-test "$IMG" --version 2>&1)"
# As deploy/kakikomi.yml's header says: compose's mounts, the default -c.
out=$(dk run --rm --label kakikomi-test --read-only \
    -v "$T_ROOT/deploy/kakikomi.yml:/etc/kakikomi/kakikomi.yml:ro" \
    -v "$T_ROOT/deploy/sites.yml:/etc/kakikomi/sites.yml:ro" "$IMG" --check-config 2>&1)
tap_check "--check-config in the image passes the shipped kakikomi.yml + sites.yml" \
    "0 configuration OK: /etc/kakikomi/kakikomi.yml (2 sites)" "$? $out"

phase start
dk network create --label kakikomi-test "$N" >/dev/null || tap_bail "docker network create failed"
GW=$(dk network inspect -f '{{(index .IPAM.Config 0).Gateway}}' "$N")
[ -n "$GW" ] || tap_bail "no gateway address on network $N"
# The Access stand-in on the host, reached by the container at the bridge's
# gateway address; its certificate names that address.
make_test_ca "$T_TMP/tls" "IP:$GW" || tap_bail "cannot make a test CA"
start_cfaccess "$T_TMP/cfaccess.log" --tls-listen "$GW:0" --tls-cert "$T_TMP/tls/server.pem" \
    --tls-key "$T_TMP/tls/server.key" --key "$T_DATA/access/current-private.pem" ||
    tap_bail "cfaccess serve did not start"
TOKEN=$("$T_BUILD/tools/cfaccess" mint --key "$T_DATA/access/current-private.pem" \
    --team "$T_TEAM" --aud "$T_AUD" --common-name "$T_TOKEN_CN" --ttl 600) || tap_bail "cfaccess mint failed"

printf 'global:\n  scrape_interval: 1h\n' > "$T_TMP/prometheus.yml"
chmod 644 "$T_TMP/prometheus.yml"
dk run -d --name "$PROMC" --label kakikomi-test --network "$N" \
    -v "$T_TMP/prometheus.yml:/etc/prometheus/prometheus.yml:ro" "$PIMG" \
    --config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/prometheus \
    --web.enable-remote-write-receiver >/dev/null || tap_bail "cannot start $PIMG"

# The shipped files; only what points at Cloudflare and the upstream hosts
# changes.  Loki is not started: this test sends metrics only.
cfg=$T_TMP/etc
mkdir -p "$cfg"
sed -e "s|^  # certs_url: .*|  certs_url: https://$CFA_TLS/cdn-cgi/access/certs|" \
    -e "s|^  # certs_ca_file: .*|  certs_ca_file: /etc/kakikomi/ca.pem|" \
    -e "s|\"0\{64\}\"|\"$T_AUD\"|" \
    -e "s|http://prometheus:9090/|http://$PROMC:9090/|" \
    "$T_ROOT/deploy/kakikomi.yml" > "$cfg/kakikomi.yml"
cp "$T_ROOT/deploy/sites.yml" "$T_TMP/tls/ca.pem" "$cfg/"
chmod 644 "$cfg"/*
tap_check "adapted config: key set over HTTPS with the test CA, container Prometheus" \
    "https://$CFA_TLS/cdn-cgi/access/certs /etc/kakikomi/ca.pem http://$PROMC:9090/api/v1/write 0.0.0.0:9464" \
    "$(yq -r '"\(.access.certs_url) \(.access.certs_ca_file) \(.upstreams.metrics[0].url) \(.metrics_listen)"' "$cfg/kakikomi.yml")"

# docker-compose.yml's kakikomi service, by hand; only the health check's
# interval is shortened (its command is the image's).
dk run -d --name "$KKC" --label kakikomi-test --network "$N" \
    --read-only --cap-drop ALL --security-opt no-new-privileges:true --health-interval 1s \
    -v "$cfg/kakikomi.yml:/etc/kakikomi/kakikomi.yml:ro" -v "$cfg/sites.yml:/etc/kakikomi/sites.yml:ro" \
    -v "$cfg/ca.pem:/etc/kakikomi/ca.pem:ro" -v "$N-state:/var/lib/kakikomi" "$IMG" >/dev/null ||
    tap_bail "cannot start $IMG"
tap_check "the HEALTHCHECK turns healthy" healthy "$(wait_health "$KKC" 60)"
KIP=$(dk inspect -f "{{(index .NetworkSettings.Networks \"$N\").IPAddress}}" "$KKC")
PIP=$(dk inspect -f "{{(index .NetworkSettings.Networks \"$N\").IPAddress}}" "$PROMC")
wait_http "http://$KIP:9464/readyz" 30 ||
    tap_bail "kakikomi in the container never became ready: $(dk logs "$KKC" 2>&1 | tail -n 3 | tr '\n' ' ')"
tap_ok "ready: the key set was fetched over HTTPS from the host"
wait_http "http://$PIP:9090/-/ready" 60 || tap_bail "Prometheus in $PIMG never became ready"

phase hardening
st=$(dk exec "$KKC" cat /proc/1/status)
tap_check "pid 1 is kakikomi as uid/gid 10001, no capabilities, no_new_privs" \
    "kakikomi|10001 10001 10001 10001|10001 10001 10001 10001|0000000000000000 0000000000000000 0000000000000000|1" \
    "$(printf '%s\n' "$st" | awk -F'\t' '
	$1 == "Name:" { n = $2 } $1 == "Uid:" { u = $2 "\t" $3 "\t" $4 "\t" $5 }
	$1 == "Gid:" { g = $2 "\t" $3 "\t" $4 "\t" $5 }
	$1 == "CapEff:" { e = $2 } $1 == "CapPrm:" { p = $2 } $1 == "CapBnd:" { b = $2 }
	$1 == "NoNewPrivs:" { nn = $2 }
	END { gsub("\t", " ", u); gsub("\t", " ", g); print n "|" u "|" g "|" e " " p " " b "|" nn }')"
out=$(dk exec "$KKC" sh -c 'echo x > /tmp/x' 2>&1)
tap_contains "the root file system is read-only" "Read-only file system" "$out"
tap_check "the key set cache was written to the state volume" "1" \
    "$(dk exec "$KKC" cat /var/lib/kakikomi/certs.json | jq -r '.keys | length')"
out=$(dk exec "$KKC" kakikomi --healthcheck http://127.0.0.1:9/healthz 2>&1)
tap_check "the HEALTHCHECK's command says when nothing listens" \
    "1 kakikomi: healthcheck: cannot connect to 127.0.0.1:9: Connection refused" "$? $out"

phase write
now_ms=$(( $(date +%s) * 1000 ))
"$T_BUILD/tools/rwgen" --series 2 --samples 1 --ts "$now_ms" --name kk_image_test \
    --label provider=elsewhere --value 7 > "$T_TMP/rw.body"
tap_check "a remote write with a minted token to the container: 204" "204 " \
    "$(rw_post "http://$KIP:8080/api/v1/write" "$T_TMP/rw.body" "$TOKEN")"
# rwgen: series i is kk_image_test{provider="elsewhere",series="i"} = 7+i;
# the shipped sites.yml rewrites tokyo's provider.
pq() { curl -s --max-time 10 "http://$PIP:9090/api/v1/query" --data-urlencode "query=$1" --data-urlencode "time=$2"; }
tap_check "Prometheus stored exactly the rewritten series" \
    '[{"__name__":"kk_image_test","provider":"tokyo","series":"0"},"7"] [{"__name__":"kk_image_test","provider":"tokyo","series":"1"},"8"]' \
    "$(pq '{__name__=~"kk_image_test.*"}' "$((now_ms / 1000))" | jq -c '.data.result | sort_by(.metric.series)[] | [.metric, .value[1]]' | tr '\n' ' ' | sed 's/ $//')"

phase drain
# Hold Prometheus so that a write is in flight when SIGTERM arrives.
dk pause "$PROMC" >/dev/null || tap_bail "docker pause failed"
"$T_BUILD/tools/rwgen" --series 1 --samples 1 --ts "$((now_ms + 1000))" --name kk_image_drain \
    --label provider=tokyo --value 42 > "$T_TMP/rw2.body"
( rw_post "http://$KIP:8080/api/v1/write" "$T_TMP/rw2.body" "$TOKEN" > "$T_TMP/drain.out" ) &
POSTPID=$!
track_pid "$POSTPID"
inflight=""
for _ in $(seq 100); do
	inflight=$(curl -s --max-time 2 "http://$KIP:9464/metrics" | awk '$1 == "kakikomi_inflight_requests" { print $2 }')
	[ "$inflight" = 1 ] && break
	sleep 0.1
done
tap_check "one write in flight behind the paused Prometheus" 1 "$inflight"
dk kill -s TERM "$KKC" >/dev/null
for _ in $(seq 50); do dk logs "$KKC" 2>&1 | grep -q 'draining' && break; sleep 0.1; done
tap_check "still running while draining" true "$(dk inspect -f '{{.State.Running}}' "$KKC")"
dk unpause "$PROMC" >/dev/null
wait "$POSTPID"
untrack_pid "$POSTPID"
tap_check "the in-flight write is answered 204 during the drain" "204 " "$(cat "$T_TMP/drain.out")"
tap_check "the container exits 0 after SIGTERM" 0 "$(timeout 40 "$DOCKER" -H "unix://$DK_SOCK" wait "$KKC")"
tap_check "and Prometheus stored it" '"42"' \
    "$(pq 'kk_image_drain{provider="tokyo"}' "$((now_ms / 1000 + 1))" | jq -c '.data.result[0].value[1]')"
tap_contains "kakikomi logged the drain and its end" "msg=\"stopped\"" "$(dk logs "$KKC" 2>&1 | tail -n 3)"
phase_end
tap_done
