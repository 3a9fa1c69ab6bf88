/* A subscriber's copy of the bridge's state, kept by applying events, and the
 * difference between two copies as events (what a snapshot repair tells the
 * application). Pure code: no sockets, no clocks. The Python twin is
 * ifpx.subscribers.replica; tests/test_c_subscriber.py holds the two equal.
 */
#ifndef IFPX_REPLICA_H
#define IFPX_REPLICA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ifpx_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ifpx_addr {
    uint8_t family;      /* AF_INET or AF_INET6 */
    uint8_t prefixlen;
    uint8_t ip[16];
};

/* A binding, and while its proxy exists, that proxy's configuration. */
struct ifpx_port_state {
    uint16_t port_id;
    int gone;            /* the binding waits for its proxy: no configuration below */
    char proxy[IFPX_NAME_LEN];
    uint32_t ifindex;
    int has_mac;
    uint8_t mac[6];
    uint32_t mtu;
    int up, carrier;
    uint32_t n_addrs, cap_addrs;
    struct ifpx_addr *addrs;
};

struct ifpx_route_key {
    uint8_t family;      /* AF_INET or AF_INET6 */
    uint8_t prefixlen;
    uint16_t zero;       /* keys are compared as bytes */
    uint32_t table, metric;
    uint8_t dst[16];     /* masked to prefixlen */
};

struct ifpx_route {
    struct ifpx_route_key key;
    uint8_t proto;
    uint8_t route_type;  /* enum ifpx_route_type: only unicast routes have next hops */
    uint8_t prefsrc_family; /* 0: no preferred source */
    uint8_t prefsrc[16];
    uint8_t grouped;     /* arrived in the group form: its next hops are its group's */
    uint16_t nh_count;   /* next hops of its own (none when grouped) */
    uint32_t group;      /* grouped: the next-hop group (0: a drop route's, none) */
    struct ifpx_nexthop nh[];
};

/* A next-hop group (the group form, topic "fib"): what every route naming it forwards by. */
struct ifpx_group {
    uint32_t id;
    uint16_t nh_count;
    struct ifpx_nexthop nh[];
};

struct ifpx_neigh_key {
    uint16_t port_id;
    uint8_t family, zero;
    uint8_t ip[16];
};

struct ifpx_neigh {
    struct ifpx_neigh_key key;
    int has_mac;
    uint8_t mac[6];
    char state[33];
};

/* Open addressing over entries whose first klen bytes are their key. */
struct ifpx_htab {
    void **slot;
    size_t cap, n, klen;
};

struct ifpx_replica {
    struct ifpx_port_state *ports;
    size_t n_ports, cap_ports;
    struct ifpx_htab routes;   /* of struct ifpx_route */
    struct ifpx_htab groups;   /* of struct ifpx_group (the group form) */
    struct ifpx_htab neighs;   /* of struct ifpx_neigh */
    struct ifpx_rule *rules;   /* policy rules, in arrival order (a handful) */
    size_t n_rules, cap_rules;
    int cfg_done;
};

void ifpx_replica_init(struct ifpx_replica *r);
/* Frees everything; the replica is empty (and usable) afterwards. */
void ifpx_replica_clear(struct ifpx_replica *r);
/* Applies one event (idempotent, like the Python Replica). 0; -ENOMEM; or -EPROTO, and
 * nothing changed, for an event that does not add up with the replica (a route naming a
 * group never announced, nhgroup_del of a group routes name): take a snapshot. */
int ifpx_replica_apply(struct ifpx_replica *r, const struct ifpx_event *ev);

const struct ifpx_port_state *ifpx_replica_port(const struct ifpx_replica *r, uint16_t port_id);
/* Iteration: start *cursor at 0; NULL at the end. The table must not change meanwhile. */
const struct ifpx_route *ifpx_replica_next_route(const struct ifpx_replica *r, size_t *cursor);
const struct ifpx_neigh *ifpx_replica_next_neigh(const struct ifpx_replica *r, size_t *cursor);
/* Fills a route event (route(6)_add, or _del when deleted; groute(6)_* for a route of the
 * group form) from a stored route. */
void ifpx_route_event(const struct ifpx_route *rt, int deleted, struct ifpx_event *ev);
/* The next hops a route forwards by (its group's in the group form; none while the group
 * is unknown) and their number in *count. */
const struct ifpx_nexthop *ifpx_replica_hops(const struct ifpx_replica *r,
                                             const struct ifpx_route *rt, uint16_t *count);
/* The route to dst/prefixlen (dst in network order, AF_INET or AF_INET6) in `table` with
 * `metric`, or NULL. */
const struct ifpx_route *ifpx_replica_route(const struct ifpx_replica *r, int family,
                                            const uint8_t *dst, uint8_t prefixlen,
                                            uint32_t table, uint32_t metric);
/* A next-hop group by id (NULL: unknown); iteration as for routes. */
const struct ifpx_group *ifpx_replica_group(const struct ifpx_replica *r, uint32_t id);
const struct ifpx_group *ifpx_replica_next_group(const struct ifpx_replica *r, size_t *cursor);
/* Fills an nhgroup_set event from a stored group. */
void ifpx_group_event(const struct ifpx_group *g, struct ifpx_event *ev);

/* The state as JSON, in the shape of the Python State model (State.model_validate reads
 * it); whether the initial state is complete is the replica's cfg_done, not part of it. */
void ifpx_replica_json(const struct ifpx_replica *r, FILE *f);

/* The events that take `old` to `target`, produced one at a time so that a
 * million-route difference costs no memory. Neither replica may change until the
 * walk ends. With an empty `old` these are the events that build `target`. */
struct ifpx_diff {
    const struct ifpx_replica *old, *target;
    int phase, fresh;
    size_t i, j, k;
    uint64_t count;      /* events produced so far */
};

void ifpx_diff_init(struct ifpx_diff *d, const struct ifpx_replica *old,
                    const struct ifpx_replica *target);
/* 1 and the next event in *ev, or 0 when the difference is exhausted. */
int ifpx_diff_next(struct ifpx_diff *d, struct ifpx_event *ev);

#ifdef __cplusplus
}
#endif

#endif
