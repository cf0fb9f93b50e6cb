/*
 * loadgen: the benchmark's HTTP/1.1 load generator.
 *
 *   loadgen --url http://127.0.0.1:PORT/path --body FILE[:SAMPLES]...
 *           [-H 'Name: value']... [--tokens FILE [--token-header NAME]
 *           [--unique]] [--connections 16] [--threads 1] [--warmup 1]
 *           [--duration 5] [--pid PID]...
 *   loadgen --idle N --url http://127.0.0.1:PORT/ [--hold SECONDS]
 *
 * Load mode: `connections` keep-alive connections spread over `threads`
 * epoll loops, each sending one request at a time (no pipelining).  Bodies
 * are sent round-robin, each with Content-Length, the -H headers and, with
 * --tokens, "<token-header>: <next token>" (default header
 * Cf-Access-Jwt-Assertion).  --unique uses every token once: the run ends
 * early when they run out.  Requests answered during the warm-up are not
 * counted; the measured window is the `duration` after it.  --pid PIDs: the
 * CPU time (utime+stime of all threads, /proc/PID/stat) they spend in the
 * window.  Prints one JSON object on stdout:
 *   {"requests","seconds","rps","samples_per_s","mb_per_s","p50_ms","p99_ms",
 *    "p999_ms","max_ms","status":{"204":n,...},"errors":{"io":n,...},
 *    "non2xx","ok","server_cpu_s","cpu_us_per_req","loadgen_cpu_s",
 *    "tokens_exhausted"}
 * SAMPLES is what one request of that body carries (for samples_per_s).
 *
 * Idle mode: opens N connections, prints "idle ready N" on stderr once all
 * are connected, holds them `hold` seconds (default 10) or until killed.
 *
 * Everything is bounded: a request unanswered for 10 s is an error, and the
 * process ends by itself at warmup + duration + 3 s at the latest.
 * Test tool: start-up errors exit 1; nothing a peer sends does.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "headers.h"

#define MAX_BODIES	16
#define MAX_HEADERS	16
#define MAX_PIDS	64
#define MAX_THREADS	16
#define MAX_CONNS	4096
#define REQ_HDR_MAX	16384	/* request line + headers */
#define RESP_HDR_MAX	16384	/* response status line + headers */
#define READ_CHUNK	65536
#define REQUEST_TIMEOUT_NS	(10ULL * 1000000000ULL)
#define DRAIN_NS	(2ULL * 1000000000ULL)	/* in-flight grace after the window */

enum phase { P_WARMUP, P_MEASURE, P_DONE };
enum rstate { R_HEADERS, R_BODY, R_CHUNK_SIZE, R_CHUNK_DATA, R_CHUNK_CRLF,
    R_TRAILER, R_UNTIL_EOF };
enum err { E_IO, E_CONNECT, E_TIMEOUT, E_PROTOCOL, E_COUNT };
static const char *const err_names[E_COUNT] = { "io", "connect", "timeout", "protocol" };

struct body {
	char		*data;
	size_t		 len;
	uint64_t	 samples;
};

struct conn {
	int		 fd;
	int		 busy;
	const struct body *body;
	char		 hdr[REQ_HDR_MAX];
	size_t		 hdrlen, sent;
	uint64_t	 t_start;
	uint64_t	 due;		/* --rate: when this connection sends next */
	char		 resp[RESP_HDR_MAX];
	size_t		 rlen;
	enum rstate	 rstate;
	uint64_t	 remaining;
	int		 status, close_after;
	char		 line[64];
	size_t		 linelen;
};

struct tstats {
	uint64_t	*lat;		/* ns, requests answered in the window */
	size_t		 nlat, caplat;
	uint64_t	 samples, bytes;
	uint64_t	 status[600];
	uint64_t	 errors[E_COUNT];
};

struct worker {
	pthread_t	 thread;
	int		 ep;
	struct conn	*conns;
	size_t		 nconns;
	struct tstats	 st;
};

