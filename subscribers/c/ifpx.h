/* ifpx subscriber for C and DPDK workers.
 *
 * Speaks the protocol of docs/protocol.md exactly as the Python Subscriber does:
 * subscribe first, take a snapshot, check every message's epoch and per-topic
 * sequence and the heartbeats, repair a gap from the bridge's journal or, failing
 * that, with a fresh snapshot whose difference reaches the application as
 * ordinary events between resync_begin and resync_end.
 *
 *     struct ifpx_callbacks cb = {.mtu_change = on_mtu, .route_add = on_route, ...};
 *     struct ifpx_sub *s = ifpx_open(&(struct ifpx_options){0}, &cb, app);
 *     ifpx_sync(s, 5000);                 // snapshot applied; its events queued
 *     for (;;) ifpx_poll(s, 32);          // in the lcore loop: never blocks
 *
 * One ifpx_sub belongs to one thread (lcore); give each lcore its own. Every call
 * retries when a signal interrupts it (net_tap's SIGIO does), and nothing a bridge
 * or a stranger sends can crash it: bad messages are counted and dropped.
 */
#ifndef IFPX_H
#define IFPX_H

#include <stdint.h>

#include "ifpx_machine.h"
#include "ifpx_replica.h"
#include "ifpx_wire.h"

/* Where the bridge is unless told otherwise (ifpx.schemas.endpoints: the same strings). */
#define IFPX_DEFAULT_EVENTS "ipc:///run/ifpx/events.sock"
#define IFPX_DEFAULT_CONTROL "ipc:///run/ifpx/control.sock"

/* An event handler; a non-zero return is counted in callback_errors. */
typedef int (*ifpx_cb)(const struct ifpx_event *ev, void *ctx);

/* Shaped like DPDK's rte_ifpx_callbacks; NULL members are skipped. */
struct ifpx_callbacks {
    ifpx_cb mac_change, mtu_change, link_change;
    ifpx_cb addr_add, addr_del, addr6_add, addr6_del;
    ifpx_cb route_add, route_del, route6_add, route6_del;
    ifpx_cb neigh_add, neigh_del, neigh6_add, neigh6_del;
    ifpx_cb cfg_done;
    /* beyond the RFC: bindings and repairs */
    ifpx_cb port_bound, port_unbound, proxy_gone, proxy_renamed, proxy_back;
    ifpx_cb resync_begin, resync_end;
};

struct ifpx_options {
    const char *events;        /* NULL: $IFPX_EVENTS, else ipc:///run/ifpx/events.sock */
    const char *control;       /* NULL: $IFPX_CONTROL, else ipc:///run/ifpx/control.sock */
    const char *topics;        /* "link,addr,route,neigh" or a part of it; NULL: all */
    int heartbeat_timeout_ms;  /* 0: 3500 (3.5 heartbeats) */
    int request_timeout_ms;    /* 0: 5000 */
    int rcvhwm;                /* 0: 100000 messages */
    /* CURVE for tcp endpoints, as Z85 text; NULL: from the certificate files named by
     * $IFPX_CURVE_SERVER_KEY and $IFPX_CURVE_CERT when both are set, else none. */
    const char *curve_server_key, *curve_public_key, *curve_secret_key;
    void *zmq_context;         /* NULL: the library makes one per subscriber */
    void (*log)(int level, const char *text, void *ctx); /* NULL: silent; level as syslog */
};

/* NULL with errno set on failure (EINVAL for bad options, ENOMEM, or zmq's errno). */
struct ifpx_sub *ifpx_open(const struct ifpx_options *opt, const struct ifpx_callbacks *cb,
                           void *ctx);
/* Takes the first snapshot: 0 once applied (its events then wait for ifpx_poll),
 * -ETIMEDOUT if no bridge answered in time (call again to keep waiting). */
int ifpx_sync(struct ifpx_sub *s, int timeout_ms);
/* Dispatches at most max_events events; never blocks. Returns how many. */
int ifpx_poll(struct ifpx_sub *s, unsigned max_events);
/* Blocks until ifpx_poll has work or timeout_ms passes: 1 or 0. */
int ifpx_wait(struct ifpx_sub *s, int timeout_ms);
/* The replica: what the events delivered so far (and any snapshot) describe. */
const struct ifpx_replica *ifpx_state(const struct ifpx_sub *s);
const struct ifpx_stats *ifpx_stats(const struct ifpx_sub *s);
/* The bridge epoch and sequence this subscriber is consistent with. */
uint64_t ifpx_epoch(const struct ifpx_sub *s);
uint64_t ifpx_seq(const struct ifpx_sub *s);
/* 1 while a journal or snapshot repair is under way. */
int ifpx_repairing(const struct ifpx_sub *s);
void ifpx_close(struct ifpx_sub *s);

/* One command on the control socket, with its own short-lived socket (retries on
 * EINTR). 0 when the bridge said ok; -EPROTO when it refused (reply->code says why);
 * -ETIMEDOUT when it did not answer. opt supplies the endpoint and CURVE keys. */
int ifpx_bind(const struct ifpx_options *opt, uint16_t port_id, const char *proxy,
              int timeout_ms, struct ifpx_reply *reply);
int ifpx_unbind(const struct ifpx_options *opt, uint16_t port_id, int timeout_ms,
                struct ifpx_reply *reply);

#endif
