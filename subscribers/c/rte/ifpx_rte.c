/* rte_if_proxy.h over an ifpx bridge: the RFC's API, with the bridge in place of the
 * library's own netlink socket.
 *
 * Bindings go to the bridge (ifpx_bind) as the application makes them; rte_ifpx_listen()
 * opens a subscriber (libifpx) on a control thread of ours, and each event it delivers is
 * turned into the RFC's: per port bound here, IPv4 in host order, link changes of the
 * administrative flag only, MAC and MTU only when they differ from what the port was
 * last told (at bind, DPDK's own view of the proxy). The kernel's local routes of an
 * address (its /32 or /128), which the bridge does not publish, follow its addr events
 * as the RFC's netlink socket saw them.
 *
 * One mutex guards the tables; callbacks are called without it, so that they may call
 * this API (the RFC's own test unregisters callbacks from inside one). v1's callbacks
 * (ifpx_rte_v1.c) are handed the same events as they are made.
 */
#include "ifpx_rte_int.h"

#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_log.h>

#include "ifpx.h"

#define NONE RTE_MAX_ETHPORTS
#define N_TYPES (RTE_IFPX_CFG_DONE + 1)
#define BIND_TIMEOUT_MS 5000
#define MAX_RINGS 64

#define LOG(level, ...) rte_log(RTE_LOG_##level, RTE_LOGTYPE_USER1, "ifpx-rte: " __VA_ARGS__)

struct proxy {
    int known;                 /* created here, or bound to */
    int created;               /* by rte_ifpx_proxy_create*: removed by proxy_destroy */
    struct rte_ifpx_info info; /* what rte_ifpx_info_get hands out, kept live */
};

/* What a port was last told, so that a state the bridge repeats (its initial dump, a
 * carrier change beside an unchanged admin state) does not reach it again. */
