/* jwks: fetch, refresh and persist the Access key set.  See jwks.h. */
#include "jwks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "metrics.h"
#include "status.h"

#define JWKS_MAX_BODY		(1024 * 1024)	/* bytes; Cloudflare's set is ~3 KB */
#define JWKS_MAX_HEADERS	(64 * 1024)
#define JWKS_TIMEOUT_S		10		/* idle, per read or write */
#define JWKS_DEADLINE_MS	30000		/* whole fetch, when conf has none */
#define JWKS_RETRY_MS		10000		/* while no key set is loaded */
#define JWKS_MIN_INTERVAL_MS	1000
#define JWKS_DEMAND_GAP_S	30		/* unknown-kid refetches at most this often */

struct jwks {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct event		*timer;		/* next periodic fetch or retry */
	struct event		*deadline;	/* ends an https fetch that takes too long */
	struct event		*demand;	/* made active by jwks_request_refresh() */

	pthread_mutex_t		 mu;		/* guards the three below */
	struct keyset		*current;
	time_t			 last_demand;	/* CLOCK_MONOTONIC seconds, 0 never */
	int			 demand_seen;

	/* base thread only */
	char			*url;
	char			*ca_file;
	char			*cache_path;
	uint64_t		 interval_ms;
	uint64_t		 deadline_ms;
	struct evhttp_connection *evcon;	/* of the last fetch; freed by the next */
	int			 in_flight;
	int			 refetch;	/* URL changed during a fetch */
	const char		*http_err;	/* from the request's error callback */
	char			 verify_err[160];
};

static void	fetch_start(struct jwks *j);

static time_t
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void
set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src != NULL ? strdup(src) : NULL;
}

static int
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/* Reads a whole file of at most `max` bytes.  NULL with *why set. */
static char *
read_file(const char *path, size_t max, size_t *len, const char **why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t n = 0;
	ssize_t r = 0;

	*why = NULL;
	if (fd < 0) {
		*why = strerror(errno);
		return NULL;
	}
	if ((buf = malloc(max + 1)) == NULL)
		*why = "out of memory";
	while (*why == NULL && (r = read(fd, buf + n, max + 1 - n)) != 0)
		if (r < 0 && errno != EINTR)
			*why = strerror(errno);
		else if (r > 0 && (n += (size_t)r) > max)
			*why = "file too large";
	close(fd);
	if (*why != NULL) {
		free(buf);
		errno = EIO;	/* only a failed open() reports ENOENT */
		return NULL;
	}
	*len = n;
	return buf;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Writes the last good set so a restart during an outage keeps working:
 * temp file in the same directory, fsync, rename. */
static void
cache_write(const char *path, const char *buf, size_t len)
{
	char tmp[PATH_MAX];
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp)) {
		log_warnx("key set cache path too long: %s", path);
		return;
	}
	if ((fd = mkstemp(tmp)) < 0) {
		log_warn("key set cache %s", tmp);
		return;
	}
	if (fchmod(fd, 0644) < 0 || write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
		log_warn("key set cache %s", tmp);
		close(fd);
		unlink(tmp);
		return;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		log_warn("key set cache %s", path);
		unlink(tmp);
	}
}

/* Makes ks current; logs its kids (never a token). */
static void
install(struct jwks *j, struct keyset *ks, const char *source)
{
	char kids[KEYSET_MAX_KID * 4];
	struct keyset *old;
	size_t n = keyset_count(ks), off = 0;

	kids[0] = '\0';
	for (size_t i = 0; i < n && off + 10 < sizeof(kids); i++)
		off += (size_t)snprintf(kids + off, sizeof(kids) - off, "%s%.8s",
		    i ? "," : "", keyset_kid(ks, i));
	pthread_mutex_lock(&j->mu);
	old = j->current;
	j->current = ks;
	pthread_mutex_unlock(&j->mu);
	keyset_unref(old);
	metrics_gauge_set("kakikomi_jwks_keys", "", (double)n);
	log_info("key set loaded: source=%s keys=%zu kids=%s", source, n, kids);
	status_note_keyset(NULL);
}

static void
timer_arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
	    .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

