/* A subscriber's replica of the bridge's state: see ifpx_replica.h. */
#include "ifpx_replica.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ifpx_json.h"

/* ---- hash table ---------------------------------------------------------------------- */

static uint64_t hash(const void *key, size_t n)
{
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static size_t ht_index(const struct ifpx_htab *t, const void *key)
{
    size_t mask = t->cap - 1, i = hash(key, t->klen) & mask;
    while (t->slot[i] && memcmp(t->slot[i], key, t->klen))
        i = (i + 1) & mask;
    return i;
}

static void *ht_get(const struct ifpx_htab *t, const void *key)
{
    return t->cap ? t->slot[ht_index(t, key)] : NULL;
}

static int ht_grow(struct ifpx_htab *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct ifpx_htab bigger = {calloc(cap, sizeof(void *)), cap, t->n, t->klen};
    if (!bigger.slot)
        return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slot[i])
            bigger.slot[ht_index(&bigger, t->slot[i])] = t->slot[i];
    free(t->slot);
    *t = bigger;
    return 0;
}

/* The slot for key, made ready for an insert (the table grows first when needed). */
static void **ht_place(struct ifpx_htab *t, const void *key)
{
    if ((t->n + 1) * 4 > t->cap * 3 && ht_grow(t))
        return NULL;
    return &t->slot[ht_index(t, key)];
}

/* Removes and returns the entry under key (NULL if none); backward-shift keeps probes short. */
static void *ht_del(struct ifpx_htab *t, const void *key)
{
    if (!t->cap)
        return NULL;
    size_t mask = t->cap - 1, i = ht_index(t, key), j = i;
    void *e = t->slot[i];
    if (!e)
        return NULL;
    t->slot[i] = NULL;
    t->n--;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->slot[j])
            break;
        size_t home = hash(t->slot[j], t->klen) & mask;
        int movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            t->slot[i] = t->slot[j];
            t->slot[j] = NULL;
            i = j;
        }
    }
    return e;
}

static void ht_free(struct ifpx_htab *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slot[i]);
    free(t->slot);
    t->slot = NULL;
    t->cap = t->n = 0;
}

static const void *ht_next(const struct ifpx_htab *t, size_t *cursor)
{
    while (*cursor < t->cap) {
        const void *e = t->slot[(*cursor)++];
        if (e)
            return e;
    }
    return NULL;
}

/* ---- ports ----------------------------------------------------------------------------- */

void ifpx_replica_init(struct ifpx_replica *r)
{
    memset(r, 0, sizeof *r);
    r->routes.klen = sizeof(struct ifpx_route_key);
    r->neighs.klen = sizeof(struct ifpx_neigh_key);
}

void ifpx_replica_clear(struct ifpx_replica *r)
{
    for (size_t i = 0; i < r->n_ports; i++)
        free(r->ports[i].addrs);
    free(r->ports);
    ht_free(&r->routes);
    ht_free(&r->neighs);
    ifpx_replica_init(r);
}

static struct ifpx_port_state *find_port(const struct ifpx_replica *r, uint16_t port_id)
{
    for (size_t i = 0; i < r->n_ports; i++)
        if (r->ports[i].port_id == port_id)
            return &r->ports[i];
    return NULL;
}

const struct ifpx_port_state *ifpx_replica_port(const struct ifpx_replica *r, uint16_t port_id)
{
    return find_port(r, port_id);
}

/* Forgets a port's configuration, keeping the entry (the binding) itself. */
static void reset_port(struct ifpx_port_state *p, const char *proxy, uint32_t ifindex, int gone)
{
    struct ifpx_addr *addrs = p->addrs;
    uint32_t cap = p->cap_addrs;
    uint16_t port_id = p->port_id;
    memset(p, 0, sizeof *p);
    p->port_id = port_id;
    p->addrs = addrs;
    p->cap_addrs = cap;
    p->gone = gone;
    p->ifindex = gone ? 0 : ifindex;
    snprintf(p->proxy, sizeof p->proxy, "%s", proxy);
}

