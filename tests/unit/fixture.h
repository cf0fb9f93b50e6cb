/*
 * fixture.h: reads a test fixture whole (tests run from the repository root,
 * fixtures live in ../shared/testdata).  Include after <cmocka.h>.
 */
#ifndef KAKIKOMI_TEST_FIXTURE_H
#define KAKIKOMI_TEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

/* The file's bytes plus a NUL (malloc'd); fails the test when unreadable.
 * len may be NULL. */
static inline char *
fixture_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n = 0;

	if (f == NULL)
		fail_msg("cannot open %s (tests run from the repository root)", path);
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n)
		fail_msg("cannot read %s", path);
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

#endif
