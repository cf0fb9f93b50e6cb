#!/bin/sh
# Installs the Debian packages kakikomi needs that are not there yet.
# Usage: deps/install.sh [build|runtime|test]...   (no argument: all three)
# Idempotent and quiet when everything is installed; runs apt-get update once
# only when something is missing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- build runtime test

wanted=$(for list in "$@"; do
	[ -f "$here/$list.txt" ] || { echo "deps: no list $list" >&2; exit 2; }
	grep -v -e '^#' -e '^[[:space:]]*$' "$here/$list.txt"
done | sort -u)

missing=""
for pkg in $wanted; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = installed ] || missing="$missing $pkg"
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing:$missing (run as root to install)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# Debian's prometheus and nginx packages try to start services; in a
# container without an init system that must not fail the install.
if [ ! -x /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
