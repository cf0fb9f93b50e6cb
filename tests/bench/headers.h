/*
 * headers.h: the benchmark's one HTTP header lookup, shared by the load
 * generator (responses) and the null upstream (requests).
 */
#ifndef KAKIKOMI_BENCH_HEADERS_H
#define KAKIKOMI_BENCH_HEADERS_H

#include <string.h>
#include <strings.h>

/* Value of header `name` in the header block h[0..len) (its first line is
 * the request or status line), or NULL.  Not NUL-terminated. */
static inline const char *
header_value(const char *h, size_t len, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *p = memchr(h, '\n', len), *end = h + len;

	while (p != NULL && ++p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
		    strncasecmp(p, name, nlen) == 0) {
			const char *v = p + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			if (*vlen > 0 && v[*vlen - 1] == '\r')
				(*vlen)--;
			return v;
		}
		p = eol;
	}
	return NULL;
}

#endif
