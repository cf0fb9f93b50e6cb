#!/usr/bin/env bash
# The shipped alerts (deploy/prometheus/rules/kakikomi.yml) under Debian's
# `promtool test rules`: each alert fires when it should, with the labels and
# summary an operator will read, and stays quiet when it should not.  Series
# are named and labelled as kakikomi exports them (gateway/metrics.c, labels
# from server.c / upstream.c / jwks.c) and as the shipped prometheus.yml
# scrapes them (job="kakikomi").  promtool compares annotations exactly, so
# the cases run on a copy of the rules without the long `description`s; the
# summaries, which carry the templated values, are compared.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
command -v promtool >/dev/null || tap_bail "promtool is not installed (sh deps/install.sh test)"
command -v yq >/dev/null || tap_bail "yq is not installed (sh deps/install.sh test)"
R=deploy/prometheus/rules/kakikomi.yml

out=$(promtool check rules "$R" 2>&1)
tap_check "promtool check rules $R" "0" "$?"
[ -n "$(yq -r '.rule_files[]' deploy/prometheus/prometheus.yml | grep -x 'rules/\*.yml')" ] &&
    tap_ok "deploy/prometheus/prometheus.yml loads rules/*.yml" ||
    tap_fail "deploy/prometheus/prometheus.yml loads rules/*.yml" "rule_files: $(yq -c .rule_files deploy/prometheus/prometheus.yml)"
tap_check "every shipped alert has a severity, a summary and a description" "" \
    "$(yq -r '.groups[].rules[] | select(.alert) | select((.labels.severity // "") == "" or (.annotations.summary // "") == "" or (.annotations.description // "") == "") | .alert' "$R" | tr '\n' ' ')"
yq -y 'del(.groups[].rules[].annotations.description)' "$R" > "$T_TMP/rules.yml" ||
    tap_bail "cannot strip descriptions from $R"

# alert_case NAME: promtool test rules on the test body read from stdin (the
# entries under `tests:`, one interval of 1m).
alert_case() {
	{
		printf 'rule_files: [ "%s" ]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n' "$T_TMP/rules.yml"
		cat
	} > "$T_TMP/case.yml"
	if out=$(promtool test rules "$T_TMP/case.yml" 2>&1); then tap_ok "$1"
	else tap_fail "$1" "$(printf '%s\n' "$out" | grep -v -e '^$' -e 'Unit Testing' | head -n 12 | tr -s ' \n' '  ')"; fi
}
TS=kakikomi_site_last_write_timestamp_seconds
KK='job="kakikomi",instance="kakikomi:9464"'
CRIT='severity: critical, job: kakikomi, instance: "kakikomi:9464"'

# ---- KakikomiSiteSilent --------------------------------------------------------
# The gauge holds the time of the site's last stored write: a sample equal to
# its own timestamp while writes flow, then constant.
alert_case "SiteSilent: metrics silent 11m > 10m fires; 9m and a writing site stay quiet" <<EOF
    input_series:
      - { series: '$TS{$KK,site="tokyo",signal="metrics"}', values: '0+60x5 300x20' }
      - { series: '$TS{$KK,site="osaka",signal="metrics"}', values: '0+60x25' }
    alert_rule_test:
      - { eval_time: 14m, alertname: KakikomiSiteSilent, exp_alerts: [] }
      - eval_time: 16m
        alertname: KakikomiSiteSilent
        exp_alerts:
          - exp_labels: { severity: warning, site: tokyo, signal: metrics }
            exp_annotations: { summary: "Site tokyo sent no metrics for 11m 0s" }
EOF
alert_case "SiteSilent: still fires after kakikomi restarted (the gauge went away)" <<EOF
    input_series:
      - { series: '$TS{$KK,site="tokyo",signal="metrics"}', values: '0+60x5 stale' }
      - { series: 'up{$KK}', values: '1x30' }
    alert_rule_test:
      - eval_time: 20m
        alertname: KakikomiSiteSilent
        exp_alerts:
          - exp_labels: { severity: warning, site: tokyo, signal: metrics }
            exp_annotations: { summary: "Site tokyo sent no metrics for 15m 0s" }
