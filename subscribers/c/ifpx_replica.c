/* A subscriber's replica of the bridge's state: see ifpx_replica.h. */
#include "ifpx_replica.h"
#include "ifpx_replica_int.h"

#include <arpa/inet.h>
#include <errno.h>
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

void *ifpx_rep_get(const struct ifpx_htab *t, const void *key)
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

static void ht_free(struct ifpx_htab *t, void (*release)(void *))
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slot[i])
            release(t->slot[i]);
    free(t->slot);
    t->slot = NULL;
    t->cap = t->n = 0;
}

const void *ifpx_rep_next(const struct ifpx_htab *t, size_t *cursor)
{
    while (*cursor < t->cap) {
        const void *e = t->slot[(*cursor)++];
        if (e)
            return e;
    }
    return NULL;
}

/* ---- groups' route counts ---------------------------------------------------------------- */

/* How many routes name a group sits in front of it, in the same allocation: not in the
 * public struct ifpx_group, whose layout applications compile against. */
#define GROUP_HEAD 16 /* keeps the group as aligned as malloc's own block */

static uint64_t *group_refs(const struct ifpx_group *g)
{
    return (uint64_t *)(void *)((char *)(uintptr_t)g - GROUP_HEAD);
}

static struct ifpx_group *group_alloc(uint16_t nh_count)
{
    char *p = malloc(GROUP_HEAD + sizeof(struct ifpx_group) +
                     nh_count * sizeof(struct ifpx_nexthop));
    if (!p)
        return NULL;
    *(uint64_t *)(void *)p = 0;
    return (struct ifpx_group *)(void *)(p + GROUP_HEAD);
}

static void group_free(void *g)
{
    if (g)
        free((char *)g - GROUP_HEAD);
}

/* ---- ports ----------------------------------------------------------------------------- */

void ifpx_replica_init(struct ifpx_replica *r)
{
    memset(r, 0, sizeof *r);
    r->routes.klen = sizeof(struct ifpx_route_key);
    r->neighs.klen = sizeof(struct ifpx_neigh_key);
    r->groups.klen = sizeof(uint32_t);
}

void ifpx_replica_clear(struct ifpx_replica *r)
{
    for (size_t i = 0; i < r->n_ports; i++)
        free(r->ports[i].addrs);
    free(r->ports);
    ht_free(&r->routes, free);
    ht_free(&r->neighs, free);
    ht_free(&r->groups, group_free);
    free(r->rules);
    ifpx_replica_init(r);
}

struct ifpx_port_state *ifpx_rep_port(const struct ifpx_replica *r, uint16_t port_id)
{
    for (size_t i = 0; i < r->n_ports; i++)
        if (r->ports[i].port_id == port_id)
            return &r->ports[i];
    return NULL;
}

const struct ifpx_port_state *ifpx_replica_port(const struct ifpx_replica *r, uint16_t port_id)
{
    return ifpx_rep_port(r, port_id);
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
    struct ifpx_port_state *p = ifpx_rep_port(r, port_id);
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
    struct ifpx_port_state *p = ifpx_rep_port(r, port_id);
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
    while ((nb = ifpx_rep_next(&r->neighs, &cur)))
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

int ifpx_rep_addr_index(const struct ifpx_port_state *p, const struct ifpx_addr *a)
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
    int at = ifpx_rep_addr_index(p, &a);
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

static void make_route_key(int family, const uint8_t *dst, uint8_t prefixlen, uint32_t table,
                           uint32_t metric, struct ifpx_route_key *k)
{
    int bytes = family == AF_INET ? 4 : 16;
    memset(k, 0, sizeof *k);
    k->family = (uint8_t)family;
    k->prefixlen = prefixlen;
    k->table = table;
    k->metric = metric;
    for (int i = 0; i < bytes; i++) {
        int bits = prefixlen - 8 * i;
        uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
        k->dst[i] = dst[i] & mask;
    }
}

static void route_key(const struct ifpx_event *ev, struct ifpx_route_key *k)
{
    make_route_key(ev->family, ev->ip, ev->prefixlen, ev->table, ev->metric, k);
}

const struct ifpx_route *ifpx_replica_route(const struct ifpx_replica *r, int family,
                                            const uint8_t *dst, uint8_t prefixlen,
                                            uint32_t table, uint32_t metric)
{
    struct ifpx_route_key k;
    make_route_key(family, dst, prefixlen, table, metric, &k);
    return ifpx_rep_get(&r->routes, &k);
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
        out[i].flags = h->flags;
    }
}

