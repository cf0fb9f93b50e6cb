/*
 * nullup: the benchmark's null upstream.  Reads each request body in full and
 * answers "204 No Content" on a keep-alive connection; nothing is stored.
 *
 *   nullup --listen 127.0.0.1:PORT [--threads N]
 *
 * N threads (default 2), each with its own epoll loop and its own
 * SO_REUSEPORT socket, so the kernel spreads connections over them.  Requests
 * need Content-Length (every proxy in the benchmark sends it); a chunked
 * request gets 501 and the connection is closed, which the loadgen reports as
 * an error.  Pipelined requests are answered in order.  GET /stats answers
 * 200 "requests=N bytes=M" (POSTs and body bytes seen since start), so the
 * benchmark can tell what reached the upstream.  Prints "nullup ready" on
 * stderr once bound; SIGTERM/SIGINT end it.
 *
 * Test tool: start-up errors exit 1; nothing a peer sends does.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "headers.h"

#define MAX_THREADS	16
#define MAX_EVENTS	64
#define HDR_MAX		16384		/* one request's header block */
#define READ_CHUNK	(256 * 1024)	/* per-thread scratch for reads */
#define OUT_MAX		4096		/* queued answers per connection */

enum cstate { C_HEADERS, C_BODY };

struct conn {
	int		 fd;
	enum cstate	 state;
	uint64_t	 remaining;	/* body bytes still to read */
	int		 close_after;
	int		 answered;	/* GET /stats: its answer is queued */
	size_t		 hlen;
	char		 hdr[HDR_MAX];
	size_t		 olen;
	char		 out[OUT_MAX];
};

static struct sockaddr_in listen_addr;
static uint64_t n_requests, n_bytes;	/* atomic */

static void __attribute__((noreturn))
die(const char *what)
{
	perror(what);
	exit(1);
}

static int
listen_socket(void)
{
	int fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
		die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
		die("setsockopt");
	if (bind(fd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) == -1)
		die("bind");
	if (listen(fd, 1024) == -1)
		die("listen");
	return fd;
}

static void
conn_close(struct conn *c)
{
	close(c->fd);
	free(c);
}

/* Queues an answer; -1 when the peer lets answers pile up. */
static int
conn_queue(struct conn *c, const char *s)
{
	size_t n = strlen(s);

	if (n > sizeof(c->out) - c->olen)
		return -1;
	memcpy(c->out + c->olen, s, n);
	c->olen += n;
	return 0;
}

/* Writes what is queued; 0 when all is out or the socket is full, -1 on error. */
static int
conn_flush(struct conn *c)
{
	while (c->olen > 0) {
		ssize_t n = send(c->fd, c->out, c->olen, MSG_NOSIGNAL);
		if (n == -1)
			return errno == EAGAIN ? 0 : -1;
		memmove(c->out, c->out + n, c->olen - (size_t)n);
		c->olen -= (size_t)n;
	}
	return 0;
}


static int
value_is(const char *v, size_t vlen, const char *want)
{
	return v != NULL && vlen == strlen(want) && strncasecmp(v, want, vlen) == 0;
}

/* One complete header block: decide the body length and the answer. */
static int
conn_request(struct conn *c)
{
	const char *v;
	size_t vlen;
	char stats[128], answer[256];
	int http10 = memmem(c->hdr, c->hlen, " HTTP/1.0\r", 10) != NULL;

	v = header_value(c->hdr, c->hlen, "Connection", &vlen);
	c->close_after = value_is(v, vlen, "close") ||
	    (http10 && !value_is(v, vlen, "keep-alive"));
	if (header_value(c->hdr, c->hlen, "Transfer-Encoding", &vlen) != NULL) {
		c->close_after = 1;
		return conn_queue(c, "HTTP/1.1 501 Not Implemented\r\n"
		    "Content-Length: 0\r\nConnection: close\r\n\r\n");
	}
	c->remaining = 0;
	if ((v = header_value(c->hdr, c->hlen, "Content-Length", &vlen)) != NULL)
		c->remaining = strtoull(v, NULL, 10);
	if (strncmp(c->hdr, "GET /stats ", 11) == 0) {
		snprintf(stats, sizeof(stats), "requests=%llu bytes=%llu\n",
		    (unsigned long long)__atomic_load_n(&n_requests, __ATOMIC_RELAXED),
		    (unsigned long long)__atomic_load_n(&n_bytes, __ATOMIC_RELAXED));
		snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
		    "Content-Type: text/plain\r\nConnection: close\r\n\r\n%s",
		    strlen(stats), stats);
		c->state = C_BODY;
		c->remaining = 0;
		c->close_after = 1;
		c->answered = 1;
		return conn_queue(c, answer);
	}
	__atomic_add_fetch(&n_requests, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&n_bytes, c->remaining, __ATOMIC_RELAXED);
	c->state = C_BODY;
	return 0;
}

