#!/usr/bin/env bash
# The shipped stack: `docker-compose --env-file .env.example config` resolves
# deploy/docker-compose.yml; nothing but Grafana's loopback port would be
# published; then `up` of the services whose images can exist without a
# registry — kakikomi (built by compose from the Dockerfile) and Prometheus
# (PROMETHEUS_IMAGE = Debian's prometheus in an image built here) — proves that
# kakikomi writes into Prometheus over the internal `backend` network and that
# the shipped prometheus.yml scrapes kakikomi and loads the shipped alerts;
# `down -v` leaves no container, network or volume.  cloudflared, Loki and
# Grafana cannot be pulled here: the output names them.
# Fails, never skips, when the engine cannot start.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../docker.sh"
cd "$T_ROOT/deploy" || exit 1
command -v docker-compose >/dev/null || tap_bail "docker-compose is not installed (sh deps/install.sh test)"
[ -x "$T_BUILD/tools/cfaccess" ] && [ -x "$T_BUILD/tools/rwgen" ] || tap_bail "tools not built (make tools)"
P=kkcompose$$
export PROMETHEUS_IMAGE=kakikomi-test/prometheus:local
RUN="kakikomi prometheus"
dc() { docker-compose -p "$P" --env-file .env.example -f docker-compose.yml -f "$T_TMP/test.yml" "$@"; }

phase config
if docker-compose --env-file .env.example config > "$T_TMP/config.yml" 2>"$T_TMP/config.err"; then
	tap_ok "docker-compose --env-file .env.example config"
else
	tap_bail "docker-compose --env-file .env.example config: $(head -n 3 "$T_TMP/config.err" | tr '\n' ' ')"
fi
yq . "$T_TMP/config.yml" > "$T_TMP/config.json"
tap_check "published ports: only Grafana's, on 127.0.0.1" "grafana 127.0.0.1:3000:3000/tcp" \
    "$(jq -r '.services | to_entries[] | select(.value.ports) | "\(.key) \(.value.ports | map(if type == "string" then . else "\(.host_ip):\(.published):\(.target)/\(.protocol)" end) | join(","))"' "$T_TMP/config.json")"
tap_check "no service uses the host's network or expose" "" \
    "$(jq -r '.services | to_entries[] | select(.value.network_mode or .value.expose) | .key' "$T_TMP/config.json" | tr '\n' ' ')"
skipped=$(jq -r --arg run "$RUN" '.services | to_entries[] | select(.key as $k | $run | split(" ") | index($k) | not) | "\(.key) (\(.value.image))"' "$T_TMP/config.json" | tr '\n' ' ')
T_N=$((T_N + 1))
echo "ok $T_N - up of the other services # SKIP no registry to pull their images from: $skipped"

phase engine
dockerd_start
trap 'dc down -v --remove-orphans >/dev/null 2>&1; t_cleanup' EXIT
phase base-image
base_image
prometheus_image "$PROMETHEUS_IMAGE"

# Test-only: the key set comes from a file (test_image.sh fetches it over
# HTTPS), the audience is the test tokens' and the health check runs every
# second instead of every 30; everything else is shipped.
sed -e "s|^  # certs_url: .*|  certs_url: file:///etc/kakikomi/certs.json|" \
    -e "s|\"0\{64\}\"|\"$T_AUD\"|" kakikomi.yml > "$T_TMP/kakikomi.yml"
cp "$T_DATA/access/certs.json" "$T_TMP/certs.json"
chmod 644 "$T_TMP/kakikomi.yml" "$T_TMP/certs.json"
cat > "$T_TMP/test.yml" <<EOF
services:
  kakikomi:
    volumes:
      - $T_TMP/kakikomi.yml:/etc/kakikomi/kakikomi.yml:ro
      - $T_TMP/certs.json:/etc/kakikomi/certs.json:ro
    healthcheck: { interval: 1s }
EOF

phase build
dc build kakikomi >"$T_TMP/compose-build.log" 2>&1 ||
    tap_bail "docker-compose build kakikomi: $(tail -n 5 "$T_TMP/compose-build.log" | tr '\n' ' ')"
tap_ok "docker-compose build kakikomi (the Dockerfile)"

phase up
# --no-deps: kakikomi's depends_on names loki, whose image cannot be pulled.
dc up -d --no-deps $RUN >"$T_TMP/compose-up.log" 2>&1 ||
    tap_bail "docker-compose up: $(tail -n 5 "$T_TMP/compose-up.log" | tr '\n' ' ')"