static struct ifpx_port_state *add_port(struct ifpx_replica *r, uint16_t port_id)
{
    struct ifpx_port_state *p = find_port(r, port_id);
    if (p)
        return p;
    if (r->n_ports == r->cap_ports) {
        size_t cap = r->cap_ports ? r->cap_ports * 2 : 8;
        struct ifpx_port_state *bigger = realloc(r->ports, cap * sizeof *bigger);
        if (!bigger)
            return NULL;
        r->ports = bigger;
        r->cap_ports = cap;
    }
    p = &r->ports[r->n_ports++];
    memset(p, 0, sizeof *p);
    p->port_id = port_id;
    return p;
}

static void remove_port(struct ifpx_replica *r, uint16_t port_id)
{
    struct ifpx_port_state *p = find_port(r, port_id);
    if (!p)
        return;
    free(p->addrs);
    *p = r->ports[--r->n_ports];
}

static int drop_neighs(struct ifpx_replica *r, uint16_t port_id)
{
    size_t cur = 0, n = 0;
    const struct ifpx_neigh *nb;
    struct ifpx_neigh_key *keys = malloc((r->neighs.n + 1) * sizeof *keys);
    if (!keys)
        return -1;
    while ((nb = ht_next(&r->neighs, &cur)))
        if (nb->key.port_id == port_id)
            keys[n++] = nb->key;
    for (size_t i = 0; i < n; i++)
        free(ht_del(&r->neighs, &keys[i]));
    free(keys);
    return 0;
}

/* The port an event speaks of, made afresh when unknown or when its ifindex changed. */
static struct ifpx_port_state *port_for(struct ifpx_replica *r, const struct ifpx_event *ev)
{
    struct ifpx_port_state *p = add_port(r, ev->port_id);
    if (p && (p->gone || p->ifindex != ev->ifindex || !p->proxy[0]))
        reset_port(p, ev->proxy, ev->ifindex, 0);
    return p;
}

static int addr_index(const struct ifpx_port_state *p, const struct ifpx_addr *a)
{
    for (uint32_t i = 0; i < p->n_addrs; i++)
        if (!memcmp(&p->addrs[i], a, sizeof *a))
            return (int)i;
    return -1;
}

static int addr_change(struct ifpx_replica *r, const struct ifpx_event *ev, int add)
{
    struct ifpx_port_state *p = port_for(r, ev);
    struct ifpx_addr a = {(uint8_t)ev->family, ev->prefixlen, {0}};
    if (!p)
        return -1;
    memcpy(a.ip, ev->ip, ev->family == AF_INET ? 4 : 16);
    int at = addr_index(p, &a);
    if (!add) {
        if (at >= 0)
            p->addrs[at] = p->addrs[--p->n_addrs];
        return 0;
    }
    if (at >= 0)
        return 0;
    if (p->n_addrs == p->cap_addrs) {
        uint32_t cap = p->cap_addrs ? p->cap_addrs * 2 : 4;
        struct ifpx_addr *bigger = realloc(p->addrs, cap * sizeof *bigger);
        if (!bigger)
            return -1;
        p->addrs = bigger;
        p->cap_addrs = cap;
    }
    p->addrs[p->n_addrs++] = a;
    return 0;
}

/* ---- neighbours and routes ------------------------------------------------------------ */

static void neigh_key(const struct ifpx_event *ev, struct ifpx_neigh_key *k)
{
    memset(k, 0, sizeof *k);
    k->port_id = ev->port_id;
    k->family = (uint8_t)ev->family;
    memcpy(k->ip, ev->ip, ev->family == AF_INET ? 4 : 16);
}

