/*
 * http: the request-head parser (valid heads, partial heads, each kind of
 * malformed head, bounds) and the chunked-body decoder, table-driven.  Every
 * input is copied into a buffer of exactly its length, so ASan catches a read
 * past the end (the parser must never assume NUL termination).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

/* Parses `in` from an exact-size copy; the copy stays for the views. */
static int
parse(const char *in, size_t len, struct http_head *h, const char **err, char **copy)
{
	*copy = malloc(len ? len : 1);
	assert_non_null(*copy);
	memcpy(*copy, in, len);
	*err = NULL;
	return http_parse_head(*copy, len, h, err);
}

static void
assert_str(struct http_str s, const char *want)
{
	char got[256];

	snprintf(got, sizeof(got), "%.*s", (int)s.len, s.p);
	assert_string_equal(got, want);
}

struct good_case {
	const char	*in;
	size_t		 used;		/* 0: the whole input */
	const char	*method, *target;
	int		 minor;
	int		 has_length;
	uint64_t	 length;
	int		 chunked, keep_alive, expect;
	size_t		 nheaders;
};

static const struct good_case good[] = {
	{ "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 0,
	    "POST", "/api/v1/write", 1, 1, 5, 0, 1, 0, 2 },
	{ "POST /a?b=c HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 43,
	    "POST", "/a?b=c", 1, 1, 3, 0, 1, 0, 1 },
	{ "GET / HTTP/1.0\n\n", 0, "GET", "/", 0, 0, 0, 0, 0, 0, 0 },
	{ "GET / HTTP/1.0\nConnection: Keep-Alive\n\n", 0, "GET", "/", 0, 0, 0, 0, 1, 0, 1 },
	{ "GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n", 0,
	    "GET", "/", 1, 0, 0, 0, 0, 0, 1 },
	{ "POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nExpect: 100-Continue\r\n\r\n", 0,
	    "POST", "/x", 1, 0, 0, 1, 1, 1, 2 },
	{ "\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", 0,
	    "POST", "/x", 1, 1, 7, 0, 1, 0, 2 },
	{ "POST /x HTTP/1.1\r\nX-A:\t v \xe9\xa7\x85 \t\r\nX-Empty:\r\n\r\n", 0,
	    "POST", "/x", 1, 0, 0, 0, 1, 0, 2 },
	{ "OPTIONS * HTTP/1.9\r\nContent-Length: 0000000000000000012\r\n\r\n", 0,
	    "OPTIONS", "*", 9, 1, 12, 0, 1, 0, 1 },
};

static void
test_head_valid(void **state)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good_case *g = &good[i];
		size_t len = strlen(g->in);
		struct http_head h;
		const char *err;
		char *copy;
		int n = parse(g->in, len, &h, &err, &copy);

		print_message("head case %zu\n", i);
		assert_int_equal(n, g->used ? g->used : len);
		assert_str(h.method, g->method);
		assert_str(h.target, g->target);
		assert_int_equal(h.minor, g->minor);
		assert_int_equal(h.has_length, g->has_length);
		assert_int_equal(h.content_length, g->length);
		assert_int_equal(h.chunked, g->chunked);
		assert_int_equal(h.keep_alive, g->keep_alive);
		assert_int_equal(h.expect_continue, g->expect);
		assert_int_equal(h.nheaders, g->nheaders);
		free(copy);
	}
}

static void
test_head_values(void **state)
{
	const char *in = "POST /x HTTP/1.1\r\nX-A:\t v \xe9 \t\r\nX-Empty:\r\n"
	    "x-a: second\r\n\r\n";
	struct http_head h;
	const char *err;
	char *copy;

	assert_int_equal(parse(in, strlen(in), &h, &err, &copy), (int)strlen(in));
	assert_str(h.headers[0].name, "X-A");
	assert_str(h.headers[0].value, "v \xe9");
	assert_str(*http_head_find(&h, "x-a"), "v \xe9");
	assert_str(*http_head_find(&h, "X-EMPTY"), "");
	assert_null(http_head_find(&h, "X-Missing"));
	free(copy);
}

