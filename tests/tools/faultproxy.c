/*
 * faultproxy: a TCP proxy for tests that breaks what passes through it.
 *
 *   faultproxy --listen HOST:PORT --upstream HOST:PORT --control FILE
 *
 * FILE holds one mode line; the proxy reads it at start and again on SIGHUP,
 * and applies it to every connection, open ones included (kakikomi keeps its
 * upstream connections alive, so a mode for new connections only would never
 * be seen):
 *   pass                 forward as is
 *   latency MS           deliver every byte, either way, MS after it came
                          (a delay line: reading goes on meanwhile)
 *   stall BYTES MS       after BYTES of a connection's requests, forward
 *                        nothing upstream for MS, then go on
 *   reset                forward a request's head and half of its body
 *                        (Content-Length), then reset both sides (RST)
 *   truncate BYTES       close both sides after BYTES of the answer
 * Counters start again when the mode changes.  Each applied mode is logged on
 * stderr as "faultproxy mode gen=N <line>"; "faultproxy ready" once bound.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <sys/socket.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum kind { PASS, LATENCY, STALL, RESET, TRUNCATE };

struct mode {
	enum kind	 kind;
	size_t		 bytes;
	long		 ms;
	unsigned	 gen;
};

struct conn;

/* Bytes on the delay line, due at a time. */
struct chunk {
	struct evbuffer	*buf;
	struct timeval	 due;
	struct chunk	*next;
};

struct side {
	struct conn		*c;
	struct bufferevent	*bev;
	struct side		*peer;
	struct event		*timer;	/* stall hold */
	struct event		*delay;	/* the delay line's next chunk */
	struct chunk		*line, **tail;
	size_t			 sent;	/* bytes forwarded since the mode began */
	int			 held;
};

struct conn {
	struct side	 cli;	/* reads requests, forwards them upstream */
	struct side	 up;	/* reads answers, forwards them to the client */
	unsigned	 gen;
	int		 stalled;
	int		 resetting;
};

static struct event_base	*base;
static struct sockaddr_storage	 up_addr;
static int			 up_len;
static const char		*control;
static struct mode		 cur;

static void	pump(struct side *);

static void
conn_free(struct conn *c, int rst)
{
	struct side *s[2] = { &c->cli, &c->up };
	struct linger lg = { 1, 0 };

	for (int i = 0; i < 2; i++) {
		if (s[i]->bev != NULL) {
			if (rst)
				setsockopt(bufferevent_getfd(s[i]->bev), SOL_SOCKET,
				    SO_LINGER, &lg, sizeof(lg));
			bufferevent_free(s[i]->bev);
		}
		if (s[i]->timer != NULL)
			event_free(s[i]->timer);
		if (s[i]->delay != NULL)
			event_free(s[i]->delay);
		while (s[i]->line != NULL) {
			struct chunk *k = s[i]->line;

			s[i]->line = k->next;
			evbuffer_free(k->buf);
			free(k);
		}
	}
	free(c);
}

/* Close once the peer got what is already queued for it. */
static void
drained_cb(struct bufferevent *bev, void *arg)
{
	struct side *s = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(s->c, s->c->resetting);
}

static void
gone_cb(struct bufferevent *bev, short what, void *arg)
{
	struct side *s = arg;

	conn_free(s->c, s->c->resetting);
}

static void
close_after_flush(struct side *dst)
{
	bufferevent_disable(dst->peer->bev, EV_READ);
	bufferevent_setcb(dst->peer->bev, NULL, NULL, gone_cb, dst->peer);
	bufferevent_setcb(dst->bev, NULL, drained_cb, gone_cb, dst);
	drained_cb(dst->bev, dst);
}

static void
forward(struct side *s, size_t n)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	n = evbuffer_remove_buffer(in, bufferevent_get_output(s->peer->bev), n);
	s->sent += n;
}

static void
line_arm(struct side *s)
{
	struct timeval now, tv = { 0, 0 };

	if (s->line == NULL)
		return;
	event_base_gettimeofday_cached(base, &now);
	if (timercmp(&s->line->due, &now, >))
		timersub(&s->line->due, &now, &tv);
	evtimer_add(s->delay, &tv);
}

