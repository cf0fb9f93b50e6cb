#!/usr/bin/env bash
# The deployment files: the Dockerfile installs exactly deps/build.txt and
# deps/runtime.txt; --healthcheck says why a probe failed; the shipped
# kakikomi.yml + sites.yml pass --check-config and run; docker-compose.yml is
# valid, mounts only files that exist and publishes nothing but Grafana on
# loopback; the central Prometheus config scrapes kakikomi and every dashboard
# query is valid PromQL over metrics kakikomi really exports; the cloudflared,
# site-side, Grafana and systemd files are well-formed and agree with each
# other; the operator's guide explains every refusal kakikomi can give.
# The image itself is built and run by test_image.sh, the stack by test_compose.sh.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
D=deploy
KK=$T_BUILD/kakikomi

need() {
	command -v "$1" >/dev/null || tap_bail "$1 is not installed (sh deps/install.sh test)"
}
need jq
need yq
need promtool
need docker-compose

# Non-empty lines of a deps list, sorted, space-separated.
deps_list() {
	grep -v -e '^#' -e '^[[:space:]]*$' "deps/$1.txt" | sort | tr '\n' ' '
}

# The Dockerfile with continuation lines joined and blanks squeezed.
dockerfile_joined() {
	sed -e ':a' -e '/\\$/{N;s/\\\n/ /;ba' -e '}' Dockerfile | tr -s ' \t' '  '
}

# dockerfile_stage N: the instructions of the Nth FROM stage (1-based).
dockerfile_stage() {
	dockerfile_joined | awk -v want="$1" '/^FROM[ \t]/ { stage++ } stage == want'
}

# dockerfile_pkgs N: the packages stage N hands to apt-get install, sorted.
dockerfile_pkgs() {
	dockerfile_stage "$1" | awk '
	/^RUN/ && /apt-get install/ {
		n = split($0, w, /[ \t]+/); on = 0
		for (i = 2; i <= n; i++) {
			if (w[i] == "install" && w[i - 1] == "apt-get") { on = 1; continue }
			if (!on || w[i] == "") continue
			if (w[i] == "&&" || w[i] == "||" || w[i] == ";") { on = 0; continue }
			if (w[i] !~ /^-/) print w[i]
		}
	}' | sort | tr '\n' ' '
}

# ---- Dockerfile ---------------------------------------------------------------
tap_check "Dockerfile has two stages, both debian:bookworm-slim" \
    "debian:bookworm-slim debian:bookworm-slim " \
    "$(dockerfile_joined | awk '/^FROM[ \t]/ { printf "%s ", $2 }')"
tap_check "build stage installs exactly deps/build.txt" "$(deps_list build)" "$(dockerfile_pkgs 1)"
tap_check "runtime stage installs exactly deps/runtime.txt" "$(deps_list runtime)" "$(dockerfile_pkgs 2)"

if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
	T_N=$((T_N + 1)); echo "ok $T_N - every package exists in Debian 12 # SKIP apt lists are empty"
else
	nocand=""
	for pkg in $(deps_list build) $(deps_list runtime); do
		cand=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2 }')
		[ -n "$cand" ] && [ "$cand" != "(none)" ] || nocand="$nocand $pkg"
	done
	tap_check "every Dockerfile package has an apt candidate" "" "$nocand"
fi

# .dockerignore is an allow-list: everything the build stage COPYs must be on it.
unlisted=""
for from in $(dockerfile_stage 1 | awk '/^COPY/ && !/--from/ { print $2 }'); do
	grep -qxF -e "!${from%/}" -e "!${from%/}/" .dockerignore || unlisted="$unlisted $from"
done
tap_check ".dockerignore lets through what the build stage copies" "* " \
    "$(head -n 20 .dockerignore | grep -vx -e '#.*' -e '' -e '!.*' | tr '\n' ' ')$unlisted"
runtime=$(dockerfile_stage 2)
tap_contains "runtime stage exposes 8080 and 9464" "EXPOSE 8080 9464" "$runtime"
tap_contains "runtime stage health check" \
    'HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 CMD ["kakikomi", "--healthcheck", "http://127.0.0.1:9464/healthz"]' \
    "$runtime"
