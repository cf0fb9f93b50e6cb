/*
 * http: kakikomi's HTTP/1.1 server side — a pure request-head parser and
 * chunked-body decoder, and the connection glue on bufferevents around them.
 *
 * Pure core (no event loop; unit-tested and fuzzed on plain buffers):
 * http_parse_head() and http_chunked_step().  Neither allocates, recurses or
 * assumes NUL termination; both are bounded (HTTP_MAX_HEAD, HTTP_MAX_HEADERS,
 * a 64-bit chunk size and a total cap).
 *
 * Connection glue: one http_server per worker thread, on that thread's event
 * base and its own SO_REUSEPORT listener.  A request goes through the hooks:
 *   head(req)      the head is in, nothing of the body was read.  The hook
 *                  either answers at once with http_reply() (the unwanted body
 *                  is never read; the connection closes after the answer) or
 *                  admits the request: then "100 Continue" is sent if asked and
 *                  the body is read, bounded by http_request_set_body_limit().
 *   more(req, n)   the body is about to grow to n bytes (Content-Length or
 *                  chunked: called as bytes arrive, never from the declared
 *                  length).  The hook reserves them, or refuses by answering
 *                  with http_reply() and returning -1.
 *   body(req)      the whole body is in (http_request_body()).  The owner
 *                  answers later, from the same thread, with http_reply().
 *   fail(req, st, reason)  the request could not be read: malformed head or
 *                  chunk (400), too large (413), a deadline passed (408), or the
 *                  client went away (400; the answer is dropped).  The hook
 *                  must answer with http_reply(); http_request_data() is NULL
 *                  when head() never ran.
 * Every request is answered exactly once with http_reply(), which frees it.
 * A request stays valid after its client disconnected, until it is answered.
 * Deadlines: header_timeout from accept or the first byte of a request until
 * the head is complete (then 408), body_timeout from the head until the body is
 * complete (408), min_body_rate after body_rate_grace (408 as soon as the body
 * averages fewer bytes per second), idle_timeout between requests on a
 * kept-alive connection (closed silently).  One request at a time (no
 * pipelining): what arrives while one is pending waits unread in the input,
 * bounded by HTTP_MAX_HEAD, and reading is not switched off and on per
 * request.  The body buffer grows as bytes arrive (doubling, capped at
 * Content-Length or the body limit), so a declared length costs nothing until
 * it is sent.
 */
#ifndef KAKIKOMI_HTTP_H
#define KAKIKOMI_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEAD		(64 * 1024)	/* request line + headers + blank line */
#define HTTP_MAX_HEADERS	100

struct http_str {
	const char	*p;
	size_t		 len;
};

struct http_header {
	struct http_str	 name;
	struct http_str	 value;		/* surrounding whitespace trimmed */
};

struct http_head {
	struct http_str		method;
	struct http_str		target;
	int			minor;		/* HTTP/1.<minor> */
	struct http_header	headers[HTTP_MAX_HEADERS];
	size_t			nheaders;
	int			has_length;	/* Content-Length present */
	uint64_t		content_length;
	int			chunked;	/* Transfer-Encoding: chunked */
	int			keep_alive;	/* from the version and Connection */
	int			expect_continue;/* Expect: 100-continue */
};

/*
 * Parses a request head from buf[0..len): bytes consumed (through the blank
 * line) when complete, 0 when more bytes are needed, -1 when malformed or over
 * the bounds (*errstr: a static one-line reason).  `out` holds views into buf.
 * Content-Length must be digits only, repeated only with the same value;
 * Transfer-Encoding only "chunked", never with Content-Length; obs-fold and
 * control characters are refused.
 */
int	http_parse_head(const char *buf, size_t len, struct http_head *out,
	    const char **errstr);
/* The first header named `name` (case-insensitive), or NULL. */
const struct http_str *http_head_find(const struct http_head *h, const char *name);
/* How many header lines are named `name` (case-insensitive). */
size_t	http_head_count(const struct http_head *h, const char *name);

struct http_chunked {
	int		state;
	uint64_t	size;		/* current chunk: declared, then left to read */
	uint64_t	total;		/* body bytes declared so far */
	uint64_t	max_total;
	size_t		linelen;	/* chunk extension / trailer bytes so far */
	int		over_limit;	/* set with -1 when total would pass max_total */
	int		done;		/* last chunk and trailer section consumed */
};