EOF
alert_case "SiteSilent: logs default 1h; a per-site override (4h) holds it back" <<EOF
    input_series:
      - { series: '$TS{$KK,site="tokyo",signal="logs"}', values: '0x300' }
      - { series: '$TS{$KK,site="shop",signal="logs"}', values: '0x300' }
      - { series: '$TS{$KK,site="shop",signal="metrics"}', values: '0+60x300' }
      - { series: 'kakikomi:site_expected_interval_seconds:override{site="shop",signal="logs"}', values: '14400x300' }
    alert_rule_test:
      - { eval_time: 59m, alertname: KakikomiSiteSilent, exp_alerts: [] }
      - eval_time: 2h
        alertname: KakikomiSiteSilent
        exp_alerts:
          - exp_labels: { severity: warning, site: tokyo, signal: logs }
            exp_annotations: { summary: "Site tokyo sent no logs for 2h 0m 0s" }
      - eval_time: 4h1m
        alertname: KakikomiSiteSilent
        exp_alerts:
          - exp_labels: { severity: warning, site: tokyo, signal: logs }
            exp_annotations: { summary: "Site tokyo sent no logs for 4h 1m 0s" }
          - exp_labels: { severity: warning, site: shop, signal: logs }
            exp_annotations: { summary: "Site shop sent no logs for 4h 1m 0s" }
EOF

# ---- KakikomiSiteWritesRefused -----------------------------------------------
R_=kakikomi_rejected_requests_total
alert_case "SiteWritesRefused: 10m of label refusals fires by site and reason; refusals that stopped do not" <<EOF
    input_series:
      - { series: '$R_{$KK,site="osaka",signal="metrics",reason="label"}', values: '0+6x30' }
      - { series: '$R_{$KK,site="tokyo",signal="metrics",reason="rate_limit"}', values: '0+6x3 18x30' }
    alert_rule_test:
      - { eval_time: 8m, alertname: KakikomiSiteWritesRefused, exp_alerts: [] }
      - eval_time: 16m
        alertname: KakikomiSiteWritesRefused
        exp_alerts:
          - exp_labels: { severity: warning, site: osaka, signal: metrics, reason: label }
            exp_annotations: { summary: "kakikomi refuses metrics writes of site osaka: label" }
EOF

# ---- KakikomiDown / KakikomiNotReady ---------------------------------------------
alert_case "Down: a failed scrape for 2m fires; a short one does not" <<EOF
    input_series:
      - { series: 'up{$KK}', values: '1x5 0x10' }
      - { series: 'kakikomi_jwks_keys{$KK}', values: '2x5' }
    alert_rule_test:
      - { eval_time: 5m, alertname: KakikomiDown, exp_alerts: [] }
      - { eval_time: 7m, alertname: KakikomiDown, exp_alerts: [] }
      - eval_time: 9m
        alertname: KakikomiDown
        exp_alerts:
          - exp_labels: { $CRIT }
            exp_annotations: { summary: "kakikomi kakikomi:9464 is down" }
EOF
alert_case "Down: no kakikomi target at all fires" <<EOF
    input_series:
      - { series: 'up{job="prometheus",instance="localhost:9090"}', values: '1x10' }
    alert_rule_test:
      - eval_time: 5m
        alertname: KakikomiDown
        exp_alerts:
          - exp_labels: { severity: critical, job: kakikomi }
            exp_annotations: { summary: "kakikomi is down" }
