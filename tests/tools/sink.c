/*
 * sink: a recording HTTP upstream for tests and the benchmark.
 *
 *   sink --listen 127.0.0.1:PORT [--dir DIR] [--status N] [--body TEXT]
 *        [--hang] [--retry-after S]
 *
 * Answers every request with --status (default 204) and --body, after reading
 * the whole body.  With --dir, request n is stored as DIR/n.headers (one
 * "Name: value" per line, the request line first) and DIR/n.body, written
 * before the answer so a test that got the answer can read them.  --hang
 * never answers (for timeout tests).  Prints "sink ready" on stderr once bound.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink {
	const char	*dir;
	int		 status;
	const char	*body;
	const char	*retry_after;
	int		 hang;
	unsigned long	 n;
};

static void
record(struct sink *s, struct evhttp_request *req)
{
	char path[4096];
	FILE *f;
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);

	snprintf(path, sizeof(path), "%s/%lu.body", s->dir, s->n);
	if ((f = fopen(path, "wb")) != NULL) {
		fwrite(evbuffer_pullup(in, -1), 1, len, f);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/%lu.headers", s->dir, s->n);
	if ((f = fopen(path, "w")) != NULL) {
		fprintf(f, "%s\n", evhttp_request_get_uri(req));
		for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
			fprintf(f, "%s: %s\n", kv->key, kv->value);
		fclose(f);
	}
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct sink *s = arg;
	struct evbuffer *out;

	s->n++;
	if (s->dir != NULL)
		record(s, req);
	if (s->hang)
		return;	/* the client's timeout ends it */
	out = evbuffer_new();
	if (out != NULL && s->body != NULL)
		evbuffer_add_printf(out, "%s\n", s->body);
	if (s->retry_after != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
		    s->retry_after);
	evhttp_send_reply(req, s->status, "sink", out);
	if (out != NULL)
		evbuffer_free(out);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "dir", required_argument, NULL, 'd' },
		{ "status", required_argument, NULL, 's' },
		{ "body", required_argument, NULL, 'b' },
		{ "retry-after", required_argument, NULL, 'r' },
		{ "hang", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct sink s = { .status = 204 };
	const char *listen = "127.0.0.1:0";
	char host[256];
	const char *colon;
	struct event_base *base;
	struct evhttp *http;
	struct event *ev_term, *ev_int;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': listen = optarg; break;
		case 'd': s.dir = optarg; break;
		case 's': s.status = atoi(optarg); break;
		case 'b': s.body = optarg; break;
		case 'r': s.retry_after = optarg; break;
		case 'H': s.hang = 1; break;
		default:
			fprintf(stderr, "usage: sink --listen HOST:PORT [--dir DIR] [--status N] "
			    "[--body TEXT] [--retry-after S] [--hang]\n");
			return 2;
		}
	}
	if ((colon = strrchr(listen, ':')) == NULL || (size_t)(colon - listen) >= sizeof(host)) {
		fprintf(stderr, "sink: --listen wants HOST:PORT\n");
		return 2;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL || (http = evhttp_new(base)) == NULL)
		return 1;
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT);
	evhttp_set_max_body_size(http, 256 * 1024 * 1024);
	evhttp_set_gencb(http, request_cb, &s);
	if (evhttp_bind_socket(http, host, (ev_uint16_t)atoi(colon + 1)) != 0) {
		fprintf(stderr, "sink: cannot listen on %s\n", listen);
		return 1;
	}
	ev_term = evsignal_new(base, SIGTERM, stop_cb, base);
	ev_int = evsignal_new(base, SIGINT, stop_cb, base);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	fprintf(stderr, "sink ready\n");
	event_base_dispatch(base);
	event_free(ev_term);
	event_free(ev_int);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}
