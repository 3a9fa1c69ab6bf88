/* The IF proxy API of DPDK's rte_ifpx RFC (v3, 2020, and its first posting, v1),
 * served by an ifpx bridge.
 *
 * An application written to the RFC builds against this header unchanged
 * (pkg-config ifpx-rte) and gets its events from the bridge instead of a netlink
 * socket of its own:
 *
 *     uint16_t proxy = rte_ifpx_proxy_create(RTE_IFPX_DEFAULT);  // a net_tap port
 *     rte_ifpx_port_bind(port_id, proxy);      // asks the bridge to bind them
 *     rte_ifpx_callbacks_register(RTE_DIM(cbs), cbs);
 *     rte_ifpx_listen();                       // events start, CFG_DONE after the state
 *
 * An application written to v1 (the cover letter: rte_ifpx_create, one struct
 * rte_ifpx_callbacks of twelve void callbacks, rte_ifpx_callbacks_register(&cbs))
 * builds unchanged too, without a define: see "v1" at the end.
 *
 * The bridge is found as by every ifpx client: $IFPX_EVENTS and $IFPX_CONTROL, else
 * ipc:///run/ifpx/events.sock and control.sock. What differs from the RFC (see the
 * worker guide, "Coming from the RFC"): the bridge owns the bindings, so a port id is
 * a bridge port id and two processes must not bind the same one; callbacks run on a
 * control thread of this library; an event for a full ring waits for room instead of
 * being dropped.
 */
#ifndef RTE_IF_PROXY_H
#define RTE_IF_PROXY_H

#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ring.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What rte_ifpx_proxy_create() makes. */
enum rte_ifpx_proxy_type {
    RTE_IFPX_DEFAULT, /* net_tap here */
    RTE_IFPX_TAP,     /* a net_tap port */
    RTE_IFPX_KNI      /* not supported: rte_errno ENOTSUP */
};

/* Make a DPDK port Linux sees, to be a proxy. RTE_MAX_ETHPORTS on failure (rte_errno). */
uint16_t rte_ifpx_proxy_create(enum rte_ifpx_proxy_type type);
/* The same from a device string for rte_dev_probe() ("net_tap3,iface=p3"). */
uint16_t rte_ifpx_proxy_create_by_devarg(const char *devarg);
/* Unbind the ports bound to a proxy and remove the proxy port. 0, or a negative errno. */
int rte_ifpx_proxy_destroy(uint16_t proxy_id);

/* Event types; bit (1 << type) of rte_ifpx_events_available(). */
enum rte_ifpx_event_type {
    RTE_IFPX_MAC_CHANGE,
    RTE_IFPX_MTU_CHANGE,
    RTE_IFPX_LINK_CHANGE,
    RTE_IFPX_ADDR_ADD,
    RTE_IFPX_ADDR_DEL,
    RTE_IFPX_ADDR6_ADD,
    RTE_IFPX_ADDR6_DEL,
    RTE_IFPX_ROUTE_ADD,
    RTE_IFPX_ROUTE_DEL,
    RTE_IFPX_ROUTE6_ADD,
    RTE_IFPX_ROUTE6_DEL,
    RTE_IFPX_NEIGH_ADD,
    RTE_IFPX_NEIGH_DEL,
    RTE_IFPX_NEIGH6_ADD,
    RTE_IFPX_NEIGH6_DEL,
    RTE_IFPX_CFG_DONE /* the initial state has been told; no data */
};

/* The event types delivered here: every one. */
uint64_t rte_ifpx_events_available(void);

/* An event, as callbacks see its member and rings carry it whole. IPv4 addresses are in
 * host order, IPv6 ones in network order. */
