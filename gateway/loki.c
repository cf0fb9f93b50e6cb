/*
 * loki: Loki push (protobuf and JSON) scan, check and rewrite.  See loki.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "loki.h"

#define PUSH_STREAMS	1
#define STREAM_LABELS	1
#define STREAM_ENTRIES	2
#define ENTRY_METADATA	3	/* structuredMetadata (Loki >= 2.9) */
#define PAIR_NAME	1
#define PAIR_VALUE	2

/*
 * A push body nests 6 deep (body, streams, stream, values, entry, metadata);
 * anything much deeper is refused before jansson's recursive parser sees it.
 */
#define JSON_MAX_DEPTH	32
/* int64 nanoseconds, as Loki's strconv.ParseInt reads them. */
#define TS_MAX_DIGITS	19

struct lscan {
	const struct payload_rule	*rule;
	struct loki_stats		*st;
	struct labels_set		 ls;
	const char			*errstr;
	int				 found;
	int				 recode;	/* a labels string is not canonical */
	int				 refused;	/* 403 whatever the mode */
	const uint8_t			*labels;	/* the stream's labels string */
	size_t				 llen;
	char				*reason;
	size_t				 reasonsz;
	struct pb_buf			 text;	/* a canonical labels string */
};

static void
lscan_init(struct lscan *s, const struct payload_rule *rule,
    struct loki_stats *st, char *reason, size_t reasonsz)
{
	memset(s, 0, sizeof(*s));
	memset(st, 0, sizeof(*st));
	s->rule = rule;
	s->st = st;
	s->reason = reason;
	s->reasonsz = reasonsz;
	labels_set_init(&s->ls);
}

static void
lscan_free(struct lscan *s)
{
	labels_set_free(&s->ls);
	pb_buf_free(&s->text);
}

static int
malformed(struct lscan *s, const char *what)
{
	snprintf(s->reason, s->reasonsz, "malformed Loki push: %s: %s", what,
	    s->errstr);
	return -1;
}

/* Checks a parsed stream's labels; 1 when the scan may stop (reject). */
static int
judge_stream(struct lscan *s)
{
	const struct labels_pair	*dup;

	if ((dup = labels_sort_unique(&s->ls)) != NULL) {
		s->errstr = "a stream repeats a label name";
		return malformed(s, "labels");
	}
	if (labels_verdict(&s->ls, s->rule) == LABELS_OK)
		return 0;
	s->found = 1;
	if (s->rule->mode == MISMATCH_REJECT) {
		labels_violation(s->reason, s->reasonsz, "stream", &s->ls,
		    s->rule);
		return 1;
	}
	s->st->rewritten++;
	return 0;
}

/* protobuf */

/*
 * 1 when the stream's labels string is already the canonical form Loki's
 * own String() writes; otherwise kakikomi forwards that form instead, so
 * Loki never parses a spelling kakikomi's grammar might read differently.
 */
static int
pb_canonical(struct lscan *s)
{
	s->text.len = 0;
	labels_format(&s->text, &s->ls, 1, SIZE_MAX);
	return !pb_buf_failed(&s->text) && s->text.len == s->llen &&
	    memcmp(s->text.data, s->labels, s->llen) == 0;
}

/*
 * Structured metadata is checked, never rewritten: a foreign site label
 * there (LogQL filters on it like on a label) refuses the request.
 */
static int
pb_metadata_pair(struct lscan *s, const uint8_t *buf, size_t len)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	const uint8_t		*name = NULL, *value = NULL;
	size_t			 nlen = 0, vlen = 0;
	int			 rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != PAIR_NAME && f.num != PAIR_VALUE)
			continue;
		if (f.wt != PB_LEN) {
			s->errstr = "wrong wire type for structured metadata";
			return malformed(s, "protobuf");
		}
		if (f.num == PAIR_NAME) {
			name = f.data;
			nlen = f.len;
		} else {
			value = f.data;
			vlen = f.len;
		}
	}
	if (rc == -1)
		return malformed(s, "protobuf");
	if (!labels_pair_foreign(s->rule, name, nlen, value, vlen))
		return 0;
	snprintf(s->reason, s->reasonsz, "an entry's structured metadata has "
	    "%s=\"%.*s\", site %s may not write it (structured metadata is "
	    "checked, not rewritten)", s->rule->label,
	    vlen > 64 ? 64 : (int)vlen, (const char *)value, s->rule->site);
	s->refused = 1;
	return -1;
}

static int
pb_entry(struct lscan *s, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	int			rc;

	s->st->entries++;
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != ENTRY_METADATA)
			continue;
		if (f.wt != PB_LEN) {
			s->errstr = "wrong wire type for structured metadata";
			return malformed(s, "protobuf");
		}
		if (pb_metadata_pair(s, f.data, f.len) == -1)
			return -1;
	}
	return rc == -1 ? malformed(s, "protobuf") : 0;
}

