/* One lcore's forwarding tables: see fwd.h. */
#include "fwd.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_jhash.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_mbuf.h>

#include "ifpx_json.h"

static struct rte_hash *make_hash(const char *what, unsigned lcore, uint32_t entries,
                                  uint32_t key_len, int socket)
{
    char name[RTE_HASH_NAMESIZE];
    snprintf(name, sizeof name, "%s%u", what, lcore);
    struct rte_hash_parameters p = {
        .name = name,
        .entries = entries,
        .key_len = key_len,
        .hash_func = rte_jhash,
        .socket_id = socket,
    };
    return rte_hash_create(&p);
}

int fwd_init(struct fwd_tables *t, unsigned lcore, uint32_t max_routes, uint32_t max_neighs,
             int socket)
{
    char name[RTE_LPM_NAMESIZE];
    memset(t, 0, sizeof *t);
    t->max_routes = max_routes;
    t->max_neighs = max_neighs;
    t->default4 = t->default6 = -1;
    snprintf(name, sizeof name, "ifpx4_%u", lcore);
    t->lpm = rte_lpm_create(name, socket,
                            &(struct rte_lpm_config){.max_rules = max_routes,
                                                     .number_tbl8s = 1 << 12});
    snprintf(name, sizeof name, "ifpx6_%u", lcore);
    t->lpm6 = rte_lpm6_create(name, socket,
                              &(struct rte_lpm6_config){.max_rules = max_routes,
                                                        .number_tbl8s = 1 << 14});
    t->prefixes = make_hash("pfx", lcore, max_routes, sizeof(struct fwd_prefix_key), socket);
    t->neighs = make_hash("nbr", lcore, max_neighs, sizeof(struct fwd_neigh_key), socket);
    /* a table has a handful of next-hop sets; a group per route is the worst case */
    t->max_groups = max_routes;
    t->groups = make_hash("grp", lcore, t->max_groups, sizeof(uint32_t), socket);
    /* rte_hash may hand out positions up to entries + its per-lcore caches */
    t->prefix = calloc(max_routes + 1024, sizeof *t->prefix);
    t->neigh = calloc(max_neighs + 1024, sizeof *t->neigh);
    t->group = calloc(t->max_groups + 1024, sizeof *t->group);
    return t->lpm && t->lpm6 && t->prefixes && t->neighs && t->groups && t->prefix &&
                   t->neigh && t->group
               ? 0
               : -1;
}

void fwd_free(struct fwd_tables *t)
{
    for (uint32_t i = 0; t->prefix && i < t->max_routes + 1024; i++)
        if (t->prefix[i]) {
            free(t->prefix[i]->alts);
            free(t->prefix[i]);
        }
    for (uint32_t i = 0; t->neigh && i < t->max_neighs + 1024; i++)
        free(t->neigh[i]);
    for (uint32_t i = 0; t->group && i < t->max_groups + 1024; i++)
        free(t->group[i]);
    free(t->prefix);
    free(t->neigh);
    free(t->group);
    rte_hash_free(t->groups);
    rte_lpm_free(t->lpm);
    rte_lpm6_free(t->lpm6);
    rte_hash_free(t->prefixes);
    rte_hash_free(t->neighs);
    memset(t, 0, sizeof *t);
}

/* ---- routes ------------------------------------------------------------------------- */

static uint32_t v4(const uint8_t *dst)
{
    uint32_t ip;
    memcpy(&ip, dst, 4);
    return ntohl(ip);
}

static void uninstall(struct fwd_tables *t, int32_t pos)
{
    struct fwd_prefix *p = t->prefix[pos];
    if (p->installed < 0)
        return;
    p->installed = -1;
    if (p->key.plen == 0) {
        if (p->key.family == AF_INET)
            t->default4 = -1;
        else
            t->default6 = -1;
    } else if (p->key.family == AF_INET) {
        rte_lpm_delete(t->lpm, v4(p->key.dst), p->key.plen);
    } else {
        rte_lpm6_delete(t->lpm6, p->key.dst, p->key.plen);
    }
}

/* An alternative's next hops: its group's in the group form (none while unknown). */
static const struct fwd_hops *hops_of(const struct fwd_tables *t, const struct fwd_alt *a)
{
    static const struct fwd_hops none;
    if (!a->group)
        return &a->own;
    int32_t pos = rte_hash_lookup(t->groups, &a->group);
    return pos >= 0 && t->group[pos] ? &t->group[pos]->hops : &none;
}

static int usable(const struct fwd_tables *t, const struct fwd_alt *a)
{
    return a->type != IFPX_RT_UNICAST || hops_of(t, a)->n_live > 0;
}