/* Every prefix of a complete head needs more bytes. */
static void
test_head_partial(void **state)
{
	const char *in = "POST /api/v1/write HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	size_t len = strlen(in);

	for (size_t cut = 0; cut < len; cut++) {
		struct http_head h;
		const char *err;
		char *copy;
		int n = parse(in, cut, &h, &err, &copy);

		if (n != 0)
			fail_msg("prefix of %zu bytes: got %d (%s), want 0", cut, n,
			    err ? err : "");
		free(copy);
	}
}

struct bad_case {
	const char	*in;
	const char	*err;
};

static const struct bad_case bad[] = {
	{ "POST  / HTTP/1.1\r\n\r\n", "malformed request line" },
	{ "POST / HTTP/2.0\r\n\r\n", "malformed request line" },
	{ "POST / HTTP/1.1 \r\n\r\n", "malformed request line" },
	{ "POST / HTTP/1.11\r\n\r\n", "malformed request line" },
	{ "PO(ST / HTTP/1.1\r\n\r\n", "malformed request line" },
	{ " / HTTP/1.1\r\n\r\n", "malformed request line" },
	{ "POST /\r HTTP/1.1\r\n\r\n", "malformed request line" },
	{ "POST /\x7f HTTP/1.1\r\n\r\n", "malformed request line" },
	{ "POST / HTTP/1.1\r\nHost : x\r\n\r\n", "malformed header name" },
	{ "POST / HTTP/1.1\r\n: x\r\n\r\n", "malformed header name" },
	{ "POST / HTTP/1.1\r\nNoColon\r\n\r\n", "malformed header name" },
	{ "POST / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", "folded header line (obs-fold)" },
	{ "POST / HTTP/1.1\r\nA: b\x01\r\n\r\n", "control character in a header value" },
	{ "POST / HTTP/1.1\r\nA: b\rc\r\n\r\n", "control character in a header value" },
	{ "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", "Content-Length is not a number" },
	{ "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", "Content-Length is not a number" },
	{ "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", "Content-Length is not a number" },
	{ "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", "Content-Length is not a number" },
	{ "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
	    "Content-Length is not a number" },
	{ "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	    "conflicting Content-Length headers" },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	    "unsupported Transfer-Encoding (only chunked)" },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "unsupported Transfer-Encoding (only chunked)" },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	    "both Transfer-Encoding and Content-Length" },
	{ "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "both Transfer-Encoding and Content-Length" },
	{ "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "Transfer-Encoding in an HTTP/1.0 request" },
};

static void
test_head_malformed(void **state)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http_head h;
		const char *err;
		char *copy;
		size_t len = strlen(bad[i].in);
		int n;

		n = parse(bad[i].in, len, &h, &err, &copy);
		if (n != -1 || err == NULL || strcmp(err, bad[i].err) != 0)
			fail_msg("case %zu [%s]: got %d (%s), want -1 (%s)", i, bad[i].in, n,
			    err ? err : "no reason", bad[i].err);
		free(copy);
	}
}

/* A head with n header lines "Xn: v". */
static char *
many_headers(size_t n, size_t *len)
{
	size_t cap = 64 + n * 16, at;
	char *s = malloc(cap);

	assert_non_null(s);
	at = (size_t)snprintf(s, cap, "POST / HTTP/1.1\r\n");
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(s + at, cap - at, "X%zu: v\r\n", i);
	at += (size_t)snprintf(s + at, cap - at, "\r\n");
	*len = at;
	return s;
}

static void
test_head_limits(void **state)
{
	struct http_head h;
	const char *err;
	char *copy, *in, *big;
	size_t len;

	in = many_headers(HTTP_MAX_HEADERS, &len);
	assert_int_equal(parse(in, len, &h, &err, &copy), (int)len);
	assert_int_equal(h.nheaders, HTTP_MAX_HEADERS);
	free(copy);
	free(in);
	in = many_headers(HTTP_MAX_HEADERS + 1, &len);
	assert_int_equal(parse(in, len, &h, &err, &copy), -1);
	assert_string_equal(err, "more than 100 header lines");
	free(copy);
	free(in);

	/* A complete head just under the bound parses; no end within it is -1. */
	big = malloc(HTTP_MAX_HEAD + 100);
	assert_non_null(big);
	len = (size_t)snprintf(big, 64, "POST / HTTP/1.1\r\nX: ");
	memset(big + len, 'a', HTTP_MAX_HEAD - len - 4);
	memcpy(big + HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
	assert_int_equal(parse(big, HTTP_MAX_HEAD, &h, &err, &copy), HTTP_MAX_HEAD);
	free(copy);
	assert_int_equal(parse(big, HTTP_MAX_HEAD - 1, &h, &err, &copy), 0);
	free(copy);
	memset(big + HTTP_MAX_HEAD - 4, 'a', 104);
	assert_int_equal(parse(big, HTTP_MAX_HEAD + 100, &h, &err, &copy), -1);
	assert_string_equal(err, "request head over 64 KiB");
	free(copy);
	assert_int_equal(parse(big, HTTP_MAX_HEAD, &h, &err, &copy), -1);
	free(copy);
	free(big);
}

/* ---- chunked ----------------------------------------------------------- */

enum { CH_OK, CH_MORE, CH_BAD, CH_OVER };

struct chunk_case {
	const char	*in;
	uint64_t	 max;
	int		 want;		/* CH_* */
	const char	*body;		/* decoded so far */
	size_t		 used;		/* CH_OK: bytes consumed (0: all) */
	const char	*err;		/* CH_BAD */
};

static const struct chunk_case chunks[] = {
	{ "5\r\nhello\r\n0\r\n\r\n", 100, CH_OK, "hello", 0, NULL },
	{ "5;ext=1\r\nhello\r\n6 ; x\r\n world\r\n0\r\n\r\n", 100, CH_OK, "hello world", 0, NULL },
	{ "A\r\n0123456789\r\n000\r\n\r\n", 10, CH_OK, "0123456789", 0, NULL },
	{ "3\r\nabc\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", 100, CH_OK, "abc", 0, NULL },
	{ "0\r\n\r\nPOST / HTTP/1.1\r\n", 100, CH_OK, "", 5, NULL },
	{ "5\r\nhel", 100, CH_MORE, "hel", 0, NULL },
	{ "5\r\nhello\r\n0\r\n", 100, CH_MORE, "hello", 0, NULL },
	{ "\r\n", 100, CH_BAD, "", 0, "chunk size is not hex digits" },
	{ "g\r\n", 100, CH_BAD, "", 0, "chunk size is not hex digits" },
	{ "5\nhello\r\n", 100, CH_BAD, "", 0, "chunk size line not ended by CRLF" },
	{ "5\r\nhelloX\r\n", 100, CH_BAD, "hello", 0, "missing CRLF after chunk data" },
	{ "5\r\nhello\rX", 100, CH_BAD, "hello", 0, "missing CRLF after chunk data" },
	{ "5;a\x01\r\nhello\r\n", 100, CH_BAD, "", 0, "malformed chunk extension" },
	{ "3\r\nabc\r\n0\r\nX\n\r\n", 100, CH_BAD, "abc", 0, "malformed chunk framing" },
	{ "11111111111111111\r\n", UINT64_MAX, CH_BAD, "", 0, "chunk size over 16 hex digits" },
	{ "ffffffffffffffff\r\n", UINT64_MAX, CH_MORE, "", 0, NULL },
	{ "5\r\nhello\r\n0\r\n\r\n", 4, CH_OVER, "", 0, NULL },
	{ "3\r\nabc\r\n4\r\nabcd\r\n0\r\n\r\n", 6, CH_OVER, "abc", 0, NULL },
	{ "3\r\nabc\r\n3\r\nabc\r\n0\r\n\r\n", 6, CH_OK, "abcabc", 0, NULL },
};

/* Feeds `len` bytes `step` at a time; returns CH_*, the body and bytes used. */
static int
decode(const char *in, size_t len, uint64_t max, size_t step, char *body, size_t *used,
    const char **err)
{
	struct http_chunked c;
	size_t at = 0, blen = 0;

	http_chunked_init(&c, max);
	*err = NULL;
	while (at < len && !c.done) {
		size_t n = len - at < step ? len - at : step, dlen;
		char *piece = malloc(n);
		const char *data;
		ssize_t r;

		assert_non_null(piece);
		memcpy(piece, in + at, n);
		r = http_chunked_step(&c, piece, n, &data, &dlen, err);
		if (r >= 0) {
			assert_true((size_t)r <= n);
			assert_true(dlen == 0 || (data >= piece && data + dlen <= piece + r));
			memcpy(body + blen, data ? data : "", dlen);
			blen += dlen;
			at += (size_t)r;
		}
		free(piece);
		if (r < 0) {
			body[blen] = '\0';
			return c.over_limit ? CH_OVER : CH_BAD;
		}
	}
	body[blen] = '\0';
	*used = at;
	return c.done ? CH_OK : CH_MORE;
}

static void
test_chunked(void **state)
{
	static const size_t steps[] = { 1, 2, 3, 7, 4096 };

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		const struct chunk_case *k = &chunks[i];
		size_t len = strlen(k->in);

		for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			char body[256];
			size_t used = 0;
			const char *err;
			int got = decode(k->in, len, k->max, steps[s], body, &used, &err);

			if (got != k->want || strcmp(body, k->body) != 0 ||
			    (got == CH_OK && used != (k->used ? k->used : len)) ||
			    (got == CH_BAD && strcmp(err, k->err) != 0))
				fail_msg("case %zu [%s] step %zu: got %d body [%s] used %zu "
				    "err (%s); want %d body [%s]", i, k->in, steps[s], got,
				    body, used, err ? err : "", k->want, k->body);
		}
	}
}

