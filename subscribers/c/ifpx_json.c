/* JSON text for C-side tools: see ifpx_json.h. */
#include "ifpx_json.h"

#include <arpa/inet.h>
#include <sys/socket.h>

/* A JSON string: the decoder passes names through as they came, so escape them. */
void ifpx_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void ifpx_json_ip(FILE *f, int family, const uint8_t *raw)
{
    char text[INET6_ADDRSTRLEN];
    inet_ntop(family, raw, text, sizeof text);
    fprintf(f, "\"%s\"", text);
}

void ifpx_json_mac(FILE *f, int has, const uint8_t *m)
{
    if (!has)
        fprintf(f, "null");
    else
        fprintf(f, "\"%02x:%02x:%02x:%02x:%02x:%02x\"", m[0], m[1], m[2], m[3], m[4], m[5]);
}

void ifpx_json_neigh(FILE *f, uint16_t port_id, int family, const uint8_t *ip, int has_mac,
                     const uint8_t *mac, const char *state)
{
    fprintf(f, "{\"port_id\": %u, \"ip\": ", port_id);
    ifpx_json_ip(f, family, ip);
    fprintf(f, ", \"mac\": ");
    ifpx_json_mac(f, has_mac, mac);
    fprintf(f, ", \"state\": ");
    ifpx_json_str(f, state);
    fputc('}', f);
}

static void json_forwarding(FILE *f, int route_type, int prefsrc_family, const uint8_t *prefsrc)
{
    fprintf(f, ", \"type\": \"%s\", \"prefsrc\": ", ifpx_route_type_name(route_type));
    if (prefsrc_family)
        ifpx_json_ip(f, prefsrc_family, prefsrc);
    else
        fprintf(f, "null");
}

void ifpx_json_route_tail(FILE *f, const struct ifpx_nexthop *nh, int count, int route_type,
                          int prefsrc_family, const uint8_t *prefsrc)
{
    ifpx_json_hops(f, nh, count);
    json_forwarding(f, route_type, prefsrc_family, prefsrc);
}

void ifpx_json_hops(FILE *f, const struct ifpx_nexthop *nh, int count)
{
    fprintf(f, ", \"nexthops\": [");
    for (int i = 0; i < count; i++) {
        const struct ifpx_nexthop *h = &nh[i];
        const char *names[3];
        int n;
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
        fprintf(f, ", \"weight\": %u, \"flags\": [", h->weight);
        ifpx_hop_flag_names(h->flags, names, &n);
        for (int j = 0; j < n; j++)
            fprintf(f, "%s\"%s\"", j ? ", " : "", names[j]);
        fprintf(f, "]}");
    }
    fprintf(f, "]");
}

static void opt_u64(FILE *f, const char *name, int has, unsigned long long v)
{
    if (has)
        fprintf(f, ", \"%s\": %llu", name, v);
    else
        fprintf(f, ", \"%s\": null", name);
}

static void opt_pair(FILE *f, const char *name, int has, unsigned long lo, unsigned long hi)
{
    if (has)
        fprintf(f, ", \"%s\": [%lu, %lu]", name, lo, hi);
    else
        fprintf(f, ", \"%s\": null", name);
}

static void opt_name(FILE *f, const char *name, const char *value)
{
    fprintf(f, ", \"%s\": ", name);
    if (value[0])
        ifpx_json_str(f, value);
    else
        fprintf(f, "null");
}

void ifpx_json_rule_fields(FILE *f, const struct ifpx_rule *r)
{
    fprintf(f, ", \"priority\": %u, \"action\": \"%s\", \"table\": %u", r->priority,
            ifpx_rule_action_name(r->action), r->table);
    opt_u64(f, "goto", r->has_goto, r->goto_priority);
    fprintf(f, ", \"src_len\": %u, \"dst_len\": %u, \"tos\": %u, \"fwmark\": %u, \"fwmask\": %u",
            r->src_len, r->dst_len, r->tos, r->fwmark, r->fwmask);
    opt_name(f, "iif", r->iif);
    opt_name(f, "oif", r->oif);
    fprintf(f, ", \"invert\": %s", r->invert ? "true" : "false");
    opt_u64(f, "suppress_prefixlen", r->has_suppress_prefixlen, r->suppress_prefixlen);
    opt_u64(f, "suppress_ifgroup", r->has_suppress_ifgroup, r->suppress_ifgroup);
    fprintf(f, ", \"l3mdev\": %s, \"proto\": %u", r->l3mdev ? "true" : "false", r->proto);
    opt_u64(f, "ip_proto", r->has_ip_proto, r->ip_proto);
    opt_pair(f, "sport", r->has_sport, r->sport[0], r->sport[1]);
    opt_pair(f, "dport", r->has_dport, r->dport[0], r->dport[1]);
    opt_pair(f, "uid", r->has_uid, r->uid[0], r->uid[1]);
    opt_u64(f, "tun_id", r->has_tun_id, (unsigned long long)r->tun_id);
    opt_u64(f, "flow", r->has_flow, r->flow);
    fprintf(f, ", \"src\": ");
    if (r->has_src)
        ifpx_json_ip(f, r->family, r->src);
    else
        fprintf(f, "null");
    fprintf(f, ", \"dst\": ");
    if (r->has_dst)
        ifpx_json_ip(f, r->family, r->dst);
    else
        fprintf(f, "null");
}

