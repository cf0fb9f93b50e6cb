/*
 * policy: identity -> site, signal permission.  See policy.h.
 *
 * A linear scan without allocation: sites files hold tens of identities, and
 * a verified token is cached by access.c, so this runs once per request on a
 * short list.  The loader guarantees each identity names one site.
 */
#include "policy.h"

#include <string.h>
#include <strings.h>

static int
listed(const struct strlist *l, const char *s, int (*cmp)(const char *,
    const char *))
{
	for (size_t i = 0; i < l->n; i++)
		if (cmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

const struct site *
policy_site_for(const struct config *cfg, const char *common_name,
    const char *email)
{
	size_t	i;

	if (cfg == NULL)
		return NULL;
	if (common_name != NULL && *common_name != '\0')
		for (i = 0; i < cfg->nsites; i++)
			if (listed(&cfg->sites[i].tokens, common_name, strcmp))
				return &cfg->sites[i];
	/* Email addresses are case-insensitive in practice; IdPs vary. */
	if (email != NULL && *email != '\0')
		for (i = 0; i < cfg->nsites; i++)
			if (listed(&cfg->sites[i].emails, email, strcasecmp))
				return &cfg->sites[i];
	return NULL;
}

int
policy_allows(const struct site *site, enum signal signal)
{
	if (site == NULL || (unsigned)signal >= SIGNAL_COUNT)
		return 0;
	return (site->signals & (1u << signal)) != 0;
}