tap_contains "runtime stage volumes" 'VOLUME ["/etc/kakikomi", "/var/lib/kakikomi"]' "$runtime"
tap_check "runtime stage starts kakikomi -c /etc/kakikomi/kakikomi.yml" \
    'ENTRYPOINT ["kakikomi"] CMD ["-c", "/etc/kakikomi/kakikomi.yml"] ' \
    "$(printf '%s\n' "$runtime" | grep -E '^(ENTRYPOINT|CMD)' | tr '\n' ' ')"
user=$(printf '%s\n' "$runtime" | awk '/^USER/ { print $2 }' | tail -n 1)
case "$user" in
""|root|root:*|0|0:*) tap_fail "runtime stage runs as a non-root user" "USER is [$user]" ;;
*) tap_ok "runtime stage runs as a non-root user" ;;
esac
tap_check "runtime stage copies only the binary from the build stage" \
    "COPY --from=build /src/build/kakikomi /usr/local/bin/kakikomi" \
    "$(printf '%s\n' "$runtime" | grep '^COPY')"

# ---- kakikomi.yml + sites.yml -------------------------------------------------
if [ -x "$KK" ]; then
	out=$("$KK" --check-config -c "$D/kakikomi.yml" 2>&1)
	tap_check "kakikomi --check-config -c deploy/kakikomi.yml passes" \
	    "0 configuration OK: $D/kakikomi.yml (2 sites)" "$? $out"
else
	tap_fail "kakikomi --check-config -c deploy/kakikomi.yml passes" "$KK not built (make)"
fi
tap_check "config: writes on :8080, metrics on :9464 (EXPOSE, HEALTHCHECK)" \
    "0.0.0.0:8080 0.0.0.0:9464" \
    "$(yq -r '"\(.listen) \(.metrics_listen)"' "$D/kakikomi.yml")"
tap_check "config: key set cache on the state volume, compose upstreams" \
    "/var/lib/kakikomi/certs.json http://prometheus:9090/api/v1/write http://loki:3100/loki/api/v1/push" \
    "$(yq -r '"\(.access.certs_cache) \(.upstreams.metrics[0].url) \(.upstreams.logs[0].url)"' "$D/kakikomi.yml")"

# ---- Grafana ------------------------------------------------------------------
dash=$D/grafana/dashboards/kakikomi.json
if jq -e . "$dash" >/dev/null 2>&1; then tap_ok "dashboard JSON parses"
else tap_fail "dashboard JSON parses" "$(jq . "$dash" 2>&1 | head -n 1)"; fi
jq -r '[.. | objects | .expr? // empty] + [.templating.list[]?.definition // empty] | .[]' "$dash" > "$T_TMP/exprs"
for want in kakikomi_requests_total kakikomi_rejected_requests_total kakikomi_auth_failures_total \
    'time() - max by (site, signal) (kakikomi_site_last_write_timestamp_seconds' \
    kakikomi_upstream_duration_seconds_bucket kakikomi_jwks_keys \
    kakikomi_jwks_last_success_timestamp_seconds; do
	grep -qF "$want" "$T_TMP/exprs" || echo "$want"
