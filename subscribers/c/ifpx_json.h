/* JSON text for C-side tools and state reports, with the wire contract's field names. */
#ifndef IFPX_JSON_H
#define IFPX_JSON_H

#include <stdint.h>
#include <stdio.h>

#include "ifpx_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A JSON string (names pass through as they came, so they are escaped). */
void ifpx_json_str(FILE *f, const char *s);
/* An address as inet_ntop writes it, quoted. */
void ifpx_json_ip(FILE *f, int family, const uint8_t *raw);
/* A MAC in lower case, quoted, or null. */
void ifpx_json_mac(FILE *f, int has, const uint8_t *m);
/* A neighbour as the Python NeighState dumps it: {"port_id", "ip", "mac", "state"}. */
void ifpx_json_neigh(FILE *f, uint16_t port_id, int family, const uint8_t *ip, int has_mac,
                     const uint8_t *mac, const char *state);
/* A route's or group's "nexthops": [...] member (with its leading comma). */
void ifpx_json_hops(FILE *f, const struct ifpx_nexthop *nh, int count);
/* A route's "nexthops": [...], "type": ..., "prefsrc": ... members, as the models dump them
 * (the leading ", " included). */
void ifpx_json_route_tail(FILE *f, const struct ifpx_nexthop *nh, int count, int route_type,
                          int prefsrc_family, const uint8_t *prefsrc);
/* A rule's fields as the models dump them (src and dst included; kind and family not),
 * each member with its leading ", ". */
void ifpx_json_rule_fields(FILE *f, const struct ifpx_rule *r);
/* One event as the Python models dump it (no newline). */
void ifpx_json_event(FILE *f, const struct ifpx_event *e);

#ifdef __cplusplus
}
#endif

#endif