static int
pb_stream_read(struct lscan *s, const uint8_t *buf, size_t len, int entries)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	int			 rc;

	s->labels = NULL;
	s->llen = 0;
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != STREAM_LABELS && f.num != STREAM_ENTRIES)
			continue;
		if (f.wt != PB_LEN) {
			s->errstr = "wrong wire type for a stream field";
			return malformed(s, "protobuf");
		}
		if (f.num == STREAM_LABELS) {
			s->labels = f.data;
			s->llen = f.len;
		} else if (entries && pb_entry(s, f.data, f.len) == -1)
			return -1;
	}
	if (rc == -1)
		return malformed(s, "protobuf");
	if (s->labels == NULL) {
		s->errstr = "a stream has no labels";
		return malformed(s, "labels");
	}
	if (labels_parse(s->labels, s->llen, &s->ls, &s->errstr) == -1)
		return malformed(s, "labels string");
	return 0;
}

static void
pb_stream_put(struct lscan *s, const uint8_t *buf, size_t len,
    struct pb_buf *out)
{
	size_t	size;

	s->text.len = 0;
	labels_format(&s->text, &s->ls, 1, SIZE_MAX);
	if (pb_buf_failed(&s->text)) {
		out->failed = 1;
		return;
	}
	size = 1 + pb_varint_size(s->text.len) + s->text.len +
	    pb_size_except(buf, len, STREAM_LABELS);
	pb_put_tag(out, PUSH_STREAMS, PB_LEN);
	pb_put_varint(out, size);
	pb_put_bytes(out, STREAM_LABELS, s->text.data, s->text.len);
	pb_put_except(out, buf, len, STREAM_LABELS);
}

/*
 * One stream; in the copying pass (out != NULL) writes it, the original
 * bytes when it passed as sent.  1: stop.
 */
static int
pb_stream(struct lscan *s, const struct pb_field *f, struct pb_buf *out)
{
	enum labels_verdict	verdict;
	int			rc;

	if (f->wt != PB_LEN) {
		s->errstr = "wrong wire type for streams";
		return malformed(s, "protobuf");
	}
	if (out == NULL)
		s->st->streams++;
	if (pb_stream_read(s, f->data, f->len, out == NULL) == -1)
		return -1;
	if (out == NULL) {
		if ((rc = judge_stream(s)) != 0)
			return rc;
		if (!pb_canonical(s))
			s->recode = 1;
		return 0;
	}
	(void)labels_sort_unique(&s->ls);
	verdict = labels_verdict(&s->ls, s->rule);
	if (verdict == LABELS_OK && pb_canonical(s))
		pb_put_raw(out, f->start, f->rawlen);
	else if (verdict != LABELS_OK && labels_enforce(&s->ls, s->rule) == -1)
		out->failed = 1;
	else
		pb_stream_put(s, f->data, f->len, out);
	return 0;
}

static int
pb_pass(struct lscan *s, const uint8_t *buf, size_t len, struct pb_buf *out)
{
	struct pb_reader	r;
	struct pb_field		f;
	int			rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != PUSH_STREAMS) {
			if (out != NULL)
				pb_put_raw(out, f.start, f.rawlen);
			continue;
		}
		if ((rc = pb_stream(s, &f, out)) != 0)
			return rc == 1 ? 0 : -1;
	}
	return rc == -1 ? malformed(s, "protobuf") : 0;
}

int
loki_check_pb(const uint8_t *buf, size_t len,
    const struct payload_rule *rule, struct loki_stats *st,
    struct pb_buf *out, char *reason, size_t reasonsz)
{
	struct lscan		s;
	struct loki_stats	scratch;
	int			rc;

	lscan_init(&s, rule, st, reason, reasonsz);
	if (pb_pass(&s, buf, len, NULL) == -1)
		rc = s.refused ? LABELS_REJECT : LABELS_MALFORMED;
	else if (s.found && rule->mode == MISMATCH_REJECT)
		rc = LABELS_REJECT;
	else if (!s.found && !s.recode)
		rc = LABELS_PASS;
	else {
		s.st = &scratch;
		pb_buf_init(out, len + len / 8 + 64);
		if (pb_pass(&s, buf, len, out) == -1)
			out->failed = 1;
		rc = LABELS_REWRITE;
		if (pb_buf_failed(out)) {
			pb_buf_free(out);
			rc = LABELS_NOMEM;
		}
	}
	lscan_free(&s);
	return rc;
}

/* JSON */

/* 1 when brackets outside strings never nest deeper than JSON_MAX_DEPTH. */
static int
json_depth_ok(const uint8_t *buf, size_t len)
{
	size_t	i;
	int	depth = 0, instr = 0;

	for (i = 0; i < len; i++) {
		if (instr) {
			if (buf[i] == '\\')
				i++;
			else if (buf[i] == '"')
				instr = 0;
		} else if (buf[i] == '"')
			instr = 1;
		else if (buf[i] == '{' || buf[i] == '[') {
			if (++depth > JSON_MAX_DEPTH)
				return 0;
		} else if (buf[i] == '}' || buf[i] == ']')
			depth--;
	}
	return 1;
}