done > "$T_TMP/absent"
tap_check "dashboard has the required panels' queries" "" "$(tr '\n' ' ' < "$T_TMP/absent")"
uids=$(yq -r '[.datasources[].uid] | sort | join(" ")' "$D"/grafana/provisioning/datasources/*.yml)
tap_check "provisioned data sources: Prometheus and Loki with fixed uids" "loki prometheus" "$uids"
tap_check "dashboard uses only provisioned data sources" "prometheus" \
    "$(jq -r '[.. | objects | .datasource? | objects | .uid] | unique | join(" ")' "$dash")"

# ---- docker-compose.yml --------------------------------------------------------
# compose_checks: what `docker-compose config` resolved (in $T_TMP/compose.json).
compose_checks() {
	yq . "$T_TMP/compose.yml" > "$T_TMP/compose.json"
	cq() { jq -r "$@" "$T_TMP/compose.json"; }
	tap_check "services" "cloudflared grafana kakikomi loki prometheus" "$(cq '.services | keys | join(" ")')"

	missing=""
	for m in $(cq '.services[].volumes[]? | if type == "string" then . else "\(.source):\(.target)" end | split(":")[0] | select(startswith("/") or startswith("."))'); do
		[ -e "$m" ] || missing="$missing $m"
	done
	df=$(cq '"\(.services.kakikomi.build.context)/\(.services.kakikomi.build.dockerfile)"')
	[ "$(cd "${df%/*}" 2>/dev/null && pwd)/${df##*/}" = "$T_ROOT/Dockerfile" ] || missing="$missing build:$df"
	tap_check "every file docker-compose mounts (and the build context) exists" "" "$missing"

	tap_check "only cloudflared and grafana (on 127.0.0.1) publish ports" "grafana=127.0.0.1:3000:3000/tcp" \
	    "$(cq '[.services | to_entries[] | select(.value.ports) | "\(.key)=\(.value.ports | map(if type == "string" then . else "\(.host_ip):\(.published):\(.target)/\(.protocol)" end) | join(","))"] | join(" ")')"
	tap_check "every service restarts unless-stopped" "unless-stopped" \
	    "$(cq '[.services[].restart] | unique | join(" ")')"
	tap_check "backend network is internal; prometheus and loki only on it" "true backend backend" \
	    "$(cq '"\(.networks.backend.internal) \(.services.prometheus.networks | keys | join(",")) \(.services.loki.networks | keys | join(","))"')"
	tap_check "cloudflared runs the tunnel with TUNNEL_TOKEN from .env" \
	    "tunnel --no-autoupdate --config /etc/cloudflared/config.yml run|$(sed -n 's/^TUNNEL_TOKEN=//p' "$D/.env.example")" \
	    "$(cq '"\(.services.cloudflared.command | if type == "array" then join(" ") else . end)|\(.services.cloudflared.environment.TUNNEL_TOKEN)"')"
	pcmd=$(cq '.services.prometheus.command | if type == "array" then join(" ") else . end')
	tap_contains "prometheus receives remote write" "--web.enable-remote-write-receiver" "$pcmd"
	tap_check "kakikomi: config read-only, key set cache on a named volume" \
	    "/etc/kakikomi/kakikomi.yml:ro /etc/kakikomi/sites.yml:ro kakikomi-state:/var/lib/kakikomi:rw" \
	    "$(cq '[.services.kakikomi.volumes[] | if type == "string" then . else "\(.source):\(.target):\(if .read_only then "ro" else "rw" end)" end | sub("^/[^:]*:"; "")] | sort | join(" ")')"
	tap_check "grafana mounts the dashboard where its provider looks" \
	    "$(yq -r '.providers[0].options.path' "$D/grafana/provisioning/dashboards/kakikomi.yml")" \
	    "$(cq '.services.grafana.volumes[] | select(type == "string") | select(test("/grafana/dashboards:")) | split(":")[1]')"
}
cp "$D/.env.example" "$T_TMP/env"
if docker-compose --env-file "$T_TMP/env" -f "$D/docker-compose.yml" config > "$T_TMP/compose.yml" 2>"$T_TMP/compose.err"; then
	tap_ok "docker-compose config accepts deploy/docker-compose.yml"
	compose_checks
else
	tap_fail "docker-compose config accepts deploy/docker-compose.yml" \
	    "$(head -n 3 "$T_TMP/compose.err" | tr '\n' ' ')"
fi

# ---- cloudflared ----------------------------------------------------------------
cf=$D/cloudflared/config.yml
tap_check "cloudflared: write hostname -> kakikomi:8080 with Access required in the rule" \
    "http://kakikomi:8080 true 1" \
    "$(yq -r '.ingress[0] | "\(.service) \(.originRequest.access.required) \(.originRequest.access.audTag | length)"' "$cf")"
tap_check "cloudflared: teamName set, no top-level originRequest.access" "true null" \
    "$(yq -r '"\(.ingress[0].originRequest.access.teamName | type == "string") \(.originRequest.access)"' "$cf")"
ka=$(yq -r '.ingress[0].originRequest.keepAliveTimeout // "90s"' "$cf" | sed 's/s$//')
idle=$(yq -r '.limits.idle_timeout // "30s"' "$D/kakikomi.yml" | sed 's/s$//')
if [ "$ka" -lt "$idle" ] 2>/dev/null; then tap_ok "cloudflared drops idle connections before kakikomi does"
else tap_fail "cloudflared drops idle connections before kakikomi does" "keepAliveTimeout ${ka}s >= idle_timeout ${idle}s"; fi
tap_check "cloudflared: last rule is the catch-all 404" "http_status:404 null" \
    "$(yq -r '.ingress[-1] | "\(.service) \(.hostname)"' "$cf")"

