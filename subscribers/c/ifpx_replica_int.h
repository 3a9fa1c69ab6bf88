/* Internal to libifpx, not installed: the replica's lookups that its JSON writer
 * (ifpx_replica_json.c) and difference walker (ifpx_diff.c) share. */
#ifndef IFPX_REPLICA_INT_H
#define IFPX_REPLICA_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ifpx_replica.h"

/* The entry whose first t->klen bytes equal key, or NULL. */
void *ifpx_rep_get(const struct ifpx_htab *t, const void *key);
/* Iteration: start *cursor at 0; NULL at the end. */
const void *ifpx_rep_next(const struct ifpx_htab *t, size_t *cursor);
/* A port of the replica (bound, active or gone), or NULL. */
struct ifpx_port_state *ifpx_rep_port(const struct ifpx_replica *r, uint16_t port_id);
/* The index of address a among p's addresses, or -1. */
int ifpx_rep_addr_index(const struct ifpx_port_state *p, const struct ifpx_addr *a);
/* The index of a rule equal to `rule` among r's rules, or -1. */
ptrdiff_t ifpx_rep_rule(const struct ifpx_replica *r, const struct ifpx_rule *rule);

#endif
