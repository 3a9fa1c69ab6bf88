/* dpdk-worker: a DPDK application that follows ifpx.
 *
 *   dpdk-worker <EAL args> -- [--events EP] [--control EP] [--bind PORT=PROXY]...
 *                             [--report FILE] [--max-routes N] [--busy] [--name NAME]
 *
 * Every lcore runs the same loop with its own ifpx subscriber and its own forwarding
 * tables (fwd.h: rte_lpm, rte_lpm6, neighbours), so no lcore waits for another. The
 * main lcore also applies the port events to the ports through the ethdev API:
 * mtu_change -> rte_eth_dev_set_mtu, mac_change -> rte_eth_dev_default_mac_addr_set,
 * link_change -> rte_eth_dev_set_link_up/down. A value DPDK refuses (net_tap takes an
 * MTU of at most 1504) is logged and reported, and the worker carries on.
 *
 * Each lcore's subscriber reports what it has applied to the bridge as NAME-lcoreN
 * (`ifpx ctl workers`, `ifpx ctl wait`); NAME defaults to host:pid, so give one that
 * stays the same across restarts.
 *
 * Without --bind, each port is bound to the interface DPDK says it sits on (net_tap
 * reports it), so `--vdev=net_tap0,iface=dtap0` needs nothing else.
 *
 * On SIGUSR1 every lcore writes its state: FILE gets the ports as DPDK itself reports
 * them (rte_eth_dev_get_mtu, rte_eth_macaddr_get, rte_eth_link_get_nowait) and what was
 * applied or refused; FILE.lcoreN gets lcore N's LPM routes (each checked in the LPM),
 * neighbours, counters and the subscriber's replica. Each file carries "gen", the number
 * of reports asked so far (the first is written unasked, once synced).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "fwd.h"
#include "ifpx.h"
#include "ifpx_json.h"
#include "worker.h"

struct worker_cfg cfg = {.max_routes = 65536};
struct port_view ports[RTE_MAX_ETHPORTS];
struct lcore_ctx lcores[RTE_MAX_LCORE];

static volatile sig_atomic_t stopping;
static atomic_uint wanted_gen = 1;  /* the first report is wanted once synced */

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&wanted_gen, 1);
}

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static void log_line(int level, const char *text, void *ctx)
{
    const struct lcore_ctx *lc = ctx;
    fprintf(stderr, "dpdk-worker[lcore %u]: level=%d %s\n", lc ? lc->lcore : 0, level, text);
}

/* ---- port events (main lcore) ------------------------------------------------------- */

/* The port an event is about, when this lcore applies port events (the main one) and
 * DPDK has that port; NULL otherwise. */
static struct port_view *main_port(const struct ifpx_event *ev, void *ctx)
{
    const struct lcore_ctx *lc = ctx;
    if (!lc->is_main)
        return NULL;
    if (!rte_eth_dev_is_valid_port(ev->port_id)) {
        fprintf(stderr, "dpdk-worker: event for port %u, which DPDK does not have\n",
                ev->port_id);
        return NULL;
    }
    return &ports[ev->port_id];
}

/* A value DPDK would not take: logged, and kept for the report. */
static void refuse(struct port_view *p, uint16_t port_id, const char *what, const char *value,
                   int error)
{
    struct refusal *r = &p->refused[p->n_refused++ % MAX_REFUSALS];
    snprintf(r->what, sizeof r->what, "%s", what);
    snprintf(r->value, sizeof r->value, "%s", value);
    r->error = error;
    /* "MTU", "MAC" in the log, as operators write them; "link" stays a word */
    char label[8];
    size_t i = 0;
    for (; what[i] && i < sizeof label - 1; i++)
        label[i] = (char)(strcmp(what, "link") ? toupper((unsigned char)what[i]) : what[i]);
    label[i] = '\0';
    fprintf(stderr, "dpdk-worker: port %u refuses %s %s: %s\n", port_id, label, value,
            rte_strerror(-error));
}

static int on_mtu(const struct ifpx_event *ev, void *ctx)
{
    struct port_view *p = main_port(ev, ctx);
    if (!p)
        return 0;
    p->mtu = ev->mtu;
    uint16_t now;
    if (rte_eth_dev_get_mtu(ev->port_id, &now) == 0 && now == ev->mtu)
        return 0;
    int rc = rte_eth_dev_set_mtu(ev->port_id, (uint16_t)(ev->mtu > UINT16_MAX ? 0 : ev->mtu));
    if (rc < 0 || ev->mtu > UINT16_MAX) {
        char value[24];
        snprintf(value, sizeof value, "%u", ev->mtu);
        refuse(p, ev->port_id, "mtu", value, rc < 0 ? rc : -EINVAL);
    }
    return 0;
}