# ---- site side --------------------------------------------------------------------
for f in "$D/site/prometheus.yml" "$D/prometheus/prometheus.yml"; do
	if out=$(promtool check config "$f" 2>&1); then tap_ok "promtool check config $f"
	else tap_fail "promtool check config $f" "$(printf %s "$out" | tail -n 2 | tr '\n' ' ')"; fi
done
tokyo_token=$(yq -r '.sites.tokyo.tokens[0]' "$D/sites.yml")
tokyo_prov=$(yq -r '.sites.tokyo.provider[0]' "$D/sites.yml")
tap_check "site prometheus: remote_write to /api/v1/write with both Access headers, provider" \
    "https://write.example.com/api/v1/write $tokyo_token true $tokyo_prov" \
    "$(yq -r '"\(.remote_write[0].url) \(.remote_write[0].headers["CF-Access-Client-Id"]) \(.remote_write[0].headers | has("CF-Access-Client-Secret")) \(.global.external_labels.provider)"' "$D/site/prometheus.yml")"
tap_check "promtail: clients[].headers with both Access headers, provider" \
    "https://write.example.com/loki/api/v1/push $tokyo_token true $tokyo_prov" \
    "$(yq -r '.clients[0] | "\(.url) \(.headers["CF-Access-Client-Id"]) \(.headers | has("CF-Access-Client-Secret")) \(.external_labels.provider)"' "$D/site/promtail.yml")"
alloy=$D/site/config.alloy
opens=$(tr -cd '{' < "$alloy" | wc -c); closes=$(tr -cd '}' < "$alloy" | wc -c)
tap_check "alloy: braces balance" "$opens" "$closes"
tap_check "alloy: remote_write and loki.write, each with both headers and provider" \
    "1 1 2 2 2" \
    "$(printf '%s %s %s %s %s' "$(grep -c '^prometheus.remote_write "' "$alloy")" \
    "$(grep -c '^loki.write "' "$alloy")" "$(grep -c '"CF-Access-Client-Id"' "$alloy")" \
    "$(grep -c '"CF-Access-Client-Secret"' "$alloy")" \
    "$(grep -c "external_labels = { provider = \"$tokyo_prov\" }" "$alloy")")"

# ---- systemd ------------------------------------------------------------------------
unit=$D/systemd/kakikomi.service
for want in DynamicUser=yes StateDirectory=kakikomi ProtectSystem=strict ProtectHome=yes \
    PrivateTmp=yes NoNewPrivileges=yes 'ExecReload=/bin/kill -HUP $MAINPID' Restart=on-failure \
    'ExecStart=/usr/local/bin/kakikomi -c /etc/kakikomi/kakikomi.yml'; do
	grep -qxF "$want" "$unit" || echo "$want"
done > "$T_TMP/unit-missing"
tap_check "systemd unit has the hardening and life-cycle settings" "" "$(tr '\n' ' ' < "$T_TMP/unit-missing")"
if command -v systemd-analyze >/dev/null; then
	exe=$KK
	[ -x "$exe" ] || exe=/bin/true		# verify needs an executable ExecStart
	sed "s|/usr/local/bin/kakikomi|$exe|g" "$unit" > "$T_TMP/kakikomi.service"
	out=$(systemd-analyze verify "$T_TMP/kakikomi.service" 2>&1)
	rc=$?
	out=$(printf '%s\n' "$out" | grep 'kakikomi.service')
	tap_check "systemd-analyze verify: no errors or warnings" "0 " "$rc $out"
else
	T_N=$((T_N + 1)); echo "ok $T_N - systemd-analyze verify # SKIP systemd-analyze not installed"
fi

# ---- the operator's guide ------------------------------------------------------------
guide=$D/README.md
nodoc=""
for s in "access: no token" "access: expired" "access: bad signature" "access: unknown kid" \
    "access: audience" "access: issuer" "access: alg" "access: malformed" "access: too large" \
    "access: no identity" "access: not yet valid" "access: no key set" "is not listed in any site" \
    "signal not allowed" "rate limited" "overloaded" "malformed remote write" "malformed Loki push" \
    "| 400 " "| 401 " "| 403 " "| 413 " "| 415 " "| 429 " "| 502 " "| 503 " "| 504 " \
    "--web.enable-remote-write-receiver" "Service Auth" "AUD" "2.42"; do
	grep -qF -- "$s" "$guide" 2>/dev/null || nodoc="$nodoc [$s]"
