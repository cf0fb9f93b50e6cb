/*
 * healthcheck: `kakikomi --healthcheck URL` for container HEALTHCHECKs
 * (the runtime image has no curl).  GETs an http:// URL with a 5 s deadline.
 */
#ifndef KAKIKOMI_HEALTHCHECK_H
#define KAKIKOMI_HEALTHCHECK_H

/* 0 when the URL answered 2xx, else 1 (a reason is printed on stderr). */
int	healthcheck_run(const char *url);

#endif