static int on_mac(const struct ifpx_event *ev, void *ctx)
{
    struct port_view *p = main_port(ev, ctx);
    if (!p)
        return 0;
    struct rte_ether_addr mac;
    p->has_mac = ev->has_mac;
    memcpy(p->mac, ev->mac, 6);
    memcpy(mac.addr_bytes, ev->mac, 6);
    int rc = rte_eth_dev_default_mac_addr_set(ev->port_id, &mac);
    if (rc < 0) {
        char value[24];
        snprintf(value, sizeof value, "%02x:%02x:%02x:%02x:%02x:%02x", ev->mac[0], ev->mac[1],
                 ev->mac[2], ev->mac[3], ev->mac[4], ev->mac[5]);
        refuse(p, ev->port_id, "mac", value, rc);
    }
    return 0;
}

static int on_link(const struct ifpx_event *ev, void *ctx)
{
    struct port_view *p = main_port(ev, ctx);
    if (!p)
        return 0;
    p->up = ev->up;
    int rc = ev->up ? rte_eth_dev_set_link_up(ev->port_id) : rte_eth_dev_set_link_down(ev->port_id);
    if (rc < 0)
        refuse(p, ev->port_id, "link", ev->up ? "up" : "down", rc);
    return 0;
}

static int on_addr(const struct ifpx_event *ev, void *ctx)
{
    struct port_view *p = main_port(ev, ctx);
    if (!p)
        return 0;
    struct ifpx_addr a = {(uint8_t)ev->family, ev->prefixlen, {0}};
    memcpy(a.ip, ev->ip, 16);
    unsigned i;
    for (i = 0; i < p->n_addrs && memcmp(&p->addrs[i], &a, sizeof a); i++)
        ;
    int add = ev->kind == IFPX_ADDR_ADD || ev->kind == IFPX_ADDR6_ADD;
    if (add && i == p->n_addrs && p->n_addrs < MAX_ADDRS)
        p->addrs[p->n_addrs++] = a;
    else if (!add && i < p->n_addrs)
        p->addrs[i] = p->addrs[--p->n_addrs];
    return 0;
}

static int on_bound(const struct ifpx_event *ev, void *ctx)
{
    struct port_view *p = main_port(ev, ctx);
    fwd_forget_port(&((struct lcore_ctx *)ctx)->fwd, ev->port_id);
    if (p) {
        unsigned n_refused = p->n_refused;
        struct refusal refused[MAX_REFUSALS];
        memcpy(refused, p->refused, sizeof refused);
        memset(p, 0, sizeof *p);
        p->n_refused = n_refused;
        memcpy(p->refused, refused, sizeof refused);
        p->bound = ev->kind != IFPX_PORT_UNBOUND && ev->kind != IFPX_PROXY_GONE;
        snprintf(p->proxy, sizeof p->proxy, "%s", ev->proxy);
    }
    return 0;
}

static int on_renamed(const struct ifpx_event *ev, void *ctx)
{
    struct port_view *p = main_port(ev, ctx);
    if (p)
        snprintf(p->proxy, sizeof p->proxy, "%s", ev->proxy);
    return 0;
}

static int on_route(const struct ifpx_event *ev, void *ctx)
{
    fwd_route(&((struct lcore_ctx *)ctx)->fwd, ev);
    return 0;
}

static int on_group(const struct ifpx_event *ev, void *ctx)
{
    fwd_group(&((struct lcore_ctx *)ctx)->fwd, ev);
    return 0;
}

static int on_neigh(const struct ifpx_event *ev, void *ctx)
{
    fwd_neigh(&((struct lcore_ctx *)ctx)->fwd, ev);
    return 0;
}

static int on_rule(const struct ifpx_event *ev, void *ctx)
{
    const struct lcore_ctx *lc = ctx;
    if (ev->rule.action != IFPX_RULE_LOOKUP || ev->rule.table != FWD_MAIN_TABLE)
        fprintf(stderr, "dpdk-worker[lcore %u]: %s priority %u %s: this LPM follows table %u only\n",
                lc->lcore, ifpx_kind_name(ev->kind), ev->rule.priority,
                ifpx_rule_action_name(ev->rule.action), FWD_MAIN_TABLE);
    return 0;
}

