/* acked: per-body memory of the upstreams that stored it.  See acked.h. */
#include "acked.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#define ACKED_SLOTS	16384	/* ~0.7 MiB */
#define ACKED_LOCKS	64

struct slot {
	uint8_t		digest[ACKED_DIGEST_LEN];
	uint64_t	mask;
};

static struct slot slots[ACKED_SLOTS];
static pthread_mutex_t locks[ACKED_LOCKS] = {
	[0 ... ACKED_LOCKS - 1] = PTHREAD_MUTEX_INITIALIZER
};

void
acked_digest(const char *site, int signal, const uint8_t *body, size_t len,
    uint8_t digest[ACKED_DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig = (unsigned char)signal;

	/* Without a context, an all-zero digest only shares one slot. */
	memset(digest, 0, ACKED_DIGEST_LEN);
	if (ctx == NULL)
		return;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, site, strlen(site) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, &sig, 1) != 1 ||
	    EVP_DigestUpdate(ctx, body, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, digest, NULL) != 1)
		memset(digest, 0, ACKED_DIGEST_LEN);
	EVP_MD_CTX_free(ctx);
}

static size_t
slot_index(const uint8_t digest[ACKED_DIGEST_LEN])
{
	uint32_t v;

	memcpy(&v, digest, sizeof(v));
	return v % ACKED_SLOTS;
}

uint64_t
acked_get(const uint8_t digest[ACKED_DIGEST_LEN])
{
	size_t i = slot_index(digest);
	pthread_mutex_t *lock = &locks[i % ACKED_LOCKS];
	uint64_t mask = 0;

	pthread_mutex_lock(lock);
	if (memcmp(slots[i].digest, digest, ACKED_DIGEST_LEN) == 0)
		mask = slots[i].mask;
	pthread_mutex_unlock(lock);
	return mask;
}

void
acked_put(const uint8_t digest[ACKED_DIGEST_LEN], uint64_t mask)
{
	size_t i = slot_index(digest);
	pthread_mutex_t *lock = &locks[i % ACKED_LOCKS];

	pthread_mutex_lock(lock);
	if (mask != 0) {
		memcpy(slots[i].digest, digest, ACKED_DIGEST_LEN);
		slots[i].mask = mask;
	} else if (memcmp(slots[i].digest, digest, ACKED_DIGEST_LEN) == 0) {
		memset(&slots[i], 0, sizeof(slots[i]));
	}
	pthread_mutex_unlock(lock);
}