/*
 * Chunk-size lines, RFC 9112 7.1: chunk-size = 1*HEXDIG, then
 * chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ), then CRLF.  Each is
 * followed by "hello\r\n0\r\n\r\n".  `go` is what Go's chunked reader does
 * with the line (net/http/internal/chunked.go: readChunkLine cuts at '\n',
 * trims trailing SP/HTAB/CR/LF, drops everything from the first ';'
 * (removeChunkExtension), then parseHexUint: hex digits only, at most 16).
 */
struct line_case {
	const char	*line;
	const char	*err;		/* NULL: accepted */
	const char	*go;
};

static const struct line_case lines[] = {
	{ "5", NULL, "5" },
	{ "0005", NULL, "5" },
	{ "5;a", NULL, "5" },
	{ "5;a=b;c", NULL, "5" },
	{ "5 ;a", NULL, "refused: parseHexUint sees \"5 \" (invalid byte)" },
	{ "5\t; a = b", NULL, "refused: invalid byte (the BWS before ';')" },
	{ "5;a=\"q \\\" ; x\"", NULL, "5" },
	{ "5;a=\"\xe9\"", NULL, "5" },
	{ "000000000000005", NULL, "5" },
	{ "39 6", "malformed chunk size line (expected ';' or CRLF)",
	    "refused: invalid byte in chunk length" },
	{ "5 ", "malformed chunk size line (expected ';' or CRLF)",
	    "5 (trailing whitespace trimmed)" },
	{ "5\t", "malformed chunk size line (expected ';' or CRLF)", "5 (trimmed)" },
	{ " 5", "chunk size is not hex digits", "refused: invalid byte" },
	{ "+5", "chunk size is not hex digits", "refused: invalid byte" },
	{ "-5", "chunk size is not hex digits", "refused: invalid byte" },
	{ "0x5", "malformed chunk size line (expected ';' or CRLF)",
	    "refused: invalid byte ('x')" },
	{ "", "chunk size is not hex digits",
	    "0: an empty line is the last chunk (no empty check in parseHexUint)" },
	{ ";a", "chunk size is not hex digits", "0: the last chunk" },
	{ "00000000000000005", "chunk size over 16 hex digits",
	    "refused: http chunk length too large (i == 16)" },
	{ "5;", "malformed chunk extension", "5" },
	{ "5;=b", "malformed chunk extension", "5" },
	{ "5;a=", "malformed chunk extension", "5" },
	{ "5;a =", "malformed chunk extension", "5" },
	{ "5;a b", "malformed chunk extension", "5" },
	{ "5;a=b c", "malformed chunk size line (expected ';' or CRLF)", "5" },
	{ "5;a=\"b", "malformed chunk extension", "5 (unterminated quote ignored)" },
	{ "5;a=\"b\"c", "malformed chunk size line (expected ';' or CRLF)", "5" },
	{ "5;a=b\x01", "malformed chunk extension", "5" },
	{ "5;a=\"\x7f\"", "malformed chunk extension", "5" },
	{ "5;a\r", "chunk size line not ended by CRLF", "5 (CR trimmed)" },
	{ "5\r\r", "chunk size line not ended by CRLF", "5 (CRs trimmed)" },
};

