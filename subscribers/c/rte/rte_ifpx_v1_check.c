/* rte_ifpx_v1_check: the IF proxy RFC's cover letter (v1), as an application of it.
 *
 * Two ports, two proxies made with rte_ifpx_create(RTE_IFPX_DEFAULT), each port bound
 * to its proxy (and a third port, if given, bound to the first proxy as well: the
 * letter's one-to-many binding), the twelve callbacks registered with
 * rte_ifpx_callbacks_register(&cbs), rte_ifpx_listen(); then the letter's changes made
 * with `ip` on the proxies ("ip link set dev tap1 mtu 1600", "ip addr add
 * 198.51.100.14/24 dev tap2", "ip route add 198.0.2.0/24 dev tap1"...), each followed by
 * a marker route (on the second proxy), so that everything a step caused has arrived
 * when the marker has.
 * What the callbacks saw in between must be exactly what the step expects: each port
 * event once per bound port, each route once, IPv4 in host order.
 *
 * Run in the network namespace of an ifpx bridge ($IFPX_EVENTS, $IFPX_CONTROL) with
 * EAL arguments giving it two or three ports (--vdev=net_null0 --vdev=net_null1
 * [--vdev=net_null2]). Prints a JSON line per step ({"step", "ok", "ms"}, with what was
 * seen when it failed) and exits 0 when every step passed.
 */
#include <arpa/inet.h>
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
#define MAX_SEEN 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char seen[MAX_SEEN][64]; /* what the callbacks saw since the step began */
static unsigned n_seen, n_dropped;
static unsigned cfg_finished_calls;
static int started;
static unsigned early; /* link, MAC or MTU callbacks before the first change: spurious */