static struct {
	struct sockaddr_in addr;
	char		 hostport[64];
	const char	*path;
	struct body	 bodies[MAX_BODIES];
	size_t		 nbodies;
	const char	*headers[MAX_HEADERS];
	size_t		 nheaders;
	char		**tokens;
	size_t		 ntokens;
	const char	*token_header;
	int		 unique;
	int		 pids[MAX_PIDS];
	size_t		 npids;
	int		 phase;		/* atomic enum phase */
	uint64_t	 next;		/* atomic request counter */
	int		 exhausted;	/* atomic: --unique ran out of tokens */
	uint64_t	 interval_ns;	/* --rate: per connection; 0 = closed loop */
} g = { .token_header = "Cf-Access-Jwt-Assertion" };

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ set-up */

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		die("cannot read %s", path);
	if ((buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("cannot read %s", path);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static void
add_body(const char *arg)
{
	char path[4096];
	const char *colon = strrchr(arg, ':');
	struct body *b;
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);

	if (g.nbodies == MAX_BODIES || n >= sizeof(path))
		die("too many --body or path too long");
	b = &g.bodies[g.nbodies++];
	memcpy(path, arg, n);
	path[n] = '\0';
	b->samples = colon ? strtoull(colon + 1, NULL, 10) : 0;
	b->data = read_file(path, &b->len);
}

static void
load_tokens(const char *path)
{
	size_t len, cap = 1024;
	char *buf = read_file(path, &len), *save = NULL;

	if ((g.tokens = malloc(cap * sizeof(char *))) == NULL)
		die("out of memory");
	for (char *t = strtok_r(buf, "\r\n", &save); t; t = strtok_r(NULL, "\r\n", &save)) {
		if (g.ntokens == cap && (g.tokens = realloc(g.tokens,
		    (cap *= 2) * sizeof(char *))) == NULL)
			die("out of memory");
		if (strlen(t) > REQ_HDR_MAX / 2)
			die("token too long in %s", path);
		g.tokens[g.ntokens++] = t;
	}
	if (g.ntokens == 0)
		die("no tokens in %s", path);
}

/* http://A.B.C.D:PORT/path only: the benchmark never leaves 127.0.0.1. */
static void
parse_url(const char *url)
{
	char host[64];
	const char *p, *colon, *slash;

	if (strncmp(url, "http://", 7) != 0)
		die("--url must be http://IPv4:PORT/path");
	p = url + 7;
	if ((slash = strchr(p, '/')) == NULL)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	if (colon == NULL || (size_t)(colon - p) >= sizeof(host) ||
	    (size_t)(slash - p) >= sizeof(g.hostport))
		die("--url needs an explicit port");
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = '\0';
	memcpy(g.hostport, p, (size_t)(slash - p));
	g.hostport[slash - p] = '\0';
	g.addr.sin_family = AF_INET;
	g.addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &g.addr.sin_addr) != 1)
		die("%s: not an IPv4 address", host);
	g.path = *slash ? slash : "/";
}

/* ------------------------------------------------------------ requests */

static void
conn_reset(struct worker *w, struct conn *c)
{
	if (c->fd != -1) {
		epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->busy = 0;
}

static int
conn_connect(struct worker *w, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd == -1 || connect(fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) == -1 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) == -1 ||
	    epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
		if (fd != -1)
			close(fd);
		w->st.errors[E_CONNECT]++;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	return 0;
}

/* Appends "Name: value\r\n"; -1 when it does not fit. */
static int
hdr_add(struct conn *c, const char *s1, const char *s2)
{
	int n = snprintf(c->hdr + c->hdrlen, sizeof(c->hdr) - c->hdrlen, "%s%s\r\n", s1, s2);

	if (n < 0 || (size_t)n >= sizeof(c->hdr) - c->hdrlen)
		return -1;
	c->hdrlen += (size_t)n;
	return 0;
}