struct told {
    int link_known, up;
    uint16_t mtu;
    struct rte_ether_addr mac;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint16_t bound_to[RTE_MAX_ETHPORTS];  /* port -> proxy (a proxy -> itself), or NONE */
static int bridge_bound[RTE_MAX_ETHPORTS];   /* bound at the bridge by this process */
static struct proxy proxies[RTE_MAX_ETHPORTS];
static struct told told[RTE_MAX_ETHPORTS];
static union rte_ifpx_cb_ptr callbacks[N_TYPES];
static struct rte_ring *rings[MAX_RINGS];
static unsigned n_rings;

/* One rte_ifpx_listen(): its subscriber and control thread. rte_ifpx_close() from a
 * callback, on that thread, cannot wait for it: the listener is detached instead, and
 * the thread frees it once the callback has returned. */
struct listener {
    pthread_t thread;
    struct ifpx_sub *sub;
    atomic_int stop;
    atomic_int detached;
};
static struct listener *current; /* under the lock */
static _Thread_local struct listener *self; /* on a control thread: its own */

RTE_INIT(ifpx_rte_init)
{
    for (unsigned i = 0; i < RTE_MAX_ETHPORTS; i++)
        bound_to[i] = NONE;
}

/* ---- proxies -------------------------------------------------------------------------- */

uint64_t rte_ifpx_events_available(void)
{
    return (1ULL << N_TYPES) - 1;
}

uint16_t rte_ifpx_proxy_create(enum rte_ifpx_proxy_type type)
{
    if (type == RTE_IFPX_KNI) {
        LOG(ERR, "KNI proxies are not supported: use RTE_IFPX_TAP\n");
        rte_errno = ENOTSUP;
        return NONE;
    }
    if (type != RTE_IFPX_DEFAULT && type != RTE_IFPX_TAP) {
        rte_errno = EINVAL;
        return NONE;
    }
    /* the first net_tapN name no port holds yet */
    char name[RTE_ETH_NAME_MAX_LEN];
    uint16_t taken;
    for (unsigned n = 0;; n++) {
        snprintf(name, sizeof name, "net_tap%u", n);
        if (rte_eth_dev_get_port_by_name(name, &taken) != 0)
            break;
    }
    return rte_ifpx_proxy_create_by_devarg(name);
}

/* The proxy entry of port `id`, filled from DPDK's view of it (under the lock). */
static struct proxy *proxy_entry(uint16_t id)
{
    struct proxy *px = &proxies[id];
    if (px->known)
        return px;
    struct rte_eth_dev_info dev;
    if (rte_eth_dev_info_get(id, &dev) != 0 || dev.if_index == 0)
        return NULL; /* Linux does not see it: no proxy */
    memset(px, 0, sizeof *px);
    px->info.if_index = dev.if_index;
    rte_eth_dev_get_mtu(id, &px->info.mtu);
    rte_eth_macaddr_get(id, &px->info.mac);
    if (!if_indextoname(dev.if_index, px->info.if_name))
        px->info.if_name[0] = 0;
    px->known = 1;
    bound_to[id] = id;
    return px;
}

uint16_t rte_ifpx_proxy_create_by_devarg(const char *devarg)
{
    if (!devarg) {
        rte_errno = EINVAL;
        return NONE;
    }
    int rc = rte_dev_probe(devarg);
    if (rc < 0) {
        LOG(ERR, "cannot create proxy port %s: %s\n", devarg, strerror(-rc));
        rte_errno = -rc;
        return NONE;
    }
    struct rte_dev_iterator it;
    uint16_t id = NONE;
    if (rte_eth_iterator_init(&it, devarg) == 0) {
        id = rte_eth_iterator_next(&it);
        if (id != NONE)
            rte_eth_iterator_cleanup(&it);
    }
    if (id == NONE) {
        rte_errno = ENODEV;
        return NONE;
    }
    pthread_mutex_lock(&lock);
    struct proxy *px = proxy_entry(id);
    if (px)
        px->created = 1;
    pthread_mutex_unlock(&lock);
    if (!px) {
        rte_errno = ENODEV; /* a device Linux does not see */
        return NONE;
    }
    return id;
}

static struct ifpx_options bridge_options(void)
{
    return (struct ifpx_options){.topics = "link,addr,route,neigh"};
}

/* A port this process bound at the bridge, and the proxy it bound it to. */
struct owned {
    uint16_t port;
    char proxy[IF_NAMESIZE];
};

/* Note (under the lock) that this process no longer holds `port` at the bridge; 1 if it
 * did, with what to unbind there filled in. */
static int disown(uint16_t port, struct owned *o)
{
    if (!bridge_bound[port])
        return 0;
    bridge_bound[port] = 0;
    o->port = port;
    snprintf(o->proxy, sizeof o->proxy, "%.*s", IF_NAMESIZE - 1,
             proxies[bound_to[port]].info.if_name);
    return 1;
}

/* Unbind at the bridge what this process bound there, from its own proxies only (an
 * other application's binding of the same port id stays), without the lock: it waits.
 * One deadline for all: a bridge that is gone costs BIND_TIMEOUT_MS, not that per port. */
static int bridge_unbind(const struct owned *o, unsigned n)
{
    struct ifpx_options opt = bridge_options();
    struct ifpx_reply reply;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long end = t.tv_sec * 1000L + t.tv_nsec / 1000000L + BIND_TIMEOUT_MS;
    int rc = 0;
    for (unsigned i = 0; i < n; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = end - (t.tv_sec * 1000L + t.tv_nsec / 1000000L);
        int one = left > 0 ? ifpx_unbind_from(&opt, o[i].port, o[i].proxy, (int)left, &reply)
                           : -ETIMEDOUT;
        if (one) {
            LOG(WARNING, "the bridge did not unbind port %u from %s: %s\n", o[i].port,
                o[i].proxy, one == -EPROTO ? reply.message : strerror(-one));
            rc = one;
        }
    }
    return rc;
}

int rte_ifpx_proxy_destroy(uint16_t proxy_id)
{
    struct owned owned[RTE_MAX_ETHPORTS];
    unsigned n = 0;
    pthread_mutex_lock(&lock);
    if (proxy_id >= NONE || !proxies[proxy_id].known) {
        pthread_mutex_unlock(&lock);
        return -EINVAL;
    }
    int created = proxies[proxy_id].created;
    for (uint16_t p = 0; p < NONE; p++)
        if (bound_to[p] == proxy_id && p != proxy_id) {
            n += disown(p, &owned[n]);
            bound_to[p] = NONE;
        }
    bound_to[proxy_id] = NONE;
    memset(&proxies[proxy_id], 0, sizeof proxies[proxy_id]);
    pthread_mutex_unlock(&lock);
    bridge_unbind(owned, n);
    if (!created)
        return 0;
    struct rte_eth_dev_info dev;
    if (rte_eth_dev_info_get(proxy_id, &dev) != 0)
        return -ENODEV;
    return rte_dev_remove(dev.device);
}

/* ---- bindings ------------------------------------------------------------------------- */

int rte_ifpx_port_bind(uint16_t port_id, uint16_t proxy_id)
{
    if (port_id >= NONE || proxy_id >= NONE || port_id == proxy_id)
        return -EINVAL;
    pthread_mutex_lock(&lock);
    uint16_t was = bound_to[port_id];
    struct proxy *px = was == port_id ? NULL : proxy_entry(proxy_id); /* a proxy: no port */
    char name[IF_NAMESIZE] = "";
    if (px && !if_indextoname(px->info.if_index, name))
        px = NULL; /* gone from Linux since */
    if (px)
        snprintf(px->info.if_name, sizeof px->info.if_name, "%s", name);
    pthread_mutex_unlock(&lock);
    if (!px)
        return -EINVAL;
    if (was != NONE && was != proxy_id)
        LOG(WARNING, "port %u was bound to %u: bound to %u now\n", port_id, was, proxy_id);

    struct ifpx_options opt = bridge_options();
    struct ifpx_reply reply;
    /* Exclusive: a port another application's proxy holds is refused, not taken. */
    int rc = ifpx_bind_exclusive(&opt, port_id, name, BIND_TIMEOUT_MS, &reply);
    if (rc) {
        LOG(ERR, "the bridge did not bind port %u to %s: %s\n", port_id, name,
            rc == -EPROTO ? reply.message : strerror(-rc));
        return rc == -EPROTO && !strcmp(reply.code, "already_exists") ? -EBUSY : rc;
    }
    pthread_mutex_lock(&lock);
    bound_to[port_id] = proxy_id;
    bridge_bound[port_id] = 1;
    told[port_id] = (struct told){.mtu = px->info.mtu, .mac = px->info.mac};
    pthread_mutex_unlock(&lock);
    /* The port takes the proxy's MAC too: what Linux sends through it comes back to it. */
    rte_eth_dev_mac_addr_add(port_id, &px->info.mac, 0);
    return 0;
}

int rte_ifpx_port_unbind(uint16_t port_id)
{
    pthread_mutex_lock(&lock);
    if (port_id >= NONE || bound_to[port_id] == NONE || bound_to[port_id] == port_id) {
        pthread_mutex_unlock(&lock);
        return -EINVAL;
    }
    struct owned o;
    int at_bridge = disown(port_id, &o);
    bound_to[port_id] = NONE;
    pthread_mutex_unlock(&lock);
    return at_bridge ? bridge_unbind(&o, 1) : 0;
}

uint16_t rte_ifpx_proxy_get(uint16_t port_id)
{
    if (port_id >= NONE)
        return NONE;
    pthread_mutex_lock(&lock);
    uint16_t p = bound_to[port_id];
    pthread_mutex_unlock(&lock);
    return p;
}

unsigned int rte_ifpx_port_get(uint16_t proxy_id, uint16_t *ports, unsigned int num)
{
    unsigned n = 0;
    pthread_mutex_lock(&lock);
    for (uint16_t p = 0; p < NONE; p++)
        if (bound_to[p] == proxy_id && p != proxy_id) {
            if (ports && n < num)
                ports[n] = p;
            n++;
        }
    pthread_mutex_unlock(&lock);
    return n;
}

const struct rte_ifpx_info *rte_ifpx_info_get(uint16_t port_id)
{
    const struct rte_ifpx_info *info = NULL;
    pthread_mutex_lock(&lock);
    if (port_id < NONE && bound_to[port_id] != NONE)
        info = &proxies[bound_to[port_id]].info;
    pthread_mutex_unlock(&lock);
    return info;
}

/* ---- callbacks and rings -------------------------------------------------------------- */

/* (In parentheses: the header's macro chooses between v1 and this, v3's.) */
int(rte_ifpx_callbacks_register)(unsigned int len, const struct rte_ifpx_callback cbs[])
{
    if (!cbs || !len)
        return -EINVAL;
    for (unsigned i = 0; i < len; i++)
        if ((unsigned)cbs[i].type >= N_TYPES)
            return -EINVAL;
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < len; i++)
        callbacks[cbs[i].type] = cbs[i].callback;
    pthread_mutex_unlock(&lock);
    return 0;
}

