#!/bin/sh
# Prometheus 3.5 (remote write 2.0 sender and receiver) for the tests, taken
# from Debian sid without touching the system's apt configuration: a private
# sources file, lists and cache under the cache directory, `apt-get download`
# and `dpkg -x`.  Nothing is installed; the binary is statically linked Go and
# runs on Debian 12.
# Usage: deps/prometheus3.sh   prints the path of the prometheus binary.
# Reuses the cache when present; fails loudly (exit 1) when it cannot get it.
set -eu
cache=${KAKIKOMI_PROM3_CACHE:-/var/cache/kakikomi-test/prometheus3}
want=${KAKIKOMI_PROM3_VERSION:-3.5.}
bin=$cache/root/usr/bin/prometheus

have() {
	[ -x "$bin" ] && "$bin" --version 2>/dev/null | head -n 1 |
	    grep -q "^prometheus, version $want"
}
if have; then echo "$bin"; exit 0; fi

fail() { echo "deps/prometheus3.sh: $*" >&2; exit 1; }
command -v apt-get >/dev/null && command -v dpkg >/dev/null ||
    fail "needs apt-get and dpkg (Debian)"
mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial" "$cache/deb" ||
    fail "cannot create $cache"
# the mirror host the system itself uses (deb822 or one-line format)
mirror=$(sed -n 's|^URIs:[[:space:]]*\(https\{0,1\}://[^ ]*/debian\)[[:space:]]*$|\1|p' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's|^deb[[:space:]]\{1,\}\(https\{0,1\}://[^ ]*/debian\)[[:space:]].*|\1|p' \
    /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
echo "deb $mirror sid main" > "$cache/apt/sources.list"
# Lists and cache are ours, so the system's apt lock is never taken.
apt_private() {
	apt-get -q -o Dir::Etc::SourceList="$cache/apt/sources.list" \
	    -o Dir::Etc::SourceParts=/dev/null \
	    -o Dir::State::Lists="$cache/apt/lists" \
	    -o Dir::Cache="$cache/apt/cache" \
	    -o APT::Architecture="$(dpkg --print-architecture)" "$@"
}
echo "deps/prometheus3.sh: fetching prometheus from $mirror sid" >&2
apt_private update >"$cache/apt/update.log" 2>&1 ||
    { cat "$cache/apt/update.log" >&2; fail "apt-get update of sid failed"; }
rm -f "$cache"/deb/prometheus_*.deb
(cd "$cache/deb" && apt_private download prometheus) >"$cache/apt/download.log" 2>&1 ||
    { cat "$cache/apt/download.log" >&2; fail "apt-get download prometheus failed"; }
deb=$(ls "$cache"/deb/prometheus_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "no prometheus .deb downloaded"
rm -rf "$cache/root.new"
dpkg -x "$deb" "$cache/root.new" || fail "dpkg -x $deb failed"
rm -rf "$cache/root" && mv "$cache/root.new" "$cache/root"
have || fail "$bin is not prometheus $want ($("$bin" --version 2>&1 | head -n 1))"
echo "$bin"
