/*
 * config: kakikomi.yml and the sites file -> one immutable snapshot.  See
 * config.h.
 *
 * Each file is loaded with libyaml's document API (its loader is iterative)
 * and then walked along the fixed schema below: the walk is as deep as the
 * schema, never as deep as the input.  Mappings are described by field
 * tables; a field's parser reports its own problems, so one pass collects
 * every error instead of stopping at the first.
 */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

#define CONFIG_FILE_MAX		(4u << 20)	/* bytes per file */
#define CONFIG_ERRORS_MAX	100		/* then one "too many errors" */
#define CONFIG_UPSTREAMS_MAX	16		/* per signal */
#define CONFIG_WORKERS_MAX	1024
#define CONFIG_REFRESH_MIN_MS	10000
#define CONFIG_KEY_MAX		32		/* longest key worth a did-you-mean */
#define CONFIG_DEPTH_MAX	8		/* the schema needs 4 */

#define MS_SECOND	1000ull
#define MS_MINUTE	(60 * MS_SECOND)
#define MS_HOUR		(60 * MS_MINUTE)
#define MS_DAY		(24 * MS_HOUR)

#define KEY(k)		((const char *)(k)->data.scalar.value)
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* One identity as written in the sites file, for the duplicate check. */
struct ident {
	const char	*s;
	const char	*site;
	unsigned long	 line;
	size_t		 seq;
	int		 email;
};

/* One file being walked.  Errors of both files go to the same list. */
struct ctx {
	const char		*file;
	yaml_document_t		*doc;
	struct config_errors	*errs;
	int			*oom;
	unsigned long		 sites_line;	/* main file: line of sites_file */
	const char		*site;		/* sites file: site being read */
	struct ident		*ids;
	size_t			 nids;
};

typedef void (*field_fn)(struct ctx *, const yaml_node_t *k,
    const yaml_node_t *v, void *dst);

struct field {
	const char	*key;
	field_fn	 parse;
	size_t		 off;
	int		 required;
};

static const char *const signal_names[SIGNAL_COUNT] = { "metrics", "logs" };

const char *
signal_name(enum signal s)
{
	if ((unsigned)s >= SIGNAL_COUNT)
		return "unknown";
	return signal_names[s];
}

/* errors */

static void
errors_add(struct config_errors *errs, int *oom, const char *msg)
{
	char	**v, *s;

	if (errs->n > CONFIG_ERRORS_MAX)
		return;
	if (errs->n == CONFIG_ERRORS_MAX)
		msg = "too many errors, stopping here";
	if ((s = strdup(msg)) == NULL ||
	    (v = reallocarray(errs->v, errs->n + 1, sizeof(*v))) == NULL) {
		free(s);
		*oom = 1;
		return;
	}
	v[errs->n++] = s;
	errs->v = v;
}

static void __attribute__((format(printf, 3, 4)))
cerr_line(struct ctx *c, unsigned long line, const char *fmt, ...)
{
	char	msg[768], buf[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(buf, sizeof(buf), "%s:%lu: %s", c->file, line, msg);
	errors_add(c->errs, c->oom, buf);
}

#define LINE(n)		((unsigned long)(n)->start_mark.line + 1)
#define cerr(c, n, ...)	cerr_line((c), LINE(n), __VA_ARGS__)

void
config_errors_free(struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

/* value syntax: sizes, durations, integers, addresses */

/* Leading decimal digits of s; -1 on none or on overflow. */
static int
parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t	v = 0;
	const char	*p;

	for (p = s; *p >= '0' && *p <= '9'; p++)
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
			return -1;
	if (p == s)
		return -1;
	*out = v;
	*end = p;
	return 0;
}

static int
parse_uint(const char *s, uint64_t *out)
{
	const char	*end;

	if (parse_digits(s, out, &end) == -1 || *end != '\0')
		return -1;
	return 0;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "", 1 }, { "B", 1 },
		{ "KB", 1000ull }, { "MB", 1000ull * 1000 },
		{ "GB", 1000ull * 1000 * 1000 },
		{ "TB", 1000ull * 1000 * 1000 * 1000 },
		{ "KiB", 1ull << 10 }, { "MiB", 1ull << 20 },
		{ "GiB", 1ull << 30 }, { "TiB", 1ull << 40 },
	};
	const char	*end;
	uint64_t	 v;

	if (parse_digits(s, &v, &end) == -1)
		return -1;
	while (*end == ' ' && end[1] != '\0')	/* "16 MiB", not "16 " */
		end++;
	for (size_t i = 0; i < NELEM(units); i++)
		if (strcmp(end, units[i].unit) == 0)
			return __builtin_mul_overflow(v, units[i].mult, out) ?
			    -1 : 0;
	return -1;
}

/* Like Prometheus: units from largest to smallest, each at most once. */
int
config_parse_duration(const char *s, uint64_t *out)
{
	static const struct { const char *unit; uint64_t ms; } units[] = {
		{ "y", 365 * MS_DAY }, { "w", 7 * MS_DAY }, { "d", MS_DAY },
		{ "h", MS_HOUR }, { "m", MS_MINUTE }, { "s", MS_SECOND },
		{ "ms", 1 },
	};
	const char	*p = s, *end;
	uint64_t	 total = 0, v, part;
	size_t		 next = 0, i, ulen;

	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	do {
		if (parse_digits(p, &v, &end) == -1)
			return -1;
		for (ulen = 0; isalpha((unsigned char)end[ulen]); ulen++)
			;
		for (i = next; i < NELEM(units); i++)
			if (strlen(units[i].unit) == ulen &&
			    strncmp(end, units[i].unit, ulen) == 0)
				break;
		if (i == NELEM(units) ||
		    __builtin_mul_overflow(v, units[i].ms, &part) ||
		    __builtin_add_overflow(total, part, &total))
			return -1;
		next = i + 1;
		p = end + ulen;
	} while (*p != '\0');
	*out = total;
	return 0;
}

static int
port_valid(const char *s, size_t len)
{
	unsigned long	port = 0;

	if (len == 0 || len > 5)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	return port >= 1 && port <= 65535;
}