struct rte_ifpx_event {
    enum rte_ifpx_event_type type;
    union {
        struct rte_ifpx_mac_change {
            uint16_t port_id;
            struct rte_ether_addr mac;
        } mac_change;
        struct rte_ifpx_mtu_change {
            uint16_t port_id;
            uint16_t mtu;
        } mtu_change;
        struct rte_ifpx_link_change {
            uint16_t port_id;
            int is_up; /* administrative state (IFF_UP) */
        } link_change;
        struct rte_ifpx_addr_change {
            uint16_t port_id;
            uint32_t ip;
        } addr_change;
        struct rte_ifpx_addr6_change {
            uint16_t port_id;
            uint8_t ip[16];
        } addr6_change;
        struct rte_ifpx_route_change {
            uint16_t port_id;
            uint8_t depth;
            uint32_t ip;
            uint32_t gateway; /* 0: none */
        } route_change;
        struct rte_ifpx_route6_change {
            uint16_t port_id;
            uint8_t depth;
            uint8_t ip[16];
            uint8_t gateway[16]; /* all zero: none */
        } route6_change;
        struct rte_ifpx_neigh_change {
            uint16_t port_id;
            struct rte_ether_addr mac;
            uint32_t ip;
        } neigh_change;
        struct rte_ifpx_neigh6_change {
            uint16_t port_id;
            struct rte_ether_addr mac;
            uint8_t ip[16];
        } neigh6_change;
        struct {
            uint16_t port_id;
        } data; /* what every port event begins with */
    };
};

/* A callback per event type; a non-zero return consumes the event (it goes on no ring). */
union rte_ifpx_cb_ptr {
    int (*mac_change)(const struct rte_ifpx_mac_change *event);
    int (*mtu_change)(const struct rte_ifpx_mtu_change *event);
    int (*link_change)(const struct rte_ifpx_link_change *event);
    int (*addr_add)(const struct rte_ifpx_addr_change *event);
    int (*addr_del)(const struct rte_ifpx_addr_change *event);
    int (*addr6_add)(const struct rte_ifpx_addr6_change *event);
    int (*addr6_del)(const struct rte_ifpx_addr6_change *event);
    int (*route_add)(const struct rte_ifpx_route_change *event);
    int (*route_del)(const struct rte_ifpx_route_change *event);
    int (*route6_add)(const struct rte_ifpx_route6_change *event);
    int (*route6_del)(const struct rte_ifpx_route6_change *event);
    int (*neigh_add)(const struct rte_ifpx_neigh_change *event);
    int (*neigh_del)(const struct rte_ifpx_neigh_change *event);
    int (*neigh6_add)(const struct rte_ifpx_neigh6_change *event);
    int (*neigh6_del)(const struct rte_ifpx_neigh6_change *event);
    int (*cfg_done)(void);
};

struct rte_ifpx_callback {
    enum rte_ifpx_event_type type;
    union rte_ifpx_cb_ptr callback;
};

/* Register callbacks, each for its type (replacing that type's). Callbacks run on the
 * library's control thread without its lock: they may call this API. 0, or -EINVAL. */
int rte_ifpx_callbacks_register(unsigned int len, const struct rte_ifpx_callback cbs[]);
/* Forget the callback of one type (0, or -EINVAL), or of all. */
int rte_ifpx_callbacks_unregister(enum rte_ifpx_event_type ev);
void rte_ifpx_callbacks_unregister_all(void);

/* Rings an unconsumed event is put on, as a malloc'd struct rte_ifpx_event the
 * application frees. The library is the rings' only producer. 0, or a negative errno. */
int rte_ifpx_queue_add(struct rte_ring *r);
int rte_ifpx_queue_remove(struct rte_ring *r);

/* Bind a port to a proxy (a port Linux sees: its if_index is not 0): the bridge binds
 * port_id to the proxy's interface, and its events then reach the callbacks with
 * port_id. A bind after rte_ifpx_listen() brings the proxy's state. 0, or a negative
 * errno (-EINVAL, -ETIMEDOUT with no bridge, -EBUSY when another application's proxy
 * holds port_id at the bridge, -EPROTO when the bridge refused otherwise). */
int rte_ifpx_port_bind(uint16_t port_id, uint16_t proxy_id);
/* Unbind it, at the bridge from this application's proxy only. */
int rte_ifpx_port_unbind(uint16_t port_id);

/* Start the events: the state of the bound proxies, then RTE_IFPX_CFG_DONE, then each
 * change. 0, or a negative errno. */
int rte_ifpx_listen(void);
/* Stop the events; forget the bindings (the bridge's too, those this application made:
 * 5 s at most for all when the bridge does not answer, then -EIO), callbacks and rings.
 * May be called from a callback: the control thread ends once it returns. */
