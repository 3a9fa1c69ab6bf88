/* dpdk-worker's state reports (see main.c): written whole, then renamed into place. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "ifpx_json.h"
#include "worker.h"

static FILE *open_tmp(const char *path, char *tmp, size_t size)
{
    snprintf(tmp, size, "%s.tmp", path);
    return fopen(tmp, "w");
}

static void close_tmp(FILE *f, const char *tmp, const char *path)
{
    if (fclose(f) || rename(tmp, path))
        fprintf(stderr, "dpdk-worker: cannot write %s: %s\n", path, strerror(errno));
}

void report_ports(unsigned gen)
{
    char tmp[4200];
    FILE *f = open_tmp(cfg.report, tmp, sizeof tmp);
    if (!f)
        return;
    fprintf(f, "{\"gen\": %u, \"lcores\": [", gen);
    unsigned i = 0, lcore;
    RTE_LCORE_FOREACH(lcore)
        fprintf(f, "%s%u", i++ ? ", " : "", lcore);
    fprintf(f, "], \"ports\": [");
    uint16_t port;
    i = 0;
    RTE_ETH_FOREACH_DEV(port) {
        const struct port_view *p = &ports[port];
        uint16_t mtu = 0;
        struct rte_ether_addr mac;
        struct rte_eth_link link;
        memset(&link, 0, sizeof link);
        memset(&mac, 0, sizeof mac);
        rte_eth_dev_get_mtu(port, &mtu);
        rte_eth_macaddr_get(port, &mac);
        rte_eth_link_get_nowait(port, &link);
        fprintf(f, "%s{\"port_id\": %u, \"bound\": %s, \"proxy\": ", i++ ? ", " : "", port,
                p->bound ? "true" : "false");
        ifpx_json_str(f, p->proxy);
        fprintf(f, ", \"dpdk\": {\"mtu\": %u, \"mac\": ", mtu);
        ifpx_json_mac(f, 1, mac.addr_bytes);
        fprintf(f, ", \"link_up\": %s}, \"applied\": {\"mtu\": %u, \"mac\": ",
                link.link_status ? "true" : "false", p->mtu);
        ifpx_json_mac(f, p->has_mac, p->mac);
        fprintf(f, ", \"up\": %s, \"addrs\": [", p->up ? "true" : "false");
        for (unsigned a = 0; a < p->n_addrs; a++) {
            char text[64];
            inet_ntop(p->addrs[a].family, p->addrs[a].ip, text, sizeof text);
            fprintf(f, "%s\"%s/%u\"", a ? ", " : "", text, p->addrs[a].prefixlen);
        }
        fprintf(f, "]}, \"refused\": [");
        unsigned n = p->n_refused < MAX_REFUSALS ? p->n_refused : MAX_REFUSALS;
        for (unsigned r = 0; r < n; r++) {
            const struct refusal *x = &p->refused[r];
            fprintf(f, "%s{\"what\": \"%s\", \"value\": \"%s\", \"error\": %d}", r ? ", " : "",
                    x->what, x->value, x->error);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
    close_tmp(f, tmp, cfg.report);
}

void report_lcore(struct lcore_ctx *lc, unsigned gen)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s.lcore%u", cfg.report, lc->lcore);
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f)
        return;
    const struct ifpx_stats *s = ifpx_stats(lc->sub);
    fprintf(f, "{\"gen\": %u, \"lcore\": %u, \"epoch\": %llu, \"fwd\": ", gen, lc->lcore,
            (unsigned long long)ifpx_epoch(lc->sub));
    fwd_report(&lc->fwd, f);
    fprintf(f, ", \"main_table_decides\": %s",
            fwd_main_table_decides(ifpx_state(lc->sub)) ? "true" : "false");
    fprintf(f, ", \"subscriber\": {\"messages\": %llu, \"events\": %llu, \"gaps\": %llu, "
               "\"journal_repairs\": %llu, \"snapshot_repairs\": %llu, \"bad_messages\": %llu}, "
               "\"state\": ",
            (unsigned long long)s->messages, (unsigned long long)s->events,
            (unsigned long long)s->gaps, (unsigned long long)s->journal_repairs,
            (unsigned long long)s->snapshot_repairs, (unsigned long long)s->bad_messages);
    ifpx_replica_json(ifpx_state(lc->sub), f);
    fprintf(f, "}\n");
    close_tmp(f, tmp, path);
}