static int
host_char(int ch, int bracketed)
{
	if (bracketed)
		return isxdigit(ch) || ch == ':' || ch == '.';
	return isalnum(ch) || ch == '.' || ch == '-' || ch == '_';
}

/*
 * Checks len bytes of "host:port", "[v6]:port" or ":port".  In a URL the
 * host is required and the port optional.  NULL when fine, else why not.
 */
static const char *
hostport_check(const char *s, size_t len, int url)
{
	const char	*end = s + len, *p = s;
	int		 br = len > 0 && s[0] == '[';

	for (p += br; p < end && host_char((unsigned char)*p, br); p++)
		;
	if (br) {
		if (p == s + 1 || p == end || *p != ']')
			return "bad IPv6 address (expected [address]:port)";
		p++;
	}
	if (url && p == s)
		return "missing host";
	if (p == end)
		return url ? NULL : "missing :port";
	if (*p != ':')
		return "bad character in host";
	if (!port_valid(p + 1, (size_t)(end - p - 1)))
		return "port must be a number from 1 to 65535";
	return NULL;
}

static const char *
upstream_url_check(const char *u)
{
	const char	*auth, *slash;

	if (strncmp(u, "https://", 8) == 0)
		return "https upstreams are not supported: kakikomi forwards "
		    "plain http:// to upstreams on a trusted network";
	if (strncmp(u, "http://", 7) != 0)
		return "must start with http://";
	auth = u + 7;
	if ((slash = strchr(auth, '/')) == NULL)
		return "must include a path, e.g. "
		    "http://prometheus:9090/api/v1/write";
	return hostport_check(auth, (size_t)(slash - auth), 1);
}

static int
hostname_valid(const char *s)
{
	if (*s == '\0' || *s == '.' || *s == '-')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-')
			return 0;
	return 1;
}

static int
label_name_valid(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

/* node helpers */

static const char *
node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	default:
		return "a single value";
	}
}

/* An unquoted empty value, "~" or "null": YAML's null. */
static int
is_null(const yaml_node_t *n)
{
	const char	*s = (const char *)n->data.scalar.value;

	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	    strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* The text of a non-empty scalar, or NULL after saying why it is not one. */
static const char *
scalar(struct ctx *c, const yaml_node_t *at, const char *what,
    const yaml_node_t *v)
{
	const char	*s = (const char *)v->data.scalar.value;

	if (v->type != YAML_SCALAR_NODE) {
		cerr(c, at, "%s: expected a single value, not %s", what,
		    node_kind(v));
		return NULL;
	}
	if (is_null(v) || *s == '\0') {
		cerr(c, at, "%s: value is empty", what);
		return NULL;
	}
	if (strlen(s) != v->data.scalar.length) {
		cerr(c, at, "%s: value contains a NUL byte", what);
		return NULL;
	}
	return s;
}

static char *
xstrdup(struct ctx *c, const char *s)
{
	char	*d;

	if ((d = strdup(s)) == NULL)
		*c->oom = 1;
	return d;
}

/* Levenshtein distance for keys up to CONFIG_KEY_MAX, else a large value. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t	row[CONFIG_KEY_MAX + 1], la = strlen(a), lb = strlen(b);
	size_t	diag, up, i, j;

	if (la > CONFIG_KEY_MAX || lb > CONFIG_KEY_MAX)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		diag = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[lb];
}

static const char *
closest_key(const char *key, const struct field *f, size_t nf)
{
	const char	*best = NULL;
	size_t		 bestd = 3, d;	/* more than two edits is no typo */

	for (size_t i = 0; i < nf; i++)
		if ((d = edit_distance(key, f[i].key)) < bestd) {
			bestd = d;
			best = f[i].key;
		}
	return best;
}

static void
unknown_key(struct ctx *c, const yaml_node_t *k, const char *section,
    const struct field *f, size_t nf)
{
	const char	*hint = closest_key(KEY(k), f, nf);
	char		 in[128] = "", dym[64] = "";

	if (section != NULL)
		snprintf(in, sizeof(in), " in %s", section);
	if (hint != NULL)
		snprintf(dym, sizeof(dym), " (did you mean '%s'?)", hint);
	cerr(c, k, "unknown key '%.64s'%s%s", KEY(k), in, dym);
}

/*
 * Walks one mapping along a field table, writing into base.  `owner` (the
 * key that holds the mapping, or the mapping itself) gives the line for a
 * missing required key.  A null value counts as an empty mapping.
 */
static void
walk(struct ctx *c, const yaml_node_t *map, const yaml_node_t *owner,
    const char *section, const struct field *f, size_t nf, void *base)
{
	const yaml_node_pair_t	*pair;
	const yaml_node_t	*k, *v;
	uint32_t		 seen = 0;
	size_t			 i;

	if (map->type != YAML_MAPPING_NODE && !is_null(map)) {
		cerr(c, owner, "%s: expected a mapping, not %s",
		    section != NULL ? section : "top level", node_kind(map));
		return;
	}
	if (map->type == YAML_MAPPING_NODE)
		for (pair = map->data.mapping.pairs.start;
		    pair < map->data.mapping.pairs.top; pair++) {
			k = yaml_document_get_node(c->doc, pair->key);
			v = yaml_document_get_node(c->doc, pair->value);
			if (k->type != YAML_SCALAR_NODE) {
				cerr(c, k, "keys must be plain names, not %s",
				    node_kind(k));
				continue;
			}
			for (i = 0; i < nf && strcmp(KEY(k), f[i].key) != 0; i++)
				;
			if (i == nf)
				unknown_key(c, k, section, f, nf);
			else if (seen & (1u << i))
				cerr(c, k, "duplicate key '%s'", f[i].key);
			else {
				seen |= 1u << i;
				f[i].parse(c, k, v, (char *)base + f[i].off);
			}
		}
	for (i = 0; i < nf; i++)
		if (f[i].required && !(seen & (1u << i)))
			cerr(c, owner, "missing required key '%s'%s%s",
			    f[i].key, section != NULL ? " in " : "",
			    section != NULL ? section : "");
}