static int neigh_add(struct ifpx_replica *r, const struct ifpx_event *ev)
{
    struct ifpx_neigh_key k;
    neigh_key(ev, &k);
    if (!port_for(r, ev))
        return -1;
    void **slot = ht_place(&r->neighs, &k);
    if (!slot)
        return -1;
    struct ifpx_neigh *n = *slot;
    if (!n) {
        if (!(n = calloc(1, sizeof *n)))
            return -1;
        n->key = k;
        *slot = n;
        r->neighs.n++;
    }
    n->has_mac = ev->has_mac;
    memset(n->mac, 0, sizeof n->mac);
    if (ev->has_mac)
        memcpy(n->mac, ev->mac, 6);
    snprintf(n->state, sizeof n->state, "%s", ev->state);
    return 0;
}

static void route_key(const struct ifpx_event *ev, struct ifpx_route_key *k)
{
    int bytes = ev->family == AF_INET ? 4 : 16;
    memset(k, 0, sizeof *k);
    k->family = (uint8_t)ev->family;
    k->prefixlen = ev->prefixlen;
    k->table = ev->table;
    k->metric = ev->metric;
    for (int i = 0; i < bytes; i++) {
        int bits = ev->prefixlen - 8 * i;
        uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
        k->dst[i] = ev->ip[i] & mask;
    }
}

/* Next hops with every unused byte zero, so that stored routes compare with memcmp. */
static void copy_nexthops(struct ifpx_nexthop *out, const struct ifpx_event *ev)
{
    memset(out, 0, ev->nh_count * sizeof *out);
    for (int i = 0; i < ev->nh_count; i++) {
        const struct ifpx_nexthop *h = &ev->nh[i];
        out[i].has_gateway = h->has_gateway;
        if (h->has_gateway) {
            out[i].gw_family = h->gw_family;
            memcpy(out[i].gateway, h->gateway, h->gw_family == AF_INET ? 4 : 16);
        }
        out[i].ifindex = h->ifindex;
        out[i].port_id = h->port_id;
        out[i].weight = h->weight;
    }
}

static int route_add(struct ifpx_replica *r, const struct ifpx_event *ev)
{
    struct ifpx_route_key k;
    route_key(ev, &k);
    void **slot = ht_place(&r->routes, &k);
    if (!slot)
        return -1;
    struct ifpx_route *old = *slot;
    struct ifpx_route *rt = old;
    if (!old || old->nh_count != ev->nh_count) {
        rt = malloc(sizeof *rt + ev->nh_count * sizeof rt->nh[0]);
        if (!rt)
            return -1;
        free(old);
        if (!old)
            r->routes.n++;
        *slot = rt;
    }
    rt->key = k;
    rt->proto = ev->proto;
    rt->nh_count = ev->nh_count;
    copy_nexthops(rt->nh, ev);
    return 0;
}

int ifpx_replica_apply(struct ifpx_replica *r, const struct ifpx_event *ev)
{
    struct ifpx_port_state *p;
    switch (ev->kind) {
    case IFPX_PORT_BOUND: case IFPX_PROXY_BACK:
        if (!(p = add_port(r, ev->port_id)))
            return -1;
        reset_port(p, ev->proxy, ev->ifindex, 0);
        return drop_neighs(r, ev->port_id);
    case IFPX_PORT_UNBOUND:
        remove_port(r, ev->port_id);
        return drop_neighs(r, ev->port_id);
    case IFPX_PROXY_GONE:
        if (!(p = add_port(r, ev->port_id)))
            return -1;
        reset_port(p, ev->proxy, 0, 1);
        return drop_neighs(r, ev->port_id);
    case IFPX_PROXY_RENAMED:
        if (!(p = port_for(r, ev)))
            return -1;
        snprintf(p->proxy, sizeof p->proxy, "%s", ev->proxy);
        return 0;
    case IFPX_MAC_CHANGE:
        if (!(p = port_for(r, ev)))
            return -1;
        p->has_mac = ev->has_mac;
        memcpy(p->mac, ev->mac, 6);
        return 0;
    case IFPX_MTU_CHANGE:
        if (!(p = port_for(r, ev)))
            return -1;
        p->mtu = ev->mtu;
        return 0;
    case IFPX_LINK_CHANGE:
        if (!(p = port_for(r, ev)))
            return -1;
        p->up = ev->up;
        p->carrier = ev->carrier;
        return 0;
    case IFPX_ADDR_ADD: case IFPX_ADDR6_ADD:
        return addr_change(r, ev, 1);
    case IFPX_ADDR_DEL: case IFPX_ADDR6_DEL:
        return addr_change(r, ev, 0);
    case IFPX_NEIGH_ADD: case IFPX_NEIGH6_ADD:
        return neigh_add(r, ev);
    case IFPX_NEIGH_DEL: case IFPX_NEIGH6_DEL: {
        struct ifpx_neigh_key k;
        neigh_key(ev, &k);
        free(ht_del(&r->neighs, &k));
        return 0;
    }
    case IFPX_ROUTE_ADD: case IFPX_ROUTE6_ADD:
        return route_add(r, ev);
    case IFPX_ROUTE_DEL: case IFPX_ROUTE6_DEL: {
        struct ifpx_route_key k;
        route_key(ev, &k);
        free(ht_del(&r->routes, &k));
        return 0;
    }
    case IFPX_CFG_DONE:
        r->cfg_done = 1;
        return 0;
    default:
        return 0;
    }
}

