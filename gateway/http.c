/* http: HTTP/1.1 server connections and their pure parsers.  See http.h. */
#include "http.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

#define CHUNK_LINE_MAX	4096		/* chunk extensions, and each trailer line */
#define TRAILER_MAX	(16 * 1024)	/* the whole trailer section */
#define LINGER_MS	2000		/* reading and discarding after a closing answer */
/*
 * First allocation of a body, capped at its Content-Length: a remote write
 * batch (~41 KB for 2000 series) then takes one allocation and no copies,
 * while a declared length still costs at most this before its bytes arrive
 * (a bounded number of requests is admitted at once).
 */
#define BODY_BUF_MIN	(64 * 1024)
#define BODY_RECHECK_MS	100		/* least wait between two min_body_rate checks */

/* ---- pure core: request head -------------------------------------------- */

static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field value characters: HTAB, visible ASCII, SP and obs-text. */
static int
is_vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
str_ieqn(struct http_str s, const char *lit, size_t n)
{
	return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

static int
str_ieq(struct http_str s, const char *lit)
{
	return str_ieqn(s, lit, strlen(lit));
}

/*
 * The line starting at p: *eol is where its content ends (the CR of CRLF, or
 * a bare LF).  Returns the start of the next line, or NULL when no LF is in.
 */
static const char *
next_line(const char *p, const char *end, const char **eol)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));

	if (lf == NULL)
		return NULL;
	*eol = (lf > p && lf[-1] == '\r') ? lf - 1 : lf;
	return lf + 1;
}

