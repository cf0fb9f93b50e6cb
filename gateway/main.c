/* kakikomi: flags, start-up, signals (SIGHUP reload, SIGTERM drain). */
#include <event2/event.h>
#include <event2/thread.h>

#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "admin.h"
#include "config.h"
#include "healthcheck.h"
#include "jwks.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "server.h"
#include "status.h"

#define DEFAULT_CONFIG		"/etc/kakikomi/kakikomi.yml"
#define TOKEN_CACHE_ENTRIES	8192
#define DRAIN_POLL_MS		50

struct daemon {
	const char		*config_path;
	struct config		*cfg;
	struct event_base	*base;
	struct jwks		*jwks;
	struct access		*access;
	struct server		*server;
	struct admin		*admin;
	struct event		*drain_timer;
	struct timespec		 drain_deadline;
	char			 reload_error[512];
	int			 lifecycle;	/* --web.enable-lifecycle */
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: kakikomi [-c FILE] [--check-config] [--web.enable-lifecycle]\n"
	    "       kakikomi --healthcheck URL\n"
	    "       kakikomi --version | --help\n"
	    "\n"
	    "  -c, --config FILE   kakikomi.yml (default " DEFAULT_CONFIG ")\n"
	    "  -t, --check-config  validate kakikomi.yml and its sites file, print\n"
	    "                      every error as file:line: reason, exit 0 or 1\n"
	    "      --web.enable-lifecycle  allow POST /-/reload on the metrics listener\n"
	    "                      (without it the endpoint answers 403; SIGHUP always works)\n"
	    "      --healthcheck URL  GET URL, exit 0 on 2xx (for container health checks)\n"
	    "  -v, --version       print the version\n"
	    "  -h, --help          this text\n"
	    "\n"
	    "Signals: SIGHUP reloads both files; SIGTERM drains and exits.\n");
}

static struct config *
load_config(const char *path, char *first_error, size_t errsz)
{
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(path, &errs);

	if (cfg != NULL)
		(void)config_warnings(cfg, &errs);
	for (size_t i = 0; i < errs.n; i++)
		log_warnx("config: %s", errs.v[i]);
	if (cfg == NULL && first_error != NULL)
		snprintf(first_error, errsz, "%s", errs.n ? errs.v[0] : "cannot load configuration");
	config_errors_free(&errs);
	return cfg;
}

static int
check_config(const char *path)
{
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(path, &errs);

	if (cfg != NULL)
		(void)config_warnings(cfg, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	config_errors_free(&errs);
	if (cfg == NULL)
		return 1;
	printf("configuration OK: %s (%zu sites)\n", path, cfg->nsites);
	config_unref(cfg);
	return 0;
}

static int
daemon_reload(void *arg, const char **why)
{
	struct daemon *d = arg;
	struct config *cfg = load_config(d->config_path, d->reload_error,
	    sizeof(d->reload_error));

	if (cfg == NULL) {
		metrics_counter_add("kakikomi_config_reload_total", "result=\"error\"", 1);
		log_warnx("reload failed; keeping the running configuration");
		*why = d->reload_error;
		return -1;
	}
	server_set_config(d->server, cfg);
	admin_set_config(d->admin, cfg);
	jwks_reconfigure(d->jwks, &cfg->access);
	config_unref(d->cfg);
	d->cfg = cfg;
	metrics_counter_add("kakikomi_config_reload_total", "result=\"ok\"", 1);
	metrics_gauge_set("kakikomi_config_last_reload_success_timestamp_seconds", "",
	    (double)time(NULL));
	log_info("configuration reloaded: %zu sites", cfg->nsites);
	return 0;
}

static void
sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	const char *why;

	(void)daemon_reload(arg, &why);
}

