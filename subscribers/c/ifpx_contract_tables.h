/* Generated from the wire contract (ifpx.schemas) by `python -m ifpx.schemas.cgen`:
 * do not edit. tests/test_cgen.py fails when this file and the schemas differ. */

#ifndef IFPX_CONTRACT_TABLES_H
#define IFPX_CONTRACT_TABLES_H

#include "ifpx_contract.h"

/* Per enum ifpx_kind, in its order: the wire's name, the topic it is published
 * on, and whether it is port-scoped (port_id, proxy, ifindex). */
#define IFPX_KIND_NAMES \
    "mac_change", "mtu_change", "link_change", "addr_add", "addr_del", \
    "addr6_add", "addr6_del", "route_add", "route_del", "route6_add", \
    "route6_del", "neigh_add", "neigh_del", "neigh6_add", "neigh6_del", \
    "cfg_done", "port_bound", "port_unbound", "proxy_gone", "proxy_renamed", \
    "proxy_back", "resync_begin", "resync_end", "heartbeat", "rule_add", \
    "rule_del", "rule6_add", "rule6_del", "nhgroup_set", "nhgroup_del", \
    "groute_add", "groute_del", "groute6_add", "groute6_del"
#define IFPX_KIND_TOPICS \
    "link", "link", "link", "addr", "addr", "addr", "addr", "route", \
    "route", "route", "route", "neigh", "neigh", "neigh", "neigh", "sync", \
    "port", "port", "port", "port", "port", "sync", "sync", "hb", \
    "rule", "rule", "rule", "rule", "fib", "fib", "fib", "fib", \
    "fib", "fib"
#define IFPX_KIND_PORT_SCOPED \
    1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, \
    1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

/* Bit i of a topic mask is topic i. */
#define IFPX_TOPIC_NAMES "link", "addr", "route", "neigh", "port", "sync", "hb", "rule", "fib"

#define IFPX_ROUTE_TYPE_NAMES "unicast", "blackhole", "unreachable", "prohibit", "throw"
#define IFPX_RULE_ACTION_NAMES "lookup", "goto", "nop", "blackhole", "unreachable", "prohibit"

#endif
