/* Generated from the wire contract (ifpx.schemas) by `python -m ifpx.schemas.cgen`:
 * do not edit. tests/test_cgen.py fails when this file and the schemas differ. */

#ifndef IFPX_CONTRACT_H
#define IFPX_CONTRACT_H

#define IFPX_PROTOCOL_VERSION 1
#define IFPX_PROTOCOL_MINOR 5
#define IFPX_MAX_NEXTHOPS 256
#define IFPX_NAME_LEN 16   /* a name and its NUL (IFNAMSIZ) */
#define IFPX_MAX_BATCH 4096   /* events in one message */
#define IFPX_MAX_MESSAGE_BYTES 16777216u
#define IFPX_N_TOPICS 9

/* Every event kind, numbered in the order it entered the protocol (append only:
 * the numbers are part of the ABI). */
enum ifpx_kind {
    IFPX_MAC_CHANGE, IFPX_MTU_CHANGE, IFPX_LINK_CHANGE, IFPX_ADDR_ADD,
    IFPX_ADDR_DEL, IFPX_ADDR6_ADD, IFPX_ADDR6_DEL, IFPX_ROUTE_ADD,
    IFPX_ROUTE_DEL, IFPX_ROUTE6_ADD, IFPX_ROUTE6_DEL, IFPX_NEIGH_ADD,
    IFPX_NEIGH_DEL, IFPX_NEIGH6_ADD, IFPX_NEIGH6_DEL, IFPX_CFG_DONE,
    IFPX_PORT_BOUND, IFPX_PORT_UNBOUND, IFPX_PROXY_GONE, IFPX_PROXY_RENAMED,
    IFPX_PROXY_BACK, IFPX_RESYNC_BEGIN, IFPX_RESYNC_END, IFPX_HEARTBEAT,
    /* protocol minor 1 */
    IFPX_RULE_ADD, IFPX_RULE_DEL, IFPX_RULE6_ADD, IFPX_RULE6_DEL,
    /* protocol minor 3 */
    IFPX_NHGROUP_SET, IFPX_NHGROUP_DEL, IFPX_GROUTE_ADD, IFPX_GROUTE_DEL,
    IFPX_GROUTE6_ADD, IFPX_GROUTE6_DEL,
    IFPX_KIND_COUNT
};

/* How a route forwards: only unicast routes have next hops. BLACKHOLE drops
 * silently, UNREACHABLE and PROHIBIT drop with an ICMP error, THROW ends the
 * lookup in this table. */
enum ifpx_route_type {
    IFPX_RT_UNICAST, IFPX_RT_BLACKHOLE, IFPX_RT_UNREACHABLE, IFPX_RT_PROHIBIT, IFPX_RT_THROW
};

/* What a matching policy rule does (the wire's "action"). */
enum ifpx_rule_action {
    IFPX_RULE_LOOKUP, IFPX_RULE_GOTO, IFPX_RULE_NOP, IFPX_RULE_BLACKHOLE,
    IFPX_RULE_UNREACHABLE, IFPX_RULE_PROHIBIT
};

#endif