int rte_ifpx_close(void);

/* The proxy a port is bound to (a proxy: itself), or RTE_MAX_ETHPORTS. */
uint16_t rte_ifpx_proxy_get(uint16_t port_id);

static inline int rte_ifpx_is_proxy(uint16_t port_id)
{
    return rte_ifpx_proxy_get(port_id) == port_id;
}

/* The ports bound to a proxy, up to num of them in ports; returns how many there are. */
unsigned int rte_ifpx_port_get(uint16_t proxy_id, uint16_t *ports, unsigned int num);

/* A proxy's properties, kept up to date as events arrive. */
struct rte_ifpx_info {
    unsigned int if_index; /* valid iff not 0 */
    uint16_t mtu;
    struct rte_ether_addr mac;
    char if_name[RTE_ETH_NAME_MAX_LEN];
};

/* The properties of a port's proxy (a proxy's own), or NULL when it has none. */
const struct rte_ifpx_info *rte_ifpx_info_get(uint16_t port_id);

/* ---- v1: the RFC's first posting, beside v3 ----------------------------------------- */

/* v1's callbacks, all void, any of them NULL. Port events come once per port bound to
 * the proxy, routes once each and without a port (those through a bound proxy, and
 * the local route of each address), cfg_finished once after the initial state. IPv4
 * addresses in host order, IPv6 ones in network order. They run on the control thread,
 * as v3's, beside v3's callbacks and rings (which they neither consume nor replace). */
struct rte_ifpx_callbacks {
    void (*mac_change)(uint16_t port_id, const struct rte_ether_addr *mac);
    void (*mtu_change)(uint16_t port_id, uint16_t mtu);
    void (*link_change)(uint16_t port_id, int is_up);
    void (*addr_add)(uint16_t port_id, uint32_t ip);
    void (*addr_del)(uint16_t port_id, uint32_t ip);
    void (*addr6_add)(uint16_t port_id, const uint8_t *ip);
    void (*addr6_del)(uint16_t port_id, const uint8_t *ip);
    void (*route_add)(uint32_t ip, uint8_t depth);
    void (*route_del)(uint32_t ip, uint8_t depth);
    void (*route6_add)(const uint8_t *ip, uint8_t depth);
    void (*route6_del)(const uint8_t *ip, uint8_t depth);
    void (*cfg_finished)(void);
};

/* Register v1's callbacks, the whole set at once (a copy is kept). 0, or -EINVAL. */
int rte_ifpx_callbacks_register_v1(const struct rte_ifpx_callbacks *cbs);

/* rte_ifpx_callbacks_register(&cbs) is v1's, rte_ifpx_callbacks_register(len, cbs) v3's:
 * the number of arguments chooses (v3's keeps its symbol). A v1 argument that holds a
 * top-level comma (a compound literal) needs parentheses around it. */
#define RTE_IFPX_REGISTER_BY_COUNT_(a, b, c, d, e, f, g, h, name, ...) name
#define rte_ifpx_callbacks_register(...)                                                  \
    RTE_IFPX_REGISTER_BY_COUNT_(__VA_ARGS__, rte_ifpx_callbacks_register,                 \
                                rte_ifpx_callbacks_register, rte_ifpx_callbacks_register, \
                                rte_ifpx_callbacks_register, rte_ifpx_callbacks_register, \
                                rte_ifpx_callbacks_register, rte_ifpx_callbacks_register, \
                                rte_ifpx_callbacks_register_v1, ~)(__VA_ARGS__)

/* v1's names for making and removing a proxy. */
static inline uint16_t rte_ifpx_create(enum rte_ifpx_proxy_type type)
{
    return rte_ifpx_proxy_create(type);
}

static inline uint16_t rte_ifpx_create_by_devarg(const char *devarg)
{
    return rte_ifpx_proxy_create_by_devarg(devarg);
}

static inline int rte_ifpx_destroy(uint16_t proxy_id)
{
    return rte_ifpx_proxy_destroy(proxy_id);
}

#ifdef __cplusplus
}
#endif

#endif
