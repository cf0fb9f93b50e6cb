# kakikomi container image: build on Debian 12, run on Debian 12 slim.
#   docker build -t kakikomi .
#   docker run -v /path/to/config:/etc/kakikomi:ro -v kakikomi-state:/var/lib/kakikomi kakikomi
#
# The package lists below are deps/build.txt and deps/runtime.txt, verbatim
# (tests/integration/test_deploy.sh compares them), and the build step is the
# same `make` a developer runs, so the image holds the binary the test suite
# tested.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	build-essential \
	pkg-config \
	libevent-dev \
	libssl-dev \
	libjansson-dev \
	libsnappy-dev \
	libyaml-dev \
	zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY gateway/ gateway/
RUN make -j"$(nproc)" kakikomi

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	libevent-2.1-7 \
	libevent-openssl-2.1-7 \
	libevent-pthreads-2.1-7 \
	libssl3 \
	libjansson4 \
	libsnappy1v5 \
	libyaml-0-2 \
	zlib1g \
	ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid so that host-side files (a bind-mounted state directory)
# can be given to it; the named volume inherits the ownership set here.
RUN groupadd --system --gid 10001 kakikomi \
 && useradd --system --uid 10001 --gid kakikomi --home-dir /var/lib/kakikomi \
	--no-create-home --shell /usr/sbin/nologin kakikomi \
 && install -d -o root -g root -m 0755 /etc/kakikomi \
 && install -d -o kakikomi -g kakikomi -m 0750 /var/lib/kakikomi
COPY --from=build /src/build/kakikomi /usr/local/bin/kakikomi
USER kakikomi:kakikomi
# 8080: writes (only cloudflared should reach it); 9464: /metrics, /healthz, /readyz.
EXPOSE 8080 9464
# kakikomi.yml + sites.yml (read-only), and the last good Access key set.
VOLUME ["/etc/kakikomi", "/var/lib/kakikomi"]
# Liveness only (/healthz): /readyz stays 503 until a key set is loaded, which
# during a Cloudflare outage at first start would get the container killed for
# nothing; senders see 503 and retry in the meantime.
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 \
	CMD ["kakikomi", "--healthcheck", "http://127.0.0.1:9464/healthz"]
# SIGTERM drains in-flight requests (shutdown_timeout); SIGHUP reloads.
STOPSIGNAL SIGTERM
ENTRYPOINT ["kakikomi"]
CMD ["-c", "/etc/kakikomi/kakikomi.yml"]
