/* A snapshot reply expanded into the events that build its state from nothing. */
#include "ifpx_mp.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- snapshots ----------------------------------------------------------------- */

#define MAX_SNAPSHOT_BYTES (1u << 30)

static int emit(ifpx_event_cb cb, void *ctx, const struct ifpx_event *ev)
{
    return cb && cb(ev, ctx) ? IFPX_E_CALLBACK : IFPX_OK;
}

static int snapshot_ports(const msgpack_object *ports, struct ifpx_event *ev, ifpx_event_cb cb,
                          void *ctx)
{
    int rc;
    uint64_t v;
    if (!ports || ports->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    for (uint32_t i = 0; i < ports->via.array.size; i++) {
        const msgpack_object *p = &ports->via.array.ptr[i];
        if (p->type != MSGPACK_OBJECT_MAP)
            return IFPX_E_FIELD;
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        if (ifpx_mp_uint(p, "port_id", 65535, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->port_id = (uint16_t)v;
        if (ifpx_mp_uint(p, "ifindex", INT32_MAX, &v, 1, 0) ||
            ifpx_mp_str(ifpx_mp_field(p, "proxy"), ev->proxy, sizeof ev->proxy))
            return IFPX_E_FIELD;
        ev->ifindex = (uint32_t)v;
        ev->kind = IFPX_PORT_BOUND;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
        if (ifpx_mp_mac(ifpx_mp_field(p, "mac"), &ev->has_mac, ev->mac))
            return IFPX_E_FIELD;
        if (ev->has_mac) {
            ev->kind = IFPX_MAC_CHANGE;
            if ((rc = emit(cb, ctx, ev)))
                return rc;
        }
        if (ifpx_mp_uint(p, "mtu", UINT32_MAX, &v, 0, 0))
            return IFPX_E_FIELD;
        ev->mtu = (uint32_t)v;
        ev->kind = IFPX_MTU_CHANGE;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
        if (ifpx_mp_bool(p, "up", &ev->up, 0) || ifpx_mp_bool(p, "carrier", &ev->carrier, 0))
            return IFPX_E_FIELD;
        ev->kind = IFPX_LINK_CHANGE;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
        const msgpack_object *addrs = ifpx_mp_field(p, "addrs");
        if (!addrs || addrs->type != MSGPACK_OBJECT_ARRAY)
            return IFPX_E_FIELD;
        for (uint32_t j = 0; j < addrs->via.array.size; j++) {
            char text[INET6_ADDRSTRLEN + 5];
            char *slash;
            if (ifpx_mp_str(&addrs->via.array.ptr[j], text, sizeof text) ||
                !(slash = strchr(text, '/')))
                return IFPX_E_FIELD;
            *slash = '\0';
            int plen = atoi(slash + 1);
            memset(ev->ip, 0, sizeof ev->ip);
            if (inet_pton(AF_INET, text, ev->ip) == 1 && plen >= 0 && plen <= 32) {
                ev->family = AF_INET;
                ev->kind = IFPX_ADDR_ADD;
            } else if (inet_pton(AF_INET6, text, ev->ip) == 1 && plen >= 0 && plen <= 128) {
                ev->family = AF_INET6;
                ev->kind = IFPX_ADDR6_ADD;
            } else {
                return IFPX_E_FIELD;
            }
            ev->prefixlen = (uint8_t)plen;
            if ((rc = emit(cb, ctx, ev)))
                return rc;
        }
    }
    return IFPX_OK;
}

static int snapshot_gone(const msgpack_object *bindings, struct ifpx_event *ev, ifpx_event_cb cb,
                         void *ctx)
{
    int rc;
    uint64_t v;
    if (!bindings || bindings->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    for (uint32_t i = 0; i < bindings->via.array.size; i++) {
        const msgpack_object *b = &bindings->via.array.ptr[i];
        const msgpack_object *state = b->type == MSGPACK_OBJECT_MAP ? ifpx_mp_field(b, "state") : NULL;
        if (!state)
            return IFPX_E_FIELD;
        if (!ifpx_mp_key_is(state, "gone"))
            continue; /* active bindings arrive with their port's state */
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        if (ifpx_mp_uint(b, "port_id", 65535, &v, 1, 0) ||
            ifpx_mp_str(ifpx_mp_field(b, "proxy"), ev->proxy, sizeof ev->proxy))
            return IFPX_E_FIELD;
        ev->port_id = (uint16_t)v;
        ev->kind = IFPX_PROXY_GONE;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
    }
    return IFPX_OK;
}

static const msgpack_object *port_of(const msgpack_object *ports, uint64_t port_id)
{
    for (uint32_t i = 0; i < ports->via.array.size; i++) {
        const msgpack_object *o = ifpx_mp_field(&ports->via.array.ptr[i], "port_id");
        if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == port_id)
            return &ports->via.array.ptr[i];
    }
    return NULL;
}

static int snapshot_neighs(const msgpack_object *neighs, const msgpack_object *ports,
                           struct ifpx_event *ev, ifpx_event_cb cb, void *ctx)
{
    int rc;
    uint64_t v;
    if (!neighs || neighs->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    for (uint32_t i = 0; i < neighs->via.array.size; i++) {
        const msgpack_object *n = &neighs->via.array.ptr[i];
        const msgpack_object *port;
        if (n->type != MSGPACK_OBJECT_MAP)
            return IFPX_E_FIELD;
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        if (ifpx_mp_uint(n, "port_id", 65535, &v, 1, 0) || !(port = port_of(ports, v)))
            return IFPX_E_FIELD;
        ev->port_id = (uint16_t)v;
        if (ifpx_mp_uint(port, "ifindex", INT32_MAX, &v, 1, 0) ||
            ifpx_mp_str(ifpx_mp_field(port, "proxy"), ev->proxy, sizeof ev->proxy))
            return IFPX_E_FIELD;
        ev->ifindex = (uint32_t)v;
        if (ifpx_mp_ip(ifpx_mp_field(n, "ip"), &ev->family, ev->ip) ||
            ifpx_mp_mac(ifpx_mp_field(n, "mac"), &ev->has_mac, ev->mac) ||
            ifpx_mp_str(ifpx_mp_field(n, "state"), ev->state, sizeof ev->state))
            return IFPX_E_FIELD;
        ev->kind = ev->family == AF_INET ? IFPX_NEIGH_ADD : IFPX_NEIGH6_ADD;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
    }
    return IFPX_OK;
}

static int snapshot_rules(const msgpack_object *rules, struct ifpx_event *ev, ifpx_event_cb cb,
                          void *ctx)
{
    uint64_t fam;
    int rc;
    if (!rules)
        return IFPX_OK; /* a bridge before protocol minor 1 */
    if (rules->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    for (uint32_t i = 0; i < rules->via.array.size; i++) {
        const msgpack_object *m = &rules->via.array.ptr[i];
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        if (m->type != MSGPACK_OBJECT_MAP || ifpx_mp_uint(m, "family", 6, &fam, 1, 0) ||
            (fam != 4 && fam != 6) || ifpx_mp_rule(m, fam == 4 ? AF_INET : AF_INET6, &ev->rule))
            return IFPX_E_FIELD;
        ev->kind = fam == 4 ? IFPX_RULE_ADD : IFPX_RULE6_ADD;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
    }
    return IFPX_OK;
}

/* The group form's groups: an nhgroup_set for each group id of `ids` (index for index with
 * `sets`), once; 0 is a drop route's empty set. A group id may come back (the same group
 * under another type or preferred source) but only with the same hops. Ids are found
 * again in an open-addressing table: a quarter of a million groups load in linear time. */
static int snapshot_groups(const msgpack_object *sets, const msgpack_object *ids,
                           struct ifpx_event *ev, ifpx_event_cb cb, void *ctx)
{
    uint32_t n = ids->via.array.size, cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    /* slot -> 1 + the index of the first set of that id (0: empty) */
    uint32_t *first = calloc(cap, sizeof *first);
    if (!first)
        return IFPX_E_LIMIT; /* more groups than this process can index */
    int rc = IFPX_OK;
    for (uint32_t i = 0; i < n && rc == IFPX_OK; i++) {
        const msgpack_object *id = &ids->via.array.ptr[i];
        if (id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || id->via.u64 > UINT32_MAX) {
            rc = IFPX_E_FIELD;
            break;
        }
        const msgpack_object *set = &sets->via.array.ptr[i];
        if (!id->via.u64) {
            /* a drop route's: no hops */
            if (set->type != MSGPACK_OBJECT_ARRAY || set->via.array.size)
                rc = IFPX_E_FIELD;
            continue;
        }
        uint32_t h = (uint32_t)(id->via.u64 * 2654435761u) & (cap - 1);
        while (first[h] && ids->via.array.ptr[first[h] - 1].via.u64 != id->via.u64)
            h = (h + 1) & (cap - 1);
        if (first[h]) {
            if (!msgpack_object_equal(sets->via.array.ptr[first[h] - 1], *set))
                rc = IFPX_E_FIELD; /* one group, two sets of hops */
            continue;
        }
        first[h] = i + 1;
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        ev->kind = IFPX_NHGROUP_SET;
        ev->group = (uint32_t)id->via.u64;
        if ((rc = ifpx_mp_nexthops(set, ev)))
            break;
        if (!ev->nh_count)
            rc = IFPX_E_FIELD;
        else
            rc = emit(cb, ctx, ev);
    }
    free(first);
    return rc;
}

static int snapshot_routes(const msgpack_object *routes, int groups, struct ifpx_event *ev,
                           ifpx_event_cb cb, void *ctx)
{
    int rc;
    if (!routes || routes->type != MSGPACK_OBJECT_MAP)
        return IFPX_E_FIELD;
    const msgpack_object *sets = ifpx_mp_field(routes, "nexthop_sets");
    const msgpack_object *rows = ifpx_mp_field(routes, "rows");
    /* (type, prefsrc) per next-hop set; absent or empty: all unicast, no prefsrc */
    const msgpack_object *fwd = ifpx_mp_field(routes, "forwarding");
    if (!sets || sets->type != MSGPACK_OBJECT_ARRAY || !rows || rows->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    if (fwd && (fwd->type != MSGPACK_OBJECT_ARRAY ||
                (fwd->via.array.size && fwd->via.array.size != sets->via.array.size)))
        return IFPX_E_FIELD;
    if (fwd && !fwd->via.array.size)
        fwd = NULL;
    /* the group id of each set (protocol minor 3), for the group form */
    const msgpack_object *ids = groups ? ifpx_mp_field(routes, "groups") : NULL;
    if (groups && (!ids || ids->type != MSGPACK_OBJECT_ARRAY ||
                   ids->via.array.size != sets->via.array.size))
        return IFPX_E_FIELD;
    if (groups && (rc = snapshot_groups(sets, ids, ev, cb, ctx)))
        return rc;
    for (uint32_t i = 0; i < rows->via.array.size; i++) {
        const msgpack_object *r = &rows->via.array.ptr[i];
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 7)
            return IFPX_E_FIELD;
        const msgpack_object *c = r->via.array.ptr;
        for (int j = 0; j < 7; j++)
            if (j != 1 && c[j].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return IFPX_E_FIELD;
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        uint64_t fam = c[0].via.u64, plen = c[2].via.u64, nhs = c[6].via.u64;
        if ((fam != 4 && fam != 6) || ifpx_mp_ip(&c[1], &ev->family, ev->ip) ||
            ev->family != (fam == 4 ? AF_INET : AF_INET6) || plen > (fam == 4 ? 32u : 128u) ||
            c[3].via.u64 > UINT32_MAX || c[4].via.u64 > 255 || c[5].via.u64 > UINT32_MAX ||
            nhs >= sets->via.array.size)
            return IFPX_E_FIELD;
        ev->prefixlen = (uint8_t)plen;
        ev->table = (uint32_t)c[3].via.u64;
        ev->proto = (uint8_t)c[4].via.u64;
        ev->metric = (uint32_t)c[5].via.u64;
        if (groups) {
            ev->kind = fam == 4 ? IFPX_GROUTE_ADD : IFPX_GROUTE6_ADD;
            ev->group = (uint32_t)ids->via.array.ptr[nhs].via.u64;
        } else {
            ev->kind = fam == 4 ? IFPX_ROUTE_ADD : IFPX_ROUTE6_ADD;
            if ((rc = ifpx_mp_nexthops(&sets->via.array.ptr[nhs], ev)))
                return rc;
        }
        if (fwd) {
            const msgpack_object *f = &fwd->via.array.ptr[nhs];
            if (f->type != MSGPACK_OBJECT_ARRAY || f->via.array.size != 2 ||
                ifpx_mp_route_forwarding(&f->via.array.ptr[0], &f->via.array.ptr[1], ev) ||
                (ev->route_type != IFPX_RT_UNICAST && (ev->nh_count || ev->group)))
                return IFPX_E_FIELD;
        }
        if ((rc = emit(cb, ctx, ev)))
            return rc;
    }
    return IFPX_OK;
}

int ifpx_decode_snapshot(const char *buf, size_t len, struct ifpx_snapshot *snap,
                         ifpx_event_cb cb, void *ctx)
{
    return ifpx_decode_snapshot_form(buf, len, snap, 0, cb, ctx);
}

int ifpx_decode_snapshot_form(const char *buf, size_t len, struct ifpx_snapshot *snap,
                              int groups, ifpx_event_cb cb, void *ctx)
{
    msgpack_unpacked up;
    struct ifpx_event *ev;
    int rc = ifpx_mp_begin(buf, len, MAX_SNAPSHOT_BYTES, &up, &ev);

    if (rc)
        goto out;
    const msgpack_object *ok = ifpx_mp_field(&up.data, "ok");
    const msgpack_object *res = ifpx_mp_field(&up.data, "result");
    const msgpack_object *type = res && res->type == MSGPACK_OBJECT_MAP ? ifpx_mp_field(res, "type") : NULL;
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean || !type ||
        !ifpx_mp_key_is(type, "snapshot")) {
        rc = IFPX_E_FIELD;
        goto out;
    }
    memset(snap, 0, sizeof *snap);
    if (ifpx_mp_uint(res, "epoch", UINT64_MAX, &snap->epoch, 1, 0) ||
        ifpx_mp_uint(res, "seq", UINT64_MAX, &snap->seq, 1, 0) ||
        ifpx_mp_bool(res, "cfg_done", &snap->cfg_done, 0)) {
        rc = IFPX_E_FIELD;
        goto out;
    }
    if ((rc = ifpx_mp_topic_seqs(ifpx_mp_field(res, "topic_seqs"), &snap->n_topics, snap->topic_seqs)))
        goto out;
    const msgpack_object *state = ifpx_mp_field(res, "state");
    if (!state || state->type != MSGPACK_OBJECT_MAP) {
        rc = IFPX_E_FIELD;
        goto out;
    }
    const msgpack_object *ports = ifpx_mp_field(state, "ports");
    if ((rc = snapshot_gone(ifpx_mp_field(state, "bindings"), ev, cb, ctx)) ||
        (rc = snapshot_ports(ports, ev, cb, ctx)) ||
        (rc = snapshot_neighs(ifpx_mp_field(state, "neighs"), ports, ev, cb, ctx)) ||
        (rc = snapshot_rules(ifpx_mp_field(state, "rules"), ev, cb, ctx)) ||
        (rc = snapshot_routes(ifpx_mp_field(state, "routes"), groups, ev, cb, ctx)))
        goto out;
    if (snap->cfg_done) {
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        ev->kind = IFPX_CFG_DONE;
        rc = emit(cb, ctx, ev);
    }
out:
    msgpack_unpacked_destroy(&up);
    free(ev);
    return rc;
}