int rte_ifpx_callbacks_unregister(enum rte_ifpx_event_type ev)
{
    if ((unsigned)ev >= N_TYPES)
        return -EINVAL;
    pthread_mutex_lock(&lock);
    memset(&callbacks[ev], 0, sizeof callbacks[ev]);
    pthread_mutex_unlock(&lock);
    return 0;
}

void rte_ifpx_callbacks_unregister_all(void)
{
    pthread_mutex_lock(&lock);
    memset(callbacks, 0, sizeof callbacks);
    pthread_mutex_unlock(&lock);
    ifpx_rte_v1_clear();
}

int rte_ifpx_queue_add(struct rte_ring *r)
{
    int rc = 0;
    if (!r)
        return -EINVAL;
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < n_rings; i++)
        if (rings[i] == r)
            rc = -EEXIST;
    if (!rc && n_rings == MAX_RINGS)
        rc = -ENOSPC;
    if (!rc)
        rings[n_rings++] = r;
    pthread_mutex_unlock(&lock);
    return rc;
}

int rte_ifpx_queue_remove(struct rte_ring *r)
{
    int rc = -EINVAL;
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < n_rings; i++)
        if (rings[i] == r) {
            rings[i] = rings[--n_rings];
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int call(enum rte_ifpx_event_type type, union rte_ifpx_cb_ptr cb,
                const struct rte_ifpx_event *e)
{
    switch (type) {
    case RTE_IFPX_MAC_CHANGE: return cb.mac_change(&e->mac_change);
    case RTE_IFPX_MTU_CHANGE: return cb.mtu_change(&e->mtu_change);
    case RTE_IFPX_LINK_CHANGE: return cb.link_change(&e->link_change);
    case RTE_IFPX_ADDR_ADD: return cb.addr_add(&e->addr_change);
    case RTE_IFPX_ADDR_DEL: return cb.addr_del(&e->addr_change);
    case RTE_IFPX_ADDR6_ADD: return cb.addr6_add(&e->addr6_change);
    case RTE_IFPX_ADDR6_DEL: return cb.addr6_del(&e->addr6_change);
    case RTE_IFPX_ROUTE_ADD: return cb.route_add(&e->route_change);
    case RTE_IFPX_ROUTE_DEL: return cb.route_del(&e->route_change);
    case RTE_IFPX_ROUTE6_ADD: return cb.route6_add(&e->route6_change);
    case RTE_IFPX_ROUTE6_DEL: return cb.route6_del(&e->route6_change);
    case RTE_IFPX_NEIGH_ADD: return cb.neigh_add(&e->neigh_change);
    case RTE_IFPX_NEIGH_DEL: return cb.neigh_del(&e->neigh_change);
    case RTE_IFPX_NEIGH6_ADD: return cb.neigh6_add(&e->neigh6_change);
    case RTE_IFPX_NEIGH6_DEL: return cb.neigh6_del(&e->neigh6_change);
    case RTE_IFPX_CFG_DONE: return cb.cfg_done();
    }
    return 0;
}

/* Every ring gets its copy: a full ring is waited on (never a silent drop), as long
 * as it stays registered and the library is not closing. */
static void enqueue(const struct rte_ifpx_event *e)
{
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < n_rings; i++) {
        struct rte_ring *r = rings[i];
        struct rte_ifpx_event *copy = malloc(sizeof *copy);
        if (!copy) {
            LOG(ERR, "out of memory: an event is lost to a ring\n");
            continue;
        }
        *copy = *e;
        while (rte_ring_sp_enqueue(r, copy) != 0) {
            pthread_mutex_unlock(&lock);
            nanosleep(&(struct timespec){0, 1000000}, NULL);
            pthread_mutex_lock(&lock);
            if ((self && atomic_load(&self->stop)) || i >= n_rings || rings[i] != r) {
                free(copy); /* the ring went away meanwhile */
                break;
            }
        }
    }
    pthread_mutex_unlock(&lock);
}

