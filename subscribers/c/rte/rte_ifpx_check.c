/* rte_ifpx_check: an application of rte_if_proxy.h that walks the IF proxy RFC's own
 * unit test (app/test/test_if_proxy.c, v3): one proxy made with rte_ifpx_proxy_create,
 * the first port bound to it, then sixteen changes made with `ip` on the proxy, each
 * awaited as its event(s), once through callbacks and once through an rte_ring.
 *
 * Run in the network namespace of an ifpx bridge ($IFPX_EVENTS, $IFPX_CONTROL), with
 * EAL arguments giving it a port or two (--vdev=net_null0 --vdev=net_null1: both are
 * bound to the proxy, and each must be told). Prints a JSON line per step
 * ({"mode", "step", "ok", "ms"}) and per finding, and exits 0 when every step passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "rte_if_proxy.h"

#define WAIT_MS 5000

/* What the running step waits for: a mask of event types, each matched on these. */
static struct {
    unsigned want, got, got2; /* got2: of the second port, when there is one */
    uint16_t port, port2, mtu;
    int is_up;
    struct rte_ether_addr mac;
    uint32_t ip4, route4;
    uint8_t ip6[16], route6[16];
    uint8_t depth4, depth6;
} x;
static unsigned early;   /* link, MAC and MTU events before the first change: spurious */
static int started;
static int use_ring;
static struct rte_ring *ring;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static int same_mac(const struct rte_ether_addr *m)
{
    return !memcmp(m->addr_bytes, x.mac.addr_bytes, RTE_ETHER_ADDR_LEN);
}

/* Whether an event is the one the step waits for (called with mu held). */
static int matches(const struct rte_ifpx_event *e)
{
    if (e->type != RTE_IFPX_CFG_DONE && e->data.port_id != x.port &&
        (x.port2 == RTE_MAX_ETHPORTS || e->data.port_id != x.port2))
        return 0;
    switch (e->type) {
    case RTE_IFPX_MAC_CHANGE: return same_mac(&e->mac_change.mac);
    case RTE_IFPX_MTU_CHANGE: return e->mtu_change.mtu == x.mtu;
    case RTE_IFPX_LINK_CHANGE: return e->link_change.is_up == x.is_up;
    case RTE_IFPX_ADDR_ADD: case RTE_IFPX_ADDR_DEL: return e->addr_change.ip == x.ip4;
    case RTE_IFPX_ADDR6_ADD: case RTE_IFPX_ADDR6_DEL:
        return !memcmp(e->addr6_change.ip, x.ip6, 16);
    case RTE_IFPX_ROUTE_ADD: case RTE_IFPX_ROUTE_DEL:
        return e->route_change.depth == x.depth4 && e->route_change.ip == x.route4;
    case RTE_IFPX_ROUTE6_ADD: case RTE_IFPX_ROUTE6_DEL:
        /* the kernel masks the destination to its prefix: compare that much */
        return e->route6_change.depth == x.depth6 &&
               !memcmp(e->route6_change.ip, x.route6, x.depth6 / 8);
    case RTE_IFPX_NEIGH_ADD: return e->neigh_change.ip == x.ip4 && same_mac(&e->neigh_change.mac);
    case RTE_IFPX_NEIGH_DEL: return e->neigh_change.ip == x.ip4;
    case RTE_IFPX_NEIGH6_ADD:
        return !memcmp(e->neigh6_change.ip, x.ip6, 16) && same_mac(&e->neigh6_change.mac);
    case RTE_IFPX_NEIGH6_DEL: return !memcmp(e->neigh6_change.ip, x.ip6, 16);
    case RTE_IFPX_CFG_DONE: return 1;
    }
    return 0;
}

/* Every event, from a callback or the ring: 1 if it was awaited (the callback consumes). */
static int seen(const struct rte_ifpx_event *e)
{
    pthread_mutex_lock(&mu);
    if (!started && (e->type == RTE_IFPX_LINK_CHANGE || e->type == RTE_IFPX_MAC_CHANGE ||
                     e->type == RTE_IFPX_MTU_CHANGE))
        early |= 1u << e->type;
    int hit = (x.want & (1u << e->type)) && matches(e);
    if (hit) {
        if (x.port2 != RTE_MAX_ETHPORTS && e->type != RTE_IFPX_CFG_DONE &&
            e->data.port_id == x.port2)
            x.got2 |= 1u << e->type;
        else
            x.got |= 1u << e->type;
        pthread_cond_signal(&cv);
    }
    pthread_mutex_unlock(&mu);
    return hit;
}

/* Every wanted type arrived, for each port bound (called with mu held). */
static int complete(unsigned want)
{
    unsigned per_port = want & ~(1u << RTE_IFPX_CFG_DONE);
    return (x.got & want) == want &&
           (x.port2 == RTE_MAX_ETHPORTS || (x.got2 & per_port) == per_port);
}