/* METHOD SP target SP HTTP/1.x */
static int
parse_request_line(const char *p, const char *eol, struct http_head *h)
{
	const char *q = p;

	while (q < eol && is_tchar((unsigned char)*q))
		q++;
	if (q == p || q == eol || *q != ' ')
		return -1;
	h->method = (struct http_str){ p, (size_t)(q - p) };
	p = ++q;
	while (q < eol && (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f)
		q++;
	if (q == p || q == eol || *q != ' ')
		return -1;
	h->target = (struct http_str){ p, (size_t)(q - p) };
	p = q + 1;
	if (eol - p != 8 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
		return -1;
	h->minor = p[7] - '0';
	return 0;
}

/* Strict digits, no sign, no list, no overflow. */
static int
parse_length(struct http_str v, uint64_t *out)
{
	uint64_t n = 0;

	if (v.len == 0 || v.len > 19)
		return -1;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = n;
	return 0;
}

/* Connection: a comma-separated token list. */
static void
parse_connection(struct http_str v, int *close, int *keep)
{
	const char *p = v.p, *end = v.p + v.len;

	while (p < end) {
		const char *q = memchr(p, ',', (size_t)(end - p));
		struct http_str t;

		if (q == NULL)
			q = end;
		while (p < q && (*p == ' ' || *p == '\t'))
			p++;
		t = (struct http_str){ p, (size_t)(q - p) };
		while (t.len && (t.p[t.len - 1] == ' ' || t.p[t.len - 1] == '\t'))
			t.len--;
		if (str_ieq(t, "close"))
			*close = 1;
		else if (str_ieq(t, "keep-alive"))
			*keep = 1;
		p = q + 1;
	}
}

/* The headers that frame the message. */
static int
header_meaning(struct http_head *h, const struct http_header *f, int *close, int *keep,
    const char **errstr)
{
	uint64_t n;

	if (str_ieq(f->name, "Content-Length")) {
		if (parse_length(f->value, &n) != 0) {
			*errstr = "Content-Length is not a number";
			return -1;
		}
		if (h->has_length && n != h->content_length) {
			*errstr = "conflicting Content-Length headers";
			return -1;
		}
		h->has_length = 1;
		h->content_length = n;
	} else if (str_ieq(f->name, "Transfer-Encoding")) {
		if (h->chunked || !str_ieq(f->value, "chunked")) {
			*errstr = "unsupported Transfer-Encoding (only chunked)";
			return -1;
		}
		h->chunked = 1;
	} else if (str_ieq(f->name, "Connection"))
		parse_connection(f->value, close, keep);
	else if (str_ieq(f->name, "Expect") && str_ieq(f->value, "100-continue"))
		h->expect_continue = 1;
	return 0;
}

static int
parse_header_line(const char *p, const char *eol, struct http_head *h, const char **errstr)
{
	struct http_header *f;
	const char *q = p;

	if (*p == ' ' || *p == '\t') {
		*errstr = "folded header line (obs-fold)";
		return -1;
	}
	while (q < eol && is_tchar((unsigned char)*q))
		q++;
	if (q == p || q == eol || *q != ':') {
		*errstr = "malformed header name";
		return -1;
	}
	if (h->nheaders == HTTP_MAX_HEADERS) {
		*errstr = "more than 100 header lines";
		return -1;
	}
	f = &h->headers[h->nheaders++];
	f->name = (struct http_str){ p, (size_t)(q - p) };
	for (q++; q < eol && (*q == ' ' || *q == '\t'); q++)
		;
	f->value = (struct http_str){ q, (size_t)(eol - q) };
	for (; q < eol; q++)
		if (!is_vchar((unsigned char)*q)) {
			*errstr = "control character in a header value";
			return -1;
		}
	while (f->value.len && (f->value.p[f->value.len - 1] == ' ' ||
	    f->value.p[f->value.len - 1] == '\t'))
		f->value.len--;
	return 0;
}

static int
head_incomplete(size_t len, const char **errstr)
{
	if (len < HTTP_MAX_HEAD)
		return 0;
	*errstr = "request head over 64 KiB";
	return -1;
}

int
http_parse_head(const char *buf, size_t len, struct http_head *out, const char **errstr)
{
	const char *p = buf, *end = buf + (len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD);
	const char *eol, *next;
	int close = 0, keep = 0;

	out->nheaders = 0;
	out->has_length = out->chunked = out->expect_continue = 0;
	out->content_length = 0;
	/* RFC 9112 2.2: empty lines before the request line are ignored. */
	while ((next = next_line(p, end, &eol)) != NULL && eol == p)
		p = next;
	if (next == NULL)
		return head_incomplete(len, errstr);
	if (parse_request_line(p, eol, out) != 0) {
		*errstr = "malformed request line";
		return -1;
	}
	for (p = next; (next = next_line(p, end, &eol)) != NULL && eol != p; p = next)
		if (parse_header_line(p, eol, out, errstr) != 0 ||
		    header_meaning(out, &out->headers[out->nheaders - 1], &close, &keep,
		    errstr) != 0)
			return -1;
	if (next == NULL)
		return head_incomplete(len, errstr);
	if (out->chunked && (out->has_length || out->minor == 0)) {
		*errstr = out->has_length ? "both Transfer-Encoding and Content-Length" :
		    "Transfer-Encoding in an HTTP/1.0 request";
		return -1;
	}
	out->keep_alive = !close && (out->minor >= 1 || keep);
	return (int)(next - buf);
}

const struct http_str *
http_head_find(const struct http_head *h, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < h->nheaders; i++)
		if (str_ieqn(h->headers[i].name, name, n))
			return &h->headers[i].value;
	return NULL;
}

size_t
http_head_count(const struct http_head *h, const char *name)
{
	size_t	n = 0;

	for (size_t i = 0; i < h->nheaders; i++)
		n += str_ieq(h->headers[i].name, name);
	return n;
}

/* ---- pure core: chunked body -------------------------------------------- */

/* The chunk-size line's states come first: chunk_byte() splits on CH_SIZE_LF. */
enum {
	CH_SIZE_START, CH_SIZE, CH_EXT_END, CH_EXT_WS, CH_EXT_NAME0, CH_EXT_NAME,
	CH_EXT_NAME_WS, CH_EXT_VAL0, CH_EXT_TOKEN, CH_EXT_QUOTED, CH_EXT_QPAIR, CH_SIZE_LF,
	CH_DATA, CH_DATA_CR, CH_DATA_LF,
	CH_TRAILER, CH_TRAILER_LINE, CH_TRAILER_LF, CH_END_LF, CH_DONE
};

void
http_chunked_init(struct http_chunked *c, uint64_t max_total)
{
	memset(c, 0, sizeof(*c));
	c->max_total = max_total;
}

static int
hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The chunk-size line is complete: a data chunk, or the last one. */
static int
chunk_start(struct http_chunked *c, const char **errstr)
{
	c->linelen = 0;
	if (c->size == 0) {
		c->state = CH_TRAILER;
		return 0;
	}
	if (c->size > c->max_total - c->total) {
		c->over_limit = 1;
		*errstr = "chunked body over the size limit";
		return -1;
	}
	c->total += c->size;
	c->state = CH_DATA;
	return 0;
}

static int
is_ws(unsigned char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * After the size, an extension name or value: BWS then ";" (the next
 * extension), "=" after a name, or the CR ending the line (never after BWS).
 */
static int
ext_after(struct http_chunked *c, unsigned char ch, int named)
{
	int ws = c->state == CH_EXT_WS || c->state == CH_EXT_NAME_WS;

	if (is_ws(ch))
		c->state = named ? CH_EXT_NAME_WS : CH_EXT_WS;
	else if (ch == ';')
		c->state = CH_EXT_NAME0;
	else if (ch == '=' && named)
		c->state = CH_EXT_VAL0;
	else if (ch == '\r' && !ws)
		c->state = CH_SIZE_LF;
	else
		return -1;
	return 0;
}

/*
 * RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ),
 * name = token, value = token / quoted-string.  Extensions are read and
 * dropped; only their syntax matters.
 */
static int
ext_byte(struct http_chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CH_EXT_NAME0:
	case CH_EXT_VAL0:
		if (is_ws(ch))
			return 0;
		if (c->state == CH_EXT_VAL0 && ch == '"')
			c->state = CH_EXT_QUOTED;
		else if (is_tchar(ch))
			c->state = c->state == CH_EXT_NAME0 ? CH_EXT_NAME : CH_EXT_TOKEN;
		else
			return -1;
		return 0;
	case CH_EXT_NAME:
	case CH_EXT_TOKEN:
		return is_tchar(ch) ? 0 : ext_after(c, ch, c->state == CH_EXT_NAME);
	case CH_EXT_NAME_WS:
		return ext_after(c, ch, 1);
	case CH_EXT_QUOTED:	/* qdtext or quoted-pair, up to the closing quote */
		if (ch == '"')
			c->state = CH_EXT_END;
		else if (ch == '\\')
			c->state = CH_EXT_QPAIR;
		return is_vchar(ch) ? 0 : -1;
	case CH_EXT_QPAIR:
		c->state = CH_EXT_QUOTED;
		return is_vchar(ch) ? 0 : -1;
	default:		/* CH_EXT_END, CH_EXT_WS */
		return ext_after(c, ch, 0);
	}
}

/*
 * A byte of a chunk-size line: chunk-size = 1*HEXDIG (at most 16 digits, so
 * it cannot overflow), then extensions, then CRLF.  Anything else is refused:
 * a sign, "0x", whitespace not followed by ";", an empty size, a bare LF.
 */
static int
size_byte(struct http_chunked *c, unsigned char ch, const char **errstr)
{
	int v = hexval(ch);

	if ((c->state == CH_SIZE_START || c->state == CH_SIZE) && v >= 0) {
		if (++c->linelen > 16) {
			*errstr = "chunk size over 16 hex digits";
			return -1;
		}
		c->size = (c->size << 4) | (uint64_t)v;
		c->state = CH_SIZE;
		return 0;
	}
	if (c->state == CH_SIZE_START) {
		*errstr = "chunk size is not hex digits";
		return -1;
	}
	if (ch == '\n' || c->state == CH_SIZE_LF) {
		if (ch == '\n' && c->state == CH_SIZE_LF)
			return chunk_start(c, errstr);
		*errstr = "chunk size line not ended by CRLF";
		return -1;
	}
	if (c->state == CH_SIZE) {
		c->state = CH_EXT_END;
		c->linelen = 0;
	}
	if (++c->linelen > CHUNK_LINE_MAX) {
		*errstr = "chunk extensions over 4 KiB";
		return -1;
	}
	if (ext_byte(c, ch) == 0)
		return 0;
	*errstr = c->state == CH_EXT_END || c->state == CH_EXT_WS ?
	    "malformed chunk size line (expected ';' or CRLF)" : "malformed chunk extension";
	return -1;
}

/* A byte after chunk data: its CRLF, the trailer section, the final CRLF. */
static int
tail_byte(struct http_chunked *c, unsigned char ch, const char **errstr)
{
	switch (c->state) {
	case CH_DATA_CR:
	case CH_DATA_LF:
		if (ch != (c->state == CH_DATA_CR ? '\r' : '\n')) {
			*errstr = "missing CRLF after chunk data";
			return -1;
		}
		c->state = c->state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE_START;
		c->size = 0;
		c->linelen = 0;
		return 0;
	case CH_TRAILER:
	case CH_TRAILER_LINE:
		if (++c->linelen > TRAILER_MAX) {
			*errstr = "trailer section too long";
			return -1;
		}
		if (ch == '\r')
			c->state = c->state == CH_TRAILER ? CH_END_LF : CH_TRAILER_LF;
		else
			c->state = CH_TRAILER_LINE;
		return ch == '\r' || is_vchar(ch) ? 0 : -1;
	default:	/* CH_TRAILER_LF, CH_END_LF */
		if (ch != '\n')
			return -1;
		c->done = c->state == CH_END_LF;
		c->state = c->done ? CH_DONE : CH_TRAILER;
		return 0;
	}
}

/* One framing byte (everything but chunk data).  -1 on malformed. */
static int
chunk_byte(struct http_chunked *c, unsigned char ch, const char **errstr)
{
	const char *why = NULL;
	int rc = c->state <= CH_SIZE_LF ? size_byte(c, ch, &why) : tail_byte(c, ch, &why);

	if (rc != 0)
		*errstr = why ? why : "malformed chunk framing";
	return rc;
}

ssize_t
http_chunked_step(struct http_chunked *c, const char *buf, size_t len,
    const char **data, size_t *datalen, const char **errstr)
{
	size_t i = 0;

	*data = NULL;
	*datalen = 0;
	while (i < len && !c->done) {
		if (c->state == CH_DATA) {
			size_t n = len - i < c->size ? len - i : (size_t)c->size;

			*data = buf + i;
			*datalen = n;
			c->size -= n;
			if (c->size == 0)
				c->state = CH_DATA_CR;
			return (ssize_t)(i + n);
		}
		if (chunk_byte(c, (unsigned char)buf[i++], errstr) != 0)
			return -1;
	}
	return (ssize_t)i;
}

/* ---- connection glue ---------------------------------------------------- */

enum conn_state {
	C_IDLE,		/* kept alive, waiting for the next request's first byte */
	C_HEAD,		/* reading a request head */
	C_BODY,		/* reading an admitted request's body */
	C_PENDING,	/* the owner has the request; input waits unread */
	C_WRITING,	/* sending the answer (or sent: the timer is active) */
	C_LINGER,	/* answer sent, write side shut: discarding until EOF */
};

struct http_conn {
	TAILQ_ENTRY(http_conn)	 entry;
	struct http_server	*hs;
	struct bufferevent	*bev;
	struct event		*timer;
	struct http_limits	 lim;
	enum conn_state		 state;
	struct http_request	*req;	/* being read or pending, else NULL */
	size_t			 scan;	/* head bytes searched for the blank line */
	uint64_t		 body_t0;/* ms, monotonic: the body began */
	int			 close;	/* close after the answer being written */
};

struct http_server {
	struct event_base	*base;
	struct evconnlistener	*lev;
	struct http_hooks	 hooks;
	void			*arg;
	size_t			*conns;
	int			 draining;
	TAILQ_HEAD(, http_conn)	 all;
	struct http_head	 scratch;	/* read_head's parse, before a request exists */
	struct evbuffer		*answer;	/* http_reply's, before it is written */
};

struct http_request {
	struct http_conn	*conn;	/* NULL once the client is gone */
	char			*raw;	/* the head; views and C strings point here */
	char			*path;
	struct http_head	 head;
	uint8_t			*body;
	size_t			 len, cap;
	uint64_t		 limit;
	struct http_chunked	 chunks;
	int			 body_done;
	void			*data;
};

static void	conn_read(struct http_conn *c);

static void
conns_gauge(const struct http_server *hs, size_t n)
{
	metrics_gauge_set("kakikomi_open_connections",
	    hs->hooks.metric_labels ? hs->hooks.metric_labels : "", (double)n);
}

static void
conn_deadline(struct http_conn *c, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (ms == 0)
		evtimer_del(c->timer);
	else
		evtimer_add(c->timer, &tv);
}

static void
request_free(struct http_request *req)
{
	free(req->raw);
	free(req->body);
	free(req);
}

/*
 * Closes the connection.  A pending request stays with its owner (the answer
 * will be dropped); one whose body was still being read fails now, so the
 * owner's hold on it ends.
 */
static void
conn_free(struct http_conn *c)
{
	struct http_request *req = c->req;
	struct http_server *hs = c->hs;
	int reading = c->state == C_BODY;

	TAILQ_REMOVE(&hs->all, c, entry);
	event_free(c->timer);
	bufferevent_free(c->bev);
	conns_gauge(hs, __atomic_sub_fetch(hs->conns, 1, __ATOMIC_RELAXED));
	free(c);
	if (req == NULL)
		return;
	req->conn = NULL;
	if (reading)
		hs->hooks.fail(req, 400, "connection closed during the body", hs->arg);
}

/*
 * The request cannot be read: the owner answers (status, reason) and the
 * connection closes after it.  A request is made up when none exists yet.
 */
static void
conn_fail(struct http_conn *c, int status, const char *reason)
{
	struct http_server *hs = c->hs;

	if (c->req == NULL && (c->req = calloc(1, sizeof(*c->req))) == NULL) {
		conn_free(c);
		return;
	}
	c->req->conn = c;
	c->close = 1;
	c->state = C_PENDING;
	conn_deadline(c, 0);
	bufferevent_disable(c->bev, EV_READ);
	hs->hooks.fail(c->req, status, reason, hs->arg);
}

/* The client went away. */
static void
conn_gone(struct http_conn *c)
{
	if (c->state == C_HEAD && evbuffer_get_length(bufferevent_get_input(c->bev)))
		log_debug("client closed the connection during a request head");
	conn_free(c);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * When the body being read is late: body_timeout after it began, or earlier
 * once it averages under min_body_rate, as with Apache mod_reqtimeout's
 * MinRate: the grace, then 1/rate s more for each byte received.  *slow says
 * which deadline it is.
 */
static uint64_t
body_due(const struct http_conn *c, int *slow)
{
	uint64_t hard = c->body_t0 + c->lim.body_timeout_ms, due;

	*slow = 0;
	if (c->lim.min_body_rate == 0)
		return hard;
	due = c->body_t0 + c->lim.body_rate_grace_ms +
	    (uint64_t)c->req->len * 1000 / c->lim.min_body_rate;
	*slow = due < hard;
	return *slow ? due : hard;
}

/*
 * The connection's one timer checks the body's deadlines: it fires at the
 * earlier one and, when bytes arrived meanwhile, is set again for the new
 * one.  No timer is touched per read.
 */
static void
body_watch(struct http_conn *c)
{
	char reason[120];
	uint64_t due, now = now_ms();
	int slow;

	due = body_due(c, &slow);
	if (now < due) {
		conn_deadline(c, due - now > BODY_RECHECK_MS ? due - now : BODY_RECHECK_MS);
		return;
	}
	if (!slow) {
		conn_fail(c, 408, "request body not complete within body_timeout");
		return;
	}
	snprintf(reason, sizeof(reason), "request body slower than min_body_rate "
	    "(%llu bytes/s): %zu bytes in %llu ms", (unsigned long long)c->lim.min_body_rate,
	    c->req->len, (unsigned long long)(now - c->body_t0));
	conn_fail(c, 408, reason);
}

/*
 * Reading stays enabled while the request is pending (switching it off and
 * on costs two epoll_ctl per request): what arrives meanwhile waits unread
 * in the input, bounded by its high watermark, until the answer is out.
 */
static void
body_complete(struct http_conn *c)
{
	struct http_server *hs = c->hs;

	c->state = C_PENDING;
	c->req->body_done = 1;
	conn_deadline(c, 0);
	hs->hooks.body(c->req, hs->arg);
}

size_t
http_body_cap(size_t cap, size_t need, size_t max)
{
	if (cap == 0)
		cap = BODY_BUF_MIN;
	while (cap < need && cap <= SIZE_MAX / 2)
		cap *= 2;
	if (cap < need)
		cap = need;
	return cap > max && max >= need ? max : cap;
}

/*
 * n more body bytes are about to be taken: the owner's say first (it reserves
 * them, or answers and refuses), then room for them, never past `max`.
 */
static int
body_room(struct http_conn *c, size_t n, size_t max)
{
	struct http_request *req = c->req;
	struct http_server *hs = c->hs;
	size_t cap;
	uint8_t *nb;

	if (hs->hooks.more(req, req->len + n, hs->arg) != 0)
		return -1;	/* answered */
	if (n <= req->cap - req->len)
		return 0;
	cap = http_body_cap(req->cap, req->len + n, max);
	if ((nb = realloc(req->body, cap)) == NULL) {
		conn_fail(c, 503, "out of memory");
		return -1;
	}
	req->body = nb;
	req->cap = cap;
	return 0;
}

static void
read_length_body(struct http_conn *c, struct evbuffer *in)
{
	struct http_request *req = c->req;
	size_t want = (size_t)req->head.content_length - req->len;
	size_t n = evbuffer_get_length(in);

	if (n > want)
		n = want;
	if (n > 0) {
		if (body_room(c, n, (size_t)req->head.content_length) != 0)
			return;
		if (evbuffer_remove(in, req->body + req->len, n) != (int)n) {
			conn_fail(c, 503, "out of memory");
			return;
		}
		req->len += n;
	}
	if (req->len == req->head.content_length)
		body_complete(c);
}

/* One piece of a chunked body into the request, after the owner's say. */
static int
chunk_take(struct http_conn *c, const char *p, size_t n)
{
	struct http_request *req = c->req;

	if (body_room(c, n, (size_t)req->limit) != 0)
		return -1;
	memcpy(req->body + req->len, p, n);
	req->len += n;
	return 0;
}

static void
read_chunked_body(struct http_conn *c, struct evbuffer *in)
{
	struct http_request *req = c->req;
	struct evbuffer_iovec v;
	const char *data, *err;
	size_t dlen;
	ssize_t used;

	while (!req->chunks.done && evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		used = http_chunked_step(&req->chunks, v.iov_base, v.iov_len, &data, &dlen, &err);
		if (used < 0) {
			conn_fail(c, req->chunks.over_limit ? 413 : 400, req->chunks.over_limit ?
			    "body over max_body_bytes" : err);
			return;
		}
		if (dlen > 0 && chunk_take(c, data, dlen) != 0)
			return;
		evbuffer_drain(in, (size_t)used);
	}
	if (req->chunks.done)
		body_complete(c);
}

static void
read_body(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (c->req->head.chunked)
		read_chunked_body(c, in);
	else
		read_length_body(c, in);
}

/* After the owner admitted the request: 100 Continue, body buffer, deadline. */
static void
body_start(struct http_conn *c)
{
	struct http_request *req = c->req;
	const struct http_head *h = &req->head;

	if (!h->chunked && !h->has_length) {
		body_complete(c);
		return;
	}
	if (h->has_length && h->content_length > req->limit) {
		conn_fail(c, 413, "body over max_body_bytes");
		return;
	}
	/* Nothing is allocated or reserved from Content-Length: bytes are
	 * when they arrive (body_room). */
	if (h->chunked)
		http_chunked_init(&req->chunks, req->limit);
	if (h->expect_continue && h->minor >= 1 &&
	    (h->chunked || h->content_length > 0))
		evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	c->state = C_BODY;
	c->body_t0 = now_ms();
	body_watch(c);
	if (c->state == C_BODY)
		read_body(c);
}

/* Ends the view with a NUL inside the request's own copy of its head. */
static char *
head_cstr(struct http_request *req, struct http_str v)
{
	char *p = req->raw + (v.p - req->raw);

	p[v.len] = '\0';
	return p;
}

/* C strings for the method, the path and every header value. */
static void
head_terminate(struct http_request *req)
{
	struct http_head *h = &req->head;
	char *q;

	head_cstr(req, h->method);
	req->path = head_cstr(req, h->target);
	if ((q = strchr(req->path, '?')) != NULL)
		*q = '\0';
	for (size_t i = 0; i < h->nheaders; i++)
		head_cstr(req, h->headers[i].value);
}

/* Takes the head (n bytes at p) into a new request and hands it to the owner. */
static void
head_complete(struct http_conn *c, struct evbuffer *in, const char *p, size_t n)
{
	struct http_server *hs = c->hs;
	struct http_request *req;
	const char *err;

	if ((req = calloc(1, sizeof(*req))) == NULL || (req->raw = malloc(n)) == NULL) {
		free(req);
		conn_fail(c, 503, "out of memory");
		return;
	}
	memcpy(req->raw, p, n);
	evbuffer_drain(in, n);
	/* The copy parses exactly as the original did. */
	(void)http_parse_head(req->raw, n, &req->head, &err);
	head_terminate(req);
	req->conn = c;
	c->req = req;
	c->state = C_PENDING;
	conn_deadline(c, 0);
	hs->hooks.head(req, hs->arg);
	if (c->req == req)	/* not answered: admitted */
		body_start(c);
}

/* Whether a blank line (end of a head) is in p[0..n); remembers how far it looked. */
static int
head_ended(const char *p, size_t n, size_t *scan)
{
	for (size_t i = *scan; i < n; i++)
		if (p[i] == '\n' && ((i + 1 < n && p[i + 1] == '\n') ||
		    (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')))
			return 1;
	*scan = n > 2 ? n - 2 : 0;
	return 0;
}

static void
read_head(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n = evbuffer_get_length(in);
	const char *p, *err = NULL;
	int used;

	if (n > HTTP_MAX_HEAD)
		n = HTTP_MAX_HEAD;
	if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL) {
		conn_fail(c, 503, "out of memory");
		return;
	}
	if (!head_ended(p, n, &c->scan) && n < HTTP_MAX_HEAD)
		return;
	if ((used = http_parse_head(p, n, &c->hs->scratch, &err)) < 0)
		conn_fail(c, 400, err);
	else if (used > 0)
		head_complete(c, in, p, (size_t)used);
	else
		c->scan = n > 2 ? n - 2 : 0;
}

static void
conn_read(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	switch (c->state) {
	case C_IDLE:
		if (evbuffer_get_length(in) == 0)
			return;
		/* header_timeout runs from a request's first byte. */
		c->state = C_HEAD;
		c->scan = 0;
		conn_deadline(c, c->lim.header_timeout_ms);
		/* FALLTHROUGH */
	case C_HEAD:
		read_head(c);
		break;
	case C_BODY:
		read_body(c);
		break;
	case C_LINGER:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	case C_PENDING:
	case C_WRITING:
		break;
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	conn_read(arg);
}

/* The answer is out: close (after lingering), or wait for the next request. */
static void
answer_sent(struct http_conn *c)
{
	struct bufferevent *bev = c->bev;

	if (c->close || c->hs->draining) {
		/* Shut our side, read and discard what the client still sends:
		 * closing with unread bytes would reset the connection and could
		 * destroy the answer before the client read it. */
		c->state = C_LINGER;
		shutdown(bufferevent_getfd(bev), SHUT_WR);
		conn_deadline(c, LINGER_MS);
		bufferevent_enable(bev, EV_READ);
		conn_read(c);
		return;
	}
	c->state = C_IDLE;
	conn_deadline(c, c->lim.idle_timeout_ms);
	bufferevent_enable(bev, EV_READ);
	conn_read(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	if (c->state == C_WRITING)
		answer_sent(c);
}

/*
 * A client that shuts its side after a request still gets the answer:
 * libevent stops reading at EOF, and write_cb's enable reads it again once
 * the answer is out.  An error ends the connection at once; a pending
 * request stays with its owner.
 */
static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;

	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    (c->state == C_PENDING || c->state == C_WRITING))
		return;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_gone(c);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	switch (c->state) {
	case C_HEAD:
		if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
			conn_fail(c, 408, "request head not complete within header_timeout");
			return;
		}
		break;
	case C_BODY:
		body_watch(c);
		return;
	case C_WRITING:
		/* http_reply wrote it all at once, or the client did not read
		 * it within body_timeout */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
			answer_sent(c);
			return;
		}
		break;
	case C_IDLE:
	case C_PENDING:
	case C_LINGER:
		break;
	}
	conn_free(c);
}

static void
answer_head(struct evbuffer *out, int status, const char *phrase,
    const struct http_field *fields, size_t nfields)
{
	char date[64];
	struct tm tm;
	time_t now = time(NULL);

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, phrase, date);
	for (size_t i = 0; i < nfields; i++)
		/* Values may echo an upstream: never let one split the head. */
		if (strpbrk(fields[i].value, "\r\n") == NULL)
			evbuffer_add_printf(out, "%s: %s\r\n", fields[i].name, fields[i].value);
}

/*
 * The answer goes to the socket at once when nothing is queued before it:
 * handing it to the bufferevent would switch its write event on and off
 * (two epoll_ctl) for the few hundred bytes the socket takes anyway.  What
 * the socket does not take is left to the bufferevent; when it took it all,
 * the connection's timer runs answer_sent() from the event loop, never from
 * within the owner's call.
 */
static void
answer_send(struct http_conn *c)
{
	struct evbuffer *ans = c->hs->answer, *out = bufferevent_get_output(c->bev);

	if (evbuffer_get_length(out) == 0)
		(void)evbuffer_write(ans, bufferevent_getfd(c->bev));
	c->state = C_WRITING;
	if (evbuffer_get_length(ans) > 0 && evbuffer_add_buffer(out, ans) == 0) {
		/* A client that does not read its answer gets body_timeout to do so. */
		conn_deadline(c, c->lim.body_timeout_ms);
		return;
	}
	/* The scratch buffer is empty for the next answer, whatever happened
	 * (out is never frozen, so the move cannot fail: should it, close). */
	if (evbuffer_get_length(ans) > 0) {
		evbuffer_drain(ans, evbuffer_get_length(ans));
		c->close = 1;
	}
	conn_deadline(c, 0);
	event_active(c->timer, EV_TIMEOUT, 1);
}

void
http_reply(struct http_request *req, int status, const char *phrase,
    const struct http_field *fields, size_t nfields, const void *body, size_t len)
{
	struct http_conn *c = req->conn;
	struct evbuffer *out;

	if (c == NULL) {
		request_free(req);
		return;
	}
	c->req = NULL;
	/* An unread body would be taken for the next request: close instead. */
	if ((!req->body_done && (req->head.chunked || req->head.content_length > 0)) ||
	    !req->head.keep_alive || c->hs->draining)
		c->close = 1;
	out = c->hs->answer;
	answer_head(out, status, phrase, fields, nfields);
	if (status >= 200 && status != 204 && status != 304)
		evbuffer_add_printf(out, "Content-Length: %zu\r\n", len);
	if (c->close)
		evbuffer_add(out, "Connection: close\r\n", 19);
	else if (req->head.minor == 0)
		evbuffer_add(out, "Connection: keep-alive\r\n", 24);
	evbuffer_add(out, "\r\n", 2);
	if (len > 0)
		evbuffer_add(out, body, len);
	request_free(req);
	answer_send(c);
}

/*
 * Answers go out at once (a short answer must not wait behind Nagle for the
 * client's delayed ACK), and a body arrives in as few reads as the watermark
 * allows.  Failing either only costs speed.
 */
static void
conn_tune(struct bufferevent *bev, evutil_socket_t fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)bufferevent_set_max_single_read(bev, HTTP_MAX_HEAD);
}

