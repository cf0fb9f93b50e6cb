/* ratelimit: per-site token buckets.  See ratelimit.h. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bucket {
	struct bucket	*next;
	double		 tokens;
	double		 last;
	char		 site[];
};

static struct bucket *buckets;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct bucket *
bucket_get(const char *site, double burst, double now)
{
	struct bucket *b;
	size_t len;

	for (b = buckets; b; b = b->next)
		if (strcmp(b->site, site) == 0)
			return b;
	len = strlen(site);
	if ((b = malloc(sizeof(*b) + len + 1)) == NULL)
		return NULL;
	memcpy(b->site, site, len + 1);
	b->tokens = burst;
	b->last = now;
	b->next = buckets;
	buckets = b;
	return b;
}

int
ratelimit_take(const char *site, double rate, double burst, double now,
    double *retry_after_s)
{
	struct bucket *b;
	int allowed = 1;

	if (rate <= 0)
		return 1;
	pthread_mutex_lock(&lock);
	/* Without memory for a bucket, let the request through rather than refuse. */
	if ((b = bucket_get(site, burst, now)) != NULL) {
		b->tokens += (now - b->last) * rate;
		if (b->tokens > burst)
			b->tokens = burst;
		b->last = now;
		if (b->tokens >= 1)
			b->tokens -= 1;
		else {
			allowed = 0;
			*retry_after_s = (1 - b->tokens) / rate;
		}
	}
	pthread_mutex_unlock(&lock);
	return allowed;
}

void
ratelimit_clear(void)
{
	struct bucket *b, *next;

	pthread_mutex_lock(&lock);
	for (b = buckets; b; b = next) {
		next = b->next;
		free(b);
	}
	buckets = NULL;
	pthread_mutex_unlock(&lock);
}