/* Puts the alternative the kernel uses into the LPM: the lowest metric with a live next
 * hop, or a drop route; if it drops or reaches a DPDK port (a route DPDK cannot follow
 * belongs to the exception path). */
static void install_best(struct fwd_tables *t, int32_t pos)
{
    struct fwd_prefix *p = t->prefix[pos];
    int best = -1;
    for (int i = 0; i < p->n_alts; i++)
        if (usable(t, &p->alts[i]) && (best < 0 || p->alts[i].metric < p->alts[best].metric))
            best = i;
    if (best < 0 ||
        (p->alts[best].type == IFPX_RT_UNICAST && hops_of(t, &p->alts[best])->n_hops == 0)) {
        uninstall(t, pos);
        return;
    }
    int rc = 0;
    if (p->key.plen == 0) {
        if (p->key.family == AF_INET)
            t->default4 = pos;
        else
            t->default6 = pos;
    } else if (p->key.family == AF_INET) {
        rc = rte_lpm_add(t->lpm, v4(p->key.dst), p->key.plen, (uint32_t)pos);
    } else {
        rc = rte_lpm6_add(t->lpm6, p->key.dst, p->key.plen, (uint32_t)pos);
    }
    if (rc < 0) {
        t->stats.routes_refused++;
        uninstall(t, pos);
        return;
    }
    p->installed = best;
}

static void prefix_key(const struct ifpx_event *ev, struct fwd_prefix_key *k)
{
    memset(k, 0, sizeof *k);
    k->family = (uint8_t)ev->family;
    k->plen = ev->prefixlen;
    memcpy(k->dst, ev->ip, ev->family == AF_INET ? 4 : 16);
}

static void fill_hops(struct fwd_hops *out, const struct ifpx_event *ev)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < ev->nh_count && out->n_hops < FWD_MAX_ECMP; i++) {
        const struct ifpx_nexthop *h = &ev->nh[i];
        /* The kernel never uses a dead hop. A linkdown one it still uses unless the
         * interface's ignore_routes_with_linkdown is set: so does this example. */
        if (h->flags & IFPX_NH_DEAD)
            continue;
        out->n_live++;
        if (h->port_id < 0)
            continue; /* through an interface no DPDK port is bound to */
        struct fwd_hop *hop = &out->hop[out->n_hops++];
        hop->port = (uint16_t)h->port_id;
        hop->has_gw = h->has_gateway;
        hop->gw_family = h->gw_family;
        if (h->has_gateway)
            memcpy(hop->gw, h->gateway, 16);
    }
}

static void set_hops(struct fwd_alt *a, const struct ifpx_event *ev)
{
    a->metric = ev->metric;
    a->type = ev->route_type;
    a->group = ev->kind >= IFPX_GROUTE_ADD ? ev->group : 0;
    fill_hops(&a->own, ev);
}

void fwd_group(struct fwd_tables *t, const struct ifpx_event *ev)
{
    if (ev->kind == IFPX_NHGROUP_DEL) {
        /* no route refers to it any more */
        int32_t pos = rte_hash_del_key(t->groups, &ev->group);
        if (pos >= 0) {
            free(t->group[pos]);
            t->group[pos] = NULL;
        }
        return;
    }
    int32_t pos = rte_hash_add_key(t->groups, &ev->group);
    int fresh = pos >= 0 && (uint32_t)pos < t->max_groups + 1024 && !t->group[pos];
    if (pos < 0 || (uint32_t)pos >= t->max_groups + 1024 ||
        (fresh && !(t->group[pos] = calloc(1, sizeof **t->group)))) {
        t->stats.routes_refused++;
        return;
    }
    struct fwd_group *g = t->group[pos];
    struct fwd_hops was = g->hops;
    g->id = ev->group;
    fill_hops(&g->hops, ev);
    /* Some hops died or came back: the routes through the group follow by this entry
     * alone. Only a group left without (or given back) a usable hop changes which
     * alternative a prefix installs: then, and rarely, the prefixes are gone through. */
    if (fresh || (!was.n_live == !g->hops.n_live && !was.n_hops == !g->hops.n_hops))
        return; /* (a new group: no route names it yet) */
    for (uint32_t i = 0; i < t->max_routes + 1024; i++) {
        const struct fwd_prefix *p = t->prefix[i];
        for (int a = 0; p && a < p->n_alts; a++)
            if (p->alts[a].group == ev->group) {
                install_best(t, (int32_t)i);
                break;
            }
    }
}