const struct ifpx_route *ifpx_replica_next_route(const struct ifpx_replica *r, size_t *cursor)
{
    return ht_next(&r->routes, cursor);
}

const struct ifpx_neigh *ifpx_replica_next_neigh(const struct ifpx_replica *r, size_t *cursor)
{
    return ht_next(&r->neighs, cursor);
}

void ifpx_route_event(const struct ifpx_route *rt, int deleted, struct ifpx_event *ev)
{
    memset(ev, 0, offsetof(struct ifpx_event, nh));
    if (rt->key.family == AF_INET)
        ev->kind = deleted ? IFPX_ROUTE_DEL : IFPX_ROUTE_ADD;
    else
        ev->kind = deleted ? IFPX_ROUTE6_DEL : IFPX_ROUTE6_ADD;
    ev->family = rt->key.family;
    memcpy(ev->ip, rt->key.dst, 16);
    ev->prefixlen = rt->key.prefixlen;
    ev->table = rt->key.table;
    ev->metric = rt->key.metric;
    ev->proto = rt->proto;
    ev->nh_count = rt->nh_count;
    memcpy(ev->nh, rt->nh, rt->nh_count * sizeof rt->nh[0]);
}

/* ---- JSON ------------------------------------------------------------------------------- */

static void json_port_ref(FILE *f, const struct ifpx_port_state *p)
{
    fprintf(f, "\"port_id\": %u, \"proxy\": ", p->port_id);
    ifpx_json_str(f, p->proxy);
}

