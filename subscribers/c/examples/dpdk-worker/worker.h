/* The dpdk-worker's shared state: what main.c's lcores and report.c both see. */
#ifndef DPDK_WORKER_H
#define DPDK_WORKER_H

#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "fwd.h"
#include "ifpx.h"

#define BURST 32
#define MAX_REFUSALS 16
#define MAX_ADDRS 32

struct refusal {
    char what[8];
    char value[24];
    int error;
};

/* What the main lcore applied to one port, as ifpx told it. */
struct port_view {
    int bound;
    char proxy[IFPX_NAME_LEN];
    uint32_t mtu;
    int has_mac;
    uint8_t mac[6];
    int up;
    unsigned n_addrs;
    struct ifpx_addr addrs[MAX_ADDRS];
    unsigned n_refused;
    struct refusal refused[MAX_REFUSALS];  /* the latest ones */
};

struct lcore_ctx {
    unsigned lcore, queue;
    int is_main;
    struct ifpx_sub *sub;
    struct fwd_tables fwd;
    unsigned reported;     /* the last gen written */
};

/* The command line after EAL's arguments. */
struct worker_cfg {
    const char *events, *control, *report, *name;
    uint32_t max_routes;
    int busy;
    const char *binds[RTE_MAX_ETHPORTS];
    int n_binds;
};

extern struct worker_cfg cfg;
extern struct port_view ports[RTE_MAX_ETHPORTS];
extern struct lcore_ctx lcores[RTE_MAX_LCORE];

/* FILE: the ports as DPDK reports them and what was applied or refused (main lcore). */
void report_ports(unsigned gen);
/* FILE.lcoreN: lcore N's forwarding tables, counters and replica. */
void report_lcore(struct lcore_ctx *lc, unsigned gen);

#endif
