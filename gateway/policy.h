/*
 * policy: who may write what.  Pure functions over a config snapshot.
 *
 * policy_site_for() maps a verified identity to the one site that lists it
 * (service tokens by common_name in `tokens`, people by `email` in `emails`).
 * Returned pointers live as long as the snapshot.
 */
#ifndef KAKIKOMI_POLICY_H
#define KAKIKOMI_POLICY_H

#include "config.h"

/* The site for this identity, or NULL.  Either argument may be NULL/empty;
 * common_name is tried first, as Access sets it only for service tokens. */
const struct site *policy_site_for(const struct config *cfg,
    const char *common_name, const char *email);

/* 1 when `site` may write `signal`, else 0. */
int	policy_allows(const struct site *site, enum signal signal);

#endif