static void saw(const char *fmt, ...)
{
    char line[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (strstr(line, "fe80:"))
        return; /* the kernel's link-local addresses come and go with the links */
    pthread_mutex_lock(&mu);
    if (n_seen < MAX_SEEN)
        snprintf(seen[n_seen++], sizeof seen[0], "%s", line);
    else
        n_dropped++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static const char *ip6(const uint8_t *ip, char *buf)
{
    return inet_ntop(AF_INET6, ip, buf, INET6_ADDRSTRLEN);
}

static void port_event(void)
{
    pthread_mutex_lock(&mu);
    early += !started;
    pthread_mutex_unlock(&mu);
}

/* The twelve callbacks, each writing what it was given; IPv4 as the host-order number. */
static void on_mac(uint16_t port, const struct rte_ether_addr *mac)
{
    char text[RTE_ETHER_ADDR_FMT_SIZE];
    rte_ether_format_addr(text, sizeof text, mac);
    port_event();
    saw("mac_change %u %s", port, text);
}
static void on_mtu(uint16_t port, uint16_t mtu)
{
    port_event();
    saw("mtu_change %u %u", port, mtu);
}
static void on_link(uint16_t port, int is_up)
{
    port_event();
    saw("link_change %u %d", port, is_up);
}
static void on_addr_add(uint16_t port, uint32_t ip) { saw("addr_add %u %08x", port, ip); }
static void on_addr_del(uint16_t port, uint32_t ip) { saw("addr_del %u %08x", port, ip); }
static void on_addr6_add(uint16_t port, const uint8_t *ip)
{
    char b[INET6_ADDRSTRLEN];
    saw("addr6_add %u %s", port, ip6(ip, b));
}
static void on_addr6_del(uint16_t port, const uint8_t *ip)
{
    char b[INET6_ADDRSTRLEN];
    saw("addr6_del %u %s", port, ip6(ip, b));
}
static void on_route_add(uint32_t ip, uint8_t depth) { saw("route_add %08x/%u", ip, depth); }
static void on_route_del(uint32_t ip, uint8_t depth) { saw("route_del %08x/%u", ip, depth); }
static void on_route6_add(const uint8_t *ip, uint8_t depth)
{
    char b[INET6_ADDRSTRLEN];
    saw("route6_add %s/%u", ip6(ip, b), depth);
}
static void on_route6_del(const uint8_t *ip, uint8_t depth)
{
    char b[INET6_ADDRSTRLEN];
    saw("route6_del %s/%u", ip6(ip, b), depth);
}
static void on_cfg_finished(void)
{
    pthread_mutex_lock(&mu);
    cfg_finished_calls++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static struct rte_ifpx_callbacks cbs = {
    .mac_change = on_mac,
    .mtu_change = on_mtu,
    .link_change = on_link,
    .addr_add = on_addr_add,
    .addr_del = on_addr_del,
    .addr6_add = on_addr6_add,
    .addr6_del = on_addr6_del,
    .route_add = on_route_add,
    .route_del = on_route_del,
    .route6_add = on_route6_add,
    .route6_del = on_route6_del,
    .cfg_finished = on_cfg_finished,
};

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Wait (mu held) until `line` was seen, or WAIT_MS passed since `start`. */
static int wait_seen(const char *line, long start)
{
    for (;;) {
        for (unsigned i = 0; i < n_seen; i++)
            if (!strcmp(seen[i], line))
                return 1;
        if (now_ms() - start > WAIT_MS)
            return 0;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&cv, &mu, &until);
    }
}

static int by_text(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static int failures;
static const char *marker_dev;

/* Run `cmd`, then add a marker route and wait for it: what the callbacks saw in between
 * must be `want` (`n_want` lines), in any order. */
static void step(const char *title, char want[][64], unsigned n_want, const char *fmt, ...)
{
    static unsigned markers;
    char cmd[256], marker[64], mark_cmd[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    unsigned m = ++markers;
    /* IPv6: the last IPv4 address of the proxy taking its IPv4 routes with it does not
     * take this one. */
    snprintf(marker, sizeof marker, "route6_add 2001:db8:ffff::%x/128", m);
    snprintf(mark_cmd, sizeof mark_cmd, "ip route add 2001:db8:ffff::%x/128 dev %s", m,
             marker_dev);

    pthread_mutex_lock(&mu);
    n_seen = n_dropped = 0;
    started = 1;
    pthread_mutex_unlock(&mu);
    long start = now_ms();
    int ok = system(cmd) == 0 && system(mark_cmd) == 0;
    pthread_mutex_lock(&mu);
    ok = ok && wait_seen(marker, start);
    long ms = now_ms() - start;
    char got[MAX_SEEN][64];
    unsigned n = 0;
    for (unsigned i = 0; i < n_seen; i++)
        if (strcmp(seen[i], marker))
            memcpy(got[n++], seen[i], sizeof got[0]);
    ok = ok && !n_dropped;
    pthread_mutex_unlock(&mu);
    qsort(got, n, sizeof got[0], by_text);
    qsort(want, n_want, sizeof want[0], by_text);
    ok = ok && n == n_want;
    for (unsigned i = 0; ok && i < n; i++)
        ok = !strcmp(got[i], want[i]);
    printf("{\"step\": \"%s\", \"ok\": %s, \"ms\": %ld", title, ok ? "true" : "false", ms);
    if (!ok) {
        printf(", \"seen\": [");
        for (unsigned i = 0; i < n; i++)
            printf("%s\"%s\"", i ? ", " : "", got[i]);
        printf("]");
    }
    printf("}\n");
    fflush(stdout);
    failures += !ok;
}

/* The lines a step expects. */
static char want[8][64];
static unsigned n_want;

static void expect(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want[n_want++], sizeof want[0], fmt, ap);
    va_end(ap);
}

/* A port event, expected of each port bound to the proxy (`also`: a second one, or none). */
static void expect_ports(const char *kind, uint16_t port, uint16_t also, const char *value)
{
    expect("%s %u %s", kind, port, value);
    if (also != RTE_MAX_ETHPORTS)
        expect("%s %u %s", kind, also, value);
}

#define STEP(title, ...)                                                                    \
    do {                                                                                    \
        step(title, want, n_want, __VA_ARGS__);                                             \
        n_want = 0;                                                                         \
    } while (0)

/* The cover letter's changes and the rest, each with exactly the callbacks it brings:
 * each port event once per port bound to the proxy (port3 shares tap1 when given), each
 * route once. */
static void walk(const char *dev1, const char *dev2, uint16_t port1, uint16_t port2,
                 uint16_t port3)
{
    expect_ports("link_change", port1, port3, "1");
    expect_ports("link_change", port2, RTE_MAX_ETHPORTS, "1");
    STEP("link up", "ip link set dev %s up && ip link set dev %s up", dev1, dev2);
    expect_ports("mtu_change", port1, port3, "1600");
    STEP("mtu", "ip link set dev %s mtu 1600", dev1);
    expect_ports("mac_change", port1, port3, "02:00:00:00:01:01");
    STEP("mac", "ip link set dev %s address 02:00:00:00:01:01", dev1);
    expect("addr_add %u %08x", port2, RTE_IPV4(198, 51, 100, 14));
    expect("route_add %08x/32", RTE_IPV4(198, 51, 100, 14)); /* its local route */
    expect("route_add %08x/24", RTE_IPV4(198, 51, 100, 0));  /* its prefix route */
    STEP("addr add", "ip addr add 198.51.100.14/24 dev %s", dev2);
    expect("route_add %08x/24", RTE_IPV4(198, 0, 2, 0));
    STEP("route add", "ip route add 198.0.2.0/24 dev %s", dev1);
    expect("route_del %08x/24", RTE_IPV4(198, 0, 2, 0));
    STEP("route del", "ip route del 198.0.2.0/24 dev %s", dev1);
    expect("addr6_add %u 2001:db8::14", port2);
    expect("route6_add 2001:db8::14/128");
    expect("route6_add 2001:db8::/64");
    STEP("addr6 add", "ip addr add 2001:db8::14/64 dev %s nodad", dev2);
    expect("route6_add 2001:db8:1::/48");
    STEP("route6 add", "ip route add 2001:db8:1::/48 dev %s", dev1);
    expect("route6_del 2001:db8:1::/48");
    STEP("route6 del", "ip route del 2001:db8:1::/48 dev %s", dev1);
    expect("addr6_del %u 2001:db8::14", port2);
    expect("route6_del 2001:db8::14/128");
    expect("route6_del 2001:db8::/64");
    STEP("addr6 del", "ip addr del 2001:db8::14/64 dev %s", dev2);
    expect("addr_del %u %08x", port2, RTE_IPV4(198, 51, 100, 14));
    expect("route_del %08x/32", RTE_IPV4(198, 51, 100, 14));
    expect("route_del %08x/24", RTE_IPV4(198, 51, 100, 0));
    STEP("addr del", "ip addr del 198.51.100.14/24 dev %s", dev2);
    expect_ports("link_change", port1, port3, "0");
    STEP("link down", "ip link set dev %s down", dev1);
}

int main(int argc, char **argv)
{
    if (rte_eal_init(argc, argv) < 0) {
        fprintf(stderr, "EAL: %s\n", rte_strerror(rte_errno));
        return 2;
    }
    uint16_t ports[3], n_ports = 0, p;
    RTE_ETH_FOREACH_DEV(p) {
        if (n_ports < 3)
            ports[n_ports++] = p;
    }
    if (n_ports < 2) {
        fprintf(stderr, "give it two ports: --vdev=net_null0 --vdev=net_null1\n");
        return 2;
    }
    uint16_t port1 = ports[0], port2 = ports[1], port3 = n_ports > 2 ? ports[2] : RTE_MAX_ETHPORTS;
    /* As the letter: make two proxies, bind, register, listen. */
    uint16_t tap1 = rte_ifpx_create(RTE_IFPX_DEFAULT);
    uint16_t tap2 = rte_ifpx_create(RTE_IFPX_DEFAULT);
    if (tap1 == RTE_MAX_ETHPORTS || tap2 == RTE_MAX_ETHPORTS) {
        fprintf(stderr, "no proxy: %s\n", rte_strerror(rte_errno));
        return 2;
    }
    int rc = rte_ifpx_port_bind(port1, tap1);
    rc = rc ? rc : rte_ifpx_port_bind(port2, tap2);
    if (!rc && port3 != RTE_MAX_ETHPORTS)
        rc = rte_ifpx_port_bind(port3, tap1);
    if (rc || rte_ifpx_callbacks_register(&cbs) != 0) {
        fprintf(stderr, "bind: %s\n", strerror(-rc));
        return 2;
    }
    char dev1[RTE_ETH_NAME_MAX_LEN], dev2[RTE_ETH_NAME_MAX_LEN];
    snprintf(dev1, sizeof dev1, "%s", rte_ifpx_info_get(port1)->if_name);
    snprintf(dev2, sizeof dev2, "%s", rte_ifpx_info_get(port2)->if_name);
    marker_dev = dev2;
    if ((rc = rte_ifpx_listen()) != 0) {
        fprintf(stderr, "listen: %s\n", strerror(-rc));
        return 2;
    }
    pthread_mutex_lock(&mu);
    long start = now_ms();
    while (!cfg_finished_calls && now_ms() - start < WAIT_MS) {
        pthread_mutex_unlock(&mu);
        nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
        pthread_mutex_lock(&mu);
    }
    int synced = cfg_finished_calls == 1;
    pthread_mutex_unlock(&mu);
    printf("{\"step\": \"cfg_finished\", \"ok\": %s, \"ms\": %ld}\n", synced ? "true" : "false",
           now_ms() - start);
    failures += !synced;

    walk(dev1, dev2, port1, port2, port3);

    pthread_mutex_lock(&mu);
    int once = cfg_finished_calls == 1, spurious = early != 0;
    pthread_mutex_unlock(&mu);
    printf("{\"finding\": \"cfg_finished once\", \"ok\": %s}\n", once ? "true" : "false");
    printf("{\"finding\": \"no link, MAC or MTU callback before the first change\", "
           "\"ok\": %s}\n", spurious ? "false" : "true");
    failures += !once + spurious;
    rte_ifpx_close();
    printf("{\"failures\": %d}\n", failures);
    rte_eal_cleanup();
    return failures ? 1 : 0;
}
