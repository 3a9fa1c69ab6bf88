/* rte_ifpx_edges: the RFC layer at its edges, one mode per run (after EAL's arguments
 * and "--"), each printing JSON lines:
 *
 *   close-in-callback   rte_ifpx_close() from inside a callback (the header allows any
 *                       call there), then listen again and close from main: run under
 *                       AddressSanitizer, nothing may be used after it is freed.
 *   close-bridge-gone   two ports bound; a line on stdin (the bridge is killed first),
 *                       then rte_ifpx_close() timed: one deadline, not one per port.
 *   block               a proxy bound to the first port, events on a ring of 16 that
 *                       nobody dequeues ({"proxy": name}): the control thread waits in
 *                       the middle of an event. A line on stdin drains the ring until
 *                       it stays empty ({"drained": n}), the next one closes
 *                       ({"closed": rc}), the end of stdin ends the process.
 *   hold IFACE          a proxy named IFACE bound to the first port ({"bound": rc}),
 *                       its MTU, address and link events printed as they come; stdin's
 *                       end closes it ({"closed": rc}). Two of these show what one
 *                       application may do to another with the same port id.
 *
 * Run in the network namespace of an ifpx bridge ($IFPX_EVENTS, $IFPX_CONTROL).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "rte_if_proxy.h"

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Wait (polling, bounded) until *flag is set. */
static int await_flag(atomic_int *flag, long ms)
{
    long end = now_ms() + ms;
    while (!atomic_load(flag) && now_ms() < end)
        nanosleep(&(struct timespec){0, 5 * 1000000L}, NULL);
    return atomic_load(flag);
}

/* ---- close-in-callback ---------------------------------------------------------------- */

static atomic_int closed_in_callback, close_rc = 1, cfg_done_again;

static int close_on_cfg_done(void)
{
    atomic_store(&close_rc, rte_ifpx_close());
    atomic_store(&closed_in_callback, 1);
    return 1;
}

static int count_cfg_done(void)
{
    atomic_store(&cfg_done_again, 1);
    return 1;
}

static int close_in_callback(uint16_t port)
{
    uint16_t proxy = rte_ifpx_proxy_create(RTE_IFPX_DEFAULT);
    struct rte_ifpx_callback cb = {RTE_IFPX_CFG_DONE, {.cfg_done = close_on_cfg_done}};
    if (proxy == RTE_MAX_ETHPORTS || rte_ifpx_port_bind(port, proxy) ||
        rte_ifpx_callbacks_register(1, &cb) || rte_ifpx_listen())
        return 2;
    int closed = await_flag(&closed_in_callback, 5000);
    /* Closed: everything is forgotten, and the library takes a new listen. */
    cb.callback.cfg_done = count_cfg_done;
    int again = closed && !rte_ifpx_port_bind(port, proxy) && !rte_ifpx_callbacks_register(1, &cb) &&
                !rte_ifpx_listen() && await_flag(&cfg_done_again, 5000);
    int rc = rte_ifpx_close();
    line("{\"closed_in_callback\": %s, \"close_rc\": %d, \"listened_again\": %s, "
         "\"closed\": %d}",
         closed ? "true" : "false", atomic_load(&close_rc), again ? "true" : "false", rc);
    return !(closed && atomic_load(&close_rc) == 0 && again && rc == 0);
}

/* ---- close-bridge-gone ---------------------------------------------------------------- */

static int close_bridge_gone(const uint16_t *ports, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t proxy = rte_ifpx_proxy_create(RTE_IFPX_DEFAULT);
        if (proxy == RTE_MAX_ETHPORTS || rte_ifpx_port_bind(ports[i], proxy))
            return 2;
    }
    line("{\"bound\": %u}", n);
    char buf[16];
    if (!fgets(buf, sizeof buf, stdin))
        return 2;
    long start = now_ms();
    int rc = rte_ifpx_close();
    line("{\"close_ms\": %ld, \"rc\": %d}", now_ms() - start, rc);
    return 0;
}

/* ---- block ---------------------------------------------------------------------------- */