/* Builds the next request on c; -1 when --unique has run out of tokens. */
static int
request_build(struct conn *c)
{
	uint64_t i = __atomic_fetch_add(&g.next, 1, __ATOMIC_RELAXED);
	char line[REQ_HDR_MAX / 4];

	if (g.unique && i >= g.ntokens) {
		__atomic_store_n(&g.exhausted, 1, __ATOMIC_RELAXED);
		return -1;
	}
	c->body = &g.bodies[i % g.nbodies];
	c->hdrlen = 0;
	snprintf(line, sizeof(line), "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu",
	    g.path, g.hostport, c->body->len);
	if (hdr_add(c, line, "") != 0)
		die("request line too long");
	for (size_t h = 0; h < g.nheaders; h++)
		if (hdr_add(c, g.headers[h], "") != 0)
			die("headers too long");
	if (g.ntokens) {
		snprintf(line, sizeof(line), "%s: ", g.token_header);
		if (hdr_add(c, line, g.tokens[i % g.ntokens]) != 0)
			die("token header too long");
	}
	if (hdr_add(c, "", "") != 0)
		die("headers too long");
	c->sent = 0;
	c->rlen = 0;
	c->rstate = R_HEADERS;
	c->status = 0;
	c->close_after = 0;
	c->busy = 1;
	c->t_start = now_ns();
	return 0;
}

/* Sends what is left of the request; -1 on a write error. */
static int
conn_send(struct conn *c)
{
	size_t total = c->hdrlen + c->body->len;

	while (c->sent < total) {
		struct iovec iov[2];
		int n = 0;
		ssize_t r;

		if (c->sent < c->hdrlen)
			iov[n++] = (struct iovec){ c->hdr + c->sent, c->hdrlen - c->sent };
		size_t boff = c->sent > c->hdrlen ? c->sent - c->hdrlen : 0;
		if (c->body->len > boff)
			iov[n++] = (struct iovec){ c->body->data + boff, c->body->len - boff };
		if ((r = writev(c->fd, iov, n)) == -1)
			return errno == EAGAIN ? 0 : -1;
		c->sent += (size_t)r;
	}
	return 0;
}

/* Header value of `name` in the response header block (not NUL-terminated). */
static const char *
resp_header(const struct conn *c, const char *name, size_t *vlen)
{
	return header_value(c->resp, c->rlen, name, vlen);
}

/* Status line and headers are in: pick how the body ends.  -1: not HTTP. */
static int
resp_start(struct conn *c)
{
	const char *v;
	size_t vlen;
	int http10 = c->rlen > 8 && memcmp(c->resp, "HTTP/1.0", 8) == 0;

	if (c->rlen < 12 || memcmp(c->resp, "HTTP/1.", 7) != 0)
		return -1;
	c->status = atoi(c->resp + 9);
	if (c->status < 100 || c->status > 599)
		return -1;
	v = resp_header(c, "Connection", &vlen);
	if ((v && vlen == 5 && strncasecmp(v, "close", 5) == 0) ||
	    (http10 && !(v && vlen == 10 && strncasecmp(v, "keep-alive", 10) == 0)))
		c->close_after = 1;
	if (c->status == 204 || c->status == 304 || c->status < 200) {
		c->remaining = 0;
		c->rstate = R_BODY;
	} else if ((v = resp_header(c, "Transfer-Encoding", &vlen)) != NULL &&
	    vlen == 7 && strncasecmp(v, "chunked", 7) == 0) {
		c->linelen = 0;
		c->rstate = R_CHUNK_SIZE;
	} else if ((v = resp_header(c, "Content-Length", &vlen)) != NULL) {
		c->remaining = strtoull(v, NULL, 10);
		c->rstate = R_BODY;
	} else {
		c->close_after = 1;
		c->rstate = R_UNTIL_EOF;
	}
	return 0;
}

/* Header bytes: returns bytes used, or -1. */
static ssize_t
resp_headers(struct conn *c, const char *p, size_t len)
{
	size_t old = c->rlen, from = old > 3 ? old - 3 : 0, take = len;
	char *end;

	if (take > sizeof(c->resp) - old)
		take = sizeof(c->resp) - old;
	memcpy(c->resp + old, p, take);
	c->rlen = old + take;
	if ((end = memmem(c->resp + from, c->rlen - from, "\r\n\r\n", 4)) == NULL)
		return c->rlen == sizeof(c->resp) ? -1 : (ssize_t)take;
	c->rlen = (size_t)(end - c->resp) + 4;
	if (resp_start(c) != 0)
		return -1;
	return (ssize_t)(c->rlen - old);
}