/* A route no longer names `id`. */
static void group_unref(struct ifpx_replica *r, uint32_t id)
{
    struct ifpx_group *g = id ? ifpx_rep_get(&r->groups, &id) : NULL;
    if (g && *group_refs(g))
        --*group_refs(g);
}

static int route_add(struct ifpx_replica *r, const struct ifpx_event *ev)
{
    int grouped = ev->kind >= IFPX_GROUTE_ADD && ev->kind <= IFPX_GROUTE6_DEL;
    struct ifpx_group *g = NULL;
    if (grouped && ev->group && !(g = ifpx_rep_get(&r->groups, &ev->group)))
        return -EPROTO; /* a group never announced: the bridge and we disagree */
    struct ifpx_route_key k;
    route_key(ev, &k);
    void **slot = ht_place(&r->routes, &k);
    if (!slot)
        return -ENOMEM;
    struct ifpx_route *old = *slot;
    struct ifpx_route *rt = old;
    uint32_t old_group = old && old->grouped ? old->group : 0;
    if (!old || old->nh_count != ev->nh_count) {
        rt = malloc(sizeof *rt + ev->nh_count * sizeof rt->nh[0]);
        if (!rt)
            return -ENOMEM;
        free(old);
        if (!old)
            r->routes.n++;
        *slot = rt;
    }
    rt->key = k;
    rt->proto = ev->proto;
    rt->route_type = ev->route_type;
    rt->prefsrc_family = (uint8_t)ev->prefsrc_family;
    memset(rt->prefsrc, 0, sizeof rt->prefsrc);
    if (ev->prefsrc_family)
        memcpy(rt->prefsrc, ev->prefsrc, ev->prefsrc_family == AF_INET ? 4 : 16);
    rt->grouped = (uint8_t)grouped;
    rt->group = grouped ? ev->group : 0;
    rt->nh_count = ev->nh_count;
    copy_nexthops(rt->nh, ev);
    group_unref(r, old_group);
    if (g)
        ++*group_refs(g);
    return 0;
}

/* The group form: a group's next hops replaced (routes naming it follow, in O(1)). */
static int group_set(struct ifpx_replica *r, const struct ifpx_event *ev)
{
    void **slot = ht_place(&r->groups, &ev->group);
    if (!slot)
        return -1;
    struct ifpx_group *old = *slot;
    struct ifpx_group *g = old;
    if (!old || old->nh_count != ev->nh_count) {
        if (!(g = group_alloc(ev->nh_count)))
            return -ENOMEM;
        if (old)
            *group_refs(g) = *group_refs(old);
        else
            r->groups.n++;
        group_free(old);
        *slot = g;
    }
    g->id = ev->group;
    g->nh_count = ev->nh_count;
    copy_nexthops(g->nh, ev);
    return 0;
}

const struct ifpx_group *ifpx_replica_group(const struct ifpx_replica *r, uint32_t id)
{
    return ifpx_rep_get(&r->groups, &id);
}

const struct ifpx_group *ifpx_replica_next_group(const struct ifpx_replica *r, size_t *cursor)
{
    return ifpx_rep_next(&r->groups, cursor);
}

const struct ifpx_nexthop *ifpx_replica_hops(const struct ifpx_replica *r,
                                             const struct ifpx_route *rt, uint16_t *count)
{
    if (!rt->grouped) {
        *count = rt->nh_count;
        return rt->nh;
    }
    const struct ifpx_group *g = rt->group ? ifpx_replica_group(r, rt->group) : NULL;
    *count = g ? g->nh_count : 0;
    return g ? g->nh : NULL;
}

void ifpx_group_event(const struct ifpx_group *g, struct ifpx_event *ev)
{
    memset(ev, 0, offsetof(struct ifpx_event, nh));
    ev->kind = IFPX_NHGROUP_SET;
    ev->group = g->id;
    ev->nh_count = g->nh_count;
    memcpy(ev->nh, g->nh, g->nh_count * sizeof g->nh[0]);
}

ptrdiff_t ifpx_rep_rule(const struct ifpx_replica *r, const struct ifpx_rule *rule)
{
    for (size_t i = 0; i < r->n_rules; i++)
        if (!memcmp(&r->rules[i], rule, sizeof *rule))
            return (ptrdiff_t)i;
    return -1;
}

