/* ifpx wire decoding for C consumers: published messages -> typed events.
 *
 * The layout is documented in docs/protocol.md and docs/reference.md; the golden
 * files in tests/golden/ are the shared truth, and tests/test_c_wire.py holds
 * this decoder to them, field by field. Decoding is bounded: every length is
 * checked against the contract's limits and malformed input is rejected with
 * a negative status, never a crash.
 */
#ifndef IFPX_WIRE_H
#define IFPX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "ifpx_contract.h" /* enum ifpx_kind, route types, rule actions, bounds */

#define IFPX_MAX_TOPICS 16

enum ifpx_status {
    IFPX_OK = 0,
    IFPX_E_FORMAT = -1,    /* not msgpack, or not the shape the contract says */
    IFPX_E_FIELD = -2,     /* a field is missing, of the wrong type or out of range */
    IFPX_E_KIND = -3,      /* an event kind this build does not know */
    IFPX_E_LIMIT = -4,     /* a length beyond the contract's bounds */
    IFPX_E_CALLBACK = -5   /* the callback asked to stop */
};

struct ifpx_topic_seq {
    char topic[8];
    uint64_t tseq;
};

/* A next hop's flags: the kernel's RTNH_F_* values. A forwarder never uses a DEAD hop;
 * a LINKDOWN hop (no carrier) only while the interface's ignore_routes_with_linkdown
 * is off (the kernel's default). */
#define IFPX_NH_DEAD 0x01
#define IFPX_NH_ONLINK 0x04
#define IFPX_NH_LINKDOWN 0x10

struct ifpx_nexthop {
    uint8_t has_gateway;
    uint8_t gw_family;      /* AF_INET or AF_INET6 */
    uint8_t gateway[16];    /* network order */
    uint32_t ifindex;
    int32_t port_id;        /* -1: no port bound to that interface */
    uint16_t weight;
    uint8_t flags;          /* IFPX_NH_* */
};

/* A policy routing rule (rule(6)_add/_del). Every has_* 0 means "no such selector";
 * unused bytes are zero, so rules compare with memcmp. */
struct ifpx_rule {
    uint8_t family;           /* AF_INET or AF_INET6 */
    uint8_t action;           /* enum ifpx_rule_action */
    uint8_t src_len, dst_len, tos, invert, l3mdev, proto;
    uint32_t priority, table, goto_priority;
    uint8_t has_goto, has_src, has_dst, has_suppress_prefixlen;
    uint8_t src[16], dst[16];
    uint32_t fwmark, fwmask;
    char iif[IFPX_NAME_LEN], oif[IFPX_NAME_LEN];
    uint8_t suppress_prefixlen, has_suppress_ifgroup, has_ip_proto, ip_proto;
    uint32_t suppress_ifgroup;
    uint8_t has_sport, has_dport, has_uid, has_tun_id, has_flow, zero[3];
    uint16_t sport[2], dport[2];
    uint32_t uid[2], flow;
    uint32_t zero2;           /* no implicit padding: rules compare with memcmp */
    uint64_t tun_id;
};

struct ifpx_event {
    enum ifpx_kind kind;
    /* port-scoped events */
    uint16_t port_id;
    uint32_t ifindex;
    char proxy[IFPX_NAME_LEN];
    /* mac_change, neigh*: mac (has_mac 0 when null) */
    int has_mac;
    uint8_t mac[6];
    uint32_t mtu;
    int up, carrier;
    /* addr*, neigh*: ip; route*: dst (family AF_INET / AF_INET6) */
    int family;
    uint8_t ip[16];
    uint8_t prefixlen;
    uint32_t table, metric;
    uint8_t proto;
    uint8_t route_type;      /* enum ifpx_route_type */
    int prefsrc_family;      /* route*: the preferred source's family; 0: none */
    uint8_t prefsrc[16];
    uint16_t nh_count;
    char state[33];          /* neigh NUD state */
    char old_name[IFPX_NAME_LEN];
    uint32_t old_ifindex;
    char reason[201];
    uint64_t changes;
    /* heartbeat: the latest tseq of every topic */
    uint8_t n_topics;
    struct ifpx_topic_seq topic_seqs[IFPX_MAX_TOPICS];
    double interval;
    /* rule*: the rule */
    struct ifpx_rule rule;
    /* nhgroup_*, groute*: the next-hop group's id (groute*: 0 for a drop route) */
    uint32_t group;
    /* route*, nhgroup_set: the next hops; last, so code may copy only the nh_count it uses */
    struct ifpx_nexthop nh[IFPX_MAX_NEXTHOPS];
};

struct ifpx_header {
    int v;
    uint64_t epoch, seq, tseq;
    double ts;
    char topic[8];
    uint32_t n_events;
};

typedef int (*ifpx_event_cb)(const struct ifpx_event *ev, void *ctx);

/* IFPX_OK if buf is one msgpack object, nested at most 16 deep, whose every declared
 * length fits in the bytes really there (IFPX_E_FORMAT / IFPX_E_LIMIT otherwise). Every
 * decoder here checks this before msgpack-c allocates anything for a document. */
int ifpx_msgpack_check(const char *buf, size_t len);

/* Decode one message payload (the second frame). Calls cb for each event in order
 * (cb returns non-zero to stop). Returns IFPX_OK or a negative ifpx_status. */
int ifpx_decode_message(const char *buf, size_t len, struct ifpx_header *hdr,
                        ifpx_event_cb cb, void *ctx);

struct ifpx_snapshot {
    uint64_t epoch, seq;
    int cfg_done;
    uint8_t n_topics;
    struct ifpx_topic_seq topic_seqs[IFPX_MAX_TOPICS];
};