void ifpx_json_event(FILE *f, const struct ifpx_event *e)
{
    enum ifpx_kind k = e->kind;
    fprintf(f, "{\"kind\": \"%s\"", ifpx_kind_name(k));
    if (ifpx_kind_is_port_scoped(k)) {
        fprintf(f, ", \"port_id\": %u, \"proxy\": ", e->port_id);
        ifpx_json_str(f, e->proxy);
        fprintf(f, ", \"ifindex\": %u", e->ifindex);
    }
    switch (k) {
    case IFPX_MAC_CHANGE: fprintf(f, ", \"mac\": "); ifpx_json_mac(f, e->has_mac, e->mac); break;
    case IFPX_MTU_CHANGE: fprintf(f, ", \"mtu\": %u", e->mtu); break;
    case IFPX_LINK_CHANGE:
        fprintf(f, ", \"up\": %s, \"carrier\": %s", e->up ? "true" : "false",
               e->carrier ? "true" : "false");
        break;
    case IFPX_ADDR_ADD: case IFPX_ADDR_DEL: case IFPX_ADDR6_ADD: case IFPX_ADDR6_DEL:
        fprintf(f, ", \"ip\": "); ifpx_json_ip(f, e->family, e->ip); fprintf(f, ", \"prefixlen\": %u", e->prefixlen);
        break;
    case IFPX_NEIGH_ADD: case IFPX_NEIGH_DEL: case IFPX_NEIGH6_ADD: case IFPX_NEIGH6_DEL:
        fprintf(f, ", \"ip\": "); ifpx_json_ip(f, e->family, e->ip);
        fprintf(f, ", \"mac\": "); ifpx_json_mac(f, e->has_mac, e->mac);
        fprintf(f, ", \"state\": ");
        ifpx_json_str(f, e->state);
        break;
    case IFPX_ROUTE_ADD: case IFPX_ROUTE_DEL: case IFPX_ROUTE6_ADD: case IFPX_ROUTE6_DEL:
        fprintf(f, ", \"dst\": "); ifpx_json_ip(f, e->family, e->ip);
        fprintf(f, ", \"prefixlen\": %u, \"table\": %u, \"proto\": %u, \"metric\": %u",
               e->prefixlen, e->table, e->proto, e->metric);
        ifpx_json_route_tail(f, e->nh, e->nh_count, e->route_type, e->prefsrc_family, e->prefsrc);
        break;
    case IFPX_GROUTE_ADD: case IFPX_GROUTE_DEL: case IFPX_GROUTE6_ADD: case IFPX_GROUTE6_DEL:
        fprintf(f, ", \"dst\": "); ifpx_json_ip(f, e->family, e->ip);
        fprintf(f, ", \"prefixlen\": %u, \"table\": %u, \"proto\": %u, \"metric\": %u, \"group\": %u",
               e->prefixlen, e->table, e->proto, e->metric, e->group);
        json_forwarding(f, e->route_type, e->prefsrc_family, e->prefsrc);
        break;
    case IFPX_NHGROUP_SET:
        fprintf(f, ", \"group\": %u", e->group);
        ifpx_json_hops(f, e->nh, e->nh_count);
        break;
    case IFPX_NHGROUP_DEL: fprintf(f, ", \"group\": %u", e->group); break;
    case IFPX_RULE_ADD: case IFPX_RULE_DEL: case IFPX_RULE6_ADD: case IFPX_RULE6_DEL:
        ifpx_json_rule_fields(f, &e->rule);
        break;
    case IFPX_PROXY_RENAMED: fprintf(f, ", \"old_name\": "); ifpx_json_str(f, e->old_name); break;
    case IFPX_PROXY_BACK: fprintf(f, ", \"old_ifindex\": %u", e->old_ifindex); break;
    case IFPX_RESYNC_BEGIN: fprintf(f, ", \"reason\": "); ifpx_json_str(f, e->reason); break;
    case IFPX_RESYNC_END:
        fprintf(f, ", \"reason\": ");
        ifpx_json_str(f, e->reason);
        fprintf(f, ", \"changes\": %llu", (unsigned long long)e->changes);
        break;
    case IFPX_HEARTBEAT:
        fprintf(f, ", \"topic_seqs\": {");
        for (int i = 0; i < e->n_topics; i++) {
            fprintf(f, "%s", i ? ", " : "");
            ifpx_json_str(f, e->topic_seqs[i].topic);
            fprintf(f, ": %llu", (unsigned long long)e->topic_seqs[i].tseq);
        }
        fprintf(f, "}, \"interval\": %.17g", e->interval);
        break;
    default: break;
    }
    fprintf(f, "}");
}