/* A decimal int64, as a string (a JSON number is refused, as Loki does). */
static int
json_timestamp_ok(const json_t *ts)
{
	const char	*s;
	size_t		 n, i;

	if (!json_is_string(ts))
		return 0;
	s = json_string_value(ts);
	n = json_string_length(ts);
	if (n > 0 && s[0] == '-') {
		s++;
		n--;
	}
	if (n == 0 || n > TS_MAX_DIGITS)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return n < TS_MAX_DIGITS || strncmp(s, "9223372036854775807", n) <= 0;
}

static int
json_entry_ok(const json_t *e)
{
	size_t	n = json_array_size(e);

	return json_is_array(e) && (n == 2 || n == 3) &&
	    json_timestamp_ok(json_array_get(e, 0)) &&
	    json_is_string(json_array_get(e, 1)) &&
	    (n == 2 || json_is_object(json_array_get(e, 2)));
}

static int
json_labels(struct lscan *s, json_t *labels)
{
	const char	*key;
	json_t		*val;

	labels_set_reset(&s->ls);
	json_object_foreach(labels, key, val) {
		if (!json_is_string(val)) {
			s->errstr = "a label value is not a string";
			return -1;
		}
		if (!labels_valid_name((const uint8_t *)key, strlen(key))) {
			s->errstr = "invalid label name";
			return -1;
		}
		if (labels_add(&s->ls, (const uint8_t *)key, strlen(key),
		    (const uint8_t *)json_string_value(val),
		    json_string_length(val)) == -1) {
			s->errstr = "out of memory";
			return -1;
		}
	}
	return 0;
}

/* Checks one stream object; 1 when the scan may stop (reject). */
static int
json_stream(struct lscan *s, json_t *stream)
{
	json_t	*labels, *values, *e;
	size_t	 i;
	int	 rc;

	labels = json_object_get(stream, "stream");
	values = json_object_get(stream, "values");
	s->errstr = "a stream needs a \"stream\" object and a \"values\" array";
	if (!json_is_object(labels) || !json_is_array(values))
		return malformed(s, "JSON");
	if (json_labels(s, labels) == -1)
		return malformed(s, "JSON");
	json_array_foreach(values, i, e) {
		if (!json_entry_ok(e)) {
			s->errstr = "an entry is not [\"<ns timestamp string>\", "
			    "\"<line>\"(, {metadata})]";
			return malformed(s, "JSON");
		}
	}
	s->st->streams++;
	s->st->entries += json_array_size(values);
	if ((rc = judge_stream(s)) != 0 || s->rule->mode == MISMATCH_REJECT ||
	    labels_verdict(&s->ls, s->rule) == LABELS_OK)
		return rc;
	if (json_object_set_new(labels, s->rule->label,
	    json_string(s->rule->values->v[0])) == -1) {
		s->errstr = "out of memory";
		return malformed(s, "JSON");
	}
	return 0;
}

static int
json_streams(struct lscan *s, json_t *root)
{
	json_t	*streams, *stream;
	size_t	 i;
	int	 rc;

	streams = json_object_get(root, "streams");
	if (!json_is_object(root) || !json_is_array(streams)) {
		s->errstr = "the body is not {\"streams\": [...]}";
		return malformed(s, "JSON");
	}
	json_array_foreach(streams, i, stream) {
		if (!json_is_object(stream)) {
			s->errstr = "a stream is not an object";
			return malformed(s, "JSON");
		}
		if ((rc = json_stream(s, stream)) != 0)
			return rc == 1 ? 0 : -1;
	}
	return 0;
}

static int
json_serialise(json_t *root, struct pb_buf *out)
{
	size_t	n;

	if ((n = json_dumpb(root, NULL, 0, JSON_COMPACT)) == 0)
		return LABELS_NOMEM;
	pb_buf_init(out, n);
	if (out->cap < n || json_dumpb(root, (char *)out->data, n,
	    JSON_COMPACT) != n) {
		pb_buf_free(out);
		return LABELS_NOMEM;
	}
	out->len = n;
	return LABELS_REWRITE;
}

int
loki_check_json(const uint8_t *buf, size_t len,
    const struct payload_rule *rule, struct loki_stats *st,
    struct pb_buf *out, char *reason, size_t reasonsz)
{
	struct lscan	 s;
	json_t		*root;
	json_error_t	 err;
	int		 rc;

	lscan_init(&s, rule, st, reason, reasonsz);
	if (!json_depth_ok(buf, len)) {
		snprintf(reason, reasonsz, "malformed Loki push: JSON nested "
		    "deeper than %d", JSON_MAX_DEPTH);
		return LABELS_MALFORMED;
	}
	root = json_loadb((const char *)buf, len,
	    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (root == NULL) {
		snprintf(reason, reasonsz, "malformed Loki push: JSON: %s",
		    err.text);
		return LABELS_MALFORMED;
	}
	if (json_streams(&s, root) == -1)
		rc = LABELS_MALFORMED;
	else if (!s.found)
		rc = LABELS_PASS;
	else if (rule->mode == MISMATCH_REJECT)
		rc = LABELS_REJECT;
	else
		rc = json_serialise(root, out);
	json_decref(root);
	lscan_free(&s);
	return rc;
}
