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
 *
 * Return convention: a function that can fail returns 0 or a negative errno
 * (ifpx_open: NULL and errno); the decoders of ifpx_wire.h return a negative
 * enum ifpx_status. Every rule of the protocol lives in the pure machine of
 * ifpx_machine.h; this file is the sockets around it.
 */
#ifndef IFPX_H
#define IFPX_H

#include <stdint.h>

#include "ifpx_machine.h"
#include "ifpx_replica.h"
#include "ifpx_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* This library's version (the Makefile's VERSION; a test holds them equal). */
#define IFPX_VERSION "2.0.0"

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
    /* protocol minor 1: policy routing rules */
    ifpx_cb rule_add, rule_del, rule6_add, rule6_del;
    /* protocol minor 3: the group form of routes (topic "fib" in ifpx_options.topics) */
    ifpx_cb nhgroup_set, nhgroup_del, groute_add, groute_del, groute6_add, groute6_del;
};

struct ifpx_options {
    const char *events;        /* NULL: $IFPX_EVENTS, else ipc:///run/ifpx/events.sock */
    const char *control;       /* NULL: $IFPX_CONTROL, else ipc:///run/ifpx/control.sock */
    /* "link,addr,route,rule,neigh" or a part of it; NULL: all. "fib" instead of "route":
     * routes by next-hop group (nhgroup_set, groute_add...): a dead hop is one event. */
    const char *topics;
    int heartbeat_timeout_ms;  /* 0: 3500 (3.5 heartbeats) */
    int request_timeout_ms;    /* 0: 5000 */
    int rcvhwm;                /* 0: 100000 messages */
    /* CURVE for tcp endpoints, as Z85 text; NULL: from the certificate files named by
     * $IFPX_CURVE_SERVER_KEY and $IFPX_CURVE_CERT when both are set, else none. */
    const char *curve_server_key, *curve_public_key, *curve_secret_key;
    void *zmq_context;         /* NULL: the library makes one per subscriber */
    void (*log)(int level, const char *text, void *ctx); /* NULL: silent; level as syslog */
};

/**
 * @param opt
 *   Endpoints, topics, timeouts, CURVE keys, log callback; NULL for every default.
 * @param cb
 *   The event handlers (copied); NULL for none.
 * @param ctx
 *   Handed to every callback and to the log callback.
 * @return
 *   A subscriber, or NULL with errno set: EINVAL for bad options (an unknown topic,
 *   half a CURVE key set, an unreadable certificate), ENOMEM, or ZeroMQ's errno.
 */
struct ifpx_sub *ifpx_open(const struct ifpx_options *opt, const struct ifpx_callbacks *cb,
                           void *ctx);

/**
 * Take the first snapshot. Its events then wait for ifpx_poll().
 *
 * @return
 *   - 0 once the snapshot is applied.
 *   - -ETIMEDOUT if no bridge answered within timeout_ms (call again to keep waiting;
 *     nothing is lost meanwhile).
 */
int ifpx_sync(struct ifpx_sub *s, int timeout_ms);

/**
 * Dispatch at most max_events events to the callbacks, like rte_eth_rx_burst():
 * never blocks, retries on EINTR.
 *
 * @return
 *   How many events were dispatched (0 to max_events).
 */
int ifpx_poll(struct ifpx_sub *s, unsigned max_events);

/**
 * Sleep until ifpx_poll() has work or timeout_ms passes.
 *
 * @return
 *   1 if there is work, 0 on timeout.
 */
int ifpx_wait(struct ifpx_sub *s, int timeout_ms);

/**
 * The replica: what the events delivered so far (and any snapshot) describe.
 *
 * @return
 *   Valid until the next ifpx_poll(), ifpx_sync() or ifpx_close() on s: a snapshot
 *   repair replaces the replica.
 */
const struct ifpx_replica *ifpx_state(const struct ifpx_sub *s);