static int on_sync(const struct ifpx_event *ev, void *ctx)
{
    const struct lcore_ctx *lc = ctx;
    fprintf(stderr, "dpdk-worker[lcore %u]: %s %s\n", lc->lcore, ifpx_kind_name(ev->kind),
            ev->reason);
    return 0;
}

static const struct ifpx_callbacks callbacks = {
    .mac_change = on_mac, .mtu_change = on_mtu, .link_change = on_link,
    .addr_add = on_addr, .addr_del = on_addr, .addr6_add = on_addr, .addr6_del = on_addr,
    .route_add = on_route, .route_del = on_route, .route6_add = on_route, .route6_del = on_route,
    .neigh_add = on_neigh, .neigh_del = on_neigh, .neigh6_add = on_neigh, .neigh6_del = on_neigh,
    .cfg_done = on_sync,
    .port_bound = on_bound, .port_unbound = on_bound, .proxy_gone = on_bound,
    .proxy_back = on_bound, .proxy_renamed = on_renamed,
    .resync_begin = on_sync, .resync_end = on_sync,
    .rule_add = on_rule, .rule_del = on_rule, .rule6_add = on_rule, .rule6_del = on_rule,
    .nhgroup_set = on_group, .nhgroup_del = on_group,
    .groute_add = on_route, .groute_del = on_route, .groute6_add = on_route,
    .groute6_del = on_route,
};

/* ---- the lcore loop ---------------------------------------------------------------------- */

static int lcore_loop(void *arg)
{
    struct lcore_ctx *lc = arg;
    struct rte_mbuf *bufs[BURST];
    /* Routes by next-hop group ("fib", not "route"): a next hop that dies is one event
     * and one rewritten group entry, whatever the number of routes through it. */
    struct ifpx_options opt = {.events = cfg.events, .control = cfg.control, .log = log_line,
                               .topics = "link,addr,fib,rule,neigh"};

    if (fwd_init(&lc->fwd, lc->lcore, cfg.max_routes, 4096, (int)rte_socket_id())) {
        fprintf(stderr, "dpdk-worker[lcore %u]: no memory for the tables\n", lc->lcore);
        stopping = 1;
        return -1;
    }
    if (!(lc->sub = ifpx_open(&opt, &callbacks, lc))) {
        fprintf(stderr, "dpdk-worker[lcore %u]: ifpx_open: %s\n", lc->lcore, strerror(errno));
        stopping = 1;
        return -1;
    }
    char name[96];
    if (cfg.name)
        snprintf(name, sizeof name, "%s-lcore%u", cfg.name, lc->lcore);
    else {
        char host[65] = "";
        gethostname(host, sizeof host - 1);
        snprintf(name, sizeof name, "%s:%d-lcore%u", host, (int)getpid(), lc->lcore);
    }
    if (ifpx_set_worker(lc->sub, name, 0))
        fprintf(stderr, "dpdk-worker[lcore %u]: %s is no worker name; reporting as host:pid\n",
                lc->lcore, name);
    while (!stopping && ifpx_sync(lc->sub, 1000) == -ETIMEDOUT)
        fprintf(stderr, "dpdk-worker[lcore %u]: waiting for the bridge\n", lc->lcore);
    while (!stopping) {
        unsigned work = 0;
        uint16_t port;
        RTE_ETH_FOREACH_DEV(port) {
            uint16_t n = rte_eth_rx_burst(port, (uint16_t)lc->queue, bufs, BURST);
            for (uint16_t i = 0; i < n; i++) {
                fwd_classify(&lc->fwd, bufs[i]);
                rte_pktmbuf_free(bufs[i]);
            }
            work += n;
        }
        work += (unsigned)ifpx_poll(lc->sub, 64);
        unsigned gen = atomic_load(&wanted_gen);
        /* a report describes everything delivered so far, so it waits for a quiet moment */
        if (cfg.report && lc->reported < gen && !ifpx_wait(lc->sub, 0)) {
            if (lc->is_main)
                report_ports(gen);
            report_lcore(lc, gen);
            lc->reported = gen;
        }
        if (!work && !cfg.busy)
            ifpx_wait(lc->sub, 1);  /* idle: sleep on the sockets instead of spinning */
    }
    ifpx_close(lc->sub);
    fwd_free(&lc->fwd);
    return 0;
}

/* ---- setup ---------------------------------------------------------------------------------- */