done
tap_check "deploy/README.md explains every refusal and the setup" "" "$nodoc"

# ---- the binary with the shipped configuration -----------------------------------
# (tests/integration/test_image.sh builds and runs the real image.)
[ -x "$KK" ] || tap_bail "$KK not built (make)"

# The shipped files on loopback, with the test key set and audience and a real
# Prometheus (the central config, sped up) as the metrics upstream.
KP=$(free_port); MP=$(free_port); PP=$(free_port)
cfg=$T_TMP/etc
mkdir -p "$cfg" "$T_TMP/state"
sed -e "s|^listen: .*|listen: 127.0.0.1:$KP|" \
    -e "s|^metrics_listen: .*|metrics_listen: 127.0.0.1:$MP|" \
    -e "s|^  # certs_url: .*|  certs_url: file://$T_DATA/access/certs.json|" \
    -e "s|\"0\{64\}\"|\"$T_AUD\"|" \
    -e "s|/var/lib/kakikomi/certs.json|$T_TMP/state/certs.json|" \
    -e "s|http://prometheus:9090/|http://127.0.0.1:$PP/|" \
    -e "s|http://loki:3100/|http://127.0.0.1:$(free_port)/|" \
    "$D/kakikomi.yml" > "$cfg/kakikomi.yml"
cp "$D/sites.yml" "$cfg/sites.yml"
adapted=$(yq -r '"\(.listen) \(.metrics_listen) \(.access.certs_url) \(.access.audiences|join(","))"' "$cfg/kakikomi.yml")
[ "$adapted" = "127.0.0.1:$KP 127.0.0.1:$MP file://$T_DATA/access/certs.json $T_AUD" ] ||
    tap_bail "adapting deploy/kakikomi.yml to loopback failed: $adapted"

sed -e "s|^  scrape_interval: .*|  scrape_interval: 1s|" \
    -e "s|kakikomi:9464|127.0.0.1:$MP|" -e "s|localhost:9090|127.0.0.1:$PP|" \
    -e "s|loki:3100|127.0.0.1:$(free_port)|" \
    "$D/prometheus/prometheus.yml" > "$T_TMP/prometheus.yml"
start_prometheus prom "$PP" "$T_TMP/prometheus.yml" || tap_bail "prometheus with deploy/prometheus/prometheus.yml did not become ready"

"$KK" -c "$cfg/kakikomi.yml" >"$T_TMP/kakikomi.log" 2>&1 &
DPID=$!
track_pid "$DPID"
if wait_http "http://127.0.0.1:$MP/healthz" 30; then tap_ok "kakikomi with the shipped config answers /healthz"
else tap_bail "kakikomi with the shipped config did not answer /healthz"; fi
# The HEALTHCHECK's one line is what `docker inspect` shows the operator.
out=$("$KK" --healthcheck "http://127.0.0.1:$MP/healthz" 2>&1)
tap_check "--healthcheck exits 0 against /healthz, silently" "0 " "$? $out"
dead=$(free_port)
out=$("$KK" --healthcheck "http://127.0.0.1:$dead/healthz" 2>&1)
tap_check "--healthcheck against a dead port says nothing listens" \
    "1 kakikomi: healthcheck: cannot connect to 127.0.0.1:$dead: Connection refused" "$? $out"
out=$("$KK" --healthcheck "http://127.0.0.1:$MP/nowhere" 2>&1)
tap_check "--healthcheck against a 404 names the status" \
    "1 kakikomi: healthcheck: http://127.0.0.1:$MP/nowhere answered 404" "$? $out"
out=$("$KK" --healthcheck "https://127.0.0.1:$MP/healthz" 2>&1)
tap_check "--healthcheck refuses a non-http URL" \
    "1 kakikomi: healthcheck: https://127.0.0.1:$MP/healthz is not an http:// URL" "$? $out"
wait_http "http://127.0.0.1:$MP/readyz" 30 || tap_bail "kakikomi never became ready (key set)"

W=http://127.0.0.1:$KP/api/v1/write
: > "$T_TMP/empty"
res=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$T_TMP/empty" \
    -H "Cf-Access-Jwt-Assertion: $T_TOKEN" "$W")