/* Puts what s read on the delay line, due ms from now. */
static void
line_push(struct side *s, long ms)
{
	struct timeval now, d = { ms / 1000, (ms % 1000) * 1000 };
	struct chunk *k;

	if ((k = calloc(1, sizeof(*k))) == NULL || (k->buf = evbuffer_new()) == NULL) {
		free(k);
		return;	/* left in the input: forwarded later */
	}
	evbuffer_add_buffer(k->buf, bufferevent_get_input(s->bev));
	event_base_gettimeofday_cached(base, &now);
	timeradd(&now, &d, &k->due);
	*s->tail = k;
	s->tail = &k->next;
	if (!evtimer_pending(s->delay, NULL))
		line_arm(s);
}

/* Forwards every chunk of the line that is due (all of them when flush). */
static void
line_pop(struct side *s, int flush)
{
	struct timeval now;
	struct chunk *k;

	event_base_gettimeofday_cached(base, &now);
	while ((k = s->line) != NULL && (flush || !timercmp(&k->due, &now, >))) {
		s->sent += evbuffer_get_length(k->buf);
		evbuffer_add_buffer(bufferevent_get_output(s->peer->bev), k->buf);
		if ((s->line = k->next) == NULL)
			s->tail = &s->line;
		evbuffer_free(k->buf);
		free(k);
	}
}

static void
delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct side *s = arg;

	line_pop(s, 0);
	line_arm(s);
}

static void
hold(struct side *s, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	s->held = 1;
	bufferevent_disable(s->bev, EV_READ);
	evtimer_add(s->timer, &tv);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct side *s = arg;
	struct evbuffer *in = bufferevent_get_input(s->bev);

	s->held = 0;
	if (cur.kind == STALL)
		s->c->stalled = 1;
	else
		forward(s, evbuffer_get_length(in));
	bufferevent_enable(s->bev, EV_READ);
	pump(s);
}

/* Content-Length of the head at the start of in, -1 until the head is whole. */
static long
head_body(struct evbuffer *in, size_t *head)
{
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	char *h, *p;
	long cl = 0;

	if (end.pos < 0)
		return -1;
	*head = (size_t)end.pos + 4;
	if ((h = malloc(*head + 1)) == NULL)
		return -1;
	evbuffer_copyout(in, h, *head);
	h[*head] = '\0';
	for (p = h; (p = strchr(p, '\n')) != NULL; p++)
		if (strncasecmp(p + 1, "Content-Length:", 15) == 0)
			cl = strtol(p + 16, NULL, 10);
	free(h);
	return cl;
}

static void
pump_reset(struct side *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t head, want;
	long cl;

	if ((cl = head_body(in, &head)) < 0)
		return;
	want = head + (size_t)cl / 2;
	if (evbuffer_get_length(in) < want)
		return;
	forward(s, want);
	s->c->resetting = 1;
	close_after_flush(s->peer);
}

static void
pump(struct side *s)
{
	struct conn *c = s->c;
	size_t len = evbuffer_get_length(bufferevent_get_input(s->bev));
	int upward = s == &c->cli;

	if (c->gen != cur.gen) {
		c->gen = cur.gen;
		c->cli.sent = c->up.sent = 0;
		c->stalled = 0;
	}
	if (s->held || c->resetting || len == 0)
		return;
	if (cur.kind == LATENCY || s->line != NULL)
		/* behind what is still on the line, in order */
		line_push(s, cur.kind == LATENCY ? cur.ms : 0);
	else if (cur.kind == STALL && upward && !c->stalled) {
		forward(s, len < cur.bytes - s->sent ? len : cur.bytes - s->sent);
		if (s->sent >= cur.bytes)
			hold(s, cur.ms);
	} else if (cur.kind == RESET && upward)
		pump_reset(s);
	else if (cur.kind == TRUNCATE && !upward) {
		forward(s, len < cur.bytes - s->sent ? len : cur.bytes - s->sent);
		if (s->sent >= cur.bytes)
			close_after_flush(s->peer);
	} else
		forward(s, len);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	pump(arg);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct side *s = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	/* EOF: hand the peer what came before it (held or not), then close */
	if ((what & BEV_EVENT_EOF) && !s->c->resetting &&
	    !(cur.kind == TRUNCATE && s == &s->c->up)) {
		line_pop(s, 1);
		forward(s, evbuffer_get_length(bufferevent_get_input(s->bev)));
	}
	close_after_flush(s->peer);
}

