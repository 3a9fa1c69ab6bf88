/* The difference between two replicas as events, one at a time: see ifpx_replica.h. */
#include "ifpx_replica.h"
#include "ifpx_replica_int.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ifpx_json.h"

/* ---- difference --------------------------------------------------------------------------- */

enum { D_OLD_BINDINGS, D_NEW_BINDINGS, D_NEIGH_DEL, D_NEIGH_ADD, D_RULE_DEL, D_RULE_ADD,
       D_GROUP_SET, D_ROUTE_DEL, D_ROUTE_ADD, D_GROUP_DEL, D_END };
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
    const struct ifpx_port_state *p = ifpx_rep_port(r, port_id);
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
    return a->proto == b->proto && a->route_type == b->route_type &&
           a->prefsrc_family == b->prefsrc_family &&
           !memcmp(a->prefsrc, b->prefsrc, sizeof a->prefsrc) && a->grouped == b->grouped &&
           a->group == b->group && a->nh_count == b->nh_count &&
           !memcmp(a->nh, b->nh, a->nh_count * sizeof a->nh[0]);
}

static int groups_equal(const struct ifpx_group *a, const struct ifpx_group *b)
{
    return a->nh_count == b->nh_count && !memcmp(a->nh, b->nh, a->nh_count * sizeof a->nh[0]);
}

/* The group form: groups new or changed before the routes (a route never names a group
 * its holder lacks), groups gone after them. */
static int groups_step(struct ifpx_diff *d, struct ifpx_event *ev)
{
    const struct ifpx_replica *old = d->old, *target = d->target;
    const struct ifpx_group *g;
    if (d->phase == D_GROUP_SET) {
        while ((g = ifpx_rep_next(&target->groups, &d->i))) {
            const struct ifpx_group *was = ifpx_rep_get(&old->groups, &g->id);
            if (!was || !groups_equal(was, g)) {
                ifpx_group_event(g, ev);
                return 1;
            }
        }
        d->phase = D_ROUTE_DEL;
        d->i = 0;
        return 0;
    }
    while ((g = ifpx_rep_next(&old->groups, &d->i)))
        if (!ifpx_rep_get(&target->groups, &g->id)) {
            memset(ev, 0, offsetof(struct ifpx_event, nh));
            ev->kind = IFPX_NHGROUP_DEL;
            ev->group = g->id;
            return 1;
        }
    d->phase = D_END;
    return 0;
}

static int neighs_equal(const struct ifpx_neigh *a, const struct ifpx_neigh *b)
{
    return a->has_mac == b->has_mac && !memcmp(a->mac, b->mac, 6) && !strcmp(a->state, b->state);
}

/* One step of a target port's events; 1 when it produced one. */
static int port_step(struct ifpx_diff *d, const struct ifpx_port_state *np, struct ifpx_event *ev)
{
    const struct ifpx_port_state *ob = ifpx_rep_port(d->old, np->port_id);
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
            if (ifpx_rep_addr_index(np, a) < 0) {
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
            if (d->fresh || ifpx_rep_addr_index(op, a) < 0) {
                addr_event(ev, np, a, 1);
                return 1;
            }
        }
        d->j = S_NEXT;
        return 0;
    }
    return 0;
}