/* Rules are identified by all their fields, as the kernel identifies them. */
static int rule_change(struct ifpx_replica *r, const struct ifpx_rule *rule, int add)
{
    ptrdiff_t at = ifpx_rep_rule(r, rule);
    if (!add) {
        if (at >= 0)
            r->rules[at] = r->rules[--r->n_rules];
        return 0;
    }
    if (at >= 0)
        return 0;
    if (r->n_rules == r->cap_rules) {
        size_t cap = r->cap_rules ? 2 * r->cap_rules : 8;
        struct ifpx_rule *more = realloc(r->rules, cap * sizeof *more);
        if (!more)
            return -1;
        r->rules = more;
        r->cap_rules = cap;
    }
    r->rules[r->n_rules++] = *rule;
    return 0;
}

static int apply_event(struct ifpx_replica *r, const struct ifpx_event *ev)
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
    case IFPX_ROUTE_ADD: case IFPX_ROUTE6_ADD: case IFPX_GROUTE_ADD: case IFPX_GROUTE6_ADD:
        return route_add(r, ev);
    case IFPX_NHGROUP_SET:
        return group_set(r, ev);
    case IFPX_NHGROUP_DEL: {
        struct ifpx_group *g = ifpx_rep_get(&r->groups, &ev->group);
        if (g && *group_refs(g))
            return -EPROTO; /* routes still name it: the bridge and we disagree */
        group_free(ht_del(&r->groups, &ev->group));
        return 0;
    }
    case IFPX_ROUTE_DEL: case IFPX_ROUTE6_DEL: case IFPX_GROUTE_DEL: case IFPX_GROUTE6_DEL: {
        struct ifpx_route_key k;
        route_key(ev, &k);
        struct ifpx_route *gone = ht_del(&r->routes, &k);
        if (gone && gone->grouped)
            group_unref(r, gone->group);
        free(gone);
        return 0;
    }
    case IFPX_RULE_ADD: case IFPX_RULE6_ADD:
        return rule_change(r, &ev->rule, 1);
    case IFPX_RULE_DEL: case IFPX_RULE6_DEL:
        return rule_change(r, &ev->rule, 0);
    case IFPX_CFG_DONE:
        r->cfg_done = 1;
        return 0;
    default:
        return 0;
    }
}

int ifpx_replica_apply(struct ifpx_replica *r, const struct ifpx_event *ev)
{
    int rc = apply_event(r, ev);
    /* -EPROTO as it is; any other failure is an allocation that failed */
    return rc == -EPROTO ? rc : rc ? -ENOMEM : 0;
}

const struct ifpx_route *ifpx_replica_next_route(const struct ifpx_replica *r, size_t *cursor)
{
    return ifpx_rep_next(&r->routes, cursor);
}

const struct ifpx_neigh *ifpx_replica_next_neigh(const struct ifpx_replica *r, size_t *cursor)
{
    return ifpx_rep_next(&r->neighs, cursor);
}

void ifpx_route_event(const struct ifpx_route *rt, int deleted, struct ifpx_event *ev)
{
    memset(ev, 0, offsetof(struct ifpx_event, nh));
    if (rt->grouped && rt->key.family == AF_INET)
        ev->kind = deleted ? IFPX_GROUTE_DEL : IFPX_GROUTE_ADD;
    else if (rt->grouped)
        ev->kind = deleted ? IFPX_GROUTE6_DEL : IFPX_GROUTE6_ADD;
    else if (rt->key.family == AF_INET)
        ev->kind = deleted ? IFPX_ROUTE_DEL : IFPX_ROUTE_ADD;
    else
        ev->kind = deleted ? IFPX_ROUTE6_DEL : IFPX_ROUTE6_ADD;
    ev->group = rt->group;
    ev->family = rt->key.family;
    memcpy(ev->ip, rt->key.dst, 16);
    ev->prefixlen = rt->key.prefixlen;
    ev->table = rt->key.table;
    ev->metric = rt->key.metric;
    ev->proto = rt->proto;
    ev->route_type = rt->route_type;
    ev->prefsrc_family = rt->prefsrc_family;
    memcpy(ev->prefsrc, rt->prefsrc, 16);
    ev->nh_count = rt->nh_count;
    memcpy(ev->nh, rt->nh, rt->nh_count * sizeof rt->nh[0]);
}
