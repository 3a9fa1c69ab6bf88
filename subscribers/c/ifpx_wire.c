/* ifpx wire decoding: see ifpx_wire.h. */
#include "ifpx_mp.h"
#include "ifpx_contract_tables.h"

#include <arpa/inet.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_MESSAGE_BYTES IFPX_MAX_MESSAGE_BYTES
#define MAX_BATCH ((unsigned)IFPX_MAX_BATCH)

static const char *const KIND_NAMES[IFPX_KIND_COUNT] = {IFPX_KIND_NAMES};
static const char *const KIND_TOPICS[IFPX_KIND_COUNT] = {IFPX_KIND_TOPICS};
static const unsigned char KIND_PORT_SCOPED[IFPX_KIND_COUNT] = {IFPX_KIND_PORT_SCOPED};

const char *ifpx_kind_name(enum ifpx_kind kind)
{
    return (unsigned)kind < IFPX_KIND_COUNT ? KIND_NAMES[kind] : "?";
}

static const char *const ROUTE_TYPES[] = {IFPX_ROUTE_TYPE_NAMES};
#define N_ROUTE_TYPES (sizeof ROUTE_TYPES / sizeof ROUTE_TYPES[0])

const char *ifpx_route_type_name(int type)
{
    return type >= 0 && (unsigned)type < N_ROUTE_TYPES ? ROUTE_TYPES[type] : NULL;
}

int ifpx_route_type_parse(const char *name, uint8_t *type)
{
    for (unsigned i = 0; i < N_ROUTE_TYPES; i++)
        if (!strcmp(name, ROUTE_TYPES[i])) {
            *type = (uint8_t)i;
            return 0;
        }
    return -1;
}

static const char *const RULE_ACTIONS[] = {IFPX_RULE_ACTION_NAMES};
#define N_RULE_ACTIONS (sizeof RULE_ACTIONS / sizeof RULE_ACTIONS[0])

const char *ifpx_rule_action_name(int action)
{
    return action >= 0 && (unsigned)action < N_RULE_ACTIONS ? RULE_ACTIONS[action] : NULL;
}

/* An optional unsigned field: absent or nil leaves *has 0. */
static int opt_uint(const msgpack_object *m, const char *name, uint64_t max, uint64_t *v,
                    uint8_t *has)
{
    const msgpack_object *o = ifpx_mp_field(m, name);
    *has = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return IFPX_OK;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
        return IFPX_E_FIELD;
    *v = o->via.u64;
    *has = 1;
    return IFPX_OK;
}

/* An optional [lo, hi] pair. */
static int opt_range(const msgpack_object *m, const char *name, uint64_t max, uint64_t out[2],
                     uint8_t *has)
{
    const msgpack_object *o = ifpx_mp_field(m, name);
    *has = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return IFPX_OK;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2)
        return IFPX_E_FIELD;
    for (int i = 0; i < 2; i++) {
        const msgpack_object *x = &o->via.array.ptr[i];
        if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER || x->via.u64 > max)
            return IFPX_E_FIELD;
        out[i] = x->via.u64;
    }
    *has = 1;
    return IFPX_OK;
}

/* An optional interface name ("" when absent or nil). */
static int opt_name(const msgpack_object *m, const char *name, char *out)
{
    const msgpack_object *o = ifpx_mp_field(m, name);
    out[0] = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return IFPX_OK;
    return ifpx_mp_str(o, out, IFPX_NAME_LEN) || !out[0] ? IFPX_E_FIELD : IFPX_OK;
}

/* An optional address of the rule's family. */
static int opt_ip(const msgpack_object *m, const char *name, int family, uint8_t out[16],
                  uint8_t *has)
{
    const msgpack_object *o = ifpx_mp_field(m, name);
    int fam;
    *has = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return IFPX_OK;
    if (ifpx_mp_ip(o, &fam, out) || fam != family)
        return IFPX_E_FIELD;
    *has = 1;
    return IFPX_OK;
}