/* One line of a chunked body (size or trailer); 1 when the line is complete. */
static int
chunk_line(struct conn *c, const char **p, size_t *len)
{
	while (*len > 0) {
		char ch = *(*p)++;
		(*len)--;
		if (ch == '\n') {
			c->line[c->linelen] = '\0';
			c->linelen = 0;
			return 1;
		}
		if (ch != '\r' && c->linelen < sizeof(c->line) - 1)
			c->line[c->linelen++] = ch;
	}
	return 0;
}

/*
 * Feeds response bytes.  Returns 1 when the response is complete (*used
 * bytes consumed), 0 when more is needed, -1 on a protocol error.
 */
static int
resp_feed(struct conn *c, const char *p, size_t len, size_t *used)
{
	const char *start = p;

	for (;;) {
		if (c->rstate == R_HEADERS) {
			ssize_t n = resp_headers(c, p, len);
			if (n < 0)
				return -1;
			p += n;
			len -= (size_t)n;
			if (c->rstate == R_HEADERS)
				return 0;
		} else if (c->rstate == R_BODY || c->rstate == R_CHUNK_DATA ||
		    c->rstate == R_CHUNK_CRLF) {
			size_t take = len < c->remaining ? len : (size_t)c->remaining;
			p += take;
			len -= take;
			c->remaining -= take;
			if (c->remaining > 0)
				return 0;
			if (c->rstate == R_BODY)
				break;
			if (c->rstate == R_CHUNK_DATA) {
				c->rstate = R_CHUNK_CRLF;
				c->remaining = 2;
			} else
				c->rstate = R_CHUNK_SIZE;
		} else if (c->rstate == R_CHUNK_SIZE) {
			if (!chunk_line(c, &p, &len))
				return 0;
			c->remaining = strtoull(c->line, NULL, 16);
			c->rstate = c->remaining ? R_CHUNK_DATA : R_TRAILER;
		} else if (c->rstate == R_TRAILER) {
			if (!chunk_line(c, &p, &len))
				return 0;
			if (c->line[0] == '\0')
				break;
		} else {	/* R_UNTIL_EOF: complete when the peer closes */
			p += len;
			len = 0;
			*used = (size_t)(p - start);
			return 0;
		}
	}
	*used = (size_t)(p - start);
	return 1;
}

static void
stats_latency(struct tstats *st, uint64_t ns)
{
	if (st->nlat == st->caplat) {
		size_t cap = st->caplat ? st->caplat * 2 : 65536;
		uint64_t *n = realloc(st->lat, cap * sizeof(*n));
		if (n == NULL)
			return;
		st->lat = n;
		st->caplat = cap;
	}
	st->lat[st->nlat++] = ns;
}

static void
request_done(struct worker *w, struct conn *c)
{
	c->busy = 0;
	if (__atomic_load_n(&g.phase, __ATOMIC_RELAXED) != P_MEASURE)
		return;
	stats_latency(&w->st, now_ns() - c->t_start);
	w->st.status[c->status]++;
	if (c->status >= 200 && c->status < 300) {
		w->st.samples += c->body->samples;
		w->st.bytes += c->body->len;
	}
}

static void
request_failed(struct worker *w, struct conn *c, enum err e)
{
	if (__atomic_load_n(&g.phase, __ATOMIC_RELAXED) == P_MEASURE)
		w->st.errors[e]++;
	conn_reset(w, c);
}

/*
 * With --rate, a connection sends on a fixed schedule (first send at a
 * random offset, so connections do not send in step); 0 when it is time.
 * A connection that fell a whole interval behind restarts its schedule
 * instead of bursting.
 */
static int
conn_paced(struct conn *c)
{
	uint64_t now;

	if (g.interval_ns == 0)
		return 0;
	now = now_ns();
	if (c->due == 0)
		c->due = now + (uint64_t)rand() % g.interval_ns;
	if (now < c->due)
		return 1;
	c->due = now - c->due > g.interval_ns ? now + g.interval_ns : c->due + g.interval_ns;
	return 0;
}