/* field parsers: each reports its own errors */

static void
parse_string(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;

	if ((s = scalar(c, k, KEY(k), v)) != NULL)
		*(char **)dst = xstrdup(c, s);
}

static void
parse_listen(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s, *why;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if ((why = hostport_check(s, strlen(s), 0)) != NULL)
		cerr(c, k, "%s: '%.64s': %s (expected host:port, "
		    "[address]:port or :port)", KEY(k), s, why);
	else
		*(char **)dst = xstrdup(c, s);
}

static void
parse_log_level(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (log_level_parse(s) == -1)
		cerr(c, k, "%s: '%.64s' is not one of debug, info, warn, error",
		    KEY(k), s);
	else
		*(char **)dst = xstrdup(c, s);
}

static void
parse_workers(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;
	uint64_t	 n;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (parse_uint(s, &n) == -1 || n > CONFIG_WORKERS_MAX)
		cerr(c, k, "%s: '%.64s' is not an integer from 0 to %d "
		    "(0 = one per core)", KEY(k), s, CONFIG_WORKERS_MAX);
	else
		*(uint64_t *)dst = n;
}

static void
parse_count(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;
	uint64_t	 n;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (parse_uint(s, &n) == -1 || n == 0)
		cerr(c, k, "%s: '%.64s' is not an integer greater than 0",
		    KEY(k), s);
	else
		*(uint64_t *)dst = n;
}

static void
parse_size(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;
	uint64_t	 n;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (config_parse_size(s, &n) == -1)
		cerr(c, k, "%s: '%.64s' is not a size (e.g. 1024, 512KB, "
		    "16MiB) or is too large", KEY(k), s);
	else if (n == 0)
		cerr(c, k, "%s: must be greater than 0", KEY(k));
	else
		*(uint64_t *)dst = n;
}

/* A duration in ms; returns -1 after reporting. */
static int
duration(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    uint64_t *ms)
{
	const char	*s;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return -1;
	if (config_parse_duration(s, ms) == -1) {
		cerr(c, k, "%s: '%.64s' is not a duration (e.g. 250ms, 30s, "
		    "5m, 1h30m, 1d) or is too large", KEY(k), s);
		return -1;
	}
	return 0;
}

static void
parse_timeout(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	uint64_t	ms;

	if (duration(c, k, v, &ms) == -1)
		return;
	if (ms == 0)
		cerr(c, k, "%s: must be greater than 0", KEY(k));
	else
		*(uint64_t *)dst = ms;
}

static void
parse_refresh(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	uint64_t	ms;

	if (duration(c, k, v, &ms) == -1)
		return;
	if (ms < CONFIG_REFRESH_MIN_MS)
		cerr(c, k, "%s: must be at least 10s", KEY(k));
	else
		*(uint64_t *)dst = ms;
}

static void
parse_leeway(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	uint64_t	ms;

	if (duration(c, k, v, &ms) == -1)
		return;
	if (ms % MS_SECOND != 0)
		cerr(c, k, "%s: must be whole seconds", KEY(k));
	else
		*(uint64_t *)dst = ms / MS_SECOND;
}

/* A positive finite number; -1 after reporting. */
static int
number(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    double min, double *out)
{
	const char	*s;
	char		*end;
	double		 d;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return -1;
	errno = 0;
	d = strtod(s, &end);
	if (*end != '\0' || errno != 0 || !isfinite(d) || d < min ||
	    d == 0) {
		cerr(c, k, "%s: '%.64s' is not a number %s %g", KEY(k), s,
		    min > 0 ? ">=" : ">", min);
		return -1;
	}
	*out = d;
	return 0;
}

static void
parse_rate(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	number(c, k, v, 0, dst);
}

static void
parse_burst(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	number(c, k, v, 1, dst);
}

static int
strlist_push(struct ctx *c, struct strlist *l, const char *s)
{
	char	**v, *d;

	if ((d = xstrdup(c, s)) == NULL)
		return -1;
	if ((v = reallocarray(l->v, l->n + 1, sizeof(*v))) == NULL) {
		free(d);
		*c->oom = 1;
		return -1;
	}
	v[l->n++] = d;
	l->v = v;
	return 0;
}

/*
 * A list of non-empty strings; a single string is a list of one, null an
 * empty list.  `each` (may be NULL) sees every item with its node.
 */
static void
strlist_parse(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    struct strlist *l, void (*each)(struct ctx *, const yaml_node_t *,
    const char *))
{
	const yaml_node_item_t	*it;
	const yaml_node_t	*item;
	const char		*s;

	if (is_null(v))
		return;
	if (v->type == YAML_SCALAR_NODE) {
		if ((s = scalar(c, k, KEY(k), v)) != NULL &&
		    strlist_push(c, l, s) == 0 && each != NULL)
			each(c, k, s);
		return;
	}
	if (v->type != YAML_SEQUENCE_NODE) {
		cerr(c, k, "%s: expected a list, not %s", KEY(k), node_kind(v));
		return;
	}
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	    it++) {
		item = yaml_document_get_node(c->doc, *it);
		if ((s = scalar(c, item, KEY(k), item)) != NULL &&
		    strlist_push(c, l, s) == 0 && each != NULL)
			each(c, item, s);
	}
}

static void
parse_required_list(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	struct strlist	*l = dst;
	size_t		 n = c->errs->n;

	strlist_parse(c, k, v, l, NULL);
	if (l->n == 0 && c->errs->n == n)
		cerr(c, k, "%s: needs at least one value", KEY(k));
}

static void
ident_add(struct ctx *c, const yaml_node_t *at, const char *s, int email)
{
	struct ident	*ids;

	if ((ids = reallocarray(c->ids, c->nids + 1, sizeof(*ids))) == NULL) {
		*c->oom = 1;
		return;
	}
	c->ids = ids;
	ids[c->nids] = (struct ident){ s, c->site, LINE(at), c->nids, email };
	c->nids++;
}

static void
token_seen(struct ctx *c, const yaml_node_t *at, const char *s)
{
	ident_add(c, at, s, 0);
}

