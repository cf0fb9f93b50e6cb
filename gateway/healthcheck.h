/*
 * healthcheck: `kakikomi --healthcheck URL` for container HEALTHCHECKs
 * (the runtime image has no curl).  GETs an http:// URL with a 5 s deadline
 * for the whole exchange.
 */
#ifndef KAKIKOMI_HEALTHCHECK_H
#define KAKIKOMI_HEALTHCHECK_H

/*
 * 0 when the URL answered 2xx, else 1 with one line on stderr (what
 * `docker inspect` shows): "cannot connect to HOST:PORT: <strerror>",
 * "URL: no answer within 5 s", "URL answered NNN", ...
 */
int	healthcheck_run(const char *url);

#endif