static int
past(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	    (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

static void
drain_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	size_t left = server_inflight(d->server);

	if (left == 0 || past(&d->drain_deadline)) {
		if (left)
			log_warnx("shutdown timeout: %zu requests still in flight", left);
		event_base_loopbreak(d->base);
	}
}

static void
sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval poll = { 0, DRAIN_POLL_MS * 1000 };

	if (d->drain_timer != NULL)
		return;
	log_info("signal %d: draining (up to %llums)", (int)sig,
	    (unsigned long long)d->cfg->shutdown_timeout_ms);
	server_drain(d->server);
	clock_gettime(CLOCK_MONOTONIC, &d->drain_deadline);
	d->drain_deadline.tv_sec += (time_t)(d->cfg->shutdown_timeout_ms / 1000);
	d->drain_deadline.tv_nsec += (long)(d->cfg->shutdown_timeout_ms % 1000) * 1000000L;
	if (d->drain_deadline.tv_nsec >= 1000000000L) {
		d->drain_deadline.tv_sec++;
		d->drain_deadline.tv_nsec -= 1000000000L;
	}
	d->drain_timer = event_new(d->base, -1, EV_PERSIST, drain_poll_cb, d);
	if (d->drain_timer == NULL || event_add(d->drain_timer, &poll) != 0)
		event_base_loopbreak(d->base);
}

#define MMAP_THRESHOLD	(256 * 1024)

static void
daemon_start(struct daemon *d)
{
	int level;

	if ((d->cfg = load_config(d->config_path, NULL, 0)) == NULL)
		fatalx("configuration has errors; not starting");
	if ((level = log_level_parse(d->cfg->log_level)) >= 0)
		log_set_level((enum log_level)level);
	metrics_init();
	status_init();
	/*
	 * Bodies and decoded buffers (up to max_decoded_bytes) come from mmap
	 * and go back to the system when a request ends.  glibc's default
	 * threshold rises after each large free, until buffers of up to 32 MiB
	 * come from the arenas and a hostile burst stays resident (2.2 GB after
	 * 36 amplification bodies, measured); a fixed one also disables that.
	 */
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
	if ((d->base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if ((d->jwks = jwks_new(d->base, &d->cfg->access)) == NULL ||
	    (d->access = access_new(TOKEN_CACHE_ENTRIES)) == NULL ||
	    (d->server = server_new(d->cfg, d->jwks, d->access)) == NULL)
		fatalx("out of memory");
	jwks_start(d->jwks);
	if (server_start(d->server) != 0)
		fatalx("cannot listen on %s", d->cfg->listen);
	if ((d->admin = admin_new(d->base, d->cfg, d->jwks, d->lifecycle,
	    daemon_reload, d)) == NULL)
		fatalx("cannot listen on %s", d->cfg->metrics_listen);
	log_info("kakikomi %s started: %zu sites, metrics on %s", KAKIKOMI_VERSION,
	    d->cfg->nsites, d->cfg->metrics_listen);
}

static void
daemon_stop(struct daemon *d)
{
	server_free(d->server);
	admin_free(d->admin);
	jwks_free(d->jwks);
	access_free(d->access);
	if (d->drain_timer)
		event_free(d->drain_timer);
	event_base_free(d->base);
	config_unref(d->cfg);
	ratelimit_clear();
	log_info("stopped");
}

static int
run(const char *path, int lifecycle)
{
	struct daemon d = { .config_path = path, .lifecycle = lifecycle };
	struct event *ev_hup, *ev_term, *ev_int;

	if (evthread_use_pthreads() != 0)
		fatalx("libevent without thread support");
	signal(SIGPIPE, SIG_IGN);
	daemon_start(&d);
	ev_hup = evsignal_new(d.base, SIGHUP, sighup_cb, &d);
	ev_term = evsignal_new(d.base, SIGTERM, sigterm_cb, &d);
	ev_int = evsignal_new(d.base, SIGINT, sigterm_cb, &d);
	if (ev_hup == NULL || ev_term == NULL || ev_int == NULL ||
	    evsignal_add(ev_hup, NULL) || evsignal_add(ev_term, NULL) ||
	    evsignal_add(ev_int, NULL))
		fatalx("cannot install signal handlers");
	event_base_dispatch(d.base);
	event_free(ev_hup);
	event_free(ev_term);
	event_free(ev_int);
	daemon_stop(&d);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 't' },
		{ "healthcheck", required_argument, NULL, 'H' },
		{ "web.enable-lifecycle", no_argument, NULL, 'L' },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_CONFIG;
	int check = 0, lifecycle = 0, ch;

	while ((ch = getopt_long(argc, argv, "c:tvh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'H':
			return healthcheck_run(optarg);
		case 'L':
			lifecycle = 1;
			break;
		case 'v':
			printf("kakikomi %s\n", KAKIKOMI_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return check ? check_config(path) : run(path, lifecycle);
}
