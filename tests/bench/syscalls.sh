#!/usr/bin/env bash
# epoll_ctl calls per request on kakikomi's keep-alive fast path, counted by
# strace (a syscall count needs no quiet machine):
#   tests/bench/syscalls.sh [SECONDS]     (after make all tools; default 3)
# Starts the null upstream and kakikomi (workers = 1, so one thread's
# syscalls), drives the 2000-series body over 16 keep-alive connections with
# loadgen while `strace -c -f -e trace=epoll_ctl` is attached, and prints
# requests, epoll_ctl calls and their ratio.  Both sides are counted: the
# client connections and kakikomi's upstream connections.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh

SECS=${1:-3}
BB=$T_BUILD/bench
B2000=$T_DATA/prometheus-2.42/rw1-2000-series.body
command -v strace >/dev/null || { echo "syscalls: strace not installed" >&2; exit 1; }
mkdir -p "$BB"
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$BB/nullup" tests/bench/nullup.c -pthread &&
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$BB/loadgen" tests/bench/loadgen.c -pthread ||
    exit 1

NULL_PORT=$(free_port)
"$BB/nullup" --listen "127.0.0.1:$NULL_PORT" --threads 1 2>"$T_TMP/nullup.log" &
track_pid $!
wait_port "$NULL_PORT" 10 || { echo "syscalls: nullup did not start" >&2; exit 1; }
KPORT=$(free_port)
MPORT=$(free_port)
write_config "$T_TMP/kk" "$KPORT" "$MPORT" "http://127.0.0.1:$NULL_PORT/api/v1/write" ""
sed -i -e 's/^workers: .*/workers: 1/' -e 's/^log_level: .*/log_level: warn/' "$T_TMP/kk/kakikomi.yml"
start_kakikomi "$T_TMP/kk/kakikomi.yml" "$MPORT" || { echo "syscalls: kakikomi not ready" >&2; exit 1; }
printf '%s\n' "$T_TOKEN" > "$T_TMP/token"

strace -c -f -e trace=epoll_ctl -o "$T_TMP/strace.txt" -p "$KK_PID" 2>"$T_TMP/strace.log" &
ST_PID=$!
track_pid "$ST_PID"
# strace says "Process N attached" once per thread when it is ready
for _ in $(seq 100); do grep -q attached "$T_TMP/strace.log" 2>/dev/null && break; sleep 0.1; done
out=$("$BB/loadgen" --url "http://127.0.0.1:$KPORT/api/v1/write" --connections 16 \
    --warmup 0 --duration "$SECS" --body "$B2000:2000" --tokens "$T_TMP/token" \
    -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy' \
    -H 'X-Prometheus-Remote-Write-Version: 0.1.0')
kill -INT "$ST_PID"
wait "$ST_PID" 2>/dev/null
untrack_pid "$ST_PID"
reqs=$(printf '%s' "$out" | jq -r '.requests')
calls=$(awk '$NF == "epoll_ctl" { print $4 }' "$T_TMP/strace.txt")
printf 'requests %s (%s)  epoll_ctl %s  per request %s\n' "$reqs" \
    "$(printf '%s' "$out" | jq -c '.status')" "${calls:-0}" \
    "$(awk -v c="${calls:-0}" -v r="$reqs" 'BEGIN { printf "%.2f", r ? c / r : 0 }')"