static int all_had(enum rte_ifpx_event_type kind)
{
    pthread_mutex_lock(&mu);
    int all = complete(1u << kind);
    pthread_mutex_unlock(&mu);
    return all;
}

/* One callback per type, each wrapping its member back into an event. */
#define CB(name, kind, member, ctype)                                                       \
    static int name(const ctype *ev)                                                        \
    {                                                                                       \
        struct rte_ifpx_event e = {.type = kind};                                           \
        memcpy(&e.member, ev, sizeof *ev);                                                  \
        int hit = seen(&e);                                                                 \
        /* The RFC's test: callbacks changed from inside one (the last link down, once   \
         * every port has had it). */                                                       \
        if (hit && kind == RTE_IFPX_LINK_CHANGE && !e.link_change.is_up && all_had(kind))    \
            rte_ifpx_callbacks_unregister_all();                                            \
        return hit;                                                                         \
    }
CB(on_mac, RTE_IFPX_MAC_CHANGE, mac_change, struct rte_ifpx_mac_change)
CB(on_mtu, RTE_IFPX_MTU_CHANGE, mtu_change, struct rte_ifpx_mtu_change)
CB(on_link, RTE_IFPX_LINK_CHANGE, link_change, struct rte_ifpx_link_change)
CB(on_addr_add, RTE_IFPX_ADDR_ADD, addr_change, struct rte_ifpx_addr_change)
CB(on_addr_del, RTE_IFPX_ADDR_DEL, addr_change, struct rte_ifpx_addr_change)
CB(on_addr6_add, RTE_IFPX_ADDR6_ADD, addr6_change, struct rte_ifpx_addr6_change)
CB(on_addr6_del, RTE_IFPX_ADDR6_DEL, addr6_change, struct rte_ifpx_addr6_change)
CB(on_route_add, RTE_IFPX_ROUTE_ADD, route_change, struct rte_ifpx_route_change)
CB(on_route_del, RTE_IFPX_ROUTE_DEL, route_change, struct rte_ifpx_route_change)
CB(on_route6_add, RTE_IFPX_ROUTE6_ADD, route6_change, struct rte_ifpx_route6_change)
CB(on_route6_del, RTE_IFPX_ROUTE6_DEL, route6_change, struct rte_ifpx_route6_change)
CB(on_neigh_add, RTE_IFPX_NEIGH_ADD, neigh_change, struct rte_ifpx_neigh_change)
CB(on_neigh_del, RTE_IFPX_NEIGH_DEL, neigh_change, struct rte_ifpx_neigh_change)
CB(on_neigh6_add, RTE_IFPX_NEIGH6_ADD, neigh6_change, struct rte_ifpx_neigh6_change)
CB(on_neigh6_del, RTE_IFPX_NEIGH6_DEL, neigh6_change, struct rte_ifpx_neigh6_change)

static int on_cfg_done(void)
{
    struct rte_ifpx_event e = {.type = RTE_IFPX_CFG_DONE};
    return seen(&e);
}

static const struct rte_ifpx_callback cbs[] = {
    {RTE_IFPX_MAC_CHANGE, {.mac_change = on_mac}},
    {RTE_IFPX_MTU_CHANGE, {.mtu_change = on_mtu}},
    {RTE_IFPX_LINK_CHANGE, {.link_change = on_link}},
    {RTE_IFPX_ADDR_ADD, {.addr_add = on_addr_add}},
    {RTE_IFPX_ADDR_DEL, {.addr_del = on_addr_del}},
    {RTE_IFPX_ADDR6_ADD, {.addr6_add = on_addr6_add}},
    {RTE_IFPX_ADDR6_DEL, {.addr6_del = on_addr6_del}},
    {RTE_IFPX_ROUTE_ADD, {.route_add = on_route_add}},
    {RTE_IFPX_ROUTE_DEL, {.route_del = on_route_del}},
    {RTE_IFPX_ROUTE6_ADD, {.route6_add = on_route6_add}},
    {RTE_IFPX_ROUTE6_DEL, {.route6_del = on_route6_del}},
    {RTE_IFPX_NEIGH_ADD, {.neigh_add = on_neigh_add}},
    {RTE_IFPX_NEIGH_DEL, {.neigh_del = on_neigh_del}},
    {RTE_IFPX_NEIGH6_ADD, {.neigh6_add = on_neigh6_add}},
    {RTE_IFPX_NEIGH6_DEL, {.neigh6_del = on_neigh6_del}},
    {RTE_IFPX_CFG_DONE, {.cfg_done = on_cfg_done}},
};

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Wait until every wanted type arrived: on the condition, or by draining the ring. */
static int await(unsigned want, long *ms)
{
    long start = now_ms();
    for (;;) {
        pthread_mutex_lock(&mu);
        int done = complete(want);
        pthread_mutex_unlock(&mu);
        if (done)
            break;
        if (now_ms() - start > WAIT_MS)
            return 0;
        struct rte_ifpx_event *e = NULL;
        if (use_ring && rte_ring_dequeue(ring, (void **)&e) == 0) {
            seen(e);
            free(e);
            continue;
        }
        pthread_mutex_lock(&mu);
        if (!use_ring && !complete(want)) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 50 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&cv, &mu, &until);
        }
        pthread_mutex_unlock(&mu);
        if (use_ring)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    *ms = now_ms() - start;
    return 1;
}

