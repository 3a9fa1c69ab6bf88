/* Decode message payloads given as hex lines on stdin (a line starting with "S " holds a
 * reply to `snapshot` instead); print each event as a JSON line
 * with the field names of the wire contract. Exit 0 if every line decoded, 1 if some
 * line was rejected (its status is printed as {"error": N}). Used by the tests to hold
 * the C decoder to the Python models, and to feed it hostile input. */
#include "ifpx_wire.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A JSON string: the decoder passes names through as they came, so escape them. */
static void jstr(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void ip(int family, const uint8_t *raw)
{
    char text[INET6_ADDRSTRLEN];
    inet_ntop(family, raw, text, sizeof text);
    printf("\"%s\"", text);
}

static void mac(int has, const uint8_t *m)
{
    if (!has)
        printf("null");
    else
        printf("\"%02x:%02x:%02x:%02x:%02x:%02x\"", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static int print_event(const struct ifpx_event *e, void *ctx)
{
    (void)ctx;
    enum ifpx_kind k = e->kind;
    printf("{\"kind\": \"%s\"", ifpx_kind_name(k));
    if (k <= IFPX_ADDR6_DEL || (k >= IFPX_NEIGH_ADD && k <= IFPX_NEIGH6_DEL) ||
        (k >= IFPX_PORT_BOUND && k <= IFPX_PROXY_BACK))
    {
        printf(", \"port_id\": %u, \"proxy\": ", e->port_id);
        jstr(e->proxy);
        printf(", \"ifindex\": %u", e->ifindex);
    }
    switch (k) {
    case IFPX_MAC_CHANGE: printf(", \"mac\": "); mac(e->has_mac, e->mac); break;
    case IFPX_MTU_CHANGE: printf(", \"mtu\": %u", e->mtu); break;
    case IFPX_LINK_CHANGE:
        printf(", \"up\": %s, \"carrier\": %s", e->up ? "true" : "false",
               e->carrier ? "true" : "false");
        break;
    case IFPX_ADDR_ADD: case IFPX_ADDR_DEL: case IFPX_ADDR6_ADD: case IFPX_ADDR6_DEL:
        printf(", \"ip\": "); ip(e->family, e->ip); printf(", \"prefixlen\": %u", e->prefixlen);
        break;
    case IFPX_NEIGH_ADD: case IFPX_NEIGH_DEL: case IFPX_NEIGH6_ADD: case IFPX_NEIGH6_DEL:
        printf(", \"ip\": "); ip(e->family, e->ip);
        printf(", \"mac\": "); mac(e->has_mac, e->mac);
        printf(", \"state\": ");
        jstr(e->state);
        break;
    case IFPX_ROUTE_ADD: case IFPX_ROUTE_DEL: case IFPX_ROUTE6_ADD: case IFPX_ROUTE6_DEL:
        printf(", \"dst\": "); ip(e->family, e->ip);
        printf(", \"prefixlen\": %u, \"table\": %u, \"proto\": %u, \"metric\": %u, \"nexthops\": [",
               e->prefixlen, e->table, e->proto, e->metric);
        for (int i = 0; i < e->nh_count; i++) {
            const struct ifpx_nexthop *h = &e->nh[i];
            printf("%s{\"gateway\": ", i ? ", " : "");
            if (h->has_gateway) ip(h->gw_family, h->gateway); else printf("null");
            printf(", \"ifindex\": %u, \"port_id\": ", h->ifindex);
            if (h->port_id < 0) printf("null"); else printf("%d", h->port_id);
            printf(", \"weight\": %u}", h->weight);
        }
        printf("]");
        break;
    case IFPX_PROXY_RENAMED: printf(", \"old_name\": "); jstr(e->old_name); break;
    case IFPX_PROXY_BACK: printf(", \"old_ifindex\": %u", e->old_ifindex); break;
    case IFPX_RESYNC_BEGIN: printf(", \"reason\": "); jstr(e->reason); break;
    case IFPX_RESYNC_END:
        printf(", \"reason\": ");
        jstr(e->reason);
        printf(", \"changes\": %llu", (unsigned long long)e->changes);
        break;
    case IFPX_HEARTBEAT:
        printf(", \"topic_seqs\": {");
        for (int i = 0; i < e->n_topics; i++) {
            printf("%s", i ? ", " : "");
            jstr(e->topic_seqs[i].topic);
            printf(": %llu", (unsigned long long)e->topic_seqs[i].tseq);
        }
        printf("}, \"interval\": %.17g", e->interval);
        break;
    default: break;
    }
    printf("}\n");
    return 0;
}

int main(void)
{
    static char line[1 << 22];
    static char bin[1 << 21];
    int failed = 0;
    while (fgets(line, sizeof line, stdin)) {
        int snapshot = strncmp(line, "S ", 2) == 0;
        char *hex = snapshot ? line + 2 : line;
        size_t n = strcspn(hex, "\r\n");
        size_t len = n / 2;
        if (n % 2 || len > sizeof bin) {
            printf("{\"error\": %d}\n", IFPX_E_FORMAT);
            failed = 1;
            continue;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned b;
            if (sscanf(hex + 2 * i, "%2x", &b) != 1) { len = 0; break; }
            bin[i] = (char)b;
        }
        if (snapshot) {
            struct ifpx_snapshot snap;
            int rc = ifpx_decode_snapshot(bin, len, &snap, print_event, NULL);
            if (rc) {
                printf("{\"error\": %d}\n", rc);
                failed = 1;
            } else {
                printf("{\"snapshot\": {\"epoch\": %llu, \"seq\": %llu, \"cfg_done\": %s}}\n",
                       (unsigned long long)snap.epoch, (unsigned long long)snap.seq,
                       snap.cfg_done ? "true" : "false");
            }
            fflush(stdout);
            continue;
        }
        struct ifpx_header hdr;
        int rc = ifpx_decode_message(bin, len, &hdr, print_event, NULL);
        if (rc) {
            printf("{\"error\": %d}\n", rc);
            failed = 1;
        } else {
            printf("{\"header\": {\"epoch\": %llu, \"seq\": %llu, \"tseq\": %llu, \"topic\": ",
                   (unsigned long long)hdr.epoch, (unsigned long long)hdr.seq,
                   (unsigned long long)hdr.tseq);
            jstr(hdr.topic);
            printf(", \"events\": %u}}\n", hdr.n_events);
        }
        fflush(stdout);
    }
    return failed;
}
