/* v1 of the IF proxy RFC's API (its first posting) over the v3 events of ifpx_rte.c.
 *
 * v1 has one struct of twelve void callbacks, no rings and no consumption; route
 * callbacks carry no port. ifpx_rte.c hands each v3 event here as it makes it (port
 * events and CFG_DONE per port, routes once per route) and v1's callback, if any, is
 * called without a lock held: it may call this API, as v3's may.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "ifpx_rte_int.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rte_ifpx_callbacks v1;

int rte_ifpx_callbacks_register_v1(const struct rte_ifpx_callbacks *cbs)
{
    if (!cbs)
        return -EINVAL;
    pthread_mutex_lock(&lock);
    v1 = *cbs;
    pthread_mutex_unlock(&lock);
    return 0;
}

void ifpx_rte_v1_clear(void)
{
    pthread_mutex_lock(&lock);
    memset(&v1, 0, sizeof v1);
    pthread_mutex_unlock(&lock);
}

/* The callbacks as they are now: one of them may change them while another runs. */
static struct rte_ifpx_callbacks current(void)
{
    pthread_mutex_lock(&lock);
    struct rte_ifpx_callbacks cbs = v1;
    pthread_mutex_unlock(&lock);
    return cbs;
}

void ifpx_rte_v1_event(const struct rte_ifpx_event *e)
{
    struct rte_ifpx_callbacks cbs = current();
    uint16_t port = e->data.port_id;
    switch (e->type) {
    case RTE_IFPX_MAC_CHANGE:
        if (cbs.mac_change)
            cbs.mac_change(port, &e->mac_change.mac);
        break;
    case RTE_IFPX_MTU_CHANGE:
        if (cbs.mtu_change)
            cbs.mtu_change(port, e->mtu_change.mtu);
        break;
    case RTE_IFPX_LINK_CHANGE:
        if (cbs.link_change)
            cbs.link_change(port, e->link_change.is_up);
        break;
    case RTE_IFPX_ADDR_ADD:
        if (cbs.addr_add)
            cbs.addr_add(port, e->addr_change.ip);
        break;
    case RTE_IFPX_ADDR_DEL:
        if (cbs.addr_del)
            cbs.addr_del(port, e->addr_change.ip);
        break;
    case RTE_IFPX_ADDR6_ADD:
        if (cbs.addr6_add)
            cbs.addr6_add(port, e->addr6_change.ip);
        break;
    case RTE_IFPX_ADDR6_DEL:
        if (cbs.addr6_del)
            cbs.addr6_del(port, e->addr6_change.ip);
        break;
    case RTE_IFPX_CFG_DONE:
        if (cbs.cfg_finished)
            cbs.cfg_finished();
        break;
    default:
        break; /* routes: ifpx_rte_v1_route; neighbours: v1 has none */
    }
}

void ifpx_rte_v1_route(const struct rte_ifpx_event *e)
{
    struct rte_ifpx_callbacks cbs = current();
    switch (e->type) {
    case RTE_IFPX_ROUTE_ADD:
        if (cbs.route_add)
            cbs.route_add(e->route_change.ip, e->route_change.depth);
        break;
    case RTE_IFPX_ROUTE_DEL:
        if (cbs.route_del)
            cbs.route_del(e->route_change.ip, e->route_change.depth);
        break;
    case RTE_IFPX_ROUTE6_ADD:
        if (cbs.route6_add)
            cbs.route6_add(e->route6_change.ip, e->route6_change.depth);
        break;
    case RTE_IFPX_ROUTE6_DEL:
        if (cbs.route6_del)
            cbs.route6_del(e->route6_change.ip, e->route6_change.depth);
        break;
    default:
        break;
    }
}