void fwd_route(struct fwd_tables *t, const struct ifpx_event *ev)
{
    struct fwd_prefix_key k;
    int add = ev->kind == IFPX_ROUTE_ADD || ev->kind == IFPX_ROUTE6_ADD ||
              ev->kind == IFPX_GROUTE_ADD || ev->kind == IFPX_GROUTE6_ADD;
    t->stats.route_events++;
    if (ev->table != FWD_MAIN_TABLE) {
        t->stats.routes_other_table++;
        return;
    }
    prefix_key(ev, &k);
    int32_t pos = rte_hash_lookup(t->prefixes, &k);
    if (pos < 0 && !add)
        return;
    if (pos < 0) {
        pos = rte_hash_add_key(t->prefixes, &k);
        if (pos < 0 || (uint32_t)pos >= t->max_routes + 1024 ||
            !(t->prefix[pos] = calloc(1, sizeof **t->prefix))) {
            if (pos >= 0)
                rte_hash_del_key(t->prefixes, &k);
            t->stats.routes_refused++;
            return;
        }
        t->prefix[pos]->key = k;
        t->prefix[pos]->installed = -1;
    }
    struct fwd_prefix *p = t->prefix[pos];
    int at = -1;
    for (int i = 0; i < p->n_alts; i++)
        if (p->alts[i].metric == ev->metric)
            at = i;
    if (add) {
        if (at < 0) {
            struct fwd_alt *more = p->n_alts < UINT8_MAX
                                       ? realloc(p->alts, (p->n_alts + 1u) * sizeof *more)
                                       : NULL;
            if (!more) {
                t->stats.routes_refused++;
                goto settle;
            }
            p->alts = more;
            at = p->n_alts++;
        }
        set_hops(&p->alts[at], ev);
    } else if (at >= 0) {
        p->alts[at] = p->alts[--p->n_alts];
    }
settle:
    if (p->n_alts) {
        install_best(t, pos);
        return;
    }
    uninstall(t, pos);
    free(p->alts);
    free(p);
    t->prefix[pos] = NULL;
    rte_hash_del_key(t->prefixes, &k);
}

/* ---- neighbours ---------------------------------------------------------------------------- */

static void neigh_key(const struct ifpx_event *ev, struct fwd_neigh_key *k)
{
    memset(k, 0, sizeof *k);
    k->port = ev->port_id;
    k->family = (uint8_t)ev->family;
    memcpy(k->ip, ev->ip, ev->family == AF_INET ? 4 : 16);
}

void fwd_neigh(struct fwd_tables *t, const struct ifpx_event *ev)
{
    struct fwd_neigh_key k;
    neigh_key(ev, &k);
    if (ev->kind == IFPX_NEIGH_DEL || ev->kind == IFPX_NEIGH6_DEL) {
        int32_t pos = rte_hash_del_key(t->neighs, &k);
        if (pos >= 0) {
            free(t->neigh[pos]);
            t->neigh[pos] = NULL;
        }
        return;
    }
    int32_t pos = rte_hash_add_key(t->neighs, &k);
    if (pos < 0 || (uint32_t)pos >= t->max_neighs + 1024 ||
        (!t->neigh[pos] && !(t->neigh[pos] = calloc(1, sizeof **t->neigh)))) {
        t->stats.neigh_refused++;
        return;
    }
    struct fwd_neigh *n = t->neigh[pos];
    n->key = k;
    n->has_mac = ev->has_mac;
    memcpy(n->mac, ev->mac, 6);
    snprintf(n->state, sizeof n->state, "%s", ev->state);
}

void fwd_forget_port(struct fwd_tables *t, uint16_t port)
{
    for (uint32_t i = 0; i < t->max_neighs + 1024; i++) {
        struct fwd_neigh *n = t->neigh[i];
        if (n && n->key.port == port) {
            rte_hash_del_key(t->neighs, &n->key);
            free(n);
            t->neigh[i] = NULL;
        }
    }
}

/* ---- datapath ----------------------------------------------------------------------------------- */

void fwd_classify(struct fwd_tables *t, const struct rte_mbuf *m)
{
    const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
    uint32_t next_hop;
    int32_t pos;
    t->stats.packets++;
    if (m->data_len < sizeof *eth)
        return;
    if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) &&
        m->data_len >= sizeof *eth + sizeof(struct rte_ipv4_hdr)) {
        const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eth + 1);
        pos = rte_lpm_lookup(t->lpm, rte_be_to_cpu_32(ip->dst_addr), &next_hop) == 0
                  ? (int32_t)next_hop
                  : t->default4;
    } else if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6) &&
               m->data_len >= sizeof *eth + sizeof(struct rte_ipv6_hdr)) {
        const struct rte_ipv6_hdr *ip = (const struct rte_ipv6_hdr *)(eth + 1);
        pos = rte_lpm6_lookup(t->lpm6, ip->dst_addr, &next_hop) == 0 ? (int32_t)next_hop
                                                                      : t->default6;
    } else {
        return;
    }
    /* A forwarder would now pick a next hop, rewrite the Ethernet header from the
     * neighbour table and transmit, or drop for a drop route (and send the ICMP error
     * an unreachable or prohibit route asks for); this example counts the decision. */
    if (pos < 0) {
        t->stats.lpm_misses++;
        return;
    }
    t->stats.lpm_hits++;
    const struct fwd_prefix *p = t->prefix[pos];
    if (p && p->installed >= 0 && p->alts[p->installed].type != IFPX_RT_UNICAST)
        t->stats.lpm_drops++;
}

