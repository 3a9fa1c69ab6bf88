/* Internal to libifpx, not installed: the msgpack readers the decoders share
 * (ifpx_msgpack.c, ifpx_wire.c, ifpx_snapshot.c). Every function returns IFPX_OK or a
 * negative enum ifpx_status. */
#ifndef IFPX_MP_H
#define IFPX_MP_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "ifpx_wire.h"

/* 1 if `key` is the string `name`. */
int ifpx_mp_key_is(const msgpack_object *key, const char *name);
/* The value of `name` in the map `map`, or NULL. */
const msgpack_object *ifpx_mp_field(const msgpack_object *map, const char *name);
/* An unsigned integer field at most `max` (`dflt` when absent and not `required`). */
int ifpx_mp_uint(const msgpack_object *map, const char *name, uint64_t max, uint64_t *out,
                 int required, uint64_t dflt);
int ifpx_mp_bool(const msgpack_object *map, const char *name, int *out, int dflt);
/* A string into a NUL-terminated buffer of `size` bytes. */
int ifpx_mp_str(const msgpack_object *o, char *buf, size_t size);
int ifpx_mp_ip(const msgpack_object *o, int *family, uint8_t out[16]);
int ifpx_mp_mac(const msgpack_object *o, int *has, uint8_t mac[6]);
int ifpx_mp_nexthops(const msgpack_object *o, struct ifpx_event *ev);
/* A route's "type" (NULL: unicast) and "prefsrc" (NULL or nil: none) into ev. */
int ifpx_mp_route_forwarding(const msgpack_object *type, const msgpack_object *prefsrc,
                             struct ifpx_event *ev);
/* A rule's fields (all but kind, family) into r, zeroed first. */
int ifpx_mp_rule(const msgpack_object *m, int family, struct ifpx_rule *r);
int ifpx_mp_topic_seqs(const msgpack_object *o, uint8_t *n, struct ifpx_topic_seq *out);
/* Checks (ifpx_msgpack_check) and unpacks `buf` as exactly one map of at most `limit`
 * bytes, and allocates the event buffer *ev (freed by the caller in every case). */
int ifpx_mp_begin(const char *buf, size_t len, size_t limit, msgpack_unpacked *up,
                  struct ifpx_event **ev);
/* Checks and unpacks a control reply (at most 1 GiB) as exactly one map. */
int ifpx_mp_unpack(const char *buf, size_t len, msgpack_unpacked *up);

/* ifpx_decode_wait_applied, and the names in the result's "workers" into names (the
 * first cap of them; out->n_workers says how many there are). */
int ifpx_mp_wait_applied(const char *buf, size_t len, struct ifpx_wait_result *out,
                         char (*names)[65], unsigned cap);

#endif