static void
email_seen(struct ctx *c, const yaml_node_t *at, const char *s)
{
	if (strchr(s, '@') == NULL)
		cerr(c, at, "emails: '%.64s' is not an email address", s);
	ident_add(c, at, s, 1);
}

/* Items are stored before being seen, so `s` outlives the walk. */
static void
parse_tokens(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	strlist_parse(c, k, v, dst, token_seen);
}

static void
parse_emails(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	strlist_parse(c, k, v, dst, email_seen);
}

static void
parse_signals(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	struct strlist	 l = { NULL, 0 };
	unsigned	 bits = 0;
	size_t		 n = c->errs->n, i;
	int		 s;

	strlist_parse(c, k, v, &l, NULL);
	for (i = 0; i < l.n; i++) {
		for (s = 0; s < SIGNAL_COUNT &&
		    strcmp(l.v[i], signal_names[s]) != 0; s++)
			;
		if (s == SIGNAL_COUNT)
			cerr(c, k, "%s: '%.64s' is not one of metrics, logs",
			    KEY(k), l.v[i]);
		else
			bits |= 1u << s;
		free(l.v[i]);
	}
	free(l.v);
	if (l.n == 0 && c->errs->n == n)
		cerr(c, k, "%s: empty (leave it out to allow both)", KEY(k));
	else if (bits != 0)
		*(unsigned *)dst = bits;
}

static void
parse_mismatch(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (strcmp(s, "rewrite") == 0)
		*(enum mismatch *)dst = MISMATCH_REWRITE;
	else if (strcmp(s, "reject") == 0)
		*(enum mismatch *)dst = MISMATCH_REJECT;
	else
		cerr(c, k, "%s: '%.64s' is not one of rewrite, reject",
		    KEY(k), s);
}

static void
parse_bool(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (strcmp(s, "true") == 0)
		*(int *)dst = 1;
	else if (strcmp(s, "false") == 0)
		*(int *)dst = 0;
	else
		cerr(c, k, "%s: '%.64s' is not true or false", KEY(k), s);
}

static void
parse_protocol(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (strcmp(s, "v1") == 0)
		*(enum rw_protocol *)dst = RW_PROTOCOL_V1;
	else if (strcmp(s, "v2") == 0)
		*(enum rw_protocol *)dst = RW_PROTOCOL_V2;
	else if (strcmp(s, "auto") == 0)
		*(enum rw_protocol *)dst = RW_PROTOCOL_AUTO;
	else
		cerr(c, k, "%s: '%.64s' is not one of v1, v2, auto",
		    KEY(k), s);
}

static void
parse_label(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (!label_name_valid(s) || strncmp(s, "__", 2) == 0)
		cerr(c, k, "%s: '%.64s' is not a label name "
		    "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", KEY(k), s);
	else
		*(char **)dst = xstrdup(c, s);
}

static void
parse_team_domain(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (!hostname_valid(s))
		cerr(c, k, "%s: '%.64s' is not a host name such as "
		    "example.cloudflareaccess.com (no https://, no path)",
		    KEY(k), s);
	else
		*(char **)dst = xstrdup(c, s);
}

static void
parse_certs_url(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if ((strncmp(s, "https://", 8) != 0 || s[8] == '\0') &&
	    (strncmp(s, "http://", 7) != 0 || s[7] == '\0') &&
	    (strncmp(s, "file://", 7) != 0 || s[7] == '\0'))
		cerr(c, k, "%s: '%.64s' must start with https://, http:// or "
		    "file://", KEY(k), s);
	else
		*(char **)dst = xstrdup(c, s);
}

static void
parse_upstream_url(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s, *why;

	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if ((why = upstream_url_check(s)) != NULL)
		cerr(c, k, "%s: '%.64s': %s", KEY(k), s, why);
	else
		*(char **)dst = xstrdup(c, s);
}

/* relative to the directory of the main file, like an include */
static void
parse_sites_file(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	const char	*s, *slash = strrchr(c->file, '/');
	char		*path;

	c->sites_line = LINE(k);
	if ((s = scalar(c, k, KEY(k), v)) == NULL)
		return;
	if (s[0] == '/' || slash == NULL)
		path = xstrdup(c, s);
	else if (asprintf(&path, "%.*s%s", (int)(slash - c->file + 1),
	    c->file, s) == -1) {
		path = NULL;
		*c->oom = 1;
	}
	*(char **)dst = path;
}

/* nested sections */

static const struct field access_fields[] = {
	{ "team_domain", parse_team_domain,
	    offsetof(struct access_conf, team_domain), 1 },
	{ "audiences", parse_required_list,
	    offsetof(struct access_conf, audiences), 1 },
	{ "certs_url", parse_certs_url,
	    offsetof(struct access_conf, certs_url), 0 },
	{ "certs_ca_file", parse_string,
	    offsetof(struct access_conf, certs_ca_file), 0 },
	{ "certs_cache", parse_string,
	    offsetof(struct access_conf, certs_cache), 0 },
	{ "refresh_interval", parse_refresh,
	    offsetof(struct access_conf, refresh_interval_ms), 0 },
	{ "fetch_timeout", parse_timeout,
	    offsetof(struct access_conf, fetch_timeout_ms), 0 },
	{ "leeway", parse_leeway, offsetof(struct access_conf, leeway_s), 0 },
};

static void
parse_access(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	struct access_conf	*a = dst;

	walk(c, v, k, "access", access_fields, NELEM(access_fields), a);
	if (a->team_domain == NULL)
		return;
	if (asprintf(&a->issuer, "https://%s", a->team_domain) == -1) {
		a->issuer = NULL;
		*c->oom = 1;
	}
	if (a->certs_url == NULL && asprintf(&a->certs_url,
	    "https://%s/cdn-cgi/access/certs", a->team_domain) == -1) {
		a->certs_url = NULL;
		*c->oom = 1;
	}
}

