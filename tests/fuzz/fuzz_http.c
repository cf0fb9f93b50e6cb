/*
 * The HTTP request-head parser and the chunked-body decoder.  Properties: the
 * parser answers -1, 0 or a length within the input; a complete head's views
 * lie inside what it consumed, and parsing just those bytes gives the same
 * length; the bytes after the head, fed to the chunked decoder in two pieces,
 * never yield more body than its cap and never consume past the input.
 */
#include "fuzz_common.h"
#include "http.h"

#define FUZZ_BODY_MAX	4096

static void
require_inside(struct http_str s, const char *buf, int n)
{
	FUZZ_REQUIRE(s.p >= buf && s.p + s.len <= buf + n);
}

static void
check_head(const char *buf, int n, const struct http_head *h)
{
	struct http_head again;
	const char *err;

	require_inside(h->method, buf, n);
	require_inside(h->target, buf, n);
	FUZZ_REQUIRE(h->method.len > 0 && h->target.len > 0);
	FUZZ_REQUIRE(h->nheaders <= HTTP_MAX_HEADERS);
	FUZZ_REQUIRE(!(h->chunked && h->has_length));
	for (size_t i = 0; i < h->nheaders; i++) {
		require_inside(h->headers[i].name, buf, n);
		require_inside(h->headers[i].value, buf, n);
	}
	FUZZ_REQUIRE(http_parse_head(buf, (size_t)n, &again, &err) == n);
}

/* Decodes buf[0..len) split at `cut`; the pieces must add up. */
static void
check_chunked(const char *buf, size_t len, size_t cut)
{
	struct http_chunked c;
	const char *data, *err;
	size_t dlen, at = 0, body = 0, end = cut;

	http_chunked_init(&c, FUZZ_BODY_MAX);
	while (at < len && !c.done) {
		ssize_t r = http_chunked_step(&c, buf + at, end - at, &data, &dlen, &err);

		if (r < 0)
			return;
		FUZZ_REQUIRE((size_t)r <= end - at);
		FUZZ_REQUIRE(dlen == 0 || (data >= buf + at && data + dlen <= buf + at + r));
		body += dlen;
		FUZZ_REQUIRE(body <= c.total && c.total <= FUZZ_BODY_MAX);
		at += (size_t)r;
		if (r == 0) {
			if (end == len)
				break;
			end = len;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_head h;
	const char *buf = (const char *)data, *err;
	int n = http_parse_head(buf, size, &h, &err);

	FUZZ_REQUIRE(n >= -1 && (n < 0 || (size_t)n <= size));
	if (n > 0) {
		check_head(buf, n, &h);
		check_chunked(buf + n, size - (size_t)n, (size - (size_t)n) / 2);
	}
	return 0;
}