tap_ok "docker-compose up -d --no-deps $RUN"
KKC=$(dc ps -q kakikomi)
PROMC=$(dc ps -q prometheus)
nets() { dk inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$1"; }
tap_check "networks: kakikomi on backend and egress, prometheus on backend only" \
    "${P}_backend ${P}_egress |${P}_backend " "$(nets "$KKC")|$(nets "$PROMC")"
tap_check "backend is internal" true "$(dk network inspect -f '{{.Internal}}' "${P}_backend")"
tap_check "nothing is published by the running containers" "{} {}" \
    "$(dk inspect -f '{{json .NetworkSettings.Ports}}' "$KKC" | jq -c 'with_entries(select(.value != null))') $(dk inspect -f '{{json .NetworkSettings.Ports}}' "$PROMC" | jq -c 'with_entries(select(.value != null))')"
tap_check "kakikomi runs read-only, cap_drop ALL, no-new-privileges" "true [ALL] [no-new-privileges:true]" \
    "$(dk inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}' "$KKC")"

KIP=$(dk inspect -f "{{(index .NetworkSettings.Networks \"${P}_egress\").IPAddress}}" "$KKC")
wait_http "http://$KIP:9464/readyz" 60 ||
    tap_bail "kakikomi never became ready: $(dc logs --no-color kakikomi 2>&1 | tail -n 3 | tr '\n' ' ')"
tap_check "kakikomi turns healthy" healthy "$(wait_health "$KKC" 60)"

phase write
# Prometheus has no address outside `backend`, and the image has no curl:
# ask it with its own promtool.
pq() { dk exec "$PROMC" promtool query instant http://localhost:9090 "$1" 2>&1; }
for _ in $(seq 100); do
	[ "$(dk exec "$PROMC" promtool query instant http://localhost:9090 'vector(1)' 2>/dev/null)" != "" ] && break
	sleep 0.2
done
TOKEN=$("$T_BUILD/tools/cfaccess" mint --key "$T_DATA/access/current-private.pem" \
    --team "$T_TEAM" --aud "$T_AUD" --common-name "$T_TOKEN_CN" --ttl 600) || tap_bail "cfaccess mint failed"
"$T_BUILD/tools/rwgen" --series 1 --samples 1 --ts "$(( $(date +%s) * 1000 ))" \
    --name kk_compose_test --label provider=tokyo --value 5 > "$T_TMP/rw.body"
tap_check "a write to kakikomi is accepted (204: Prometheus answered over backend)" "204 " \
    "$(rw_post "http://$KIP:8080/api/v1/write" "$T_TMP/rw.body" "$TOKEN")"
tap_check "Prometheus stored it" 'kk_compose_test{provider="tokyo", series="0"} => 5' \
    "$(pq 'kk_compose_test' | sed 's/ @\[.*//')"
# The shipped prometheus.yml: scrapes kakikomi:9464 (15s interval) and
# loads the shipped rules.
up=""
for _ in $(seq 150); do
	up=$(pq 'up{job="kakikomi"}' | sed 's/ @\[.*//')
	case "$up" in *'=> 1') break ;; esac
	sleep 0.2
done
tap_check "the shipped prometheus.yml scrapes kakikomi over backend" 'up{instance="kakikomi:9464", job="kakikomi"} => 1' "$up"
nrules=""
for _ in $(seq 150); do
	nrules=$(pq 'sum(prometheus_rule_group_rules{rule_group=~"/etc/prometheus/rules/kakikomi.yml;.*"})' | sed 's/ @\[.*//')
	[ -n "$nrules" ] && break
	sleep 0.2
done
tap_check "Prometheus loaded the shipped rules (rules/kakikomi.yml: 8)" "{} => $(yq '[.groups[].rules[]] | length' prometheus/rules/kakikomi.yml)" "$nrules"

phase down
dc down -v --remove-orphans >"$T_TMP/compose-down.log" 2>&1
tap_check "docker-compose down -v" 0 "$?"
tap_check "down -v leaves no container, network or volume of the project" "||" \
    "$(dk ps -aq --filter "name=${P}_" | tr '\n' ' ')|$(dk network ls -q --filter "name=${P}_" | tr '\n' ' ')|$(dk volume ls -q --filter "name=${P}_" | tr '\n' ' ')"
phase_end
tap_done
