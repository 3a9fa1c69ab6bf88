/* One lcore's forwarding tables, kept by ifpx events: an rte_lpm and an rte_lpm6 for
 * the main routing table, the route alternatives behind each prefix (the kernel may hold
 * several metrics and uses the lowest one with a live next hop, or a drop route; that
 * one is installed if it drops or reaches a DPDK port), the next-hop groups the routes
 * forward by (ifpx's group form) and a neighbour table. Every lcore owns its own copy:
 * no locks on the fast path. */
#ifndef DPDK_WORKER_FWD_H
#define DPDK_WORKER_FWD_H

#include <stdint.h>
#include <stdio.h>

#include "ifpx.h"

struct rte_hash;
struct rte_lpm;
struct rte_lpm6;
struct rte_mbuf;

#define FWD_MAX_ECMP 8
#define FWD_MAIN_TABLE 254

struct fwd_hop {
    uint16_t port;
    int has_gw;
    int gw_family;
    uint8_t gw[16];
};

/* Live next hops: how many the kernel uses (through any interface), and those that go
 * through DPDK ports (none: not forwardable here). */
struct fwd_hops {
    uint8_t n_live;
    uint8_t n_hops;
    struct fwd_hop hop[FWD_MAX_ECMP];
};

/* A next-hop group (the group form): every route through it shares this entry, so a hop
 * that dies rewrites it alone, whatever the number of routes (nothing in the LPM). */
struct fwd_group {
    uint32_t id;
    struct fwd_hops hops;
};

struct fwd_alt {
    uint32_t metric;
    uint8_t type;          /* enum ifpx_route_type: anything but unicast drops */
    uint32_t group;        /* non-zero: its next hops are that group's, not `own` */
    struct fwd_hops own;
};

struct fwd_prefix_key {
    uint8_t family, plen;
    uint16_t zero;
    uint8_t dst[16];
};

struct fwd_prefix {
    struct fwd_prefix_key key;
    uint8_t n_alts;
    struct fwd_alt *alts;
    int installed;         /* index into alts of the alternative in the LPM, or -1 */
};

struct fwd_neigh_key {
    uint16_t port;
    uint8_t family, zero;
    uint8_t ip[16];
};

struct fwd_neigh {
    struct fwd_neigh_key key;
    int has_mac;
    uint8_t mac[6];
    char state[33];
};

struct fwd_stats {
    uint64_t route_events, routes_other_table, routes_refused, neigh_refused, lpm_hits,
        lpm_misses, lpm_drops, packets;
};

struct fwd_tables {
    struct rte_lpm *lpm;
    struct rte_lpm6 *lpm6;
    struct rte_hash *prefixes, *neighs, *groups; /* key -> position in the arrays below */
    struct fwd_prefix **prefix;
    struct fwd_neigh **neigh;
    struct fwd_group **group;
    uint32_t max_routes, max_neighs, max_groups;
    int32_t default4, default6;           /* LPM depth starts at 1: /0 lives here */
    struct fwd_stats stats;
};

int fwd_init(struct fwd_tables *t, unsigned lcore, uint32_t max_routes, uint32_t max_neighs,
             int socket);
void fwd_free(struct fwd_tables *t);
/* route(6)_add / route(6)_del, and groute(6)_add / groute(6)_del of the group form */
void fwd_route(struct fwd_tables *t, const struct ifpx_event *ev);
/* nhgroup_set / nhgroup_del */
void fwd_group(struct fwd_tables *t, const struct ifpx_event *ev);
/* neigh(6)_add / neigh(6)_del */
void fwd_neigh(struct fwd_tables *t, const struct ifpx_event *ev);
/* The port's neighbours are gone (unbound, proxy gone, bound anew). */
void fwd_forget_port(struct fwd_tables *t, uint16_t port);
/* The datapath: count a packet's route lookup (IPv4 and IPv6; others are not routed). */
void fwd_classify(struct fwd_tables *t, const struct rte_mbuf *m);
/* Whether the main table alone decides where traffic goes: every policy rule in `rep` is
 * one of the kernel's defaults (lookup local, main or default, selecting nothing). Else
 * the traffic other rules select is not this LPM's to forward. */
int fwd_main_table_decides(const struct ifpx_replica *rep);
/* {"routes": [...], "neighs": [...], "stats": {...}}, each route checked in the LPM itself. */
void fwd_report(const struct fwd_tables *t, FILE *f);

#endif