/* Bindings that went away or whose proxy is gone, then new and changed ports. */
static int bindings_step(struct ifpx_diff *d, struct ifpx_event *ev)
{
    const struct ifpx_replica *old = d->old, *target = d->target;
    if (d->phase == D_OLD_BINDINGS) {
        while (d->i < old->n_ports) {
            const struct ifpx_port_state *ob = &old->ports[d->i++];
            const struct ifpx_port_state *nb = ifpx_rep_port(target, ob->port_id);
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
    }
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
}

/* Neighbours removed (of ports still there), then neighbours added or changed. */
static int neighs_step(struct ifpx_diff *d, struct ifpx_event *ev)
{
    const struct ifpx_replica *old = d->old, *target = d->target;
    const struct ifpx_neigh *n;
    if (d->phase == D_NEIGH_DEL) {
        while ((n = ifpx_rep_next(&old->neighs, &d->i))) {
            const struct ifpx_port_state *np = active(target, n->key.port_id);
            /* neighbours of a port that is gone went with it */
            if (np && !ifpx_rep_get(&target->neighs, &n->key) && !is_fresh(d, np)) {
                neigh_event(ev, np, n, 0);
                return 1;
            }
        }
        d->phase = D_NEIGH_ADD;
        d->i = 0;
        return 0;
    }
    while ((n = ifpx_rep_next(&target->neighs, &d->i))) {
        const struct ifpx_port_state *np = active(target, n->key.port_id);
        const struct ifpx_neigh *was = ifpx_rep_get(&old->neighs, &n->key);
        if (np && (!was || !neighs_equal(was, n) || is_fresh(d, np))) {
            neigh_event(ev, np, n, 1);
            return 1;
        }
    }
    d->phase = D_RULE_DEL;
    d->i = 0;
    return 0;
}

static void rule_event(struct ifpx_event *ev, const struct ifpx_rule *rule, int add)
{
    int six = rule->family == AF_INET6;
    memset(ev, 0, offsetof(struct ifpx_event, nh));
    ev->kind = add ? (six ? IFPX_RULE6_ADD : IFPX_RULE_ADD) : (six ? IFPX_RULE6_DEL : IFPX_RULE_DEL);
    ev->rule = *rule;
}

/* Rules removed, then rules added. */
static int rules_step(struct ifpx_diff *d, struct ifpx_event *ev)
{
    const struct ifpx_replica *from = d->phase == D_RULE_DEL ? d->old : d->target;
    const struct ifpx_replica *other = d->phase == D_RULE_DEL ? d->target : d->old;
    while (d->i < from->n_rules) {
        const struct ifpx_rule *rule = &from->rules[d->i++];
        if (ifpx_rep_rule(other, rule) < 0) {
            rule_event(ev, rule, d->phase == D_RULE_ADD);
            return 1;
        }
    }
    d->phase = d->phase == D_RULE_DEL ? D_RULE_ADD : D_GROUP_SET;
    d->i = 0;
    return 0;
}

/* Routes removed, then routes added or changed. */
static int routes_step(struct ifpx_diff *d, struct ifpx_event *ev)
{
    const struct ifpx_replica *old = d->old, *target = d->target;
    const struct ifpx_route *rt;
    if (d->phase == D_ROUTE_DEL) {
        while ((rt = ifpx_rep_next(&old->routes, &d->i)))
            if (!ifpx_rep_get(&target->routes, &rt->key)) {
                ifpx_route_event(rt, 1, ev);
                return 1;
            }
        d->phase = D_ROUTE_ADD;
        d->i = 0;
        return 0;
    }
    while ((rt = ifpx_rep_next(&target->routes, &d->i))) {
        const struct ifpx_route *was = ifpx_rep_get(&old->routes, &rt->key);
        if (!was || !routes_equal(was, rt)) {
            ifpx_route_event(rt, 0, ev);
            return 1;
        }
    }
    d->phase = D_GROUP_DEL;
    d->i = 0;
    return 0;
}

/* 1 with an event, or 0 once a phase is over (the caller asks again until D_END). */
static int diff_step(struct ifpx_diff *d, struct ifpx_event *ev)
{
    switch (d->phase) {
    case D_OLD_BINDINGS:
    case D_NEW_BINDINGS:
        return bindings_step(d, ev);
    case D_NEIGH_DEL:
    case D_NEIGH_ADD:
        return neighs_step(d, ev);
    case D_RULE_DEL:
    case D_RULE_ADD:
        return rules_step(d, ev);
    case D_ROUTE_DEL:
    case D_ROUTE_ADD:
        return routes_step(d, ev);
    case D_GROUP_SET:
    case D_GROUP_DEL:
        return groups_step(d, ev);
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