int ifpx_mp_rule(const msgpack_object *m, int family, struct ifpx_rule *r)
{
    uint64_t v, pair[2];
    char name[16];
    int b;
    memset(r, 0, sizeof *r);
    r->family = (uint8_t)family;
    const msgpack_object *action = ifpx_mp_field(m, "action");
    if (action) {
        unsigned i;
        if (ifpx_mp_str(action, name, sizeof name))
            return IFPX_E_FIELD;
        for (i = 0; i < N_RULE_ACTIONS && strcmp(name, RULE_ACTIONS[i]); i++)
            ;
        if (i == N_RULE_ACTIONS)
            return IFPX_E_FIELD;
        r->action = (uint8_t)i;
    }
    if (ifpx_mp_uint(m, "priority", UINT32_MAX, &v, 0, 0))
        return IFPX_E_FIELD;
    r->priority = (uint32_t)v;
    if (ifpx_mp_uint(m, "table", UINT32_MAX, &v, 0, 0))
        return IFPX_E_FIELD;
    r->table = (uint32_t)v;
    if (opt_uint(m, "goto", UINT32_MAX, &v, &r->has_goto))
        return IFPX_E_FIELD;
    r->goto_priority = r->has_goto ? (uint32_t)v : 0;
    if (ifpx_mp_uint(m, "src_len", 128, &v, 0, 0))
        return IFPX_E_FIELD;
    r->src_len = (uint8_t)v;
    if (ifpx_mp_uint(m, "dst_len", 128, &v, 0, 0))
        return IFPX_E_FIELD;
    r->dst_len = (uint8_t)v;
    if (ifpx_mp_uint(m, "tos", 255, &v, 0, 0))
        return IFPX_E_FIELD;
    r->tos = (uint8_t)v;
    if (ifpx_mp_uint(m, "fwmark", UINT32_MAX, &v, 0, 0))
        return IFPX_E_FIELD;
    r->fwmark = (uint32_t)v;
    if (ifpx_mp_uint(m, "fwmask", UINT32_MAX, &v, 0, 0))
        return IFPX_E_FIELD;
    r->fwmask = (uint32_t)v;
    if (opt_name(m, "iif", r->iif) || opt_name(m, "oif", r->oif))
        return IFPX_E_FIELD;
    if (ifpx_mp_bool(m, "invert", &b, 0))
        return IFPX_E_FIELD;
    r->invert = (uint8_t)b;
    if (ifpx_mp_bool(m, "l3mdev", &b, 0))
        return IFPX_E_FIELD;
    r->l3mdev = (uint8_t)b;
    if (opt_uint(m, "suppress_prefixlen", 128, &v, &r->has_suppress_prefixlen))
        return IFPX_E_FIELD;
    r->suppress_prefixlen = r->has_suppress_prefixlen ? (uint8_t)v : 0;
    if (opt_uint(m, "suppress_ifgroup", UINT32_MAX, &v, &r->has_suppress_ifgroup))
        return IFPX_E_FIELD;
    r->suppress_ifgroup = r->has_suppress_ifgroup ? (uint32_t)v : 0;
    if (ifpx_mp_uint(m, "proto", 255, &v, 0, 0))
        return IFPX_E_FIELD;
    r->proto = (uint8_t)v;
    if (opt_uint(m, "ip_proto", 255, &v, &r->has_ip_proto))
        return IFPX_E_FIELD;
    r->ip_proto = r->has_ip_proto ? (uint8_t)v : 0;
    if (opt_range(m, "sport", 65535, pair, &r->has_sport))
        return IFPX_E_FIELD;
    if (r->has_sport) {
        r->sport[0] = (uint16_t)pair[0];
        r->sport[1] = (uint16_t)pair[1];
    }
    if (opt_range(m, "dport", 65535, pair, &r->has_dport))
        return IFPX_E_FIELD;
    if (r->has_dport) {
        r->dport[0] = (uint16_t)pair[0];
        r->dport[1] = (uint16_t)pair[1];
    }
    if (opt_range(m, "uid", UINT32_MAX, pair, &r->has_uid))
        return IFPX_E_FIELD;
    if (r->has_uid) {
        r->uid[0] = (uint32_t)pair[0];
        r->uid[1] = (uint32_t)pair[1];
    }
    if (opt_uint(m, "tun_id", UINT64_MAX, &r->tun_id, &r->has_tun_id))
        return IFPX_E_FIELD;
    if (!r->has_tun_id)
        r->tun_id = 0;
    if (opt_uint(m, "flow", UINT32_MAX, &v, &r->has_flow))
        return IFPX_E_FIELD;
    r->flow = r->has_flow ? (uint32_t)v : 0;
    if (opt_ip(m, "src", family, r->src, &r->has_src) ||
        opt_ip(m, "dst", family, r->dst, &r->has_dst))
        return IFPX_E_FIELD;
    return IFPX_OK;
}