static void deliver(const struct rte_ifpx_event *e)
{
    ifpx_rte_v1_event(e);
    pthread_mutex_lock(&lock);
    union rte_ifpx_cb_ptr cb = callbacks[e->type];
    pthread_mutex_unlock(&lock);
    if (cb.cfg_done && call(e->type, cb, e))
        return; /* consumed */
    enqueue(e);
}

/* ---- bridge events -> RFC events ------------------------------------------------------ */

static uint32_t host4(const uint8_t *ip)
{
    return (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 | (uint32_t)ip[2] << 8 | ip[3];
}

/* Whether the bridge's port is one of ours (bound here, not a proxy). */
static int ours(uint16_t port)
{
    return port < NONE && bound_to[port] != NONE && bound_to[port] != port;
}

/* Whether a port event is about one of our ports and the proxy we bound it to: the
 * bridge's port ids are shared, and another application's binding of the same id
 * (made without exclusive) must not reach ours (under the lock). */
static int mine(const struct ifpx_event *ev)
{
    return ours(ev->port_id) && proxies[bound_to[ev->port_id]].info.if_index == ev->ifindex;
}

/* mac, mtu, link: updates the proxy's info and what the port was told; 1 if it is news. */
static int port_state(const struct ifpx_event *ev, struct rte_ifpx_event *out)
{
    pthread_mutex_lock(&lock);
    int news = 0;
    if (mine(ev)) {
        struct told *t = &told[ev->port_id];
        struct rte_ifpx_info *info = &proxies[bound_to[ev->port_id]].info;
        out->data.port_id = ev->port_id;
        if (ev->kind == IFPX_MAC_CHANGE && ev->has_mac) {
            memcpy(info->mac.addr_bytes, ev->mac, 6);
            news = memcmp(t->mac.addr_bytes, ev->mac, 6) != 0;
            t->mac = info->mac;
            out->type = RTE_IFPX_MAC_CHANGE;
            out->mac_change.mac = info->mac;
        } else if (ev->kind == IFPX_MTU_CHANGE) {
            info->mtu = (uint16_t)ev->mtu;
            news = t->mtu != info->mtu;
            t->mtu = info->mtu;
            out->type = RTE_IFPX_MTU_CHANGE;
            out->mtu_change.mtu = info->mtu;
        } else if (ev->kind == IFPX_LINK_CHANGE) {
            /* the first one is the state the port is in, not a change */
            news = t->link_known && t->up != !!ev->up;
            t->link_known = 1;
            t->up = !!ev->up;
            out->type = RTE_IFPX_LINK_CHANGE;
            out->link_change.is_up = t->up;
        }
    }
    pthread_mutex_unlock(&lock);
    return news;
}

/* The first of our ports bound to the proxy `port` is bound to (under the lock). */
static uint16_t first_port_of(uint16_t port)
{
    for (uint16_t p = 0; p < NONE; p++)
        if (ours(p) && bound_to[p] == bound_to[port])
            return p;
    return NONE;
}

static void addr_event(const struct ifpx_event *ev)
{
    pthread_mutex_lock(&lock);
    int ok = mine(ev);
    int first = ok && first_port_of(ev->port_id) == ev->port_id;
    pthread_mutex_unlock(&lock);
    if (!ok)
        return;
    int add = ev->kind == IFPX_ADDR_ADD || ev->kind == IFPX_ADDR6_ADD;
    struct rte_ifpx_event a = {0}, r = {0};
    a.data.port_id = r.data.port_id = ev->port_id;
    if (ev->kind == IFPX_ADDR_ADD || ev->kind == IFPX_ADDR_DEL) {
        a.type = add ? RTE_IFPX_ADDR_ADD : RTE_IFPX_ADDR_DEL;
        a.addr_change.ip = host4(ev->ip);
        r.type = add ? RTE_IFPX_ROUTE_ADD : RTE_IFPX_ROUTE_DEL;
        r.route_change.depth = 32;
        r.route_change.ip = a.addr_change.ip;
    } else {
        a.type = add ? RTE_IFPX_ADDR6_ADD : RTE_IFPX_ADDR6_DEL;
        memcpy(a.addr6_change.ip, ev->ip, 16);
        r.type = add ? RTE_IFPX_ROUTE6_ADD : RTE_IFPX_ROUTE6_DEL;
        r.route6_change.depth = 128;
        memcpy(r.route6_change.ip, ev->ip, 16);
    }
    deliver(&a);
    deliver(&r); /* the kernel's local route of the address */
    if (first)
        ifpx_rte_v1_route(&r); /* v1: once per address, not per port */
}

static void route_event(const struct ifpx_event *ev)
{
    int v4 = ev->kind == IFPX_ROUTE_ADD || ev->kind == IFPX_ROUTE_DEL;
    int add = ev->kind == IFPX_ROUTE_ADD || ev->kind == IFPX_ROUTE6_ADD;
    struct rte_ifpx_event route = {0}; /* v1's: once for the route, if a port had it */
    int told = 0;
    for (unsigned h = 0; h < ev->nh_count; h++) {
        const struct ifpx_nexthop *nh = &ev->nh[h];
        uint16_t ports[RTE_MAX_ETHPORTS];
        unsigned n = 0;
        pthread_mutex_lock(&lock);
        for (uint16_t p = 0; p < NONE; p++)
            if (ours(p) && proxies[bound_to[p]].info.if_index == nh->ifindex)
                ports[n++] = p;
        pthread_mutex_unlock(&lock);
        for (unsigned i = 0; i < n; i++) {
            struct rte_ifpx_event e = {0};
            e.data.port_id = ports[i];
            if (v4) {
                e.type = add ? RTE_IFPX_ROUTE_ADD : RTE_IFPX_ROUTE_DEL;
                e.route_change.depth = ev->prefixlen;
                e.route_change.ip = host4(ev->ip);
                if (nh->has_gateway)
                    e.route_change.gateway = host4(nh->gateway);
            } else {
                e.type = add ? RTE_IFPX_ROUTE6_ADD : RTE_IFPX_ROUTE6_DEL;
                e.route6_change.depth = ev->prefixlen;
                memcpy(e.route6_change.ip, ev->ip, 16);
                if (nh->has_gateway)
                    memcpy(e.route6_change.gateway, nh->gateway, 16);
            }
            deliver(&e);
            route = e;
            told = 1;
        }
    }
    if (told)
        ifpx_rte_v1_route(&route);
}

static void neigh_event(const struct ifpx_event *ev)
{
    int add = ev->kind == IFPX_NEIGH_ADD || ev->kind == IFPX_NEIGH6_ADD;
    pthread_mutex_lock(&lock);
    int ok = mine(ev);
    pthread_mutex_unlock(&lock);
    if (!ok || (add && !ev->has_mac))
        return; /* an entry without a MAC yet (incomplete) tells a forwarder nothing */
    struct rte_ifpx_event e = {0};
    e.data.port_id = ev->port_id;
    if (ev->kind == IFPX_NEIGH_ADD || ev->kind == IFPX_NEIGH_DEL) {
        e.type = add ? RTE_IFPX_NEIGH_ADD : RTE_IFPX_NEIGH_DEL;
        e.neigh_change.ip = host4(ev->ip);
        memcpy(e.neigh_change.mac.addr_bytes, ev->mac, 6);
    } else {
        e.type = add ? RTE_IFPX_NEIGH6_ADD : RTE_IFPX_NEIGH6_DEL;
        memcpy(e.neigh6_change.ip, ev->ip, 16);
        memcpy(e.neigh6_change.mac.addr_bytes, ev->mac, 6);
    }
    deliver(&e);
}

static int on_event(const struct ifpx_event *ev, void *ctx)
{
    (void)ctx;
    struct rte_ifpx_event e = {0};
    switch (ev->kind) {
    case IFPX_MAC_CHANGE: case IFPX_MTU_CHANGE: case IFPX_LINK_CHANGE:
        if (port_state(ev, &e))
            deliver(&e);
        break;
    case IFPX_ADDR_ADD: case IFPX_ADDR_DEL: case IFPX_ADDR6_ADD: case IFPX_ADDR6_DEL:
        addr_event(ev);
        break;
    case IFPX_ROUTE_ADD: case IFPX_ROUTE_DEL: case IFPX_ROUTE6_ADD: case IFPX_ROUTE6_DEL:
        route_event(ev);
        break;
    case IFPX_NEIGH_ADD: case IFPX_NEIGH_DEL: case IFPX_NEIGH6_ADD: case IFPX_NEIGH6_DEL:
        neigh_event(ev);
        break;
    case IFPX_PROXY_BACK: /* re-created: its events come with its new ifindex */
        pthread_mutex_lock(&lock);
        if (ours(ev->port_id) && !strcmp(proxies[bound_to[ev->port_id]].info.if_name, ev->proxy))
            proxies[bound_to[ev->port_id]].info.if_index = ev->ifindex;
        pthread_mutex_unlock(&lock);
        break;
    case IFPX_PROXY_RENAMED:
        pthread_mutex_lock(&lock);
        for (uint16_t p = 0; p < NONE; p++)
            if (proxies[p].known && proxies[p].info.if_index == ev->ifindex)
                snprintf(proxies[p].info.if_name, sizeof proxies[p].info.if_name, "%s",
                         ev->proxy);
        pthread_mutex_unlock(&lock);
        break;
    case IFPX_CFG_DONE:
        e.type = RTE_IFPX_CFG_DONE;
        deliver(&e);
        break;
    default:
        break;
    }
    return 0;
}

static void log_to_eal(int level, const char *text, void *ctx)
{
    (void)ctx;
    /* syslog levels are EAL's minus one */
    rte_log((uint32_t)level + 1, RTE_LOGTYPE_USER1, "ifpx-rte: %s\n", text);
}

static void *control_thread(void *arg)
{
    struct listener *l = self = arg;
    int synced = 0;
    while (!atomic_load(&l->stop)) {
        if (!synced) {
            synced = ifpx_sync(l->sub, 200) == 0;
            continue;
        }
        if (ifpx_wait(l->sub, 100))
            ifpx_poll(l->sub, 64);
    }
    if (atomic_load(&l->detached)) { /* closed from one of its callbacks */
        ifpx_close(l->sub);
        free(l);
    }
    return NULL;
}

int rte_ifpx_listen(void)
{
    static const struct ifpx_callbacks all = {
        .mac_change = on_event, .mtu_change = on_event, .link_change = on_event,
        .addr_add = on_event, .addr_del = on_event, .addr6_add = on_event,
        .addr6_del = on_event, .route_add = on_event, .route_del = on_event,
        .route6_add = on_event, .route6_del = on_event, .neigh_add = on_event,
        .neigh_del = on_event, .neigh6_add = on_event, .neigh6_del = on_event,
        .cfg_done = on_event, .proxy_renamed = on_event, .proxy_back = on_event,
    };
    struct ifpx_options opt = bridge_options();
    opt.log = log_to_eal;
    int rc = 0;
    /* Under the lock (opening connects without waiting): a close meanwhile finds the
     * listener whole or not at all. */
    pthread_mutex_lock(&lock);
    struct listener *l = current ? NULL : calloc(1, sizeof *l);
    if (current)
        rc = -EBUSY;
    else if (!l)
        rc = -ENOMEM;
    else if (!(l->sub = ifpx_open(&opt, &all, NULL)))
        rc = -errno;
    else if ((rc = -pthread_create(&l->thread, NULL, control_thread, l)) != 0)
        ifpx_close(l->sub);
    if (rc)
        free(l);
    else
        current = l;
    pthread_mutex_unlock(&lock);
    return rc;
}

int rte_ifpx_close(void)
{
    pthread_mutex_lock(&lock);
    struct listener *l = current;
    current = NULL;
    pthread_mutex_unlock(&lock);
    if (l) {
        atomic_store(&l->stop, 1);
        if (l == self) {
            /* From a callback: the thread cannot wait for itself. It ends, and frees
             * the listener, once the callback has returned. */
            atomic_store(&l->detached, 1);
            pthread_detach(l->thread);
        } else {
            pthread_join(l->thread, NULL);
            ifpx_close(l->sub);
            free(l);
        }
    }
    struct owned owned[RTE_MAX_ETHPORTS];
    unsigned n = 0;
    pthread_mutex_lock(&lock);
    for (uint16_t p = 0; p < NONE; p++) {
        if (bound_to[p] != NONE && bound_to[p] != p)
            n += disown(p, &owned[n]);
        bound_to[p] = NONE;
        bridge_bound[p] = 0;
    }
    memset(proxies, 0, sizeof proxies);
    memset(told, 0, sizeof told);
    memset(callbacks, 0, sizeof callbacks);
    n_rings = 0;
    pthread_mutex_unlock(&lock);
    ifpx_rte_v1_clear();
    return bridge_unbind(owned, n) ? -EIO : 0;
}