static int failures;

/* Run `ip ...` and wait for the events in `want`; print the step's line. */
static int step(const char *title, unsigned want, const char *fmt, ...)
{
    char cmd[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&mu);
    x.want = want;
    x.got = x.got2 = 0;
    started = 1;
    pthread_mutex_unlock(&mu);
    long ms = 0;
    int ok = system(cmd) == 0 && await(want, &ms);
    printf("{\"mode\": \"%s\", \"step\": \"%s\", \"ok\": %s, \"ms\": %ld}\n",
           use_ring ? "ring" : "callbacks", title, ok ? "true" : "false", ms);
    fflush(stdout);
    failures += !ok;
    return ok;
}

#define BIT(t) (1u << (t))

static void walk(const struct rte_ifpx_info *info)
{
    const char *dev = info->if_name;
    char mac[RTE_ETHER_ADDR_FMT_SIZE];

    x.is_up = 1;
    step("link up", BIT(RTE_IFPX_LINK_CHANGE), "ip link set dev %s up", dev);
    rte_eth_random_addr(x.mac.addr_bytes);
    rte_ether_format_addr(mac, sizeof mac, &x.mac);
    step("mac", BIT(RTE_IFPX_MAC_CHANGE), "ip link set dev %s address %s", dev, mac);
    x.mtu = info->mtu + 100; /* the info follows the proxy: +100 on what it is now */
    step("mtu", BIT(RTE_IFPX_MTU_CHANGE), "ip link set dev %s mtu %u", dev, x.mtu);
    if (info->mtu != x.mtu) {
        printf("{\"finding\": \"rte_ifpx_info_get's mtu is %u, not %u\"}\n", info->mtu, x.mtu);
        failures++;
    }

    x.ip4 = x.route4 = RTE_IPV4(198, 51, 100, 14);
    x.depth4 = 32; /* the address's local route comes with it */
    step("addr add", BIT(RTE_IFPX_ADDR_ADD) | BIT(RTE_IFPX_ROUTE_ADD),
         "ip addr add 198.51.100.14 dev %s", dev);
    step("addr del", BIT(RTE_IFPX_ADDR_DEL) | BIT(RTE_IFPX_ROUTE_DEL),
         "ip addr del 198.51.100.14/32 dev %s", dev);
    x.route4 = RTE_IPV4(198, 51, 100, 0);
    x.depth4 = 24;
    step("route add", BIT(RTE_IFPX_ROUTE_ADD), "ip route add 198.51.100.0/24 dev %s", dev);
    step("route del", BIT(RTE_IFPX_ROUTE_DEL), "ip route del 198.51.100.0/24 dev %s", dev);
    rte_eth_random_addr(x.mac.addr_bytes);
    rte_ether_format_addr(mac, sizeof mac, &x.mac);
    step("neigh add", BIT(RTE_IFPX_NEIGH_ADD),
         "ip neigh add 198.51.100.14 dev %s lladdr %s nud noarp", dev, mac);
    step("neigh del", BIT(RTE_IFPX_NEIGH_DEL), "ip neigh del 198.51.100.14 dev %s", dev);

    inet_pton(AF_INET6, "2001:db8::dead:beef", x.ip6);
    memcpy(x.route6, x.ip6, 16);
    x.depth6 = 128;
    step("addr6 add", BIT(RTE_IFPX_ADDR6_ADD) | BIT(RTE_IFPX_ROUTE6_ADD),
         "ip addr add 2001:db8::dead:beef dev %s", dev);
    step("addr6 del", BIT(RTE_IFPX_ADDR6_DEL) | BIT(RTE_IFPX_ROUTE6_DEL),
         "ip addr del 2001:db8::dead:beef/128 dev %s", dev);
    x.depth6 = 96;
    step("route6 add", BIT(RTE_IFPX_ROUTE6_ADD), "ip route add 2001:db8::dead:0/96 dev %s", dev);
    step("route6 del", BIT(RTE_IFPX_ROUTE6_DEL), "ip route del 2001:db8::dead:0/96 dev %s", dev);
    step("neigh6 add", BIT(RTE_IFPX_NEIGH6_ADD),
         "ip neigh add 2001:db8::dead:beef dev %s lladdr %s nud noarp", dev, mac);
    step("neigh6 del", BIT(RTE_IFPX_NEIGH6_DEL), "ip neigh del 2001:db8::dead:beef dev %s", dev);
    x.is_up = 0;
    step("link down", BIT(RTE_IFPX_LINK_CHANGE), "ip link set dev %s down", dev);
}