/* ---- policy ------------------------------------------------------------------------------------ */

int fwd_main_table_decides(const struct ifpx_replica *rep)
{
    static const struct ifpx_rule none;
    for (size_t i = 0; i < rep->n_rules; i++) {
        struct ifpx_rule r = rep->rules[i];
        int table = r.table;
        if (r.action != IFPX_RULE_LOOKUP || (table != 255 && table != 254 && table != 253))
            return 0;
        /* Nothing selected: equal to an empty rule but for these. */
        r.family = 0;
        r.priority = r.table = 0;
        r.proto = 0;
        if (memcmp(&r, &none, sizeof r))
            return 0;
    }
    return 1;
}

/* ---- report ---------------------------------------------------------------------------------------- */

static int in_lpm(const struct fwd_tables *t, int32_t pos)
{
    const struct fwd_prefix *p = t->prefix[pos];
    uint32_t nh;
    if (p->key.plen == 0)
        return (p->key.family == AF_INET ? t->default4 : t->default6) == pos;
    if (p->key.family == AF_INET)
        return rte_lpm_is_rule_present(t->lpm, v4(p->key.dst), p->key.plen, &nh) == 1 &&
               nh == (uint32_t)pos;
    return rte_lpm6_is_rule_present(t->lpm6, p->key.dst, p->key.plen, &nh) == 1 &&
           nh == (uint32_t)pos;
}

void fwd_report(const struct fwd_tables *t, FILE *f)
{
    int first = 1;
    fprintf(f, "{\"routes\": [");
    for (uint32_t i = 0; i < t->max_routes + 1024; i++) {
        const struct fwd_prefix *p = t->prefix[i];
        char text[INET6_ADDRSTRLEN];
        if (!p || p->installed < 0)
            continue;
        const struct fwd_alt *a = &p->alts[p->installed];
        inet_ntop(p->key.family, p->key.dst, text, sizeof text);
        fprintf(f, "%s{\"dst\": \"%s/%u\", \"metric\": %u, \"in_lpm\": %s, \"type\": \"%s\", "
                   "\"nexthops\": [",
                first ? "" : ", ", text, p->key.plen, a->metric,
                in_lpm(t, (int32_t)i) ? "true" : "false", ifpx_route_type_name(a->type));
        first = 0;
        const struct fwd_hops *hops = hops_of(t, a);
        for (int h = 0; h < hops->n_hops; h++) {
            const struct fwd_hop *hop = &hops->hop[h];
            fprintf(f, "%s{\"port_id\": %u, \"gateway\": ", h ? ", " : "", hop->port);
            if (hop->has_gw)
                ifpx_json_ip(f, hop->gw_family, hop->gw);
            else
                fprintf(f, "null");
            fprintf(f, "}");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "], \"neighs\": [");
    first = 1;
    for (uint32_t i = 0; i < t->max_neighs + 1024; i++) {
        const struct fwd_neigh *n = t->neigh[i];
        if (!n)
            continue;
        fprintf(f, "%s", first ? "" : ", ");
        first = 0;
        ifpx_json_neigh(f, n->key.port, n->key.family, n->key.ip, n->has_mac, n->mac, n->state);
    }
    unsigned groups = 0;
    for (uint32_t i = 0; i < t->max_groups + 1024; i++)
        groups += t->group[i] != NULL;
    const struct fwd_stats *s = &t->stats;
    fprintf(f, "], \"groups\": %u, \"stats\": {", groups);
    fprintf(f, "\"route_events\": %llu, \"routes_other_table\": %llu, "
               "\"routes_refused\": %llu, \"neigh_refused\": %llu, \"packets\": %llu, "
               "\"lpm_hits\": %llu, \"lpm_misses\": %llu, \"lpm_drops\": %llu}}",
            (unsigned long long)s->route_events, (unsigned long long)s->routes_other_table,
            (unsigned long long)s->routes_refused, (unsigned long long)s->neigh_refused,
            (unsigned long long)s->packets, (unsigned long long)s->lpm_hits,
            (unsigned long long)s->lpm_misses, (unsigned long long)s->lpm_drops);
}