/* Starts the next request on an open, idle connection. */
static void
conn_next(struct worker *w, struct conn *c)
{
	if (__atomic_load_n(&g.phase, __ATOMIC_RELAXED) == P_DONE || conn_paced(c) ||
	    request_build(c) != 0)
		return;
	if (conn_send(c) != 0)
		request_failed(w, c, E_IO);
}

static void
conn_readable(struct worker *w, struct conn *c, char *scratch)
{
	for (;;) {
		ssize_t n = recv(c->fd, scratch, READ_CHUNK, 0);
		size_t used = 0;
		int r;

		if (n == 0 && c->busy && c->rstate == R_UNTIL_EOF) {
			request_done(w, c);
			conn_reset(w, c);
			return;
		}
		if (n == 0 || (n == -1 && errno != EAGAIN)) {
			if (c->busy)
				request_failed(w, c, E_IO);
			else
				conn_reset(w, c);
			return;
		}
		if (n == -1)
			return;
		if (!c->busy || (r = resp_feed(c, scratch, (size_t)n, &used)) < 0 ||
		    (r == 1 && used != (size_t)n)) {
			request_failed(w, c, E_PROTOCOL);
			return;
		}
		if (r == 1) {
			int desync = c->sent < c->hdrlen + c->body->len;
			request_done(w, c);
			if (c->close_after || desync) {
				conn_reset(w, c);
				return;
			}
			conn_next(w, c);
			if (c->fd == -1)
				return;
		}
	}
}

static void
conn_event(struct worker *w, struct conn *c, uint32_t events, char *scratch)
{
	if (c->fd == -1)
		return;
	if ((events & EPOLLOUT) && c->busy && conn_send(c) != 0) {
		request_failed(w, c, E_IO);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_readable(w, c, scratch);
}

/* Timeouts, and reopening connections the server closed. */
static void
worker_tick(struct worker *w, int phase)
{
	uint64_t now = now_ns();

	for (size_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		if (c->busy && now - c->t_start > REQUEST_TIMEOUT_NS)
			request_failed(w, c, E_TIMEOUT);
		if (phase != P_DONE && c->fd == -1 && conn_connect(w, c) == 0)
			conn_next(w, c);
		else if (phase != P_DONE && c->fd != -1 && !c->busy)
			conn_next(w, c);
	}
}

static size_t
worker_busy(const struct worker *w)
{
	size_t n = 0;

	for (size_t i = 0; i < w->nconns; i++)
		n += w->conns[i].busy;
	return n;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[64];
	char *scratch = malloc(READ_CHUNK);
	uint64_t done_at = 0;

	if (scratch == NULL)
		die("out of memory");
	for (;;) {
		int phase = __atomic_load_n(&g.phase, __ATOMIC_RELAXED);
		if (phase == P_DONE) {
			if (done_at == 0)
				done_at = now_ns();
			if (worker_busy(w) == 0 || now_ns() - done_at > DRAIN_NS)
				break;
		}
		worker_tick(w, phase);
		/* paced connections are started from worker_tick: wake often */
		int n = epoll_wait(w->ep, evs, 64, g.interval_ns ? 0 : 10);
		if (n == 0 && g.interval_ns)
			sleep_ns(50000);
		for (int i = 0; i < n; i++)
			conn_event(w, evs[i].data.ptr, evs[i].events, scratch);
	}
	for (size_t i = 0; i < w->nconns; i++)
		conn_reset(w, &w->conns[i]);
	free(scratch);
	return NULL;
}

/* ------------------------------------------------------------ report */

/* utime+stime of the listed processes (all their threads), in seconds. */
static double
cpu_seconds(void)
{
	double total = 0;
	long tck = sysconf(_SC_CLK_TCK);

	for (size_t i = 0; i < g.npids; i++) {
		char path[64], buf[2048], *p;
		unsigned long ut = 0, st = 0;
		FILE *f;
		size_t n;

		snprintf(path, sizeof(path), "/proc/%d/stat", g.pids[i]);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		if ((p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		    &ut, &st) == 2)
			total += (double)(ut + st) / (double)tck;
	}
	return total;
}

static double
self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in ms. */
static double
pct_ms(const uint64_t *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)((double)n * q + 0.999999);
	i = i == 0 ? 0 : i - 1;
	return (double)v[i < n ? i : n - 1] / 1e6;
}

