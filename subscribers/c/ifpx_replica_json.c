/* A replica as JSON, in the shape of the Python State model: see ifpx_replica.h. */
#include "ifpx_replica.h"
#include "ifpx_replica_int.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ifpx_json.h"

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
    while ((rt = ifpx_rep_next(&r->routes, &cur))) {
        char text[INET6_ADDRSTRLEN];
        inet_ntop(rt->key.family, rt->key.dst, text, sizeof text);
        fprintf(f, "%s{\"family\": %d, \"dst\": \"%s/%u\", \"table\": %u, \"proto\": %u, "
                   "\"metric\": %u",
                first ? "" : ", ", rt->key.family == AF_INET ? 4 : 6, text, rt->key.prefixlen,
                rt->key.table, rt->proto, rt->key.metric);
        first = 0;
        uint16_t n;
        const struct ifpx_nexthop *nh = ifpx_replica_hops(r, rt, &n);
        ifpx_json_route_tail(f, nh, n, rt->route_type, rt->prefsrc_family, rt->prefsrc);
        fprintf(f, "}");
    }
    fprintf(f, "], \"neighs\": [");
    const struct ifpx_neigh *nb;
    cur = 0;
    first = 1;
    while ((nb = ifpx_rep_next(&r->neighs, &cur))) {
        fprintf(f, "%s", first ? "" : ", ");
        first = 0;
        ifpx_json_neigh(f, nb->key.port_id, nb->key.family, nb->key.ip, nb->has_mac, nb->mac,
                        nb->state);
    }
    fprintf(f, "], \"rules\": [");
    for (size_t i = 0; i < r->n_rules; i++) {
        fprintf(f, "%s{\"family\": %d", i ? ", " : "", r->rules[i].family == AF_INET ? 4 : 6);
        ifpx_json_rule_fields(f, &r->rules[i]);
        fprintf(f, "}");
    }
    fprintf(f, "]}");
}