/* protocol is the remote write version: a logs upstream has none. */
static const struct field upstream_fields[] = {
	{ "url", parse_upstream_url, offsetof(struct upstream_conf, url), 1 },
	{ "timeout", parse_timeout,
	    offsetof(struct upstream_conf, timeout_ms), 0 },
	{ "multi_tenant", parse_bool,
	    offsetof(struct upstream_conf, multi_tenant), 0 },
	{ "protocol", parse_protocol,
	    offsetof(struct upstream_conf, protocol), 0 },
};
#define UPSTREAM_FIELDS_LOGS	3	/* all but protocol */

/* upstreams.metrics / upstreams.logs; the key names the signal. */
static void
parse_upstream_list(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	struct config		*cfg = dst;
	const yaml_node_item_t	*it;
	struct upstream_conf	*u;
	char			 section[32];
	size_t			 n;
	int			 s = strcmp(KEY(k), "logs") == 0 ?
				    SIGNAL_LOGS : SIGNAL_METRICS;

	if (is_null(v))
		return;
	if (v->type != YAML_SEQUENCE_NODE) {
		cerr(c, k, "%s: expected a list of { url: ... }, not %s",
		    KEY(k), node_kind(v));
		return;
	}
	n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > CONFIG_UPSTREAMS_MAX) {
		cerr(c, k, "%s: at most %d upstreams", KEY(k),
		    CONFIG_UPSTREAMS_MAX);
		return;
	}
	if (n == 0)
		return;
	if ((cfg->upstreams[s] = calloc(n, sizeof(*u))) == NULL) {
		*c->oom = 1;
		return;
	}
	snprintf(section, sizeof(section), "upstreams.%s", KEY(k));
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	    it++) {
		u = &cfg->upstreams[s][cfg->nupstreams[s]++];
		u->timeout_ms = 30 * MS_SECOND;
		walk(c, yaml_document_get_node(c->doc, *it),
		    yaml_document_get_node(c->doc, *it), section,
		    upstream_fields, s == SIGNAL_LOGS ? UPSTREAM_FIELDS_LOGS :
		    NELEM(upstream_fields), u);
	}
}

static const struct field upstreams_fields[] = {
	{ "metrics", parse_upstream_list, 0, 0 },
	{ "logs", parse_upstream_list, 0, 0 },
};

static void
parse_upstreams(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	struct config	*cfg = dst;
	size_t		 n = c->errs->n;

	walk(c, v, k, "upstreams", upstreams_fields, NELEM(upstreams_fields),
	    cfg);
	if (c->errs->n == n && cfg->nupstreams[SIGNAL_METRICS] == 0 &&
	    cfg->nupstreams[SIGNAL_LOGS] == 0)
		cerr(c, k, "upstreams: no upstream for metrics or logs");
}

static const struct field limits_fields[] = {
	{ "max_body_bytes", parse_size,
	    offsetof(struct limits_conf, max_body_bytes), 0 },
	{ "max_decoded_bytes", parse_size,
	    offsetof(struct limits_conf, max_decoded_bytes), 0 },
	{ "max_inflight_bytes", parse_size,
	    offsetof(struct limits_conf, max_inflight_bytes), 0 },
	{ "max_inflight_bytes_per_site", parse_size,
	    offsetof(struct limits_conf, max_inflight_bytes_per_site), 0 },
	{ "max_connections", parse_count,
	    offsetof(struct limits_conf, max_connections), 0 },
	{ "max_requests", parse_count,
	    offsetof(struct limits_conf, max_requests), 0 },
	{ "max_requests_per_site", parse_count,
	    offsetof(struct limits_conf, max_requests_per_site), 0 },
	{ "header_timeout", parse_timeout,
	    offsetof(struct limits_conf, header_timeout_ms), 0 },
	{ "body_timeout", parse_timeout,
	    offsetof(struct limits_conf, body_timeout_ms), 0 },
	{ "idle_timeout", parse_timeout,
	    offsetof(struct limits_conf, idle_timeout_ms), 0 },
	{ "min_body_rate", parse_size,
	    offsetof(struct limits_conf, min_body_rate), 0 },
	{ "body_rate_grace", parse_timeout,
	    offsetof(struct limits_conf, body_rate_grace_ms), 0 },
};

/* The key node named `key` in mapping `map`, or `map` itself. */
static const yaml_node_t *
map_key(struct ctx *c, const yaml_node_t *map, const char *key)
{
	const yaml_node_pair_t	*pair;
	const yaml_node_t	*k;

	if (map->type != YAML_MAPPING_NODE)
		return map;
	for (pair = map->data.mapping.pairs.start;
	    pair < map->data.mapping.pairs.top; pair++) {
		k = yaml_document_get_node(c->doc, pair->key);
		if (k->type == YAML_SCALAR_NODE && strcmp(KEY(k), key) == 0)
			return k;
	}
	return map;
}

static void
parse_limits(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	struct limits_conf	*l = dst;
	size_t			 n = c->errs->n;

	walk(c, v, k, "limits", limits_fields, NELEM(limits_fields), dst);
	if (c->errs->n == n &&
	    l->max_inflight_bytes_per_site > l->max_inflight_bytes)
		cerr(c, map_key(c, v, "max_inflight_bytes_per_site"),
		    "max_inflight_bytes_per_site: %llu is over max_inflight_bytes "
		    "(%llu)", (unsigned long long)l->max_inflight_bytes_per_site,
		    (unsigned long long)l->max_inflight_bytes);
	if (c->errs->n == n && l->max_requests != 0 &&
	    l->max_requests_per_site > l->max_requests)
		cerr(c, map_key(c, v, "max_requests_per_site"),
		    "max_requests_per_site: %llu is over max_requests (%llu)",
		    (unsigned long long)l->max_requests_per_site,
		    (unsigned long long)l->max_requests);
}

static const struct field rate_fields[] = {
	{ "requests_per_second", parse_rate, offsetof(struct site, rate_limit),
	    1 },
	{ "burst", parse_burst, offsetof(struct site, rate_burst), 0 },
};

static void
parse_rate_limit(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	walk(c, v, k, "rate_limit", rate_fields, NELEM(rate_fields), dst);
}