case "$res" in
4??) tap_ok "empty POST with a valid token is refused by the body check ($res)" ;;
*) tap_fail "empty POST with a valid token is refused by the body check" "got $res" ;;
esac
if [ -x "$T_BUILD/tools/rwgen" ]; then
	"$T_BUILD/tools/rwgen" --series 2 --samples 1 --ts "$(( $(date +%s) * 1000 ))" \
	    --name kk_deploy_test --label provider=elsewhere --value 7 > "$T_TMP/rw.body"
	tap_check "a site write through the shipped config is stored" "204 " \
	    "$(rw_post "$W" "$T_TMP/rw.body" "$T_TOKEN")"
	got=$(prom_query "$PP" 'count(kk_deploy_test{provider="tokyo"})' | jq -r '.data.result[0].value[1] // "none"')
	tap_check "shipped sites.yml rewrote provider to tokyo" 2 "$got"
fi

curl -s --max-time 5 "http://127.0.0.1:$MP/metrics" > "$T_TMP/metrics.txt"
awk '$1 == "#" && $2 == "TYPE" { print $3, $4 }' "$T_TMP/metrics.txt" | sort -u > "$T_TMP/types"
grep -q '^kakikomi_requests_total counter$' "$T_TMP/types" ||
    tap_bail "kakikomi_requests_total missing from /metrics after a request"
sed -n 's/^[[:space:]]*{ "\(kakikomi_[a-z0-9_]*\)", M_\([A-Z]*\),.*/\1 \2/p' gateway/metrics.c |
    tr '[:upper:]' '[:lower:]' | sort -u > "$T_TMP/table"
[ -s "$T_TMP/table" ] || tap_bail "cannot read the family table of gateway/metrics.c"

# The central Prometheus config scrapes kakikomi and understands its output.
up=""
for _ in $(seq 100); do
	up=$(prom_query "$PP" 'up{job="kakikomi"}' | jq -r '.data.result[0].value[1] // ""')
	[ "$up" = 1 ] && break
	sleep 0.1
done
tap_check "deploy/prometheus/prometheus.yml scrapes kakikomi (up == 1)" 1 "$up"
n=""
for _ in $(seq 50); do
	n=$(prom_query "$PP" 'count(kakikomi_requests_total{site="tokyo"})' | jq -r '.data.result[0].value[1] // ""')
	[ -n "$n" ] && break
	sleep 0.1
done
case "$n" in
[1-9]*) tap_ok "kakikomi_requests_total{site=\"tokyo\"} scraped" ;;
*) tap_fail "kakikomi_requests_total{site=\"tokyo\"} scraped" "query gave [$n]" ;;
esac

unknown="" fromtable=""
for name in $(grep -oE 'kakikomi_[a-zA-Z0-9_]+' "$T_TMP/exprs" | sort -u); do
	base=$name
	for sfx in _bucket _sum _count; do
		b=${name%"$sfx"}
		if [ "$b" != "$name" ] && grep -qE "^$b histogram$" "$T_TMP/types" "$T_TMP/table" 2>/dev/null; then
			base=$b
		fi
	done
	if grep -qE "^$base " "$T_TMP/types"; then
		[ "$base" = "$name" ] || grep -q "^$base histogram$" "$T_TMP/types" || unknown="$unknown $name"
	elif grep -qE "^$base " "$T_TMP/table"; then
		[ "$base" = "$name" ] || grep -q "^$base histogram$" "$T_TMP/table" || unknown="$unknown $name"
		fromtable="$fromtable $base"
	else
		unknown="$unknown $name"
	fi
done
[ -z "$fromtable" ] || echo "# not in this scrape, found in gateway/metrics.c's table:$fromtable"
tap_check "every metric the dashboard queries is one kakikomi exports" "" "$unknown"

bad=""
while IFS= read -r q; do
	q=${q//\$__rate_interval/5m}
	q=${q//\$__interval/1m}
	q=${q//\$site/.*}
	case "$q" in label_values\(*) continue ;; esac
	st=$(prom_query "$PP" "$q" | jq -r '.status // "none"')
	[ "$st" = success ] || bad="$bad [$q]"
done < "$T_TMP/exprs"
tap_check "every dashboard query is valid PromQL (real Prometheus)" "" "$bad"

kill "$DPID" 2>/dev/null
wait_gone "$DPID" 15
wait "$DPID"
tap_check "kakikomi exits 0 on SIGTERM" 0 "$?"
untrack_pid "$DPID"
tap_done
