#!/usr/bin/env bash
# Prints the benchmark table from results.json (JSON lines written by
# tests/bench/run.sh), so a past run can be shown again:
#   tests/bench/table.sh build/bench/results.json [SECONDS CONNS THREADS CORES]
set -u
RESULTS=$1 SECS=${2:-?} CONNS=${3:-?} LTHREADS=${4:-?} CORES=${5:-$(nproc)}

jq -r '
  def f(x): if x == null then "" else (x | tostring) end;
  if .kind == "row" then
    ["R", .id, .name, f(.skipped), f(.rps), f(.samples_per_s), f(.p50_ms), f(.p99_ms),
     f(.p999_ms), f(.cpu_us_per_req), f(.server_cpu_s), f(.seconds), f(.peak_rss_mb),
     ((.status // {} | to_entries | map("\(.key):\(.value)")) +
      (.errors // {} | to_entries | map("\(.key)-error:\(.value)")) | join(" ")),
     f(.ok), f(.note), f(.tokens_exhausted), f(.loadgen_cpu_s)]
  elif .kind == "floor" then
    ["F", (.body | split("/") | last), .bytes, .decoded, .series, (.samples + .entries),
     .decode_us, .compress_us, .fast_us, .rewrite_us]
  elif .kind == "rsa" then ["X", .verify_us, f(.token_bytes)]
  elif .kind == "idle" then ["I", .rss_before_kb, .rss_after_kb, .kb_per_conn, .ready]
  else empty end | map(tostring) | join("\t")' "$RESULTS" |
awk -F'\t' -v secs="$SECS" -v conns="$CONNS" -v lthreads="$LTHREADS" -v cores="$CORES" '
function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "n/a" : sprintf("%.2f", a / b) }
function verdict(r, le) {
	if (r == "n/a") return "n/a"
	return (le ? r + 0 <= 1 : r + 0 >= 1) ? "met" : "NOT met"
}
$1 == "R" {
	n++; id[n] = $2; name[n] = $3; note[n] = $16; one[n] = ($2 ~ /-2000$/)
	if (one[n]) ones = 1
	if ($4 != "") { skip[n] = $4; next }
	rps[$2] = $5; cpu[$2] = $10; p99[$2] = $8
	flag = ($15 == "true") ? " " : "!"
	if (flag == "!") flagged = 1
	msmp = $6 / 1e6
	cpum = ($6 > 0 && $12 > 0) ? sprintf("%.3f", $11 / ($6 * $12 / 1e6)) : "-"
	line[n] = sprintf("%s%-7s %-22s %8.0f %7.2f %7.2f %7.2f %7.2f %8s %8s %5.0f%% %7.1f %5.0f%%  %s",
	    flag, $2, $3, $5, msmp, $7, $8, $9, ($10 == "" ? "-" : sprintf("%.1f", $10)),
	    cpum, ($12 > 0 ? 100 * $11 / $12 : 0), $13, ($12 > 0 ? 100 * $18 / $12 : 0), $14)
	if ($17 == "true") line[n] = line[n] " (tokens ran out: shorter window)"
	next
}
$1 == "F" {
	nf++
	fl[nf] = sprintf("  %-28s %7d %8d %6d %7d %9.1f %9.1f %9.1f %9.1f", $2, $3, $4, $5, $6,
	    $7, $8, $9, $10)
	if ($2 ~ /^rw1-/) { dec += $7; comp += $8; nrw++ }
	if ($2 == "rw1-2000-series.body") { dec1 = $7; comp1 = $8; rwr1 = $10 }
	next
}
$1 == "X" { rsa = $2; tokbytes = $3; next }
$1 == "I" { idle = sprintf("kakikomi RSS with 1,000 idle connections (default limits): %.1f MB -> %.1f MB (%.1f KB per connection)%s",
	    $2 / 1024, $3 / 1024, $4, $5 == "true" ? "" : " [connections NOT all open]"); next }
END {
	printf "kakikomi benchmark: %s s per row after warm-up, %s keep-alive connections, loadgen %s thread(s), %s cores, all on 127.0.0.1\n\n",
	    secs, conns, lthreads, cores
	printf " %-7s %-22s %8s %7s %7s %7s %7s %8s %8s %6s %7s %6s  %s\n", "#", "row", "req/s",
	    "Msmp/s", "p50 ms", "p99 ms", "p999ms", "CPU us", "CPU s/M", "CPU", "RSS MB", "loadgn", "answers"
	printf " %-7s %-22s %8s %7s %7s %7s %7s %8s %8s %6s %7s %6s\n", "", "", "", "", "", "", "",
	    "per req", "samples", "used", "peak", "CPU"
	for (pass = 1; pass >= 0; pass--) {
		head = pass ? "  -- rw1-2000-series.body alone (Prometheus default batch; the targets use these rows)" : "  -- mix: the 2000- and the 500-series body in turn; Loki"
		if (ones) print head
		for (i = 1; i <= n; i++) {
			if (one[i] != pass) continue
			if (i in skip) printf " %-7s %-22s %s\n", id[i], name[i], skip[i]
			else print line[i]
		}
	}
	print ""
	for (i = 1; i <= n; i++) if (note[i] != "" && !one[i]) printf "  [%s] %s\n", id[i], note[i]
	print "  Samples: remote write samples, Loki entries (rows 8a/8b).  CPU: utime+stime of the server process(es) in the window."
	print "  Rows 1-7, 1h and 5h send the 2000-series and a 500-series body in turn; 1h and 5h are paced (--rate)."
	printf "  CPU used: the server, %% of one core (%d00%% = every core).  loadgn CPU: the load generator, %% of one core\n", cores
	print "  (near 100% = that row is bound by the harness).  A row with low CPU used and high latency is waiting, not working."
	if (flagged) print "  ! = the row had non-2xx answers or transport errors (see answers)."
	printf "\nIn-process floor (one core, us per request):\n"
	printf "  %-28s %7s %8s %6s %7s %9s %9s %9s %9s\n", "body", "bytes", "decoded", "series",
	    "samples", "decode", "compress", "kk fast", "kk rewr"
	for (i = 1; i <= nf; i++) print fl[i]
	printf "  RSA-2048 verify (openssl speed): %s us; no-cache tokens: %s bytes each\n",
	    rsa == "" ? "n/a" : rsa, tokbytes == "" ? "n/a" : tokbytes
	if (idle != "") print "\n" idle
	if (nrw) { dec /= nrw; comp /= nrw }
	# Runs since the 2000-series rows exist: the targets use them and the
	# floor of that body; older results.json: the mix, mean of its bodies.
	s = ones ? "-2000" : ""
	if (ones) { dec = dec1; comp = comp1 }
	printf "\nTargets (%s; decode / compress %.1f / %.1f us):\n",
	    ones ? "rows N-2000, the 2000-series body alone" : "the mix, mean of its two bodies", dec, comp
	cpu[2] = cpu["2" s]; cpu[5] = cpu["5" s]; cpu[6] = cpu["6" s]; cpu[7] = cpu["7" s]
	rps[3] = rps["3" s]; rps[4] = rps["4" s]; rps[5] = rps["5" s]
	p99["5h"] = p99["5h" s]; p99["1h"] = p99["1h" s]
	b = (cpu[2] == "") ? "" : 1.5 * (cpu[2] + dec)
	r = ratio(cpu[5], b)
	printf "  fast path CPU/req %s us  vs 1.5 x (nginx %s + decode %.1f) = %s us   ratio %s (<= 1: %s)\n",
	    cpu[5], cpu[2], dec, b == "" ? "n/a" : sprintf("%.1f", b), r, verdict(r, 1)
	b = (cpu[2] == "") ? "" : 1.5 * (cpu[2] + dec + comp)
	r = ratio(cpu[6], b)
	printf "  rewrite   CPU/req %s us  vs 1.5 x (nginx %s + decode %.1f + compress %.1f) = %s us   ratio %s (<= 1: %s)\n",
	    cpu[6], cpu[2], dec, comp, b == "" ? "n/a" : sprintf("%.1f", b), r, verdict(r, 1)
	r = ratio(rwr1, 2 * (dec1 + comp1))
	printf "  in-process rewrite (2000 series) %s us  vs 2 x (decode %s + compress %s) = %.1f us   ratio %s (<= 1: %s)\n",
	    rwr1, dec1, comp1, 2 * (dec1 + comp1), r, verdict(r, 1)
	r = ratio(rps[5], rps[3])
	printf "  throughput: kakikomi fast %s req/s / vmauth %s req/s = %s (>= 1: %s)\n",
	    rps[5], rps[3], r, verdict(r, 0)
	r = ratio(rps[5], rps[4] == "" ? "" : 8 * rps[4])
	printf "  throughput: kakikomi fast %s req/s / (8 x vmagent %s req/s) = %s (>= 1: %s)\n",
	    rps[5], rps[4], r, verdict(r, 0)
	d = (cpu[7] == "" || cpu[5] == "") ? "" : cpu[7] - cpu[5]
	r = ratio(d, rsa == "" ? "" : 1.3 * rsa)
	printf "  no-cache: CPU/req %s us - fast path %s us = %s us per token  vs 1.3 x RSA verify %s us   ratio %s (<= 1: %s)\n",
	    cpu[7], cpu[5], d == "" ? "n/a" : sprintf("%.1f", d), rsa, r, verdict(r, 1)
	d = (p99["5h"] == "" || p99["1h"] == "") ? "" : p99["5h"] - p99["1h"]
	r = ratio(d, 1)
	printf "  added p99 at half the maximum: %s ms - direct %s ms = %s ms  vs 1 ms   ratio %s (<= 1: %s)\n",
	    p99["5h"], p99["1h"], d == "" ? "n/a" : sprintf("%.2f", d), r, verdict(r, 1)
}'