static void
merge(struct tstats *all, struct worker *ws, int nw)
{
	memset(all, 0, sizeof(*all));
	for (int t = 0; t < nw; t++) {
		struct tstats *s = &ws[t].st;
		for (size_t i = 0; i < s->nlat; i++)
			stats_latency(all, s->lat[i]);
		all->samples += s->samples;
		all->bytes += s->bytes;
		for (int k = 0; k < 600; k++)
			all->status[k] += s->status[k];
		for (int k = 0; k < E_COUNT; k++)
			all->errors[k] += s->errors[k];
	}
	if (all->nlat > 0)
		qsort(all->lat, all->nlat, sizeof(uint64_t), cmp_u64);
}

static void
report(struct tstats *a, double secs, double srv_cpu, double own_cpu)
{
	uint64_t non2xx = 0, errs = 0, n = a->nlat;
	const char *sep = "";

	printf("{\"requests\":%llu,\"seconds\":%.3f,\"rps\":%.1f,\"samples_per_s\":%.0f,"
	    "\"mb_per_s\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
	    "\"max_ms\":%.3f,\"status\":{", (unsigned long long)n, secs,
	    (double)n / secs, (double)a->samples / secs, (double)a->bytes / secs / 1e6,
	    pct_ms(a->lat, n, 0.50), pct_ms(a->lat, n, 0.99), pct_ms(a->lat, n, 0.999),
	    n ? (double)a->lat[n - 1] / 1e6 : 0.0);
	for (int k = 0; k < 600; k++) {
		if (a->status[k] == 0)
			continue;
		printf("%s\"%d\":%llu", sep, k, (unsigned long long)a->status[k]);
		sep = ",";
		if (k < 200 || k >= 300)
			non2xx += a->status[k];
	}
	printf("},\"errors\":{");
	sep = "";
	for (int k = 0; k < E_COUNT; k++) {
		if (a->errors[k] == 0)
			continue;
		printf("%s\"%s\":%llu", sep, err_names[k], (unsigned long long)a->errors[k]);
		sep = ",";
		errs += a->errors[k];
	}
	printf("},\"non2xx\":%llu,\"ok\":%s,", (unsigned long long)non2xx,
	    non2xx == 0 && errs == 0 && n > 0 ? "true" : "false");
	if (g.npids)
		printf("\"server_cpu_s\":%.2f,\"cpu_us_per_req\":%.1f,", srv_cpu,
		    n ? srv_cpu * 1e6 / (double)n : 0.0);
	printf("\"loadgen_cpu_s\":%.2f,\"tokens_exhausted\":%s}\n", own_cpu,
	    __atomic_load_n(&g.exhausted, __ATOMIC_RELAXED) ? "true" : "false");
}

/* ------------------------------------------------------------ main */