EOF
alert_case "NotReady: no key set loaded (gauge absent or 0) fires; keys loaded stay quiet" <<EOF
    input_series:
      - { series: 'up{job="kakikomi",instance="a:9464"}', values: '1x10' }
      - { series: 'up{job="kakikomi",instance="b:9464"}', values: '1x10' }
      - { series: 'up{job="kakikomi",instance="c:9464"}', values: '1x10' }
      - { series: 'kakikomi_jwks_keys{job="kakikomi",instance="b:9464"}', values: '0x10' }
      - { series: 'kakikomi_jwks_keys{job="kakikomi",instance="c:9464"}', values: '2x10' }
    alert_rule_test:
      - { eval_time: 1m, alertname: KakikomiNotReady, exp_alerts: [] }
      - eval_time: 3m
        alertname: KakikomiNotReady
        exp_alerts:
          - exp_labels: { severity: critical, job: kakikomi, instance: "a:9464" }
            exp_annotations: { summary: "kakikomi a:9464 is not ready: its Access key set is empty" }
          - exp_labels: { severity: critical, job: kakikomi, instance: "b:9464" }
            exp_annotations: { summary: "kakikomi b:9464 is not ready: its Access key set is empty" }
EOF

# ---- KakikomiAccessKeySetStale ---------------------------------------------------
J=kakikomi_jwks_last_success_timestamp_seconds
alert_case "AccessKeySetStale: no refresh for 3h15m fires, or none since start; hourly refreshes stay quiet" <<EOF
    input_series:
      - { series: 'kakikomi_jwks_keys{job="kakikomi",instance="a:9464"}', values: '2x300' }
      - { series: '$J{job="kakikomi",instance="a:9464"}', values: '0x300' }
      - { series: 'kakikomi_jwks_keys{job="kakikomi",instance="b:9464"}', values: '2x300' }
      - { series: 'kakikomi_jwks_keys{job="kakikomi",instance="c:9464"}', values: '2x300' }
      - { series: '$J{job="kakikomi",instance="c:9464"}', values: '0x59 3600x59 7200x59 10800x59 14400x59' }
    alert_rule_test:
      - { eval_time: 14m, alertname: KakikomiAccessKeySetStale, exp_alerts: [] }
      - eval_time: 3h10m
        alertname: KakikomiAccessKeySetStale
        exp_alerts:
          - exp_labels: { severity: warning, job: kakikomi, instance: "b:9464" }
            exp_annotations: { summary: "kakikomi b:9464 has not refreshed the Access key set" }
      - eval_time: 3h20m
        alertname: KakikomiAccessKeySetStale
        exp_alerts:
          - exp_labels: { severity: warning, job: kakikomi, instance: "a:9464" }
            exp_annotations: { summary: "kakikomi a:9464 has not refreshed the Access key set" }
          - exp_labels: { severity: warning, job: kakikomi, instance: "b:9464" }
            exp_annotations: { summary: "kakikomi b:9464 has not refreshed the Access key set" }
EOF

# ---- KakikomiUpstreamFailing ---------------------------------------------------
U=kakikomi_upstream_requests_total
P='signal="metrics",upstream="http://prometheus:9090/api/v1/write"'
L='signal="logs",upstream="http://loki:3100/loki/api/v1/push"'
alert_case "UpstreamFailing: 9% unreachable for 5m fires; 1% 500s stay quiet" <<EOF
    input_series:
      - { series: '$U{$KK,$P,status="204"}', values: '0+100x20' }
      - { series: '$U{$KK,$P,status="0"}', values: '0+10x20' }
      - { series: '$U{$KK,$L,status="204"}', values: '0+100x20' }
      - { series: '$U{$KK,$L,status="500"}', values: '0+1x20' }
    alert_rule_test:
      - { eval_time: 5m, alertname: KakikomiUpstreamFailing, exp_alerts: [] }
      - eval_time: 12m
        alertname: KakikomiUpstreamFailing
        exp_alerts:
          - exp_labels: { severity: critical, signal: metrics, upstream: "http://prometheus:9090/api/v1/write" }
            exp_annotations: { summary: "metrics upstream http://prometheus:9090/api/v1/write fails 9.091% of writes" }
EOF

# ---- the dashboard links to them -------------------------------------------------
dash=deploy/grafana/dashboards/kakikomi.json
missing=""
for a in $(yq -r '[.groups[].rules[] | select(.alert) | .alert] | unique | .[]' "$R"); do
	jq -e --arg a "$a" '[.. | strings | select(contains($a))] | length > 0' "$dash" >/dev/null || missing="$missing $a"
done
tap_check "the Grafana dashboard names every shipped alert" "" "$missing"
tap_done
