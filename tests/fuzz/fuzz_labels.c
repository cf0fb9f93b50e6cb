/*
 * The Loki labels-string parser.  Property: what parses, formatted back
 * (empty values kept), parses to exactly the same pairs.
 */
#include <string.h>

#include "fuzz_common.h"
#include "labels.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct labels_set	 a, b;
	struct pb_buf		 text;
	const char		*errstr;
	size_t			 i;

	labels_set_init(&a);
	labels_set_init(&b);
	pb_buf_init(&text, 0);
	if (labels_parse(data, size, &a, &errstr) == 0) {
		labels_format(&text, &a, 0, SIZE_MAX);
		FUZZ_REQUIRE(!pb_buf_failed(&text));
		FUZZ_REQUIRE(labels_parse(text.data, text.len, &b, &errstr) == 0);
		FUZZ_REQUIRE(a.n == b.n);
		for (i = 0; i < a.n; i++) {
			FUZZ_REQUIRE(a.v[i].nlen == b.v[i].nlen &&
			    memcmp(a.v[i].name, b.v[i].name, a.v[i].nlen) == 0);
			FUZZ_REQUIRE(a.v[i].vlen == b.v[i].vlen &&
			    memcmp(a.v[i].value, b.v[i].value, a.v[i].vlen) == 0);
		}
		labels_sort_unique(&a);
	}
	pb_buf_free(&text);
	labels_set_free(&a);
	labels_set_free(&b);
	return 0;
}