static void finding(int bad, const char *what)
{
    printf("{\"finding\": \"%s\", \"ok\": %s}\n", what, bad ? "false" : "true");
    failures += !!bad;
}

int main(int argc, char **argv)
{
    if (rte_eal_init(argc, argv) < 0) {
        fprintf(stderr, "EAL: %s\n", rte_strerror(rte_errno));
        return 2;
    }
    /* The first port, and a second one if there is: both bound to the proxy, each to be
     * told every change (the RFC's one-proxy-to-many-ports binding). */
    x.port = x.port2 = RTE_MAX_ETHPORTS;
    uint16_t p;
    RTE_ETH_FOREACH_DEV(p) {
        if (x.port == RTE_MAX_ETHPORTS)
            x.port = p;
        else if (x.port2 == RTE_MAX_ETHPORTS)
            x.port2 = p;
    }
    if (x.port == RTE_MAX_ETHPORTS) {
        fprintf(stderr, "give it a port: --vdev=net_null0\n");
        return 2;
    }
    finding(rte_ifpx_events_available() != (1u << (RTE_IFPX_CFG_DONE + 1)) - 1,
            "every event type is available");
    finding(rte_ifpx_proxy_create(RTE_IFPX_KNI) != RTE_MAX_ETHPORTS || rte_errno != ENOTSUP,
            "a KNI proxy is refused with ENOTSUP");
    uint16_t proxy = rte_ifpx_proxy_create(RTE_IFPX_DEFAULT);
    if (proxy == RTE_MAX_ETHPORTS) {
        fprintf(stderr, "no proxy: %s\n", rte_strerror(rte_errno));
        return 2;
    }
    int rc = rte_ifpx_port_bind(x.port, proxy);
    if (!rc && x.port2 != RTE_MAX_ETHPORTS && x.port2 != proxy)
        rc = rte_ifpx_port_bind(x.port2, proxy);
    else
        x.port2 = RTE_MAX_ETHPORTS; /* the proxy took the second id */
    if (rc) {
        fprintf(stderr, "bind: %s\n", strerror(-rc));
        return 2;
    }
    uint16_t ports[4];
    finding(rte_ifpx_proxy_get(x.port) != proxy || !rte_ifpx_is_proxy(proxy) ||
                rte_ifpx_is_proxy(x.port) ||
                rte_ifpx_port_get(proxy, ports, 4) != 1u + (x.port2 != RTE_MAX_ETHPORTS) ||
                ports[0] != x.port,
            "the binding reads back (proxy_get, is_proxy, port_get)");
    finding(rte_ifpx_info_get(proxy) != rte_ifpx_info_get(x.port) || !rte_ifpx_info_get(proxy),
            "a proxy's info is its ports'");
    rte_ifpx_callbacks_register(RTE_DIM(cbs), cbs);

    x.want = BIT(RTE_IFPX_CFG_DONE);
    if ((rc = rte_ifpx_listen()) != 0) {
        fprintf(stderr, "listen: %s\n", strerror(-rc));
        return 2;
    }
    long ms;
    int synced = await(BIT(RTE_IFPX_CFG_DONE), &ms);
    printf("{\"mode\": \"callbacks\", \"step\": \"cfg_done\", \"ok\": %s, \"ms\": %ld}\n",
           synced ? "true" : "false", ms);
    failures += !synced;
    const struct rte_ifpx_info *info = rte_ifpx_info_get(x.port);
    /* As the RFC's test: the link is down already; saying so again changes nothing
     * (an event it caused would be counted as early). */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ip link set dev %s down", info->if_name);
    if (system(cmd) != 0)
        return 2;
    walk(info);
    finding(early != 0, "no link, MAC or MTU event before the first change");

    use_ring = 1;
    ring = rte_ring_create("ifpx-check", 16, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!ring || rte_ifpx_queue_add(ring) != 0) {
        fprintf(stderr, "no ring\n");
        return 2;
    }
    finding(rte_ifpx_queue_add(ring) != -EEXIST, "a ring added twice is refused");
    walk(info);

    rte_ifpx_proxy_destroy(proxy);
    finding(rte_ifpx_proxy_get(x.port) != RTE_MAX_ETHPORTS, "a destroyed proxy unbinds");
    rte_ifpx_close();
    rte_ring_free(ring);
    printf("{\"failures\": %d}\n", failures);
    rte_eal_cleanup();
    return failures ? 1 : 0;
}