static void
run_load(int nconns, int nthreads, double warmup, double duration)
{
	struct worker *ws = calloc((size_t)nthreads, sizeof(*ws));
	struct conn *conns = calloc((size_t)nconns, sizeof(*conns));
	double cpu0, cpu1, own0, own1;
	uint64_t t0, t1;
	struct tstats all;

	if (ws == NULL || conns == NULL)
		die("out of memory");
	for (int t = 0; t < nthreads; t++) {
		struct worker *w = &ws[t];
		size_t from = (size_t)nconns * (size_t)t / (size_t)nthreads;
		w->conns = conns + from;
		w->nconns = (size_t)nconns * (size_t)(t + 1) / (size_t)nthreads - from;
		for (size_t i = 0; i < w->nconns; i++)
			w->conns[i].fd = -1;
		if ((w->ep = epoll_create1(0)) == -1 ||
		    pthread_create(&w->thread, NULL, worker_main, w) != 0)
			die("cannot start a worker");
	}
	sleep_ns((uint64_t)(warmup * 1e9));
	cpu0 = cpu_seconds();
	own0 = self_cpu();
	t0 = now_ns();
	__atomic_store_n(&g.phase, P_MEASURE, __ATOMIC_RELAXED);
	while (now_ns() - t0 < (uint64_t)(duration * 1e9) &&
	    !__atomic_load_n(&g.exhausted, __ATOMIC_RELAXED))
		sleep_ns(2000000);
	__atomic_store_n(&g.phase, P_DONE, __ATOMIC_RELAXED);
	t1 = now_ns();
	cpu1 = cpu_seconds();
	own1 = self_cpu();
	for (int t = 0; t < nthreads; t++)
		pthread_join(ws[t].thread, NULL);
	merge(&all, ws, nthreads);
	report(&all, (double)(t1 - t0) / 1e9, cpu1 - cpu0, own1 - own0);
	for (int t = 0; t < nthreads; t++)
		free(ws[t].st.lat);
	free(all.lat);
	free(ws);
	free(conns);
}

static void
run_idle(int n, double hold)
{
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd == -1 || connect(fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) == -1)
			die("idle connection %d: %s", i, strerror(errno));
	}
	fprintf(stderr, "idle ready %d\n", n);
	sleep_ns((uint64_t)(hold * 1e9));
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void __attribute__((noreturn))
usage(void)
{
	fputs("usage: loadgen --url http://IP:PORT/path --body FILE[:SAMPLES]... [-H 'N: v']...\n"
	    "         [--tokens FILE [--token-header NAME] [--unique]] [--connections 16]\n"
	    "         [--threads 1] [--warmup 1] [--duration 5] [--rate REQ_PER_S] [--pid PID]...\n"
	    "       loadgen --idle N --url http://IP:PORT/ [--hold SECONDS]\n", stderr);
	exit(1);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "body", required_argument, NULL, 'b' },
		{ "header", required_argument, NULL, 'H' },
		{ "tokens", required_argument, NULL, 'k' },
		{ "token-header", required_argument, NULL, 'K' },
		{ "unique", no_argument, NULL, 'U' },
		{ "connections", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'd' },
		{ "pid", required_argument, NULL, 'p' },
		{ "idle", required_argument, NULL, 'i' },
		{ "hold", required_argument, NULL, 'h' },
		{ "rate", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, nconns = 16, nthreads = 1, idle = 0;
	double warmup = 1, duration = 5, hold = 10, rate = 0;
	const char *url = NULL;

	while ((ch = getopt_long(argc, argv, "H:", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': url = optarg; break;
		case 'b': add_body(optarg); break;
		case 'H':
			if (g.nheaders == MAX_HEADERS)
				die("too many -H");
			g.headers[g.nheaders++] = optarg;
			break;
		case 'k': load_tokens(optarg); break;
		case 'K': g.token_header = optarg; break;
		case 'U': g.unique = 1; break;
		case 'c': nconns = atoi(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'p':
			if (g.npids == MAX_PIDS)
				die("too many --pid");
			g.pids[g.npids++] = atoi(optarg);
			break;
		case 'i': idle = atoi(optarg); break;
		case 'h': hold = atof(optarg); break;
		case 'r': rate = atof(optarg); break;
		default: usage();
		}
	}
	if (url == NULL)
		usage();
	parse_url(url);
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (idle > 0) {
		run_idle(idle, hold);
		return 0;
	}
	if (g.nbodies == 0 || nconns < 1 || nconns > MAX_CONNS || nthreads < 1 ||
	    nthreads > MAX_THREADS || nthreads > nconns || warmup < 0 || warmup > 60 ||
	    duration <= 0 || duration > 600)
		usage();
	if (rate < 0)
		usage();
	/* each connection carries an equal share of the rate */
	if (rate > 0)
		g.interval_ns = (uint64_t)(1e9 * nconns / rate);
	run_load(nconns, nthreads, warmup, duration);
	return fflush(stdout) == 0 ? 0 : 1;
}