/* Every fetch ends here exactly once. */
static void
fetch_done(struct jwks *j, int ok)
{
	int loaded;

	j->in_flight = 0;
	evtimer_del(j->deadline);
	metrics_counter_add("kakikomi_jwks_refresh_total",
	    ok ? "result=\"ok\"" : "result=\"error\"", 1);
	if (ok)
		metrics_gauge_set("kakikomi_jwks_last_success_timestamp_seconds", "",
		    (double)time(NULL));
	pthread_mutex_lock(&j->mu);
	loaded = j->current != NULL;
	pthread_mutex_unlock(&j->mu);
	if (j->refetch) {
		j->refetch = 0;
		timer_arm(j->timer, 0);
	} else
		timer_arm(j->timer, ok || loaded ? j->interval_ms : JWKS_RETRY_MS);
}

static void
fetch_fail(struct jwks *j, const char *why)
{
	log_warnx("key set fetch failed: url=%s reason=%s", j->url, why);
	status_note_keyset(why);
	fetch_done(j, 0);
}

/* Parses a fetched document; `cache` says whether to persist it. */
static void
fetch_body(struct jwks *j, const char *buf, size_t len, const char *source,
    int cache)
{
	const char *err;
	struct keyset *ks = keyset_parse(buf, len, &err);

	if (ks == NULL) {
		fetch_fail(j, err);
		return;
	}
	install(j, ks, source);
	if (cache && j->cache_path != NULL)
		cache_write(j->cache_path, buf, len);
	fetch_done(j, 1);
}

static void
fetch_file(struct jwks *j, const char *path)
{
	const char *why;
	size_t len;
	char *buf = read_file(path, JWKS_MAX_BODY, &len, &why);

	if (buf == NULL) {
		fetch_fail(j, why);
		return;
	}
	fetch_body(j, buf, len, "file", 0);
	free(buf);
}

static const char *
http_error_name(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		return "timeout";
	case EVREQ_HTTP_EOF:
		return "connection closed";
	case EVREQ_HTTP_INVALID_HEADER:
		return "invalid response header";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "response too large";
	case EVREQ_HTTP_REQUEST_CANCEL:
		return "cancelled";
	default:
		return "connection error";
	}
}

static void
request_error_cb(enum evhttp_request_error e, void *arg)
{
	struct jwks *j = arg;

	j->http_err = http_error_name(e);
}

/* Names why a request got no response: certificate, TLS or transport. */
static void
explain_failure(struct jwks *j, char *buf, size_t bufsz)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(j->evcon);
	unsigned long e = bev != NULL ? bufferevent_get_openssl_error(bev) : 0;
	char tls[128];

	if (j->verify_err[0] != '\0') {
		snprintf(buf, bufsz, "%s", j->verify_err);
		return;
	}
	/* libevent also stores bare SSL_get_error() codes here (lib 0) */
	if (ERR_GET_LIB(e) != 0) {
		ERR_error_string_n(e, tls, sizeof(tls));
		snprintf(buf, bufsz, "TLS error: %s", tls);
		return;
	}
	snprintf(buf, bufsz, "%s", j->http_err != NULL ? j->http_err :
	    "connection failed");
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct jwks *j = arg;
	struct evbuffer *in;
	char why[256];
	int code = req != NULL ? evhttp_request_get_response_code(req) : 0;

	if (code == 0) {
		explain_failure(j, why, sizeof(why));
		fetch_fail(j, why);
		return;
	}
	if (code != 200) {
		snprintf(why, sizeof(why), "HTTP status %d", code);
		fetch_fail(j, why);
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	fetch_body(j, (const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in),
	    "https", 1);
}

/*
 * The idle timeout restarts with every byte, so a key server that trickles
 * would hold the fetch (and every later refresh) forever: this bounds connect,
 * TLS, headers and body together.  Freeing the connection frees the request
 * without calling request_cb, so the fetch ends here, once.
 */
static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jwks *j = arg;
	char why[80];

	evhttp_connection_free(j->evcon);
	j->evcon = NULL;
	snprintf(why, sizeof(why), "deadline exceeded (fetch_timeout %llu ms)",
	    (unsigned long long)j->deadline_ms);
	fetch_fail(j, why);
}

