/*
 * healthcheck: one GET for container health checks.  See healthcheck.h.
 *
 * A plain socket rather than evhttp: evhttp reports a refused or unreachable
 * connection as "response code 0" and drops errno, and the operator reading
 * `docker inspect` needs to know that nothing listens.
 */
#include "healthcheck.h"

#include <sys/socket.h>

#include <event2/http.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HEALTHCHECK_TIMEOUT_MS	5000
#define HEALTHCHECK_STATUS_MAX	256	/* only the status line is read */

struct probe {
	const char	*host;		/* as in the URL: the Host header */
	char		 addr[256];	/* for getaddrinfo: an IPv6 literal without [] */
	char		 port[12];
	const char	*path;
	struct timespec	 deadline;
};

static int
remaining_ms(const struct probe *p)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(p->deadline.tv_sec - now.tv_sec) * 1000 +
	    (p->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? (int)ms : 0;
}

/* 1 when fd is ready for `events`, 0 on timeout (errno ETIMEDOUT), -1 on error. */
static int
wait_fd(const struct probe *p, int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&pfd, 1, remaining_ms(p));
	while (n == -1 && errno == EINTR);
	if (n == 0)
		errno = ETIMEDOUT;
	return n;
}

/* A non-blocking connect to one address; 0 or -1 with errno set. */
static int
connect_one(const struct probe *p, int fd, const struct addrinfo *ai)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS || wait_fd(p, fd, POLLOUT) != 1)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		return -1;
	errno = err;
	return err == 0 ? 0 : -1;
}

/* A connected socket, or -1 after printing why. */
static int
dial(const struct probe *p)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICSERV }, *res, *ai;
	int fd = -1, rc, err = 0;

	if ((rc = getaddrinfo(p->addr, p->port, &hints, &res)) != 0) {
		fprintf(stderr, "kakikomi: healthcheck: cannot resolve %s: %s\n",
		    p->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) != -1 &&
		    connect_one(p, fd, ai) == 0)
			break;
		err = errno;
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		fprintf(stderr, "kakikomi: healthcheck: cannot connect to %s:%s: %s\n",
		    p->host, p->port, strerror(err));
	return fd;
}

static int
send_request(const struct probe *p, int fd)
{
	char req[1024];
	int n, off = 0, w;

	n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n"
	    "User-Agent: kakikomi-healthcheck\r\n\r\n", p->path, p->host);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	while (off < n) {
		if ((w = (int)send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL)) > 0)
			off += w;
		else if (w == -1 && errno != EAGAIN && errno != EINTR)
			return -1;
		else if (wait_fd(p, fd, POLLOUT) != 1)
			return -1;
	}
	return 0;
}

/*
 * The status code of "HTTP/1.x NNN ...", 0 when the peer closed or sent
 * something else, -1 with errno on a transport error or the deadline.
 */
static int
read_status(const struct probe *p, int fd)
{
	char buf[HEALTHCHECK_STATUS_MAX + 1];
	size_t len = 0;
	ssize_t r;
	int code;

	while (len < HEALTHCHECK_STATUS_MAX && memchr(buf, '\n', len) == NULL) {
		if ((r = recv(fd, buf + len, HEALTHCHECK_STATUS_MAX - len, 0)) > 0)
			len += (size_t)r;
		else if (r == 0)
			break;
		else if (errno != EAGAIN && errno != EINTR)
			return -1;
		else if (wait_fd(p, fd, POLLIN) != 1)
			return -1;
	}
	buf[len] = '\0';
	if (strncmp(buf, "HTTP/1.", 7) != 0 || len < 13 || buf[8] != ' ' ||
	    sscanf(buf + 9, "%3d", &code) != 1 || code < 100)
		return 0;
	return code;
}

/* The probe's target from an http:// URL; -1 when it is not one. */
static int
probe_init(struct probe *p, const struct evhttp_uri *uri)
{
	const char *scheme = evhttp_uri_get_scheme(uri);
	int port = evhttp_uri_get_port(uri), n;

	p->host = evhttp_uri_get_host(uri);
	if (p->host == NULL || *p->host == '\0')
		return -1;
	if (p->host[0] == '[')
		n = snprintf(p->addr, sizeof(p->addr), "%.*s", (int)strcspn(p->host + 1, "]"),
		    p->host + 1);
	else
		n = snprintf(p->addr, sizeof(p->addr), "%s", p->host);
	if (n < 0 || (size_t)n >= sizeof(p->addr))
		return -1;
	p->path = evhttp_uri_get_path(uri);
	if (p->path == NULL || *p->path == '\0')
		p->path = "/";
	snprintf(p->port, sizeof(p->port), "%d", port > 0 ? port : 80);
	clock_gettime(CLOCK_MONOTONIC, &p->deadline);
	p->deadline.tv_sec += HEALTHCHECK_TIMEOUT_MS / 1000;
	return scheme != NULL && strcmp(scheme, "http") == 0 ? 0 : -1;
}

int
healthcheck_run(const char *url)
{
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	struct probe p = { .host = NULL };
	int fd, code = -1;

	if (uri == NULL || probe_init(&p, uri) == -1) {
		fprintf(stderr, "kakikomi: healthcheck: %s is not an http:// URL\n", url);
		goto out;
	}
	if ((fd = dial(&p)) == -1)
		goto out;
	if (send_request(&p, fd) == 0)
		code = read_status(&p, fd);
	if (code == -1)
		fprintf(stderr, "kakikomi: healthcheck: %s: %s\n", url,
		    errno == ETIMEDOUT ? "no answer within 5 s" : strerror(errno));
	else if (code == 0)
		fprintf(stderr, "kakikomi: healthcheck: %s: closed without an HTTP "
		    "status line\n", url);
	else if (code < 200 || code >= 300)
		fprintf(stderr, "kakikomi: healthcheck: %s answered %d\n", url, code);
	close(fd);
out:
	if (uri)
		evhttp_uri_free(uri);
	return code >= 200 && code < 300 ? 0 : 1;
}