static const struct field site_fields[] = {
	{ "tokens", parse_tokens, offsetof(struct site, tokens), 0 },
	{ "emails", parse_emails, offsetof(struct site, emails), 0 },
	{ "provider", parse_required_list, offsetof(struct site, providers),
	    1 },
	{ "on_mismatch", parse_mismatch, offsetof(struct site, on_mismatch),
	    0 },
	{ "signals", parse_signals, offsetof(struct site, signals), 0 },
	{ "tenant", parse_string, offsetof(struct site, tenant), 0 },
	{ "rate_limit", parse_rate_limit, 0, 0 },
};

static void
site_parse(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    struct site *site)
{
	char	section[96];

	site->on_mismatch = MISMATCH_REWRITE;
	site->signals = (1u << SIGNAL_METRICS) | (1u << SIGNAL_LOGS);
	c->site = site->name;
	snprintf(section, sizeof(section), "site '%.64s'", site->name);
	walk(c, v, k, section, site_fields, NELEM(site_fields), site);
	if (site->tokens.n == 0 && site->emails.n == 0 &&
	    (v->type == YAML_MAPPING_NODE || is_null(v)))
		cerr(c, k, "site '%.64s' has no tokens and no emails",
		    site->name);
	if (site->rate_limit > 0 && site->rate_burst == 0)
		site->rate_burst = site->rate_limit > 1 ? site->rate_limit : 1;
}

/* The first site named `name`, or NULL. */
static const struct site *
site_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsites; i++)
		if (strcmp(cfg->sites[i].name, name) == 0)
			return &cfg->sites[i];
	return NULL;
}

static void
parse_sites(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
    void *dst)
{
	struct config		*cfg = dst;
	const yaml_node_pair_t	*pair;
	const yaml_node_t	*name, *val;
	const char		*s;
	size_t			 n;

	if (v->type != YAML_MAPPING_NODE ||
	    (n = (size_t)(v->data.mapping.pairs.top -
	    v->data.mapping.pairs.start)) == 0) {
		cerr(c, k, "sites: expected a mapping of site name -> site, "
		    "with at least one site");
		return;
	}
	if ((cfg->sites = calloc(n, sizeof(*cfg->sites))) == NULL) {
		*c->oom = 1;
		return;
	}
	for (pair = v->data.mapping.pairs.start;
	    pair < v->data.mapping.pairs.top; pair++) {
		name = yaml_document_get_node(c->doc, pair->key);
		val = yaml_document_get_node(c->doc, pair->value);
		if ((s = scalar(c, name, "site name", name)) == NULL)
			continue;
		if (site_find(cfg, s) != NULL) {
			cerr(c, name, "duplicate site '%.64s'", s);
			continue;
		}
		if ((cfg->sites[cfg->nsites].name = xstrdup(c, s)) == NULL)
			return;
		site_parse(c, name, val, &cfg->sites[cfg->nsites++]);
	}
}

/* Tokens compare exactly; emails as Access compares them, ignoring case. */
static int
ident_same(const struct ident *x, const struct ident *y)
{
	if (x->email != y->email)
		return 0;
	return (x->email ? strcasecmp(x->s, y->s) : strcmp(x->s, y->s)) == 0;
}

static int
ident_cmp(const void *a, const void *b)
{
	const struct ident	*x = a, *y = b;
	int			 r;

	if (x->email != y->email)
		return x->email - y->email;
	r = x->email ? strcasecmp(x->s, y->s) : strcmp(x->s, y->s);
	if (r != 0)
		return r;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Each token and email must lead to exactly one site. */
static void
idents_check(struct ctx *c)
{
	const struct ident	*first = NULL, *id;

	if (c->nids == 0)
		return;
	qsort(c->ids, c->nids, sizeof(*c->ids), ident_cmp);
	for (size_t i = 0; i < c->nids; i++) {
		id = &c->ids[i];
		if (first != NULL && ident_same(first, id))
			cerr_line(c, id->line, "%s '%.64s' is already listed "
			    "in site '%.64s' (line %lu)",
			    id->email ? "email" : "token", id->s, first->site,
			    first->line);
		else
			first = id;
	}
}

static const struct field main_fields[] = {
	{ "listen", parse_listen, offsetof(struct config, listen), 0 },
	{ "metrics_listen", parse_listen,
	    offsetof(struct config, metrics_listen), 0 },
	{ "log_level", parse_log_level, offsetof(struct config, log_level), 0 },
	{ "workers", parse_workers, offsetof(struct config, workers), 0 },
	{ "shutdown_timeout", parse_timeout,
	    offsetof(struct config, shutdown_timeout_ms), 0 },
	{ "access", parse_access, offsetof(struct config, access), 1 },
	{ "upstreams", parse_upstreams, 0, 1 },
	{ "sites_file", parse_sites_file, offsetof(struct config, sites_file),
	    1 },
	{ "limits", parse_limits, offsetof(struct config, limits), 0 },
};

static const struct field sites_fields[] = {
	{ "label", parse_label, offsetof(struct config, label), 0 },
	{ "sites", parse_sites, 0, 1 },
};

/* files */

/* The whole file, NUL-terminated, or NULL with *why set. */
static char *
file_read(const char *path, size_t *lenp, const char **why)
{
	struct stat	 st;
	FILE		*f;
	char		*buf = NULL;

	if ((f = fopen(path, "re")) == NULL) {
		*why = strerror(errno);
		return NULL;
	}
	if (fstat(fileno(f), &st) == -1)
		*why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		*why = "not a regular file";
	else if (st.st_size > CONFIG_FILE_MAX)
		*why = "file larger than 4 MiB";
	else if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		*why = strerror(errno);
	else if ((*lenp = fread(buf, 1, (size_t)st.st_size, f)) !=
	    (size_t)st.st_size || ferror(f)) {
		*why = "short read";
		free(buf);
		buf = NULL;
	} else
		buf[*lenp] = '\0';
	fclose(f);
	return buf;
}

static unsigned long
offset_line(const char *buf, size_t len, size_t off)
{
	unsigned long	line = 1;

	for (size_t i = 0; i < off && i < len; i++)
		line += buf[i] == '\n';
	return line;
}

static void
syntax_error(struct ctx *c, const yaml_parser_t *p, const char *buf,
    size_t len)
{
	unsigned long	line = (unsigned long)p->problem_mark.line + 1;

	if (p->error == YAML_READER_ERROR)
		line = offset_line(buf, len, p->problem_offset);
	if (p->error == YAML_MEMORY_ERROR)
		*c->oom = 1;
	cerr_line(c, line, "YAML syntax error: %s%s%s",
	    p->problem != NULL ? p->problem : "unknown problem",
	    p->context != NULL ? " " : "",
	    p->context != NULL ? p->context : "");
}

static const yaml_char_t *
event_anchor(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return ev->data.scalar.anchor;
	case YAML_SEQUENCE_START_EVENT:
		return ev->data.sequence_start.anchor;
	case YAML_MAPPING_START_EVENT:
		return ev->data.mapping_start.anchor;
	default:
		return NULL;
	}
}