/* Records the first certificate problem; the handshake fails on its own. */
static int
verify_cb(int ok, X509_STORE_CTX *ctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct jwks *j = ssl != NULL ? SSL_get_app_data(ssl) : NULL;

	if (!ok && j != NULL && j->verify_err[0] == '\0')
		snprintf(j->verify_err, sizeof(j->verify_err),
		    "certificate verification failed: %s",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	return ok;
}

/* A client SSL for `host`: chain checked against the system store plus
 * ca_file, the name (or IP address) checked, SNI sent for names. */
static SSL *
tls_new(struct jwks *j, const char *host, const char **why)
{
	unsigned char addr[sizeof(struct in6_addr)];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	int is_ip = inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1;

	*why = "TLS setup failed";
	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		log_warnx("key set fetch: cannot load the system CA store");
	if (j->ca_file != NULL &&
	    SSL_CTX_load_verify_locations(ctx, j->ca_file, NULL) != 1)
		*why = "cannot load certs_ca_file";
	else if ((ssl = SSL_new(ctx)) != NULL) {
		X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl),
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) :
		    SSL_set_tlsext_host_name(ssl, host) && SSL_set1_host(ssl, host)) != 1) {
			SSL_free(ssl);
			ssl = NULL;
		} else
			SSL_set_app_data(ssl, j);
	}
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return ssl;
}

/* "path?query" of uri, at least "/". */
static int
request_target(const struct evhttp_uri *uri, char *buf, size_t bufsz)
{
	const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
	int n = snprintf(buf, bufsz, "%s%s%s", path && *path ? path : "/",
	    query ? "?" : "", query ? query : "");

	return n < 0 || (size_t)n >= bufsz ? -1 : 0;
}

static struct evhttp_request *
request_new(struct jwks *j, const char *host, int port)
{
	struct evhttp_request *req = evhttp_request_new(request_cb, j);
	struct evkeyvalq *h;
	char hosthdr[300];

	if (req == NULL)
		return NULL;
	evhttp_request_set_error_cb(req, request_error_cb);
	h = evhttp_request_get_output_headers(req);
	snprintf(hosthdr, sizeof(hosthdr), port == 443 ? "%s" : "%s:%d", host, port);
	if (evhttp_add_header(h, "Host", hosthdr) != 0 ||
	    evhttp_add_header(h, "Accept", "application/json") != 0 ||
	    evhttp_add_header(h, "User-Agent", "kakikomi") != 0 ||
	    evhttp_add_header(h, "Connection", "close") != 0) {
		evhttp_request_free(req);
		return NULL;
	}
	return req;
}

static const char *
fetch_https(struct jwks *j, const struct evhttp_uri *uri)
{
	const char *host = evhttp_uri_get_host(uri), *why;
	int port = evhttp_uri_get_port(uri);
	char target[2048];
	struct evhttp_request *req;
	struct bufferevent *bev;
	SSL *ssl;

	if (host == NULL || *host == '\0' || request_target(uri, target, sizeof(target)) < 0)
		return "bad certs_url";
	port = port > 0 ? port : 443;
	if ((ssl = tls_new(j, host, &why)) == NULL)
		return why;
	bev = bufferevent_openssl_socket_new(j->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return "out of memory";
	}
	/* a truncated body cannot parse as JSON, and Content-Length is checked */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	j->evcon = evhttp_connection_base_bufferevent_new(j->base, j->dns, bev,
	    host, (unsigned short)port);
	if (j->evcon == NULL) {
		bufferevent_free(bev);
		return "out of memory";
	}
	evhttp_connection_set_timeout(j->evcon, JWKS_TIMEOUT_S);
	evhttp_connection_set_max_body_size(j->evcon, JWKS_MAX_BODY);
	evhttp_connection_set_max_headers_size(j->evcon, JWKS_MAX_HEADERS);
	if ((req = request_new(j, host, port)) == NULL)
		return "out of memory";
	/* libevent may fail the request, and call request_cb, before returning */
	j->in_flight = 1;
	if (evhttp_make_request(j->evcon, req, EVHTTP_REQ_GET, target) != 0 &&
	    j->in_flight) {
		j->in_flight = 0;
		return "cannot send request";
	}
	if (j->in_flight)
		timer_arm(j->deadline, j->deadline_ms);
	return NULL;
}

/* Starts one fetch unless one is running; file:// completes at once. */
static void
fetch_start(struct jwks *j)
{
	struct evhttp_uri *uri;
	const char *scheme, *why = NULL;

	if (j->in_flight)
		return;
	if (j->evcon != NULL) {
		evhttp_connection_free(j->evcon);
		j->evcon = NULL;
	}
	j->http_err = NULL;
	j->verify_err[0] = '\0';
	if (j->url == NULL ||
	    (uri = evhttp_uri_parse_with_flags(j->url, 0)) == NULL) {
		fetch_fail(j, "bad certs_url");
		return;
	}
	scheme = evhttp_uri_get_scheme(uri);
	if (scheme != NULL && strcmp(scheme, "file") == 0)
		fetch_file(j, evhttp_uri_get_path(uri));
	else if (scheme != NULL && strcmp(scheme, "https") == 0)
		why = fetch_https(j, uri);
	else
		why = "certs_url must be https:// or file://";
	evhttp_uri_free(uri);
	if (why != NULL)
		fetch_fail(j, why);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	fetch_start(arg);
}