void ifpx_replica_json(const struct ifpx_replica *r, FILE *f)
{
    size_t cur;
    fprintf(f, "{\"bindings\": [");
    for (size_t i = 0; i < r->n_ports; i++) {
        const struct ifpx_port_state *p = &r->ports[i];
        fprintf(f, "%s{", i ? ", " : "");
        json_port_ref(f, p);
        if (p->gone)
            fprintf(f, ", \"ifindex\": null, \"state\": \"gone\"}");
        else
            fprintf(f, ", \"ifindex\": %u, \"state\": \"active\"}", p->ifindex);
    }
    fprintf(f, "], \"ports\": [");
    int first = 1;
    for (size_t i = 0; i < r->n_ports; i++) {
        const struct ifpx_port_state *p = &r->ports[i];
        if (p->gone)
            continue;
        fprintf(f, "%s{", first ? "" : ", ");
        first = 0;
        json_port_ref(f, p);
        fprintf(f, ", \"ifindex\": %u, \"mac\": ", p->ifindex);
        ifpx_json_mac(f, p->has_mac, p->mac);
        fprintf(f, ", \"mtu\": %u, \"up\": %s, \"carrier\": %s, \"addrs\": [", p->mtu,
                p->up ? "true" : "false", p->carrier ? "true" : "false");
        for (uint32_t j = 0; j < p->n_addrs; j++) {
            char text[INET6_ADDRSTRLEN];
            inet_ntop(p->addrs[j].family, p->addrs[j].ip, text, sizeof text);
            fprintf(f, "%s\"%s/%u\"", j ? ", " : "", text, p->addrs[j].prefixlen);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "], \"routes\": [");
    const struct ifpx_route *rt;
    cur = 0;
    first = 1;
    while ((rt = ht_next(&r->routes, &cur))) {
        char text[INET6_ADDRSTRLEN];
        inet_ntop(rt->key.family, rt->key.dst, text, sizeof text);
        fprintf(f, "%s{\"family\": %d, \"dst\": \"%s/%u\", \"table\": %u, \"proto\": %u, "
                   "\"metric\": %u, \"nexthops\": [",
                first ? "" : ", ", rt->key.family == AF_INET ? 4 : 6, text, rt->key.prefixlen,
                rt->key.table, rt->proto, rt->key.metric);
        first = 0;
        for (int i = 0; i < rt->nh_count; i++) {
            const struct ifpx_nexthop *h = &rt->nh[i];
            fprintf(f, "%s{\"gateway\": ", i ? ", " : "");
            if (h->has_gateway)
                ifpx_json_ip(f, h->gw_family, h->gateway);
            else
                fprintf(f, "null");
            fprintf(f, ", \"ifindex\": %u, \"port_id\": ", h->ifindex);
            if (h->port_id < 0)
                fprintf(f, "null");
            else
                fprintf(f, "%d", h->port_id);
            fprintf(f, ", \"weight\": %u}", h->weight);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "], \"neighs\": [");
    const struct ifpx_neigh *nb;
    cur = 0;
    first = 1;
    while ((nb = ht_next(&r->neighs, &cur))) {
        fprintf(f, "%s", first ? "" : ", ");
        first = 0;
        ifpx_json_neigh(f, nb->key.port_id, nb->key.family, nb->key.ip, nb->has_mac, nb->mac,
                        nb->state);
    }
    fprintf(f, "], \"cfg_done\": %s}", r->cfg_done ? "true" : "false");
}

/* ---- difference --------------------------------------------------------------------------- */

enum { D_OLD_BINDINGS, D_NEW_BINDINGS, D_NEIGH_DEL, D_NEIGH_ADD, D_ROUTE_DEL, D_ROUTE_ADD, D_END };
enum { S_BIND, S_MAC, S_MTU, S_LINK, S_ADDR_DEL, S_ADDR_ADD, S_NEXT };

void ifpx_diff_init(struct ifpx_diff *d, const struct ifpx_replica *old,
                    const struct ifpx_replica *target)
{
    memset(d, 0, sizeof *d);
    d->old = old;
    d->target = target;
}

static void port_event(struct ifpx_event *ev, enum ifpx_kind kind, const struct ifpx_port_state *p,
                       uint16_t port_id, uint32_t ifindex)
{
    memset(ev, 0, offsetof(struct ifpx_event, nh));
    ev->kind = kind;
    ev->port_id = port_id;
    ev->ifindex = ifindex;
    snprintf(ev->proxy, sizeof ev->proxy, "%s", p->proxy);
}

static void addr_event(struct ifpx_event *ev, const struct ifpx_port_state *p,
                       const struct ifpx_addr *a, int add)
{
    int six = a->family == AF_INET6;
    port_event(ev, add ? (six ? IFPX_ADDR6_ADD : IFPX_ADDR_ADD) : (six ? IFPX_ADDR6_DEL : IFPX_ADDR_DEL),
               p, p->port_id, p->ifindex);
    ev->family = a->family;
    memcpy(ev->ip, a->ip, 16);
    ev->prefixlen = a->prefixlen;
}

static void neigh_event(struct ifpx_event *ev, const struct ifpx_port_state *p,
                        const struct ifpx_neigh *n, int add)
{
    int six = n->key.family == AF_INET6;
    port_event(ev, add ? (six ? IFPX_NEIGH6_ADD : IFPX_NEIGH_ADD) : (six ? IFPX_NEIGH6_DEL : IFPX_NEIGH_DEL),
               p, p->port_id, p->ifindex);
    ev->family = n->key.family;
    memcpy(ev->ip, n->key.ip, 16);
    ev->has_mac = n->has_mac;
    memcpy(ev->mac, n->mac, 6);
    snprintf(ev->state, sizeof ev->state, "%s", n->state);
}

static const struct ifpx_port_state *active(const struct ifpx_replica *r, uint16_t port_id)
{
    const struct ifpx_port_state *p = find_port(r, port_id);
    return p && !p->gone ? p : NULL;
}

/* A port the application must hear of from scratch: new, back, or on another interface. */
static int is_fresh(const struct ifpx_diff *d, const struct ifpx_port_state *np)
{
    const struct ifpx_port_state *op = active(d->old, np->port_id);
    return !op || op->ifindex != np->ifindex;
}

static int routes_equal(const struct ifpx_route *a, const struct ifpx_route *b)
{
    return a->proto == b->proto && a->nh_count == b->nh_count &&
           !memcmp(a->nh, b->nh, a->nh_count * sizeof a->nh[0]);
}

static int neighs_equal(const struct ifpx_neigh *a, const struct ifpx_neigh *b)
{
    return a->has_mac == b->has_mac && !memcmp(a->mac, b->mac, 6) && !strcmp(a->state, b->state);
}

/* One step of a target port's events; 1 when it produced one. */
static int port_step(struct ifpx_diff *d, const struct ifpx_port_state *np, struct ifpx_event *ev)
{
    const struct ifpx_port_state *ob = find_port(d->old, np->port_id);
    const struct ifpx_port_state *op = active(d->old, np->port_id);
    switch (d->j) {
    case S_BIND:
        d->j = S_NEXT;
        if (np->gone) {
            if (!ob) {
                port_event(ev, IFPX_PROXY_GONE, np, np->port_id, 0);
                return 1;
            }
            return 0;
        }
        d->fresh = is_fresh(d, np);
        d->j = S_MAC;
        d->k = 0;
        if (d->fresh) {
            port_event(ev, IFPX_PORT_BOUND, np, np->port_id, np->ifindex);
            return 1;
        }
        if (strcmp(op->proxy, np->proxy)) {
            port_event(ev, IFPX_PROXY_RENAMED, np, np->port_id, np->ifindex);
            snprintf(ev->old_name, sizeof ev->old_name, "%s", op->proxy);
            return 1;
        }
        return 0;
    case S_MAC:
        d->j = S_MTU;
        if (np->has_mac && (d->fresh || !op->has_mac || memcmp(op->mac, np->mac, 6))) {
            port_event(ev, IFPX_MAC_CHANGE, np, np->port_id, np->ifindex);
            ev->has_mac = 1;
            memcpy(ev->mac, np->mac, 6);
            return 1;
        }
        return 0;
    case S_MTU:
        d->j = S_LINK;
        if (d->fresh || op->mtu != np->mtu) {
            port_event(ev, IFPX_MTU_CHANGE, np, np->port_id, np->ifindex);
            ev->mtu = np->mtu;
            return 1;
        }
        return 0;
    case S_LINK:
        d->j = d->fresh ? S_ADDR_ADD : S_ADDR_DEL;
        if (d->fresh || op->up != np->up || op->carrier != np->carrier) {
            port_event(ev, IFPX_LINK_CHANGE, np, np->port_id, np->ifindex);
            ev->up = np->up;
            ev->carrier = np->carrier;
            return 1;
        }
        return 0;
    case S_ADDR_DEL:
        while (d->k < op->n_addrs) {
            const struct ifpx_addr *a = &op->addrs[d->k++];
            if (addr_index(np, a) < 0) {
                addr_event(ev, np, a, 0);
                return 1;
            }
        }
        d->j = S_ADDR_ADD;
        d->k = 0;
        return 0;
    case S_ADDR_ADD:
        while (d->k < np->n_addrs) {
            const struct ifpx_addr *a = &np->addrs[d->k++];
            if (d->fresh || addr_index(op, a) < 0) {
                addr_event(ev, np, a, 1);
                return 1;
            }
        }
        d->j = S_NEXT;
        return 0;
    }
    return 0;
}

static int diff_step(struct ifpx_diff *d, struct ifpx_event *ev)
{
    const struct ifpx_replica *old = d->old, *target = d->target;
    switch (d->phase) {
    case D_OLD_BINDINGS:
        while (d->i < old->n_ports) {
            const struct ifpx_port_state *ob = &old->ports[d->i++];
            const struct ifpx_port_state *nb = find_port(target, ob->port_id);
            if (!nb) {
                port_event(ev, IFPX_PORT_UNBOUND, ob, ob->port_id, ob->ifindex);
                return 1;
            }
            if (nb->gone && (!ob->gone || strcmp(ob->proxy, nb->proxy))) {
                /* the name the binding waits for now, which may not be the one it had */
                port_event(ev, IFPX_PROXY_GONE, nb, nb->port_id, ob->ifindex);
                return 1;
            }
        }
        d->phase = D_NEW_BINDINGS;
        d->i = 0;
        d->j = S_BIND;
        return 0;
    case D_NEW_BINDINGS:
        while (d->i < target->n_ports) {
            const struct ifpx_port_state *np = &target->ports[d->i];
            if (d->j == S_NEXT) {
                d->i++;
                d->j = S_BIND;
                continue;
            }
            if (port_step(d, np, ev))
                return 1;
        }
        d->phase = D_NEIGH_DEL;
        d->i = 0;
        return 0;
    case D_NEIGH_DEL: {
        const struct ifpx_neigh *n;
        while ((n = ht_next(&old->neighs, &d->i))) {
            const struct ifpx_port_state *np = active(target, n->key.port_id);
            /* neighbours of a port that is gone went with it */
            if (np && !ht_get(&target->neighs, &n->key) && !is_fresh(d, np)) {
                neigh_event(ev, np, n, 0);
                return 1;
            }
        }
        d->phase = D_NEIGH_ADD;
        d->i = 0;
        return 0;
    }
    case D_NEIGH_ADD: {
        const struct ifpx_neigh *n;
        while ((n = ht_next(&target->neighs, &d->i))) {
            const struct ifpx_port_state *np = active(target, n->key.port_id);
            const struct ifpx_neigh *was = ht_get(&old->neighs, &n->key);
            if (np && (!was || !neighs_equal(was, n) || is_fresh(d, np))) {
                neigh_event(ev, np, n, 1);
                return 1;
            }
        }
        d->phase = D_ROUTE_DEL;
        d->i = 0;
        return 0;
    }
    case D_ROUTE_DEL: {
        const struct ifpx_route *rt;
        while ((rt = ht_next(&old->routes, &d->i)))
            if (!ht_get(&target->routes, &rt->key)) {
                ifpx_route_event(rt, 1, ev);
                return 1;
            }
        d->phase = D_ROUTE_ADD;
        d->i = 0;
        return 0;
    }
    case D_ROUTE_ADD: {
        const struct ifpx_route *rt;
        while ((rt = ht_next(&target->routes, &d->i))) {
            const struct ifpx_route *was = ht_get(&old->routes, &rt->key);
            if (!was || !routes_equal(was, rt)) {
                ifpx_route_event(rt, 0, ev);
                return 1;
            }
        }
        d->phase = D_END;
        return 0;
    }
    }
    return 0;
}

int ifpx_diff_next(struct ifpx_diff *d, struct ifpx_event *ev)
{
    while (d->phase != D_END)
        if (diff_step(d, ev)) {
            d->count++;
            return 1;
        }
    return 0;
}
