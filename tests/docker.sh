# Docker helpers for the image and compose tests.  Source after lib.sh:
#   . "$(dirname "$0")/../docker.sh"
# Starts a private dockerd (its own data root, exec root, pid file and socket;
# otherwise the engine's defaults: overlay2, bridge, iptables), tracked by pid
# and stopped at exit.  No registry is reachable here, so debian:bookworm-slim
# is made locally with debootstrap, slimmed like the official image; its
# rootfs tarball is cached so that a rerun skips debootstrap.  One run at a
# time per machine (flock), as two engines would fight over the docker0 bridge.

DK_CACHE=${KAKIKOMI_DOCKER_CACHE:-/var/cache/kakikomi-test}
DK_ROOT=$T_TMP/docker			# short paths: the socket's must fit sun_path
DK_SOCK=$DK_ROOT/docker.sock
DOCKER=/usr/bin/docker			# not a newer client first on PATH (no buildx here)
export DOCKER_HOST=unix://$DK_SOCK
DK_T0=$SECONDS

# phase NAME: ends the previous phase (its time is printed, and summed up by
# phase_end in a TAP line, so that tests/run.sh shows it) and starts NAME.
phase() {
	if [ -n "${DK_PHASE:-}" ]; then
		echo "# phase $DK_PHASE: $((SECONDS - DK_PHASE_T0)) s"
		DK_TIMES="${DK_TIMES:+$DK_TIMES, }$DK_PHASE $((SECONDS - DK_PHASE_T0)) s"
	fi
	DK_PHASE=$1
	DK_PHASE_T0=$SECONDS
}
phase_end() { phase ""; tap_ok "took $((SECONDS - DK_T0)) s: $DK_TIMES"; }

dk() { "$DOCKER" -H "unix://$DK_SOCK" "$@"; }

# dockerd_start: a private engine; bails (fails, never skips) if it cannot run.
dockerd_start() {
	local deadline=$((SECONDS + 60))
	[ "$(id -u)" -eq 0 ] || tap_bail "the image test needs root to run dockerd"
	[ -x /usr/sbin/dockerd ] || tap_bail "dockerd is not installed (sh deps/install.sh test)"
	mkdir -p "$DK_CACHE" "$DK_ROOT" || tap_bail "cannot create $DK_CACHE"
	exec 9>"$DK_CACHE/lock"
	flock -w 600 9 || tap_bail "another image test holds $DK_CACHE/lock"
	# The data root is cached too: the Dockerfile's apt layers are reused on a
	# rerun, as on an operator's host.
	/usr/sbin/dockerd --data-root "$DK_CACHE/data" --exec-root "$DK_ROOT/exec" \
	    --pidfile "$DK_ROOT/dockerd.pid" -H "unix://$DK_SOCK" >"$T_TMP/dockerd.log" 2>&1 9>&- &
	DK_PID=$!
	track_pid "$DK_PID"
	while ! dk info >/dev/null 2>&1; do
		kill -0 "$DK_PID" 2>/dev/null || tap_bail "dockerd exited: $(tail -n 3 "$T_TMP/dockerd.log" | tr '\n' ' ')"
		[ "$SECONDS" -lt "$deadline" ] || tap_bail "dockerd did not answer within 60 s"
		sleep 0.1
	done
	tap_check "own dockerd runs with the overlay2 driver" overlay2 "$(dk info -f '{{.Driver}}')"
	# Whatever a killed earlier run left behind.
	dk ps -aq --filter label=kakikomi-test | xargs -r "$DOCKER" -H "unix://$DK_SOCK" rm -f >/dev/null
}

# apt_mirror: the Debian mirror apt uses here (deb822 or one-line sources).
apt_mirror() {
	{
		awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ { print u; exit }' \
		    /etc/apt/sources.list.d/*.sources 2>/dev/null
		awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null
	} | head -n 1
}