static void
conn_new(struct http_server *hs, evutil_socket_t fd, const struct http_limits *lim)
{
	struct http_conn *c = calloc(1, sizeof(*c));

	if (c == NULL || (c->bev = bufferevent_socket_new(hs->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		free(c);
		conns_gauge(hs, __atomic_sub_fetch(hs->conns, 1, __ATOMIC_RELAXED));
		return;
	}
	if ((c->timer = evtimer_new(hs->base, timer_cb, c)) == NULL) {
		bufferevent_free(c->bev);
		free(c);
		conns_gauge(hs, __atomic_sub_fetch(hs->conns, 1, __ATOMIC_RELAXED));
		return;
	}
	c->hs = hs;
	c->lim = *lim;
	c->state = C_HEAD;
	TAILQ_INSERT_TAIL(&hs->all, c, entry);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	/* Backpressure: never more than a head's worth waits in the input. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, HTTP_MAX_HEAD);
	conn_tune(c->bev, fd);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_deadline(c, lim->header_timeout_ms);
}

/* Closes the oldest connection waiting for a request's first byte; -1 when none. */
static int
conn_evict_idle(struct http_server *hs)
{
	struct http_conn *c;

	TAILQ_FOREACH(c, &hs->all, entry)
		if (c->state == C_IDLE || (c->state == C_HEAD &&
		    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)) {
			conn_free(c);
			return 0;
		}
	return -1;
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct http_server *hs = arg;
	const char *labels = hs->hooks.metric_labels ? hs->hooks.metric_labels : "";
	struct http_limits lim = { 0 };	/* a hook sets only what it knows */
	size_t n;

	hs->hooks.limits(hs->arg, &lim);
	n = __atomic_add_fetch(hs->conns, 1, __ATOMIC_RELAXED);
	if (n > lim.max_connections && lim.evict_idle && conn_evict_idle(hs) == 0)
		n = __atomic_load_n(hs->conns, __ATOMIC_RELAXED);
	else if (n > lim.max_connections) {
		__atomic_sub_fetch(hs->conns, 1, __ATOMIC_RELAXED);
		evutil_closesocket(fd);
		metrics_counter_add("kakikomi_connections_refused_total", labels, 1);
		log_debug("connection refused: max_connections (%llu) reached",
		    (unsigned long long)lim.max_connections);
		return;
	}
	conns_gauge(hs, n);
	conn_new(hs, fd, &lim);
}

struct http_server *
http_server_new(struct event_base *base, struct evconnlistener *lev,
    const struct http_hooks *hooks, void *arg, size_t *conns)
{
	struct http_server *hs = calloc(1, sizeof(*hs));

	if (hs == NULL || (hs->answer = evbuffer_new()) == NULL) {
		free(hs);
		return NULL;
	}
	hs->base = base;
	hs->lev = lev;
	hs->hooks = *hooks;
	hs->arg = arg;
	hs->conns = conns;
	TAILQ_INIT(&hs->all);
	evconnlistener_set_cb(lev, accept_cb, hs);
	return hs;
}

void
http_server_drain(struct http_server *hs)
{
	struct http_conn *c, *next;

	if (hs->lev != NULL) {
		evconnlistener_free(hs->lev);
		hs->lev = NULL;
	}
	hs->draining = 1;
	for (c = TAILQ_FIRST(&hs->all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->state == C_IDLE || (c->state == C_HEAD &&
		    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0))
			conn_free(c);
	}
}

void
http_server_free(struct http_server *hs)
{
	if (hs == NULL)
		return;
	while (!TAILQ_EMPTY(&hs->all))
		conn_free(TAILQ_FIRST(&hs->all));
	if (hs->lev != NULL)
		evconnlistener_free(hs->lev);
	evbuffer_free(hs->answer);
	free(hs);
}

const struct http_head *
http_request_head(const struct http_request *req)
{
	return &req->head;
}

const char *
http_request_path(const struct http_request *req)
{
	return req->path ? req->path : "";
}

int
http_request_is(const struct http_request *req, const char *method)
{
	return req->head.method.p != NULL && strcmp(req->head.method.p, method) == 0;
}

const char *
http_request_header(const struct http_request *req, const char *name)
{
	size_t len;

	return http_request_header_n(req, name, &len);
}

const char *
http_request_header_n(const struct http_request *req, const char *name,
    size_t *len)
{
	const struct http_str *v = http_head_find(&req->head, name);

	*len = v ? v->len : 0;
	return v ? v->p : NULL;
}

void
http_request_set_data(struct http_request *req, void *data)
{
	req->data = data;
}

void *
http_request_data(const struct http_request *req)
{
	return req->data;
}

void
http_request_set_body_limit(struct http_request *req, uint64_t max)
{
	req->limit = max;
}

const uint8_t *
http_request_body(const struct http_request *req, size_t *len)
{
	*len = req->len;
	return req->body ? req->body : (const uint8_t *)"";
}