void	http_chunked_init(struct http_chunked *c, uint64_t max_total);
/*
 * Steps the decoder over buf[0..len): bytes consumed, or -1 (*errstr; with
 * c->over_limit set when the body would pass max_total).  At most one body
 * piece per call: *data and *datalen point at it inside the consumed bytes
 * (*datalen 0 when none).  Stops consuming once c->done.
 */
ssize_t	http_chunked_step(struct http_chunked *c, const char *buf, size_t len,
	    const char **data, size_t *datalen, const char **errstr);

/*
 * The capacity a body buffer of `cap` bytes grows to so that it holds `need`:
 * doubling from 64 KiB (n bytes cost fewer than 2n bytes of copies), never past
 * `max` when max >= need.
 */
size_t	http_body_cap(size_t cap, size_t need, size_t max);

/* ---- connection glue ---------------------------------------------------- */

struct event_base;
struct evconnlistener;
struct http_server;
struct http_request;

struct http_limits {
	uint64_t	max_connections;	/* all workers together */
	uint64_t	header_timeout_ms;
	uint64_t	body_timeout_ms;
	uint64_t	idle_timeout_ms;
	uint64_t	min_body_rate;		/* bytes/s; 0: only body_timeout */
	uint64_t	body_rate_grace_ms;	/* before min_body_rate applies */
	/* At the cap, close the oldest connection that has not sent a byte of
	 * a request instead of refusing the new one (nginx's reusable
	 * connections): idle sockets then cannot lock a client out. */
	int		evict_idle;
};

struct http_hooks {
	/* Limits for a new connection (called on accept, from the worker). */
	void	(*limits)(void *arg, struct http_limits *out);
	void	(*head)(struct http_request *req, void *arg);
	int	(*more)(struct http_request *req, size_t total, void *arg);
	void	(*body)(struct http_request *req, void *arg);
	void	(*fail)(struct http_request *req, int status, const char *reason, void *arg);
	/* Label set of this server's kakikomi_open_connections and
	 * kakikomi_connections_refused_total series; NULL for none. */
	const char	*metric_labels;
};

struct http_field {
	const char	*name;
	const char	*value;
};

/*
 * Serves connections accepted on `lev` (taken over: freed with the server).
 * `conns` counts open connections across every http_server sharing it
 * (atomic).  NULL on allocation failure.
 */
struct http_server	*http_server_new(struct event_base *base, struct evconnlistener *lev,
			    const struct http_hooks *hooks, void *arg, size_t *conns);
/* Closes the listener and idle connections; later answers close their
 * connection.  Requests in flight go on. */
void			 http_server_drain(struct http_server *hs);
/* Closes every connection.  Requests still pending stay with their owner. */
void			 http_server_free(struct http_server *hs);

/* The request's head: method, target (views), and header values as C strings. */
const struct http_head	*http_request_head(const struct http_request *req);
/* The target's path (before '?'), NUL-terminated. */
const char		*http_request_path(const struct http_request *req);
int			 http_request_is(const struct http_request *req, const char *method);
/* The first header `name`, NUL-terminated, or NULL. */
const char		*http_request_header(const struct http_request *req, const char *name);
/* The same with its length, as the head parse measured it (*len 0 when absent). */
const char		*http_request_header_n(const struct http_request *req, const char *name,
			    size_t *len);
void			 http_request_set_data(struct http_request *req, void *data);
void			*http_request_data(const struct http_request *req);
/* Caps the body; default 0 (any body is 413).  Chunked bodies are checked as
 * they arrive, a Content-Length before reading (413 from the head alone). */
void			 http_request_set_body_limit(struct http_request *req, uint64_t max);
/* The body read so far: contiguous, owned by the request. */
const uint8_t		*http_request_body(const struct http_request *req, size_t *len);

/*
 * Answers and frees `req`.  `phrase` is the reason phrase; `fields` extra
 * header lines; body/len the body (may be NULL/0).  Adds Content-Length, Date
 * and, when the connection will close, "Connection: close".  The answer is
 * dropped when the client is gone.
 */
void	http_reply(struct http_request *req, int status, const char *phrase,
	    const struct http_field *fields, size_t nfields, const void *body, size_t len);

#endif