/* "\n" ends the line alone: a bare LF, which Go takes as the end of the line. */
static void
test_chunk_lines(void **state)
{
	static const char *const bare[] = { "5\n", "5;a\n", "5;a=\"b\"\n" };

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		const struct line_case *k = &lines[i];
		char in[256], body[256];
		size_t used;
		const char *err;
		int got;

		snprintf(in, sizeof(in), "%s\r\nhello\r\n0\r\n\r\n", k->line);
		for (size_t step = 1; step <= 8; step += 7) {
			got = decode(in, strlen(in), 100, step, body, &used, &err);
			if (k->err == NULL && (got != CH_OK || strcmp(body, "hello") != 0))
				fail_msg("line [%s] (Go: %s) step %zu: got %d (%s), want hello",
				    k->line, k->go, step, got, err ? err : "");
			if (k->err != NULL && (got != CH_BAD || strcmp(err, k->err) != 0))
				fail_msg("line [%s] (Go: %s) step %zu: got %d (%s), want [%s]",
				    k->line, k->go, step, got, err ? err : "", k->err);
		}
	}
	for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++) {
		char in[64], body[64];
		size_t used;
		const char *err;

		snprintf(in, sizeof(in), "%shello\r\n0\r\n\r\n", bare[i]);
		assert_int_equal(decode(in, strlen(in), 100, 1, body, &used, &err), CH_BAD);
		assert_string_equal(err, "chunk size line not ended by CRLF");
	}
}