static int setup_port(uint16_t port, uint16_t queues, struct rte_mempool *pool)
{
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    int rc = rte_eth_dev_configure(port, queues, queues, &conf);
    for (uint16_t q = 0; rc == 0 && q < queues; q++) {
        rc = rte_eth_rx_queue_setup(port, q, 512, rte_eth_dev_socket_id(port), NULL, pool);
        if (rc == 0)
            rc = rte_eth_tx_queue_setup(port, q, 512, rte_eth_dev_socket_id(port), NULL);
    }
    return rc ? rc : rte_eth_dev_start(port);
}

/* Bind each port to its proxy: as given, or the interface DPDK reports for it. */
static int bind_ports(void)
{
    struct ifpx_options opt = {.control = cfg.control};
    uint16_t port;
    RTE_ETH_FOREACH_DEV(port) {
        char name[IF_NAMESIZE] = "";
        size_t plen = 0;
        for (int i = 0; i < cfg.n_binds; i++) {
            const char *eq = strchr(cfg.binds[i], '=');
            if (eq && atoi(cfg.binds[i]) == port)
                snprintf(name, sizeof name, "%s", eq + 1);
        }
        if (!name[0] && !cfg.n_binds) {
            struct rte_eth_dev_info info;
            if (rte_eth_dev_info_get(port, &info) == 0 && info.if_index)
                if_indextoname(info.if_index, name);
        }
        if (!(plen = strlen(name)))
            continue;
        struct ifpx_reply reply;
        int rc;
        do
            rc = ifpx_bind(&opt, port, name, 2000, &reply);
        while (rc == -ETIMEDOUT && !stopping);
        if (rc) {
            fprintf(stderr, "dpdk-worker: bind port %u to %s: %s %s\n", port, name,
                    rc == -EPROTO ? reply.code : strerror(-rc), reply.message);
            return -1;
        }
        fprintf(stderr, "dpdk-worker: port %u bound to %s\n", port, name);
    }
    return 0;
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--busy")) {
            cfg.busy = 1;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (!strcmp(a, "--events"))
            cfg.events = v;
        else if (!strcmp(a, "--control"))
            cfg.control = v;
        else if (!strcmp(a, "--report"))
            cfg.report = v;
        else if (!strcmp(a, "--name"))
            cfg.name = v;
        else if (!strcmp(a, "--max-routes"))
            cfg.max_routes = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--bind") && cfg.n_binds < RTE_MAX_ETHPORTS && strchr(v, '='))
            cfg.binds[cfg.n_binds++] = v;
        else
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int used = rte_eal_init(argc, argv);
    if (used < 0) {
        fprintf(stderr, "dpdk-worker: rte_eal_init: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    argv[used] = argv[0];
    if (parse_args(argc - used, argv + used)) {
        fprintf(stderr, "usage: dpdk-worker <EAL args> -- [--events EP] [--control EP] "
                        "[--bind PORT=PROXY]... [--report FILE] [--max-routes N] [--busy] "
                        "[--name NAME]\n");
        rte_eal_cleanup();
        return 2;
    }
    signal(SIGUSR1, on_usr1);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);

    uint16_t queues = (uint16_t)rte_lcore_count();
    uint16_t n_ports = rte_eth_dev_count_avail();
    struct rte_mempool *pool = rte_pktmbuf_pool_create(
        "mbufs", 2048u * (n_ports ? n_ports : 1) * queues, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
        (int)rte_socket_id());
    if (!pool) {
        fprintf(stderr, "dpdk-worker: mbuf pool: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    uint16_t port;
    RTE_ETH_FOREACH_DEV(port) {
        int rc = setup_port(port, queues, pool);
        if (rc) {
            fprintf(stderr, "dpdk-worker: port %u: %s\n", port, rte_strerror(-rc));
            return 1;
        }
    }
    fprintf(stderr, "dpdk-worker: %u ports, %u lcores\n", n_ports, queues);
    if (bind_ports())
        return 1;

    unsigned lcore, q = 0;
    RTE_LCORE_FOREACH(lcore) {
        lcores[lcore].lcore = lcore;
        lcores[lcore].queue = q++;
        lcores[lcore].is_main = lcore == rte_get_main_lcore();
    }
    RTE_LCORE_FOREACH_WORKER(lcore)
        rte_eal_remote_launch(lcore_loop, &lcores[lcore], lcore);
    lcore_loop(&lcores[rte_get_main_lcore()]);
    rte_eal_mp_wait_lcore();

    RTE_ETH_FOREACH_DEV(port) {
        rte_eth_dev_stop(port);
        rte_eth_dev_close(port);
    }
    rte_eal_cleanup();
    return 0;
}