static const struct {
    const char *name;
    uint8_t bit;
} HOP_FLAGS[] = {{"dead", IFPX_NH_DEAD}, {"linkdown", IFPX_NH_LINKDOWN},
                 {"onlink", IFPX_NH_ONLINK}};

/* A next hop's "flags": absent, or an array of at most three known names. */
static int hop_flags(const msgpack_object *o, uint8_t *flags)
{
    *flags = 0;
    if (!o)
        return IFPX_OK;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > 3)
        return IFPX_E_FIELD;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        char name[16];
        unsigned j;
        if (ifpx_mp_str(&o->via.array.ptr[i], name, sizeof name))
            return IFPX_E_FIELD;
        for (j = 0; j < sizeof HOP_FLAGS / sizeof HOP_FLAGS[0]; j++)
            if (!strcmp(name, HOP_FLAGS[j].name))
                break;
        if (j == sizeof HOP_FLAGS / sizeof HOP_FLAGS[0])
            return IFPX_E_FIELD;
        *flags |= HOP_FLAGS[j].bit;
    }
    return IFPX_OK;
}

void ifpx_hop_flag_names(uint8_t flags, const char *names[3], int *n)
{
    *n = 0;
    for (unsigned j = 0; j < sizeof HOP_FLAGS / sizeof HOP_FLAGS[0]; j++)
        if (flags & HOP_FLAGS[j].bit)
            names[(*n)++] = HOP_FLAGS[j].name;
}

/* A route's "type" (absent: unicast) and "prefsrc" (absent or nil: none). */
int ifpx_mp_route_forwarding(const msgpack_object *type, const msgpack_object *prefsrc,
                             struct ifpx_event *ev)
{
    char name[16];
    ev->route_type = IFPX_RT_UNICAST;
    ev->prefsrc_family = 0;
    if (type && (ifpx_mp_str(type, name, sizeof name) ||
                 ifpx_route_type_parse(name, &ev->route_type)))
        return IFPX_E_FIELD;
    if (prefsrc && prefsrc->type != MSGPACK_OBJECT_NIL &&
        ifpx_mp_ip(prefsrc, &ev->prefsrc_family, ev->prefsrc))
        return IFPX_E_FIELD;
    return IFPX_OK;
}

int ifpx_mp_ip(const msgpack_object *o, int *family, uint8_t out[16])
{
    char text[INET6_ADDRSTRLEN];
    if (ifpx_mp_str(o, text, sizeof text))
        return IFPX_E_FIELD;
    memset(out, 0, 16);
    if (inet_pton(AF_INET, text, out) == 1) {
        *family = AF_INET;
        return IFPX_OK;
    }
    if (inet_pton(AF_INET6, text, out) == 1) {
        *family = AF_INET6;
        return IFPX_OK;
    }
    return IFPX_E_FIELD;
}

int ifpx_mp_mac(const msgpack_object *o, int *has, uint8_t mac[6])
{
    char text[18];
    unsigned b[6];
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        *has = 0;
        return IFPX_OK;
    }
    if (ifpx_mp_str(o, text, sizeof text) || strlen(text) != 17 ||
        sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
        return IFPX_E_FIELD;
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)b[i];
    *has = 1;
    return IFPX_OK;
}