static int block(uint16_t port)
{
    uint16_t proxy = rte_ifpx_proxy_create(RTE_IFPX_DEFAULT);
    struct rte_ring *ring =
        rte_ring_create("ifpx-edges", 16, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (proxy == RTE_MAX_ETHPORTS || !ring || rte_ifpx_port_bind(port, proxy) ||
        rte_ifpx_queue_add(ring) || rte_ifpx_listen())
        return 2;
    line("{\"proxy\": \"%s\"}", rte_ifpx_info_get(port)->if_name);
    char buf[16];
    if (!fgets(buf, sizeof buf, stdin))
        return 2;
    unsigned drained = 0;
    for (long quiet_since = now_ms(); now_ms() - quiet_since < 500;) {
        void *e = NULL;
        if (rte_ring_dequeue(ring, &e) == 0) {
            free(e);
            drained++;
            quiet_since = now_ms();
        } else {
            nanosleep(&(struct timespec){0, 1000000L}, NULL);
        }
    }
    line("{\"drained\": %u}", drained);
    if (!fgets(buf, sizeof buf, stdin))
        return 2;
    line("{\"closed\": %d}", rte_ifpx_close());
    while (fgets(buf, sizeof buf, stdin))
        ;
    rte_ring_free(ring);
    return 0;
}

/* ---- hold ----------------------------------------------------------------------------- */

static int on_mtu(const struct rte_ifpx_mtu_change *e)
{
    line("{\"event\": \"mtu\", \"port\": %u, \"mtu\": %u}", e->port_id, e->mtu);
    return 1;
}

static int on_addr(const struct rte_ifpx_addr_change *e)
{
    line("{\"event\": \"addr\", \"port\": %u, \"ip\": %u}", e->port_id, e->ip);
    return 1;
}

static int on_link(const struct rte_ifpx_link_change *e)
{
    line("{\"event\": \"link\", \"port\": %u, \"up\": %d}", e->port_id, e->is_up);
    return 1;
}

static int on_done(void)
{
    line("{\"event\": \"cfg_done\"}");
    return 1;
}

static int hold(uint16_t port, const char *iface)
{
    char devarg[64];
    snprintf(devarg, sizeof devarg, "net_tap_%s,iface=%s", iface, iface);
    uint16_t proxy = rte_ifpx_proxy_create_by_devarg(devarg);
    if (proxy == RTE_MAX_ETHPORTS)
        return 2;
    int rc = rte_ifpx_port_bind(port, proxy);
    line("{\"bound\": %d}", rc);
    if (rc)
        return 0;
    static const struct rte_ifpx_callback cbs[] = {
        {RTE_IFPX_MTU_CHANGE, {.mtu_change = on_mtu}},
        {RTE_IFPX_ADDR_ADD, {.addr_add = on_addr}},
        {RTE_IFPX_LINK_CHANGE, {.link_change = on_link}},
        {RTE_IFPX_CFG_DONE, {.cfg_done = on_done}},
    };
    if (rte_ifpx_callbacks_register(RTE_DIM(cbs), cbs) || rte_ifpx_listen())
        return 2;
    char buf[16];
    while (fgets(buf, sizeof buf, stdin))
        ;
    line("{\"closed\": %d}", rte_ifpx_close());
    return 0;
}

int main(int argc, char **argv)
{
    int used = rte_eal_init(argc, argv);
    if (used < 0) {
        fprintf(stderr, "EAL: %s\n", rte_strerror(rte_errno));
        return 2;
    }
    argc -= used;
    argv += used;
    uint16_t ports[2], n = 0, p;
    RTE_ETH_FOREACH_DEV(p) {
        if (n < 2)
            ports[n++] = p;
    }
    if (argc < 2 || !n) {
        fprintf(stderr, "usage: EAL args --vdev=net_null0 -- close-in-callback | "
                        "close-bridge-gone | block | hold IFACE\n");
        return 2;
    }
    int rc = 2;
    if (!strcmp(argv[1], "close-in-callback"))
        rc = close_in_callback(ports[0]);
    else if (!strcmp(argv[1], "close-bridge-gone"))
        rc = close_bridge_gone(ports, n);
    else if (!strcmp(argv[1], "block"))
        rc = block(ports[0]);
    else if (!strcmp(argv[1], "hold") && argc > 2)
        rc = hold(ports[0], argv[2]);
    rte_eal_cleanup();
    return rc;
}