# slim_rootfs ROOT: what the official debian:bookworm-slim does to a
# debootstrap tree (debuerreotype's minimizing config and --slim).
slim_rootfs() {
	local r=$1 c=$1/etc/apt/apt.conf.d
	cat > "$c/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	echo 'Apt::AutoRemove::SuggestsImportant "false";' > "$c/docker-autoremove-suggests"
	echo 'Acquire::Languages "none";' > "$c/docker-no-languages"
	echo 'Acquire::GzipIndexes "true";' > "$c/docker-gzip-indexes"
	echo 'force-unsafe-io' > "$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
	cat > "$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
	printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
	chmod 755 "$r/usr/sbin/policy-rc.d"
	find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$r"/usr/share/man/* "$r"/usr/share/groff/* "$r"/usr/share/info/* \
	    "$r"/usr/share/lintian/* "$r"/usr/share/linda/*
	find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
	# The sources apt uses here (same mirror, updates and security suites).
	rm -f "$r/etc/apt/sources.list"
	cp /etc/apt/sources.list.d/debian.sources "$r/etc/apt/sources.list.d/" 2>/dev/null ||
	    echo "deb $(apt_mirror) bookworm main" > "$r/etc/apt/sources.list"
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
	    "$r"/var/log/apt/* "$r"/var/log/dpkg.log "$r"/var/log/bootstrap.log "$r"/tmp/* "$r"/root/.cache
	: > "$r/etc/machine-id"
	echo 'debian:bookworm-slim made by kakikomi tests/docker.sh' > "$r/etc/kakikomi-test-base"
}

# base_image: debian:bookworm-slim in the engine, from the cached rootfs
# tarball (debootstrap only when it is missing).
base_image() {
	local tar=$DK_CACHE/bookworm-slim.tar root mirror
	if [ ! -s "$tar" ]; then
		command -v debootstrap >/dev/null || tap_bail "debootstrap is not installed (sh deps/install.sh test)"
		mirror=$(apt_mirror)
		[ -n "$mirror" ] || tap_bail "no bookworm mirror in /etc/apt/sources.list{,.d}"
		root=$DK_CACHE/rootfs.$$
		rm -rf "$root"
		debootstrap --variant=minbase bookworm "$root" "$mirror" >"$T_TMP/debootstrap.log" 2>&1 ||
		    tap_bail "debootstrap from $mirror failed: $(tail -n 3 "$T_TMP/debootstrap.log" | tr '\n' ' ')"
		slim_rootfs "$root"
		tar --numeric-owner -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar" ||
		    tap_bail "cannot write $tar"
		rm -rf "$root"
	fi
	dk image inspect debian:bookworm-slim >/dev/null 2>&1 ||
	    dk import "$tar" debian:bookworm-slim >/dev/null ||
	    tap_bail "docker import $tar failed"
}

# prometheus_image TAG: Debian's prometheus package on the local base image,
# run like the official prom/prometheus image (the compose file's command).
prometheus_image() {
	local ctx=$T_TMP/prometheus-image
	mkdir -p "$ctx"
	cat > "$ctx/Dockerfile" <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o prometheus -g prometheus /prometheus
USER prometheus
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF
	DOCKER_BUILDKIT=0 dk build -q -t "$1" "$ctx" >"$T_TMP/prometheus-build.log" 2>&1 ||
	    tap_bail "building $1 from Debian's prometheus failed: $(tail -n 5 "$T_TMP/prometheus-build.log" | tr '\n' ' ')"
}

# kakikomi_image TAG: the repository's Dockerfile, unchanged, legacy builder.
kakikomi_image() {
	DOCKER_BUILDKIT=0 dk build -t "$1" "$T_ROOT" >"$T_TMP/kakikomi-build.log" 2>&1 ||
	    tap_bail "docker build of the Dockerfile failed: $(tail -n 5 "$T_TMP/kakikomi-build.log" | tr '\n' ' ')"
}

# wait_health CONTAINER SECONDS: until docker reports it healthy; prints the
# last state seen.
wait_health() {
	local deadline=$((SECONDS + $2)) st=""
	while [ "$SECONDS" -lt "$deadline" ]; do
		st=$(dk inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null)
		[ "$st" = healthy ] && break
		[ "$(dk inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || { st="exited"; break; }
		sleep 0.2
	done
	echo "$st"
}