/* Body done: answer 204 (GET /stats was answered when its headers came). */
static int
conn_answer(struct conn *c)
{
	c->state = C_HEADERS;
	c->hlen = 0;
	if (c->answered) {
		c->answered = 0;
		return 0;
	}
	return conn_queue(c, c->close_after ?
	    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n" :
	    "HTTP/1.1 204 No Content\r\n\r\n");
}

/* Consumes bytes of header block; returns bytes used or -1. */
static ssize_t
conn_headers(struct conn *c, const char *p, size_t len)
{
	size_t old = c->hlen, take = len;
	size_t from = old > 3 ? old - 3 : 0;
	char *end;

	if (take > sizeof(c->hdr) - old)
		take = sizeof(c->hdr) - old;
	memcpy(c->hdr + old, p, take);
	c->hlen = old + take;
	end = memmem(c->hdr + from, c->hlen - from, "\r\n\r\n", 4);
	if (end == NULL)
		return c->hlen == sizeof(c->hdr) ? -1 : (ssize_t)take;
	c->hlen = (size_t)(end - c->hdr) + 4;
	if (conn_request(c) != 0)
		return -1;
	return (ssize_t)(c->hlen - old);
}

/* Feeds read bytes through the request state machine; -1 closes. */
static int
conn_feed(struct conn *c, const char *p, size_t len)
{
	while (len > 0) {
		if (c->state == C_HEADERS) {
			ssize_t used = conn_headers(c, p, len);
			if (used < 0)
				return -1;
			p += used;
			len -= (size_t)used;
		} else {
			size_t take = len < c->remaining ? len : (size_t)c->remaining;
			p += take;
			len -= take;
			c->remaining -= take;
		}
		if (c->state == C_BODY && c->remaining == 0 && conn_answer(c) != 0)
			return -1;
	}
	return 0;
}

static int
conn_readable(struct conn *c, char *scratch)
{
	for (;;) {
		ssize_t n = recv(c->fd, scratch, READ_CHUNK, 0);
		if (n == 0)
			return -1;
		if (n == -1)
			return errno == EAGAIN ? 0 : -1;
		if (conn_feed(c, scratch, (size_t)n) != 0)
			return -1;
	}
}

static void
accept_all(int lfd, int ep)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK), one = 1;
		struct conn *c;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };

		if (fd == -1)
			return;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
			conn_close(c);
	}
}

static void *
serve(void *arg)
{
	int lfd = *(int *)arg, ep = epoll_create1(0);
	struct epoll_event evs[MAX_EVENTS], lev = { .events = EPOLLIN, .data.ptr = NULL };
	char *scratch = malloc(READ_CHUNK);

	if (ep == -1 || scratch == NULL || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) == -1)
		die("epoll");
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c == NULL) {
				accept_all(lfd, ep);
				continue;
			}
			if (conn_readable(c, scratch) != 0 || conn_flush(c) != 0 ||
			    (c->close_after && c->olen == 0 && c->state == C_HEADERS))
				conn_close(c);
		}
	}
	return NULL;
}

static void
parse_listen(const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
		fprintf(stderr, "nullup: --listen wants HOST:PORT\n");
		exit(2);
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &listen_addr.sin_addr) != 1) {
		fprintf(stderr, "nullup: %s: not an IPv4 address\n", host);
		exit(2);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	pthread_t th[MAX_THREADS];
	int fds[MAX_THREADS];
	int ch, nthreads = 2;
	const char *listen_s = NULL;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': listen_s = optarg; break;
		case 't': nthreads = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: nullup --listen HOST:PORT [--threads N]\n");
			return 2;
		}
	}
	if (listen_s == NULL || nthreads < 1 || nthreads > MAX_THREADS) {
		fprintf(stderr, "usage: nullup --listen HOST:PORT [--threads 1..16]\n");
		return 2;
	}
	parse_listen(listen_s);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < nthreads; i++)
		fds[i] = listen_socket();
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, serve, &fds[i]) != 0)
			die("pthread_create");
	fprintf(stderr, "nullup ready\n");
	pthread_join(th[0], NULL);
	return 0;
}