/* Extensions are bounded: 4 KiB of them in one line with its CR, then refused. */
static void
test_chunk_ext_limit(void **state)
{
	char in[8192], body[64];
	size_t used, n;
	const char *err;

	n = (size_t)snprintf(in, sizeof(in), "5;a=");
	memset(in + n, 'b', 4096 - 4);
	n += 4096 - 4;
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\nhello\r\n0\r\n\r\n");
	assert_int_equal(decode(in, n, 100, 4096, body, &used, &err), CH_OK);
	n = (size_t)snprintf(in, sizeof(in), "5;a=");
	memset(in + n, 'b', 4096 - 3);
	n += 4096 - 3;
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\nhello\r\n0\r\n\r\n");
	assert_int_equal(decode(in, n, 100, 4096, body, &used, &err), CH_BAD);
	assert_string_equal(err, "chunk extensions over 4 KiB");
}

/* A step that ends inside data consumes exactly the data it reports. */
static void
test_chunked_pieces(void **state)
{
	struct http_chunked c;
	const char *in = "4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n", *data, *err;
	size_t dlen;
	ssize_t n;

	http_chunked_init(&c, 100);
	n = http_chunked_step(&c, in, strlen(in), &data, &dlen, &err);
	assert_int_equal(n, 7);
	assert_int_equal(dlen, 4);
	assert_memory_equal(data, "abcd", 4);
	n = http_chunked_step(&c, in + 7, strlen(in) - 7, &data, &dlen, &err);
	assert_int_equal(n, 7);
	assert_memory_equal(data, "ef", 2);
	n = http_chunked_step(&c, in + 14, strlen(in) - 14, &data, &dlen, &err);
	assert_int_equal(n, 7);
	assert_int_equal(dlen, 0);
	assert_true(c.done);
	assert_int_equal(c.total, 6);
	assert_int_equal(http_chunked_step(&c, "x", 1, &data, &dlen, &err), 0);
}

/* ---- body growth ------------------------------------------------------- */

/* Growing one byte at a time to 1 MiB + 3: doubling, capped, copies O(n). */
static void
test_body_cap(void **state)
{
	size_t cap = 0, copies = 0, grows = 0, max = (1u << 20) + 3;

	for (size_t need = 1; need <= max; need++) {
		size_t next;

		if (need <= cap)
			continue;
		next = http_body_cap(cap, need, max);
		assert_true(next >= need && next <= max);
		copies += need - 1;	/* realloc moves what the buffer holds */
		grows++;
		cap = next;
	}
	assert_int_equal(cap, max);
	assert_true(copies < 2 * max);
	assert_int_equal(grows, 6);		/* 64 KiB, 128 KiB ... 1 MiB, then max */
	assert_int_equal(http_body_cap(0, 1, 16u << 20), 65536);
	assert_int_equal(http_body_cap(0, 1, 41694), 41694);	/* a batch: one allocation */
	assert_int_equal(http_body_cap(0, 10, 5), 65536);	/* max < need: not a cap */
	assert_int_equal(http_body_cap(4096, 5000, 4500), 8192);
	assert_int_equal(http_body_cap(4096, 4200, 4300), 4300);
}