/* Why this event is refused, or NULL.  Tracks the nesting in *depth. */
static const char *
event_refused(const yaml_event_t *ev, int *depth, int *docs)
{
	if (ev->type == YAML_ALIAS_EVENT || event_anchor(ev) != NULL)
		return "anchors and aliases are not supported";
	if (ev->type == YAML_DOCUMENT_START_EVENT && ++*docs > 1)
		return "only one YAML document is allowed";
	if (ev->type == YAML_SEQUENCE_START_EVENT ||
	    ev->type == YAML_MAPPING_START_EVENT)
		if (++*depth > CONFIG_DEPTH_MAX)
			return "nested deeper than any configuration key";
	if (ev->type == YAML_SEQUENCE_END_EVENT ||
	    ev->type == YAML_MAPPING_END_EVENT)
		--*depth;
	return NULL;
}

/*
 * A first pass over the events, stopping at the first problem: syntax,
 * more than one document, anchors (the schema has no use for them), and
 * nesting beyond the schema, before libyaml's scanner, whose cost grows
 * with depth times length, spends minutes on a pathological file.
 */
static int
events_check(struct ctx *c, const char *buf, size_t len)
{
	yaml_parser_t	 p;
	yaml_event_t	 ev;
	const char	*why = NULL;
	int		 depth = 0, docs = 0, end = 0;

	if (!yaml_parser_initialize(&p)) {
		*c->oom = 1;
		return -1;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	while (!end && why == NULL) {
		if (!yaml_parser_parse(&p, &ev)) {
			syntax_error(c, &p, buf, len);
			yaml_parser_delete(&p);
			return -1;
		}
		if ((why = event_refused(&ev, &depth, &docs)) != NULL)
			cerr_line(c, (unsigned long)ev.start_mark.line + 1, "%s",
			    why);
		end = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return why == NULL ? 0 : -1;
}

/* Exactly one document whose root is a mapping; -1 after reporting. */
static int
doc_parse(struct ctx *c, const char *buf, size_t len, yaml_document_t *doc)
{
	yaml_parser_t	 p;
	yaml_node_t	*root;
	int		 ok;

	if (events_check(c, buf, len) == -1)
		return -1;
	if (!yaml_parser_initialize(&p)) {
		*c->oom = 1;
		return -1;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	if (!(ok = yaml_parser_load(&p, doc)))
		syntax_error(c, &p, buf, len);
	yaml_parser_delete(&p);
	if (!ok)
		return -1;
	if ((root = yaml_document_get_root_node(doc)) == NULL)
		cerr_line(c, 1, "file is empty");
	else if (root->type != YAML_MAPPING_NODE)
		cerr(c, root, "expected a mapping at the top level, not %s",
		    node_kind(root));
	else
		return 0;
	yaml_document_delete(doc);
	return -1;
}

/* The line of an error of this file; the final "too many errors" last. */
static unsigned long
error_line(const struct ctx *c, const char *e)
{
	size_t	n = strlen(c->file);

	if (strncmp(e, c->file, n) != 0 || e[n] != ':')
		return ULONG_MAX;
	return strtoul(e + n + 1, NULL, 10);
}

/* Stable insertion sort of this file's errors by line: some checks run
 * after their section is read, but people read the list top down. */
static void
errors_sort(const struct ctx *c, size_t from)
{
	char	**v = c->errs->v, *e;
	size_t	  i, j;

	for (i = from + 1; i < c->errs->n; i++) {
		e = v[i];
		for (j = i; j > from &&
		    error_line(c, v[j - 1]) > error_line(c, e); j--)
			v[j] = v[j - 1];
		v[j] = e;
	}
}

/*
 * Reads c->file and walks it along `fields` into cfg.  A file that cannot
 * be read is reported at `parent`'s sites_file line, or without a line for
 * the main file.
 */
static void
file_load(struct ctx *c, struct ctx *parent, const struct field *fields,
    size_t nf, struct config *cfg)
{
	yaml_document_t	 doc;
	const char	*why = NULL;
	char		*buf, msg[1024];
	size_t		 len = 0, first = c->errs->n;

	if ((buf = file_read(c->file, &len, &why)) == NULL) {
		if (parent != NULL)
			cerr_line(parent, parent->sites_line, "sites_file: "
			    "cannot read '%s': %s", c->file, why);
		else {
			snprintf(msg, sizeof(msg), "%s: cannot read: %s",
			    c->file, why);
			errors_add(c->errs, c->oom, msg);
		}
		return;
	}
	if (doc_parse(c, buf, len, &doc) == 0) {
		c->doc = &doc;
		walk(c, yaml_document_get_root_node(&doc),
		    yaml_document_get_root_node(&doc), NULL, fields, nf, cfg);
		idents_check(c);
		c->doc = NULL;
		yaml_document_delete(&doc);
		errors_sort(c, first);
	}
	free(buf);
}

/* snapshot life cycle */

static void
strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static void
config_free(struct config *cfg)
{
	struct site	*s;

	for (int i = 0; i < SIGNAL_COUNT; i++) {
		for (size_t j = 0; j < cfg->nupstreams[i]; j++)
			free(cfg->upstreams[i][j].url);
		free(cfg->upstreams[i]);
	}
	for (size_t i = 0; i < cfg->nsites; i++) {
		s = &cfg->sites[i];
		free(s->name);
		strlist_free(&s->tokens);
		strlist_free(&s->emails);
		strlist_free(&s->providers);
		free(s->tenant);
	}
	free(cfg->sites);
	free(cfg->access.team_domain);
	free(cfg->access.issuer);
	strlist_free(&cfg->access.audiences);
	free(cfg->access.certs_url);
	free(cfg->access.certs_ca_file);
	free(cfg->access.certs_cache);
	free(cfg->path);
	free(cfg->listen);
	free(cfg->metrics_listen);
	free(cfg->log_level);
	free(cfg->sites_file);
	free(cfg->label);
	free(cfg);
}

static struct config *
config_new(const char *path)
{
	struct config	*cfg;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return NULL;
	if ((cfg->path = strdup(path)) == NULL) {
		free(cfg);
		return NULL;
	}
	cfg->refs = 1;
	cfg->shutdown_timeout_ms = 30 * MS_SECOND;
	cfg->access.refresh_interval_ms = MS_HOUR;
	cfg->access.fetch_timeout_ms = 30 * MS_SECOND;
	cfg->access.leeway_s = 30;
	cfg->limits = (struct limits_conf){
		.max_body_bytes = 16ull << 20,
		.max_decoded_bytes = 32ull << 20,
		.max_inflight_bytes = 256ull << 20,
		.max_connections = 4096,
		.max_requests = 256,
		.header_timeout_ms = 10 * MS_SECOND,
		.body_timeout_ms = 60 * MS_SECOND,
		.idle_timeout_ms = 30 * MS_SECOND,
		.min_body_rate = 500,
		.body_rate_grace_ms = 10 * MS_SECOND,
	};
	return cfg;
}

static int
default_string(char **dst, const char *s)
{
	if (*dst == NULL && (*dst = strdup(s)) == NULL)
		return -1;
	return 0;
}

/*
 * A site's default share of the in-flight bytes: a quarter of the whole, so
 * one site slow or hostile leaves three quarters to the others, but room for
 * at least one body of max_body_bytes (else that site's largest writes would
 * be refused forever).
 */
static void
default_site_share(struct limits_conf *l)
{
	uint64_t	share = l->max_inflight_bytes / 4;

	if (l->max_inflight_bytes_per_site != 0)
		return;
	if (share < l->max_body_bytes)
		share = l->max_body_bytes;
	if (share > l->max_inflight_bytes)
		share = l->max_inflight_bytes;
	l->max_inflight_bytes_per_site = share;
}

/*
 * The same for request slots: slow requests of one site hold a quarter, but
 * at least SITE_REQUESTS_FLOOR (or all, when max_requests is smaller), so a
 * small max_requests does not leave a single site one request at a time.
 */
#define SITE_REQUESTS_FLOOR	16

static void
default_site_requests(struct limits_conf *l)
{
	uint64_t	share = l->max_requests / 4;

	if (l->max_requests_per_site != 0)
		return;
	if (share < SITE_REQUESTS_FLOOR)
		share = SITE_REQUESTS_FLOOR;
	if (share > l->max_requests)
		share = l->max_requests;
	l->max_requests_per_site = share;
}

static int
config_finish(struct config *cfg)
{
	default_site_share(&cfg->limits);
	default_site_requests(&cfg->limits);
	if (default_string(&cfg->listen, "0.0.0.0:8080") == -1 ||
	    default_string(&cfg->metrics_listen, "127.0.0.1:9464") == -1 ||
	    default_string(&cfg->log_level, "info") == -1 ||
	    default_string(&cfg->label, "provider") == -1)
		return -1;
	return 0;
}

struct config *
config_load(const char *path, struct config_errors *errs)
{
	struct config	*cfg;
	struct ctx	 mc = { .file = path, .errs = errs };
	struct ctx	 sc = { .errs = errs };
	size_t		 n = errs->n;
	int		 oom = 0;

	mc.oom = sc.oom = &oom;
	if ((cfg = config_new(path)) == NULL)
		oom = 1;
	else {
		file_load(&mc, NULL, main_fields, NELEM(main_fields), cfg);
		if ((sc.file = cfg->sites_file) != NULL)
			file_load(&sc, &mc, sites_fields, NELEM(sites_fields),
			    cfg);
		free(sc.ids);
		if (config_finish(cfg) == -1)
			oom = 1;
	}
	if (oom)
		errors_add(errs, &oom, "out of memory while loading the "
		    "configuration");
	if (oom || errs->n > n) {
		if (cfg != NULL)
			config_free(cfg);
		return NULL;
	}
	return cfg;
}

size_t
config_warnings(const struct config *cfg, struct config_errors *out)
{
	char	line[512];
	int	oom = 0;
	size_t	n = 0;

	for (int sig = 0; sig < SIGNAL_COUNT; sig++)
		for (size_t u = 0; u < cfg->nupstreams[sig]; u++) {
			if (!cfg->upstreams[sig][u].multi_tenant)
				continue;
			for (size_t i = 0; i < cfg->nsites; i++) {
				const struct site *st = &cfg->sites[i];
				if (st->tenant != NULL ||
				    !(st->signals & (1u << sig)))
					continue;
				snprintf(line, sizeof(line), "warning: site %s has "
				    "no tenant, but %s upstream %zu is multi_tenant: "
				    "it will refuse the site's writes (401 \"no org "
				    "id\"), answered 502 so they wait at the site; "
				    "set tenant: in %s", st->name,
				    signal_name((enum signal)sig), u + 1,
				    cfg->sites_file);
				errors_add(out, &oom, line);
				n++;
			}
		}
	return n;
}

struct config *
config_ref(struct config *cfg)
{
	__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

void
config_unref(struct config *cfg)
{
	if (cfg != NULL &&
	    __atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(cfg);
}
