/*
 * config: kakikomi.yml and the sites file (libyaml) -> one immutable snapshot.
 *
 * config_load() parses both files and returns a snapshot with one reference,
 * or NULL with every problem appended to `errs` as "file:line: reason".
 * Unknown keys, wrong types and bad values are errors: a typo must never be
 * silently ignored.  A snapshot is never changed after load; reload builds a
 * new one and swaps the pointer, and requests in flight keep the snapshot they
 * took a reference on.  config_ref/config_unref are thread-safe.
 */
#ifndef KAKIKOMI_CONFIG_H
#define KAKIKOMI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum signal { SIGNAL_METRICS = 0, SIGNAL_LOGS = 1, SIGNAL_COUNT = 2 };
enum mismatch { MISMATCH_REWRITE = 0, MISMATCH_REJECT = 1 };

/* "metrics" / "logs". */
const char *signal_name(enum signal s);

struct strlist {
	char	**v;
	size_t	  n;
};

/*
 * The remote write version a metrics upstream takes (README, upstreams):
 * v1 gets 2.0 bodies down-converted (rwconv.h); v2 gets them as they are and
 * must answer them with the Written headers; auto is v1 until the upstream
 * proved 2.0 (upstream.h).  1.0 bodies go as they are to all three.
 */
enum rw_protocol { RW_PROTOCOL_V1 = 0, RW_PROTOCOL_V2, RW_PROTOCOL_AUTO };

struct upstream_conf {
	char		*url;		/* http://host:port/path */
	uint64_t	 timeout_ms;	/* whole exchange; default 30s */
	enum rw_protocol protocol;	/* metrics only; default v1 */
	int		 multi_tenant;	/* needs X-Scope-OrgID (Mimir, Cortex, Loki) */
};

struct site {
	char		*name;
	struct strlist	 tokens;	/* service token Client IDs (JWT common_name) */
	struct strlist	 emails;	/* people (JWT email) */
	struct strlist	 providers;	/* allowed label values; [0] is written on rewrite */
	enum mismatch	 on_mismatch;	/* default rewrite */
	unsigned	 signals;	/* bit (1u << enum signal); default both */
	char		*tenant;	/* X-Scope-OrgID upstream, or NULL */
	double		 rate_limit;	/* requests per second, 0 = unlimited */
	double		 rate_burst;	/* bucket size; default max(1, rate_limit) */
};

struct access_conf {
	char		*team_domain;	/* example.cloudflareaccess.com */
	char		*issuer;	/* derived: https://<team_domain> */
	struct strlist	 audiences;
	char		*certs_url;	/* default https://<team_domain>/cdn-cgi/access/certs */
	char		*certs_ca_file;	/* or NULL */
	char		*certs_cache;	/* or NULL */
	uint64_t	 refresh_interval_ms;	/* default 1h */
	uint64_t	 fetch_timeout_ms;	/* whole key set fetch, default 30s */
	uint64_t	 leeway_s;		/* default 30s */
};

struct limits_conf {
	uint64_t	max_body_bytes;		/* default 16MiB */
	uint64_t	max_decoded_bytes;	/* default 32MiB */
	uint64_t	max_inflight_bytes;	/* default 256MiB */
	uint64_t	max_inflight_bytes_per_site;	/* default max(a quarter, max_body_bytes) */
	uint64_t	max_requests;		/* concurrent requests, default 256 */
	uint64_t	max_requests_per_site;	/* one site's share, default a quarter */
	uint64_t	max_connections;	/* client connections, all workers; default 4096 */
	uint64_t	header_timeout_ms;	/* accept or first byte -> head complete; default 10s */
	uint64_t	body_timeout_ms;	/* head -> body complete; default 60s */
	uint64_t	idle_timeout_ms;	/* keep-alive idle between requests; default 30s */
	uint64_t	min_body_rate;		/* bytes/s a body averages after the grace; default 500 */
	uint64_t	body_rate_grace_ms;	/* before min_body_rate applies; default 10s */
};

struct config {
	int			 refs;		/* atomic */
	char			*path;
	char			*listen;	/* host:port, default 0.0.0.0:8080 */
	char			*metrics_listen;/* default 127.0.0.1:9464 */
	char			*log_level;	/* default info */
	uint64_t		 workers;	/* event-loop threads, 0 = number of cores */
	uint64_t		 shutdown_timeout_ms;	/* default 30s */
	struct access_conf	 access;
	struct upstream_conf	*upstreams[SIGNAL_COUNT];
	size_t			 nupstreams[SIGNAL_COUNT];
	struct limits_conf	 limits;
	char			*sites_file;	/* resolved against kakikomi.yml's directory */
	char			*label;		/* default provider */
	struct site		*sites;
	size_t			 nsites;
};

struct config_errors {
	char	**v;		/* "file:line: reason" */
	size_t	  n;
};

/*
 * Mistakes that load but will lose writes: a site without `tenant` writing
 * to an upstream marked multi_tenant (it answers 401 "no org id").  One
 * "warning: ..." line per case appended to out; returns how many.
 */
size_t		 config_warnings(const struct config *cfg, struct config_errors *out);

/* Loads `path` and the sites file it names.  NULL on any error (see errs). */
struct config	*config_load(const char *path, struct config_errors *errs);
struct config	*config_ref(struct config *cfg);
void		 config_unref(struct config *cfg);
void		 config_errors_free(struct config_errors *errs);

/* "16MiB", "512KB", "1024" -> bytes.  0 on success, -1 on a bad value. */
int	config_parse_size(const char *s, uint64_t *out);
/* "30s", "1h", "250ms", "2m", "1d" -> milliseconds.  0 or -1. */
int	config_parse_duration(const char *s, uint64_t *out);

#endif