/* Decode a reply to the `snapshot` command and hand the state to cb as the events
 * that build it from nothing (per bound port: port_bound, mac_change, mtu_change,
 * link_change, addr(6)_add; then neigh(6)_add, route(6)_add; cfg_done last when the
 * bridge had finished its dump), after a proxy_gone for each binding whose proxy is gone.
 * An error reply or anything malformed: a negative status. */
int ifpx_decode_snapshot(const char *buf, size_t len, struct ifpx_snapshot *snap,
                         ifpx_event_cb cb, void *ctx);

/* ifpx_decode_snapshot with the routes in the group form when groups is non-zero: an
 * nhgroup_set for every group the routes use, then groute(6)_add (protocol minor 3). */
int ifpx_decode_snapshot_form(const char *buf, size_t len, struct ifpx_snapshot *snap,
                              int groups, ifpx_event_cb cb, void *ctx);

/* A decoded message whose events are taken one at a time (for bounded polling).
 * Opening it checks the header and every event, so a message is applied whole or
 * not at all; it keeps its own copy of the payload. */
struct ifpx_msg;

struct ifpx_msg *ifpx_msg_open(const char *buf, size_t len, struct ifpx_header *hdr, int *status);
/* 1 and the next event in *ev, or 0 at the end. */
int ifpx_msg_next(struct ifpx_msg *msg, struct ifpx_event *ev);
const struct ifpx_header *ifpx_msg_header(const struct ifpx_msg *msg);
void ifpx_msg_free(struct ifpx_msg *msg);

/* The head of any reply: its id, and for an error its code. */
struct ifpx_reply {
    uint64_t id;
    int ok;
    char type[32];        /* result type when ok */
    char code[32];        /* error code when not */
    char message[256];
};

int ifpx_decode_reply(const char *buf, size_t len, struct ifpx_reply *reply);

typedef int (*ifpx_payload_cb)(const char *payload, size_t len, void *ctx);

/* A reply to `replay`: hands each journalled payload (frame 2 of a published message) to cb. */
int ifpx_decode_replay(const char *buf, size_t len, uint64_t *epoch, ifpx_payload_cb cb,
                       void *ctx);

/* Requests. Each writes a msgpack request into buf (size cap) and returns its length,
 * or a negative status when it does not fit. */
int ifpx_encode_snapshot(char *buf, size_t cap, uint64_t id);
/* `snapshot` naming the topics the requester follows (protocol minor 3: the bridge keeps
 * them published until the subscription reaches it). */
int ifpx_encode_snapshot_topics(char *buf, size_t cap, uint64_t id, const char *const *topics,
                                int n_topics);
int ifpx_encode_replay(char *buf, size_t cap, uint64_t id, uint64_t epoch, uint64_t from_seq,
                       const char *const *topics, int n_topics);
int ifpx_encode_bind(char *buf, size_t cap, uint64_t id, uint16_t port_id, const char *proxy);
int ifpx_encode_unbind(char *buf, size_t cap, uint64_t id, uint16_t port_id);
/* `bind` refused when the port is bound to another proxy (exclusive: protocol minor 5);
 * `unbind` of the port's binding to proxy only (NULL: whatever it is bound to). */
int ifpx_encode_bind_ex(char *buf, size_t cap, uint64_t id, uint16_t port_id, const char *proxy,
                        int exclusive);
int ifpx_encode_unbind_from(char *buf, size_t cap, uint64_t id, uint16_t port_id,
                            const char *proxy);

struct ifpx_stats;

/* What a worker reports (the `report` command): the epoch and seq it has applied. */
struct ifpx_report {
    const char *worker, *host, *client;
    uint64_t instance, epoch, seq;
    uint32_t pid;
    int synced, repairing, interval_ms;
    const char *const *topics;
    int n_topics;
    const struct ifpx_stats *stats; /* NULL: no counters */
};

int ifpx_encode_report(char *buf, size_t cap, uint64_t id, const struct ifpx_report *r);
/* The same, and with leaving set the last one: the subscriber is closing, and the
 * bridge counts the worker gone at once (protocol minor 5). */
int ifpx_encode_report_ex(char *buf, size_t cap, uint64_t id, const struct ifpx_report *r,
                          int leaving);
/* `wait_applied`: seq 0 means the bridge's seq now; epoch 0 means any; workers NULL: every
 * live one. */
int ifpx_encode_wait_applied(char *buf, size_t cap, uint64_t id, uint64_t seq, uint64_t epoch,
                             const char *const *workers, int n_workers);

/* The answer to `wait_applied`. */
struct ifpx_wait_result {
    int done;
    uint64_t epoch, seq;          /* the seq waited for: ask again with it */
    unsigned n_workers;           /* how many were waited for */
    unsigned n_waiting;           /* how many are not there yet; the first 8 named below */
    char waiting[8][65];
};

int ifpx_decode_wait_applied(const char *buf, size_t len, struct ifpx_wait_result *out);

/* The topic an event kind is published on ("link", "addr", ...). */
const char *ifpx_kind_topic(enum ifpx_kind kind);
/* "unicast", "blackhole", ... (NULL out of range); and back: 0 and *type, or -1. */
const char *ifpx_route_type_name(int type);
int ifpx_route_type_parse(const char *name, uint8_t *type);
/* "lookup", "goto", ... (NULL out of range). */
const char *ifpx_rule_action_name(int action);
/* The wire's names of the IFPX_NH_* bits in flags, in the wire's order: *n of them. */
void ifpx_hop_flag_names(uint8_t flags, const char *names[3], int *n);
const char *ifpx_kind_name(enum ifpx_kind kind);
int ifpx_kind_is_port_scoped(enum ifpx_kind kind);

#ifdef __cplusplus
}
#endif

#endif