int ifpx_mp_nexthops(const msgpack_object *o, struct ifpx_event *ev)
{
    if (!o) {
        ev->nh_count = 0;
        return IFPX_OK;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    if (o->via.array.size > IFPX_MAX_NEXTHOPS)
        return IFPX_E_LIMIT;
    ev->nh_count = (uint16_t)o->via.array.size;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *h = &o->via.array.ptr[i];
        struct ifpx_nexthop *nh = &ev->nh[i];
        uint64_t v;
        if (h->type != MSGPACK_OBJECT_MAP)
            return IFPX_E_FIELD;
        const msgpack_object *gw = ifpx_mp_field(h, "gateway");
        nh->has_gateway = gw && gw->type != MSGPACK_OBJECT_NIL;
        int family = 0;
        if (nh->has_gateway && ifpx_mp_ip(gw, &family, nh->gateway))
            return IFPX_E_FIELD;
        nh->gw_family = (uint8_t)family;
        if (ifpx_mp_uint(h, "ifindex", INT32_MAX, &v, 1, 0))
            return IFPX_E_FIELD;
        nh->ifindex = (uint32_t)v;
        const msgpack_object *port = ifpx_mp_field(h, "port_id");
        if (!port || port->type == MSGPACK_OBJECT_NIL) {
            nh->port_id = -1;
        } else {
            if (port->type != MSGPACK_OBJECT_POSITIVE_INTEGER || port->via.u64 > 65535)
                return IFPX_E_FIELD;
            nh->port_id = (int32_t)port->via.u64;
        }
        if (ifpx_mp_uint(h, "weight", 256, &v, 0, 1) || v < 1)
            return IFPX_E_FIELD;
        nh->weight = (uint16_t)v;
        if (hop_flags(ifpx_mp_field(h, "flags"), &nh->flags))
            return IFPX_E_FIELD;
    }
    return IFPX_OK;
}

/* A map of topic -> tseq (heartbeats and snapshots carry one). */
int ifpx_mp_topic_seqs(const msgpack_object *o, uint8_t *n, struct ifpx_topic_seq *out)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return IFPX_E_FIELD;
    if (o->via.map.size > IFPX_MAX_TOPICS)
        return IFPX_E_LIMIT;
    *n = (uint8_t)o->via.map.size;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (ifpx_mp_str(&kv->key, out[i].topic, sizeof out[i].topic) ||
            kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return IFPX_E_FIELD;
        out[i].tseq = kv->val.via.u64;
    }
    return IFPX_OK;
}

static int kind_of(const msgpack_object *map, enum ifpx_kind *kind)
{
    const msgpack_object *k = ifpx_mp_field(map, "kind");
    if (!k || k->type != MSGPACK_OBJECT_STR)
        return IFPX_E_FIELD;
    for (int i = 0; i < IFPX_KIND_COUNT; i++)
        if (ifpx_mp_key_is(k, KIND_NAMES[i])) {
            *kind = (enum ifpx_kind)i;
            return IFPX_OK;
        }
    return IFPX_E_KIND;
}

int ifpx_kind_is_port_scoped(enum ifpx_kind k)
{
    return (unsigned)k < IFPX_KIND_COUNT && KIND_PORT_SCOPED[k];
}