/* ---- connection glue: a real loop on a loopback listener ----------------- */

struct glue {
	struct event_base	*base;
	struct http_server	*hs;
	size_t			 conns;
	struct http_limits	 lim;
	uint64_t		 body_limit;
	size_t			 refuse_over;	/* more() refuses a total above it; 0 never */
	size_t			 totals[8];	/* the first more() calls */
	size_t			 ntotals;	/* every call */
	size_t			 last;		/* the latest total */
	int			 shrank;	/* a total was not above the one before */
	struct http_request	*req;		/* being read */
	int			 bodies, fails, status;
	char			 reason[200];
	size_t			 body_len;
	int			 port;
};

static void
g_limits(void *arg, struct http_limits *out)
{
	*out = ((struct glue *)arg)->lim;
}

static void
g_head(struct http_request *req, void *arg)
{
	struct glue *g = arg;

	g->req = req;
	http_request_set_body_limit(req, g->body_limit);
}

static int
g_more(struct http_request *req, size_t total, void *arg)
{
	struct glue *g = arg;

	if (g->ntotals < 8)
		g->totals[g->ntotals] = total;
	g->shrank |= g->ntotals++ > 0 && total <= g->last;
	g->last = total;
	if (g->refuse_over != 0 && total > g->refuse_over) {
		g->req = NULL;
		http_reply(req, 503, "Service Unavailable", NULL, 0, "share\n", 6);
		return -1;
	}
	return 0;
}

static void
g_body(struct http_request *req, void *arg)
{
	struct glue *g = arg;

	http_request_body(req, &g->body_len);
	g->bodies++;
	g->req = NULL;
	http_reply(req, 204, "No Content", NULL, 0, NULL, 0);
}

static void
g_fail(struct http_request *req, int status, const char *reason, void *arg)
{
	struct glue *g = arg;

	g->fails++;
	g->status = status;
	snprintf(g->reason, sizeof(g->reason), "%s", reason);
	g->req = NULL;
	http_reply(req, status, "Failed", NULL, 0, NULL, 0);
}

static void
glue_start(struct glue *g)
{
	static const struct http_hooks hooks = {
		.limits = g_limits, .head = g_head, .more = g_more, .body = g_body,
		.fail = g_fail,
	};
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	struct evconnlistener *lev;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_non_null(g->base = event_base_new());
	lev = evconnlistener_new_bind(g->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(lev);
	assert_int_equal(getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&sin,
	    &slen), 0);
	g->port = ntohs(sin.sin_port);
	assert_non_null(g->hs = http_server_new(g->base, lev, &hooks, g, &g->conns));
}

static void
glue_stop(struct glue *g)
{
	http_server_free(g->hs);
	event_base_free(g->base);
}