/** Counters of what happened so far (valid until ifpx_close()). */
const struct ifpx_stats *ifpx_stats(const struct ifpx_sub *s);
/** The bridge epoch this subscriber is consistent with (0 before the first snapshot). */
uint64_t ifpx_epoch(const struct ifpx_sub *s);
/** The last sequence number applied. */
uint64_t ifpx_seq(const struct ifpx_sub *s);
/** @return 1 while a journal or snapshot repair is under way, else 0. */
int ifpx_repairing(const struct ifpx_sub *s);
/**
 * Name this worker in the reports it makes to the bridge (`ifpx ctl workers` lists them,
 * `ifpx ctl wait` waits for them). A subscriber reports from ifpx_open() on as
 * $IFPX_WORKER_NAME, else "host:pid", every second and when it goes idle after a burst:
 * the epoch and seq of the last event whose callback has returned. Call before
 * ifpx_sync() to choose the name (at most 64 printable characters, no spaces).
 *
 * @param name
 *   The worker's name; NULL keeps the default.
 * @param interval_ms
 *   Longest time between two reports (50 to 60000; 0: 1000); negative: no reports.
 * @return
 *   0, or -EINVAL for a bad name or interval.
 */
int ifpx_set_worker(struct ifpx_sub *s, const char *name, int interval_ms);

/** The seq (and *epoch, if not NULL) of the last event whose callback has returned. */
uint64_t ifpx_applied(const struct ifpx_sub *s, uint64_t *epoch);

/** Close the sockets and free everything; s may be NULL. */
void ifpx_close(struct ifpx_sub *s);

/**
 * Bind a DPDK port to a proxy, with a short-lived socket of its own (retries on EINTR).
 *
 * @param opt
 *   Supplies the control endpoint and CURVE keys (NULL: the defaults).
 * @param reply
 *   Filled in: the bridge's error code and message when it refused.
 * @return
 *   - 0 when the bridge bound it (or it was bound already).
 *   - -EPROTO when the bridge refused (reply->code says why).
 *   - -ETIMEDOUT when it did not answer within timeout_ms.
 *   - -EBADMSG when the answer was no reply of this protocol.
 *   - -EINVAL for bad options; another negative errno when no socket could be made.
 */
int ifpx_bind(const struct ifpx_options *opt, uint16_t port_id, const char *proxy,
              int timeout_ms, struct ifpx_reply *reply);

/** Unbind a port: as ifpx_bind(), and 0 also when it was not bound. */
int ifpx_unbind(const struct ifpx_options *opt, uint16_t port_id, int timeout_ms,
                struct ifpx_reply *reply);

/**
 * Bind as ifpx_bind(), but only a port that is free, bound to this proxy already, or
 * bound to a proxy that is gone: -EPROTO with reply->code "already_exists" when another
 * proxy that exists holds it (what an application that owns only its own bindings
 * asks; a bridge of protocol minor 5 or later, an older one refuses with "bad_request").
 */
int ifpx_bind_exclusive(const struct ifpx_options *opt, uint16_t port_id, const char *proxy,
                        int timeout_ms, struct ifpx_reply *reply);

/** Unbind a port only from proxy: 0 and nothing changed when it is bound to another. */
int ifpx_unbind_from(const struct ifpx_options *opt, uint16_t port_id, const char *proxy,
                     int timeout_ms, struct ifpx_reply *reply);

/**
 * Wait until the workers have applied seq: polls the bridge's `wait_applied` (as
 * `ifpx ctl wait` does) until done or timeout_ms passes.
 *
 * @param seq
 *   The sequence number to wait for; 0: the bridge's at the first poll.
 * @param workers
 *   Names of the workers to wait for (n_workers of them, at most 256); NULL: every
 *   worker not gone.
 * @param out
 *   The last answer: done, the seq waited for, who is still short.
 * @return
 *   - 0 once every worker has applied it.
 *   - -ETIMEDOUT when some had not within timeout_ms (out->waiting names them).
 *   - -EPROTO when the bridge refused (reply->code says why: an older bridge, an
 *     epoch that ended), -EBADMSG, -EINVAL as ifpx_bind().
 */
int ifpx_wait_applied(const struct ifpx_options *opt, uint64_t seq, const char *const *workers,
                      int n_workers, int timeout_ms, struct ifpx_wait_result *out,
                      struct ifpx_reply *reply);

#ifdef __cplusplus
}
#endif

#endif