static int
side_init(struct conn *c, struct side *s, struct side *peer, evutil_socket_t fd)
{
	s->c = c;
	s->peer = peer;
	s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(base, timer_cb, s);
	s->delay = evtimer_new(base, delay_cb, s);
	s->tail = &s->line;
	if (s->bev == NULL || s->timer == NULL || s->delay == NULL)
		return -1;
	bufferevent_setcb(s->bev, read_cb, NULL, event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	return 0;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int slen, void *arg)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->gen = cur.gen;
	if (side_init(c, &c->cli, &c->up, fd) == -1 ||
	    side_init(c, &c->up, &c->cli, -1) == -1 ||
	    bufferevent_socket_connect(c->up.bev, (struct sockaddr *)&up_addr,
	    up_len) == -1) {
		fprintf(stderr, "faultproxy: cannot open an upstream connection\n");
		if (c->cli.bev == NULL)
			evutil_closesocket(fd);
		conn_free(c, 1);
	}
}

static void
load_mode(void)
{
	char line[128] = "";
	struct mode m = { PASS, 0, 0, cur.gen + 1 };
	unsigned long a = 0, b = 0;
	FILE *f;

	if ((f = fopen(control, "r")) == NULL || fgets(line, sizeof(line), f) == NULL)
		strcpy(line, "pass\n");
	if (f != NULL)
		fclose(f);
	if (sscanf(line, "latency %lu", &a) == 1)
		m.kind = LATENCY, m.ms = (long)a;
	else if (sscanf(line, "stall %lu %lu", &a, &b) == 2)
		m.kind = STALL, m.bytes = a, m.ms = (long)b;
	else if (strncmp(line, "reset", 5) == 0)
		m.kind = RESET;
	else if (sscanf(line, "truncate %lu", &a) == 1)
		m.kind = TRUNCATE, m.bytes = a;
	else if (strncmp(line, "pass", 4) != 0) {
		fprintf(stderr, "faultproxy: unknown mode %s", line);
		return;
	}
	cur = m;
	fprintf(stderr, "faultproxy mode gen=%u %s", cur.gen, line);
}

static void
hup_cb(evutil_socket_t sig, short what, void *arg)
{
	load_mode();
}

int
main(int argc, char **argv)
{
	const char *listen = NULL, *upstream = NULL;
	struct sockaddr_storage ls;
	int llen = sizeof(ls), ch;
	struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "control", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 }
	};

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'l') listen = optarg;
		else if (ch == 'u') upstream = optarg;
		else if (ch == 'c') control = optarg;
		else return 2;
	}
	up_len = sizeof(up_addr);
	if (listen == NULL || upstream == NULL || control == NULL ||
	    evutil_parse_sockaddr_port(listen, (struct sockaddr *)&ls, &llen) == -1 ||
	    evutil_parse_sockaddr_port(upstream, (struct sockaddr *)&up_addr,
	    &up_len) == -1) {
		fprintf(stderr, "usage: faultproxy --listen HOST:PORT "
		    "--upstream HOST:PORT --control FILE\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	load_mode();
	if (evconnlistener_new_bind(base, accept_cb, NULL, LEV_OPT_REUSEABLE |
	    LEV_OPT_CLOSE_ON_FREE, 128, (struct sockaddr *)&ls, llen) == NULL) {
		fprintf(stderr, "faultproxy: cannot listen on %s\n", listen);
		return 1;
	}
	evsignal_add(evsignal_new(base, SIGHUP, hup_cb, NULL), NULL);
	fprintf(stderr, "faultproxy ready listen=%s upstream=%s\n", listen, upstream);
	event_base_dispatch(base);
	return 0;
}