static int
glue_connect(const struct glue *g)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g->port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void
send_all(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until *flag reaches want or ms pass; the flag's value. */
static int
run_until(struct glue *g, const int *flag, int want, uint64_t ms)
{
	uint64_t end = mono_ms() + ms;

	while (*flag < want && mono_ms() < end) {
		event_base_loop(g->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return *flag;
}

/* Until more() has seen `total` (or 2 s pass). */
static void
run_until_total(struct glue *g, size_t total)
{
	uint64_t end = mono_ms() + 2000;

	while (g->last < total && mono_ms() < end) {
		event_base_loop(g->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static const struct http_limits glue_limits = {
	.max_connections = 16, .header_timeout_ms = 5000, .body_timeout_ms = 5000,
	.idle_timeout_ms = 5000,
};

#define BIG_HEAD "POST / HTTP/1.1\r\nContent-Length: 16777216\r\n\r\n"

/*
 * A head declaring 16 MiB and one byte: more() is asked for 1 byte, not 16
 * MiB; then for each piece as it arrives, up to the whole body.
 */
static void
test_length_body_grows(void **state)
{
	struct glue g = { .lim = glue_limits, .body_limit = 16u << 20 };
	static char piece[256 * 1024];
	size_t sent = 1;
	int fd;

	glue_start(&g);
	fd = glue_connect(&g);
	send_all(fd, BIG_HEAD "x", strlen(BIG_HEAD) + 1);
	run_until_total(&g, 1);
	assert_int_equal(g.ntotals, 1);
	assert_int_equal(g.totals[0], 1);
	memset(piece, 'y', sizeof(piece));
	while (sent < (16u << 20)) {
		size_t n = (16u << 20) - sent < sizeof(piece) ? (16u << 20) - sent : sizeof(piece);

		send_all(fd, piece, n);
		sent += n;
		run_until_total(&g, sent);
	}
	assert_int_equal(run_until(&g, &g.bodies, 1, 2000), 1);
	assert_int_equal(g.body_len, 16u << 20);
	assert_int_equal(g.last, 16u << 20);
	assert_false(g.shrank);
	close(fd);
	glue_stop(&g);
}

/* more() refusing a Content-Length body answers the client; nothing else runs. */
static void
test_length_body_refused(void **state)
{
	struct glue g = { .lim = glue_limits, .body_limit = 1000, .refuse_over = 10 };
	const char *head = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789";
	char answer[128] = "";
	int fd;

	glue_start(&g);
	fd = glue_connect(&g);
	send_all(fd, head, strlen(head));
	run_until_total(&g, 10);
	send_all(fd, "abc", 3);
	run_until_total(&g, 13);
	assert_int_equal(g.ntotals, 2);
	assert_int_equal(g.totals[1], 13);
	for (int i = 0; i < 100 && strchr(answer, '\n') == NULL; i++) {
		event_base_loop(g.base, EVLOOP_NONBLOCK);
		(void)recv(fd, answer, sizeof(answer) - 1, MSG_DONTWAIT);
		usleep(1000);
	}
	assert_memory_equal(answer, "HTTP/1.1 503 ", 13);
	assert_int_equal(g.bodies + g.fails, 0);
	close(fd);
	glue_stop(&g);
}

/* A body under min_body_rate is 408 after the grace, long before body_timeout. */
static void
test_min_body_rate(void **state)
{
	struct glue g = { .lim = glue_limits, .body_limit = 16u << 20 };
	uint64_t t0, ms;
	int fd;

	g.lim.min_body_rate = 1000;
	g.lim.body_rate_grace_ms = 200;
	glue_start(&g);
	fd = glue_connect(&g);
	t0 = mono_ms();
	send_all(fd, BIG_HEAD "x", strlen(BIG_HEAD) + 1);
	assert_int_equal(run_until(&g, &g.fails, 1, 3000), 1);
	ms = mono_ms() - t0;
	assert_int_equal(g.status, 408);
	assert_memory_equal(g.reason, "request body slower than min_body_rate (1000 bytes/s): 1 bytes",
	    strlen("request body slower than min_body_rate (1000 bytes/s): 1 bytes"));
	assert_true(ms >= 200 && ms < 1500);
	close(fd);

	/* A body at the rate passes: 300 bytes buy 300 ms past the grace. */
	fd = glue_connect(&g);
	send_all(fd, "POST / HTTP/1.1\r\nContent-Length: 600\r\n\r\n", 40);
	for (int i = 0; i < 6; i++) {
		static const char hundred[100];

		send_all(fd, hundred, sizeof(hundred));
		run_until_total(&g, (size_t)(i + 1) * 100);
		usleep(50 * 1000);
	}
	assert_int_equal(run_until(&g, &g.bodies, 1, 2000), 1);
	assert_int_equal(g.fails, 1);
	close(fd);
	glue_stop(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_valid),
		cmocka_unit_test(test_head_values),
		cmocka_unit_test(test_head_partial),
		cmocka_unit_test(test_head_malformed),
		cmocka_unit_test(test_head_limits),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_chunked_pieces),
		cmocka_unit_test(test_chunk_lines),
		cmocka_unit_test(test_chunk_ext_limit),
		cmocka_unit_test(test_body_cap),
		cmocka_unit_test(test_length_body_grows),
		cmocka_unit_test(test_length_body_refused),
		cmocka_unit_test(test_min_body_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