static void
demand_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jwks *j = arg;

	log_info("key set refetch: a token named an unknown kid");
	fetch_start(j);
}

static void
load_cache(struct jwks *j)
{
	const char *why, *err;
	struct keyset *ks;
	size_t len;
	char *buf;

	if (j->cache_path == NULL)
		return;
	if ((buf = read_file(j->cache_path, JWKS_MAX_BODY, &len, &why)) == NULL) {
		if (errno != ENOENT)
			log_warnx("key set cache %s: %s", j->cache_path, why);
		return;
	}
	if ((ks = keyset_parse(buf, len, &err)) == NULL)
		log_warnx("key set cache %s: %s", j->cache_path, err);
	else
		install(j, ks, "cache");
	free(buf);
}

static void
copy_conf(struct jwks *j, const struct access_conf *conf)
{
	set_str(&j->url, conf->certs_url);
	set_str(&j->ca_file, conf->certs_ca_file);
	set_str(&j->cache_path, conf->certs_cache);
	j->interval_ms = conf->refresh_interval_ms < JWKS_MIN_INTERVAL_MS ?
	    JWKS_MIN_INTERVAL_MS : conf->refresh_interval_ms;
	j->deadline_ms = conf->fetch_timeout_ms > 0 ? conf->fetch_timeout_ms :
	    JWKS_DEADLINE_MS;
}

struct jwks *
jwks_new(struct event_base *base, const struct access_conf *conf)
{
	struct jwks *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->base = base;
	pthread_mutex_init(&j->mu, NULL);
	copy_conf(j, conf);
	/* async DNS so a slow resolver never stalls the loop; NULL falls back
	 * to blocking getaddrinfo */
	j->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	j->timer = evtimer_new(base, timer_cb, j);
	j->deadline = evtimer_new(base, deadline_cb, j);
	j->demand = event_new(base, -1, 0, demand_cb, j);
	if (j->timer == NULL || j->deadline == NULL || j->demand == NULL ||
	    j->url == NULL ||
	    (conf->certs_ca_file != NULL && j->ca_file == NULL) ||
	    (conf->certs_cache != NULL && j->cache_path == NULL)) {
		jwks_free(j);
		return NULL;
	}
	return j;
}

void
jwks_start(struct jwks *j)
{
	load_cache(j);
	fetch_start(j);
}

void
jwks_reconfigure(struct jwks *j, const struct access_conf *conf)
{
	int changed = str_differs(j->url, conf->certs_url) ||
	    str_differs(j->ca_file, conf->certs_ca_file);
	uint64_t old_interval = j->interval_ms;

	copy_conf(j, conf);
	if (changed && j->in_flight)
		j->refetch = 1;
	else if (changed)
		fetch_start(j);
	else if (j->interval_ms != old_interval && !j->in_flight)
		timer_arm(j->timer, j->interval_ms);
}

struct keyset *
jwks_current(struct jwks *j)
{
	struct keyset *ks;

	pthread_mutex_lock(&j->mu);
	ks = j->current != NULL ? keyset_ref(j->current) : NULL;
	pthread_mutex_unlock(&j->mu);
	return ks;
}

int
jwks_request_refresh(struct jwks *j)
{
	time_t now = mono_now();
	int go;

	pthread_mutex_lock(&j->mu);
	go = !j->demand_seen || now - j->last_demand >= JWKS_DEMAND_GAP_S;
	if (go) {
		j->demand_seen = 1;
		j->last_demand = now;
	}
	pthread_mutex_unlock(&j->mu);
	if (go)
		event_active(j->demand, 0, 0);
	return go;
}

void
jwks_free(struct jwks *j)
{
	if (j == NULL)
		return;
	if (j->evcon != NULL)
		evhttp_connection_free(j->evcon);
	if (j->timer != NULL)
		event_free(j->timer);
	if (j->deadline != NULL)
		event_free(j->deadline);
	if (j->demand != NULL)
		event_free(j->demand);
	if (j->dns != NULL)
		evdns_base_free(j->dns, 0);
	keyset_unref(j->current);
	pthread_mutex_destroy(&j->mu);
	free(j->url);
	free(j->ca_file);
	free(j->cache_path);
	free(j);
}