/* addr(6)_add/del and neigh(6)_add/del: the address, then a prefix or a neighbour. */
static int parse_ip_event(const msgpack_object *m, struct ifpx_event *ev)
{
    enum ifpx_kind k = ev->kind;
    uint64_t v;
    int six = (k == IFPX_ADDR6_ADD || k == IFPX_ADDR6_DEL || k == IFPX_NEIGH6_ADD ||
               k == IFPX_NEIGH6_DEL);
    if (ifpx_mp_ip(ifpx_mp_field(m, "ip"), &ev->family, ev->ip) ||
        ev->family != (six ? AF_INET6 : AF_INET))
        return IFPX_E_FIELD;
    if (k <= IFPX_ADDR6_DEL) {
        if (ifpx_mp_uint(m, "prefixlen", six ? 128 : 32, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->prefixlen = (uint8_t)v;
        return IFPX_OK;
    }
    if (ifpx_mp_mac(ifpx_mp_field(m, "mac"), &ev->has_mac, ev->mac))
        return IFPX_E_FIELD;
    const msgpack_object *st = ifpx_mp_field(m, "state");
    if (st && ifpx_mp_str(st, ev->state, sizeof ev->state))
        return IFPX_E_FIELD;
    return IFPX_OK;
}

static int parse_route_event(const msgpack_object *m, struct ifpx_event *ev)
{
    uint64_t v;
    enum ifpx_kind k = ev->kind;
    int six = (k == IFPX_ROUTE6_ADD || k == IFPX_ROUTE6_DEL || k == IFPX_GROUTE6_ADD ||
               k == IFPX_GROUTE6_DEL);
    if (ifpx_mp_ip(ifpx_mp_field(m, "dst"), &ev->family, ev->ip) ||
        ev->family != (six ? AF_INET6 : AF_INET))
        return IFPX_E_FIELD;
    if (ifpx_mp_uint(m, "prefixlen", six ? 128 : 32, &v, 1, 0))
        return IFPX_E_FIELD;
    ev->prefixlen = (uint8_t)v;
    if (ifpx_mp_uint(m, "table", UINT32_MAX, &v, 0, 254))
        return IFPX_E_FIELD;
    ev->table = (uint32_t)v;
    if (ifpx_mp_uint(m, "proto", 255, &v, 0, 0))
        return IFPX_E_FIELD;
    ev->proto = (uint8_t)v;
    if (ifpx_mp_uint(m, "metric", UINT32_MAX, &v, 0, 0))
        return IFPX_E_FIELD;
    ev->metric = (uint32_t)v;
    if (ifpx_mp_route_forwarding(ifpx_mp_field(m, "type"), ifpx_mp_field(m, "prefsrc"), ev))
        return IFPX_E_FIELD;
    if (k >= IFPX_GROUTE_ADD) {
        /* the group form: a group id instead of next hops */
        if (ifpx_mp_uint(m, "group", UINT32_MAX, &v, 0, 0))
            return IFPX_E_FIELD;
        ev->group = (uint32_t)v;
        return IFPX_OK;
    }
    return ifpx_mp_nexthops(ifpx_mp_field(m, "nexthops"), ev);
}

static int parse_group_event(const msgpack_object *m, struct ifpx_event *ev)
{
    uint64_t v;
    int rc;
    if (ifpx_mp_uint(m, "group", UINT32_MAX, &v, 1, 0) || !v)
        return IFPX_E_FIELD;
    ev->group = (uint32_t)v;
    if (ev->kind == IFPX_NHGROUP_DEL)
        return IFPX_OK;
    const msgpack_object *hops = ifpx_mp_field(m, "nexthops");
    if (!hops)
        return IFPX_E_FIELD;
    if ((rc = ifpx_mp_nexthops(hops, ev)))
        return rc;
    return ev->nh_count ? IFPX_OK : IFPX_E_FIELD;
}

static int parse_heartbeat(const msgpack_object *m, struct ifpx_event *ev)
{
    const msgpack_object *iv = ifpx_mp_field(m, "interval");
    int rc = ifpx_mp_topic_seqs(ifpx_mp_field(m, "topic_seqs"), &ev->n_topics, ev->topic_seqs);
    if (rc)
        return rc;
    ev->interval = 1.0;
    if (iv) {
        if (iv->type != MSGPACK_OBJECT_FLOAT64 && iv->type != MSGPACK_OBJECT_FLOAT32)
            return IFPX_E_FIELD;
        ev->interval = iv->via.f64;
    }
    return IFPX_OK;
}

/* The fields every port-scoped event carries. */
static int parse_port_ref(const msgpack_object *m, struct ifpx_event *ev)
{
    uint64_t v;
    if (ifpx_mp_uint(m, "port_id", 65535, &v, 1, 0))
        return IFPX_E_FIELD;
    ev->port_id = (uint16_t)v;
    if (ifpx_mp_uint(m, "ifindex", INT32_MAX, &v, 1, 0))
        return IFPX_E_FIELD;
    ev->ifindex = (uint32_t)v;
    return ifpx_mp_str(ifpx_mp_field(m, "proxy"), ev->proxy, sizeof ev->proxy);
}

static int parse_event(const msgpack_object *m, struct ifpx_event *ev)
{
    uint64_t v;
    int rc;
    if (m->type != MSGPACK_OBJECT_MAP)
        return IFPX_E_FORMAT;
    memset(ev, 0, offsetof(struct ifpx_event, nh));
    if ((rc = kind_of(m, &ev->kind)))
        return rc;
    enum ifpx_kind k = ev->kind;
    if (ifpx_kind_is_port_scoped(k) && parse_port_ref(m, ev))
        return IFPX_E_FIELD;
    switch (k) {
    case IFPX_MAC_CHANGE:
        if (ifpx_mp_mac(ifpx_mp_field(m, "mac"), &ev->has_mac, ev->mac) || !ev->has_mac)
            return IFPX_E_FIELD;
        return IFPX_OK;
    case IFPX_MTU_CHANGE:
        if (ifpx_mp_uint(m, "mtu", UINT32_MAX, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->mtu = (uint32_t)v;
        return IFPX_OK;
    case IFPX_LINK_CHANGE:
        if (ifpx_mp_bool(m, "up", &ev->up, 0) || ifpx_mp_bool(m, "carrier", &ev->carrier, 0) ||
            !ifpx_mp_field(m, "up"))
            return IFPX_E_FIELD;
        return IFPX_OK;
    case IFPX_ADDR_ADD: case IFPX_ADDR_DEL: case IFPX_ADDR6_ADD: case IFPX_ADDR6_DEL:
    case IFPX_NEIGH_ADD: case IFPX_NEIGH_DEL: case IFPX_NEIGH6_ADD: case IFPX_NEIGH6_DEL:
        return parse_ip_event(m, ev);
    case IFPX_ROUTE_ADD: case IFPX_ROUTE_DEL: case IFPX_ROUTE6_ADD: case IFPX_ROUTE6_DEL:
    case IFPX_GROUTE_ADD: case IFPX_GROUTE_DEL: case IFPX_GROUTE6_ADD: case IFPX_GROUTE6_DEL:
        return parse_route_event(m, ev);
    case IFPX_NHGROUP_SET: case IFPX_NHGROUP_DEL:
        return parse_group_event(m, ev);
    case IFPX_PROXY_RENAMED:
        return ifpx_mp_str(ifpx_mp_field(m, "old_name"), ev->old_name, sizeof ev->old_name);
    case IFPX_PROXY_BACK:
        if (ifpx_mp_uint(m, "old_ifindex", INT32_MAX, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->old_ifindex = (uint32_t)v;
        return IFPX_OK;
    case IFPX_RESYNC_BEGIN: case IFPX_RESYNC_END:
        if (ifpx_mp_str(ifpx_mp_field(m, "reason"), ev->reason, sizeof ev->reason))
            return IFPX_E_FIELD;
        if (k == IFPX_RESYNC_END && ifpx_mp_uint(m, "changes", UINT64_MAX, &ev->changes, 0, 0))
            return IFPX_E_FIELD;
        return IFPX_OK;
    case IFPX_HEARTBEAT:
        return parse_heartbeat(m, ev);
    case IFPX_RULE_ADD: case IFPX_RULE_DEL:
        return ifpx_mp_rule(m, AF_INET, &ev->rule);
    case IFPX_RULE6_ADD: case IFPX_RULE6_DEL:
        return ifpx_mp_rule(m, AF_INET6, &ev->rule);
    default:
        return IFPX_OK;
    }
}

struct ifpx_msg {
    msgpack_unpacked up;
    struct ifpx_header hdr;
    const msgpack_object *events;
    uint32_t next;
    char *buf; /* the unpacked strings point into it */
};

static int parse_header(const msgpack_object *root, struct ifpx_header *hdr,
                        const msgpack_object **events)
{
    uint64_t v;
    memset(hdr, 0, sizeof *hdr);
    if (ifpx_mp_uint(root, "v", 255, &v, 1, 0) || v != 1)
        return IFPX_E_FIELD;
    hdr->v = (int)v;
    if (ifpx_mp_uint(root, "epoch", UINT64_MAX, &hdr->epoch, 1, 0) ||
        ifpx_mp_uint(root, "seq", UINT64_MAX, &hdr->seq, 1, 0) ||
        ifpx_mp_uint(root, "tseq", UINT64_MAX, &hdr->tseq, 1, 0) ||
        ifpx_mp_str(ifpx_mp_field(root, "topic"), hdr->topic, sizeof hdr->topic))
        return IFPX_E_FIELD;
    const msgpack_object *ts = ifpx_mp_field(root, "ts");
    if (!ts || (ts->type != MSGPACK_OBJECT_FLOAT64 && ts->type != MSGPACK_OBJECT_FLOAT32))
        return IFPX_E_FIELD;
    hdr->ts = ts->via.f64;
    *events = ifpx_mp_field(root, "events");
    if (!*events || (*events)->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    if ((*events)->via.array.size > MAX_BATCH)
        return IFPX_E_LIMIT;
    hdr->n_events = (*events)->via.array.size;
    return IFPX_OK;
}

struct ifpx_msg *ifpx_msg_open(const char *buf, size_t len, struct ifpx_header *hdr, int *status)
{
    struct ifpx_event *ev;
    struct ifpx_msg *m = calloc(1, sizeof *m);
    int rc = IFPX_E_LIMIT;

    if (!m || !(m->buf = malloc(len ? len : 1))) {
        free(m);
        *status = IFPX_E_LIMIT;
        return NULL;
    }
    memcpy(m->buf, buf, len);
    if ((rc = ifpx_mp_begin(m->buf, len, MAX_MESSAGE_BYTES, &m->up, &ev)) ||
        (rc = parse_header(&m->up.data, &m->hdr, &m->events)))
        goto fail;
    /* Every event is checked now, so that none is applied from a message that is bad later
     * on; each must belong to the message's topic, and a heartbeat message is one heartbeat
     * (the envelope's rules, as the Python Message enforces them). */
    rc = IFPX_E_FIELD;
    if (!m->hdr.n_events || (!strcmp(m->hdr.topic, "hb") && m->hdr.n_events != 1))
        goto fail;
    for (uint32_t i = 0; i < m->events->via.array.size; i++) {
        if ((rc = parse_event(&m->events->via.array.ptr[i], ev)))
            goto fail;
        if (strcmp(ifpx_kind_topic(ev->kind), m->hdr.topic)) {
            rc = IFPX_E_FIELD;
            goto fail;
        }
    }
    free(ev);
    if (hdr)
        *hdr = m->hdr;
    *status = IFPX_OK;
    return m;
fail:
    free(ev);
    ifpx_msg_free(m);
    *status = rc;
    return NULL;
}

int ifpx_msg_next(struct ifpx_msg *m, struct ifpx_event *ev)
{
    if (m->next >= m->events->via.array.size)
        return 0;
    return parse_event(&m->events->via.array.ptr[m->next++], ev) == IFPX_OK ? 1 : 0;
}

const struct ifpx_header *ifpx_msg_header(const struct ifpx_msg *m)
{
    return &m->hdr;
}

void ifpx_msg_free(struct ifpx_msg *m)
{
    if (!m)
        return;
    msgpack_unpacked_destroy(&m->up);
    free(m->buf);
    free(m);
}

int ifpx_decode_message(const char *buf, size_t len, struct ifpx_header *hdr,
                        ifpx_event_cb cb, void *ctx)
{
    int rc;
    struct ifpx_msg *m = ifpx_msg_open(buf, len, hdr, &rc);
    struct ifpx_event *ev = malloc(sizeof *ev);

    if (m && ev) {
        while (ifpx_msg_next(m, ev))
            if (cb && cb(ev, ctx)) {
                rc = IFPX_E_CALLBACK;
                break;
            }
    } else if (m) {
        rc = IFPX_E_LIMIT;
    }
    free(ev);
    ifpx_msg_free(m);
    return rc;
}

/* ---- replies and requests ---------------------------------------------------------- */

int ifpx_decode_reply(const char *buf, size_t len, struct ifpx_reply *r)
{
    msgpack_unpacked up;
    int rc = ifpx_mp_unpack(buf, len, &up);
    memset(r, 0, sizeof *r);
    if (rc)
        goto out;
    const msgpack_object *root = &up.data;
    const msgpack_object *ok = ifpx_mp_field(root, "ok");
    rc = IFPX_E_FIELD;
    if (ifpx_mp_uint(root, "id", UINT64_MAX, &r->id, 1, 0) || !ok ||
        ok->type != MSGPACK_OBJECT_BOOLEAN)
        goto out;
    r->ok = ok->via.boolean;
    if (r->ok) {
        const msgpack_object *res = ifpx_mp_field(root, "result");
        if (!res || res->type != MSGPACK_OBJECT_MAP || ifpx_mp_str(ifpx_mp_field(res, "type"), r->type,
                                                                sizeof r->type))
            goto out;
    } else {
        const msgpack_object *err = ifpx_mp_field(root, "error");
        if (!err || err->type != MSGPACK_OBJECT_MAP ||
            ifpx_mp_str(ifpx_mp_field(err, "code"), r->code, sizeof r->code))
            goto out;
        const msgpack_object *msg = ifpx_mp_field(err, "message");
        if (msg && msg->type == MSGPACK_OBJECT_STR) {
            size_t n = msg->via.str.size < sizeof r->message - 1 ? msg->via.str.size
                                                                 : sizeof r->message - 1;
            memcpy(r->message, msg->via.str.ptr, n);
            r->message[n] = '\0';
        }
    }
    rc = IFPX_OK;
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}

int ifpx_decode_replay(const char *buf, size_t len, uint64_t *epoch, ifpx_payload_cb cb,
                       void *ctx)
{
    msgpack_unpacked up;
    int rc = ifpx_mp_unpack(buf, len, &up);
    if (rc)
        goto out;
    const msgpack_object *res = ifpx_mp_field(&up.data, "result");
    const msgpack_object *type = res && res->type == MSGPACK_OBJECT_MAP ? ifpx_mp_field(res, "type") : NULL;
    const msgpack_object *msgs = type ? ifpx_mp_field(res, "messages") : NULL;
    rc = IFPX_E_FIELD;
    if (!type || !ifpx_mp_key_is(type, "replay") || !msgs || msgs->type != MSGPACK_OBJECT_ARRAY ||
        ifpx_mp_uint(res, "epoch", UINT64_MAX, epoch, 1, 0))
        goto out;
    for (uint32_t i = 0; i < msgs->via.array.size; i++)
        if (msgs->via.array.ptr[i].type != MSGPACK_OBJECT_BIN)
            goto out;
    rc = IFPX_OK;
    for (uint32_t i = 0; i < msgs->via.array.size && rc == IFPX_OK; i++) {
        const msgpack_object_bin *b = &msgs->via.array.ptr[i].via.bin;
        if (cb(b->ptr, b->size, ctx))
            rc = IFPX_E_CALLBACK;
    }
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}

int ifpx_mp_wait_applied(const char *buf, size_t len, struct ifpx_wait_result *out,
                         char (*names)[65], unsigned cap)
{
    msgpack_unpacked up;
    int rc = ifpx_mp_unpack(buf, len, &up);
    memset(out, 0, sizeof *out);
    if (rc)
        goto out;
    const msgpack_object *res = ifpx_mp_field(&up.data, "result");
    const msgpack_object *type = res && res->type == MSGPACK_OBJECT_MAP ? ifpx_mp_field(res, "type") : NULL;
    const msgpack_object *workers = type ? ifpx_mp_field(res, "workers") : NULL;
    const msgpack_object *waiting = type ? ifpx_mp_field(res, "waiting") : NULL;
    rc = IFPX_E_FIELD;
    if (!type || !ifpx_mp_key_is(type, "wait_applied") ||
        ifpx_mp_bool(res, "done", &out->done, -1) || out->done < 0 ||
        ifpx_mp_uint(res, "epoch", UINT64_MAX, &out->epoch, 1, 0) ||
        ifpx_mp_uint(res, "seq", UINT64_MAX, &out->seq, 1, 0) ||
        (workers && workers->type != MSGPACK_OBJECT_ARRAY) ||
        (waiting && waiting->type != MSGPACK_OBJECT_ARRAY))
        goto out;
    out->n_workers = workers ? workers->via.array.size : 0;
    out->n_waiting = waiting ? waiting->via.array.size : 0;
    for (unsigned i = 0; i < out->n_waiting && i < 8; i++) {
        const msgpack_object *w = &waiting->via.array.ptr[i];
        if (w->type != MSGPACK_OBJECT_MAP ||
            ifpx_mp_str(ifpx_mp_field(w, "name"), out->waiting[i], sizeof out->waiting[i]))
            goto out;
    }
    for (unsigned i = 0; names && i < out->n_workers && i < cap; i++)
        if (ifpx_mp_str(&workers->via.array.ptr[i], names[i], sizeof names[i]))
            goto out;
    rc = IFPX_OK;
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}

int ifpx_decode_wait_applied(const char *buf, size_t len, struct ifpx_wait_result *out)
{
    return ifpx_mp_wait_applied(buf, len, out, NULL, 0);
}

const char *ifpx_kind_topic(enum ifpx_kind k)
{
    return (unsigned)k < IFPX_KIND_COUNT ? KIND_TOPICS[k] : "?";
}
