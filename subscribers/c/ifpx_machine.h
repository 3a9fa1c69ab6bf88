/* The subscriber's protocol as a pure machine: published messages, control replies and
 * the time in; requests to send and events for the application out.
 *
 * Every rule of following a bridge lives here: the late join (hold what arrives until
 * the snapshot, drop what it covers), per-topic and tail gaps, journal repair and its
 * fallback to a snapshot, the epoch rule, missed heartbeats, the bound on held messages,
 * Lazy Pirate retries. It owns no socket and reads no clock: times are milliseconds of
 * a monotonic clock given by the caller, who carries out each action it returns
 * (ifpx_machine_action). ifpx.c wraps it in ZeroMQ sockets. The Python twin is
 * ifpx.subscribers.sync.SyncMachine, rule for rule; the trace fixtures in tests/traces
 * drive both (tools/ifpx_trace.c is the C side's driver).
 *
 * Return convention: functions that can fail return 0 or a negative errno.
 */
#ifndef IFPX_MACHINE_H
#define IFPX_MACHINE_H

#include <stddef.h>
#include <stdint.h>

#include "ifpx_replica.h"
#include "ifpx_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most messages held while a repair is under way; past it, a snapshot covers them all.
 * The Python machine's MAX_HELD is the same number. */
#define IFPX_MAX_HELD 100000
/* Least time between two snapshots asked for because a message of an unknown epoch
 * came (the Python machine's EPOCH_PROBE_INTERVAL). */
#define IFPX_EPOCH_PROBE_MS 1000
/* Wait after a refused snapshot before asking again, doubled per refusal in a row up to
 * the second (the Python machine's SNAPSHOT_RETRY_FIRST and SNAPSHOT_RETRY_MAX). */
#define IFPX_SNAPSHOT_RETRY_FIRST_MS 500
#define IFPX_SNAPSHOT_RETRY_MAX_MS 30000
/* Largest encoded request. */
#define IFPX_REQUEST_CAP 512

/* The reason resync_begin/resync_end give when the snapshot was of another epoch. */
#define IFPX_REASON_RESTARTED "bridge restarted (new epoch)"

/* "link", "addr", "route", "neigh", "port", "sync", "hb", "rule", "fib": bit i of a topic
 * mask is topic i. "route" takes routes flat, "fib" by next-hop group: a subscriber takes
 * one of the two. */
extern const char *const ifpx_topic_names[IFPX_N_TOPICS];
/* The index of a topic name, or -1. */
int ifpx_topic_index(const char *topic);

struct ifpx_stats {
    uint64_t messages, events, bad_messages, gaps, journal_repairs, snapshot_repairs, epochs,
        heartbeat_misses, request_retries, callback_errors, snapshot_refusals;
    /* events that did not add up with the replica (a route naming a group never
     * announced, a group deleted while routes name it): not applied nor delivered, nor the
     * rest of their message; a snapshot follows. Last: the library alone allocates this. */
    uint64_t inconsistent;
};

enum ifpx_request_kind { IFPX_REQ_NONE, IFPX_REQ_SNAPSHOT, IFPX_REQ_REPLAY, IFPX_REQ_REPORT };

/* Least time between two reports: the report made on going idle waits this long at most
 * (the Python machine's MIN_REPORT_GAP). */
#define IFPX_MIN_REPORT_GAP_MS 50

enum ifpx_action_kind {
    IFPX_ACT_SEND = 1, /* send buf[0..len) on the control connection */
    IFPX_ACT_RESET     /* close the control connection; the next send opens a new one */
};

struct ifpx_action {
    enum ifpx_action_kind kind;
    enum ifpx_request_kind request;   /* IFPX_ACT_SEND: what it asks for */
    uint64_t id, epoch, from_seq;     /* the request's id; a replay's epoch and from_seq */
    char buf[IFPX_REQUEST_CAP];
    int len;
    char reason[128];
};

typedef void (*ifpx_log_fn)(int level, const char *text, void *ctx);

struct ifpx_machine;

/* A machine following the topics of the mask `topics` (bit per ifpx_topic_names entry).
 * NULL if out of memory. log may be NULL; levels are syslog's. */
struct ifpx_machine *ifpx_machine_new(unsigned topics, int heartbeat_timeout_ms,
                                int request_timeout_ms, int64_t now, ifpx_log_fn log,
                                void *log_ctx);
void ifpx_machine_free(struct ifpx_machine *m);

/* Ask for the first snapshot (nothing if one is already asked for or taken). */
void ifpx_machine_start(struct ifpx_machine *m, int64_t now);
/* A published message's two frames. A malformed one is dropped and counted. */
void ifpx_machine_on_message(struct ifpx_machine *m, const char *topic, size_t topic_len,
                          const char *payload, size_t len, int64_t now);
/* A message that did not arrive as two frames (dropped, counted). */
void ifpx_machine_on_bad_message(struct ifpx_machine *m);
/* A frame from the control connection: kept if it answers the request out, else ignored.
 * It takes effect once every event queued before it has been delivered. */
void ifpx_machine_on_reply(struct ifpx_machine *m, const char *buf, size_t len, int64_t now);
/* Time passed: retry an unanswered request, notice missed heartbeats. */
void ifpx_machine_tick(struct ifpx_machine *m, int64_t now);

/* The last report of a closing subscriber (leaving: the bridge counts the worker gone
 * at once instead of waiting for its process to end), into out: 1, or 0 when it made
 * no report the bridge could hold. */
int ifpx_machine_farewell(struct ifpx_machine *m, struct ifpx_action *out);
/* Install a kept reply if no event is queued ahead of it. */
void ifpx_machine_settle(struct ifpx_machine *m, int64_t now);

/* The next event for the application (applied to the replica first): 1, or 0 when none is
 * ready. Installs a kept reply once the queue ahead of it is empty. */
int ifpx_machine_next(struct ifpx_machine *m, struct ifpx_event *ev, int64_t now);
/* The next action to carry out: 1 with *out filled, or 0 when there is none. */
int ifpx_machine_action(struct ifpx_machine *m, struct ifpx_action *out);

/* Report what the application has applied to the bridge (the `report` command), as
 * `name` (at most 64 printable characters, no spaces), every interval_ms and when it goes
 * idle after a burst. instance: random and non-zero, once per subscriber (it tells a
 * restart from the same worker); host, client: shown by `ifpx ctl workers`. Reports are
 * made by ifpx_machine_tick; name NULL stops them. 0, or -EINVAL for a bad name or
 * interval (50 to 60000 ms). */
int ifpx_machine_set_identity(struct ifpx_machine *m, const char *name, uint64_t instance,
                              const char *host, uint32_t pid, const char *client,
                              int interval_ms);
/* The epoch and sequence number of the last event the application has been through
 * (every event of an item is delivered before the next item is taken). */
uint64_t ifpx_machine_applied(const struct ifpx_machine *m, uint64_t *epoch);

/* 1 while a request or a report is out and unanswered (watch the control connection). */
int ifpx_machine_awaiting_reply(const struct ifpx_machine *m);
/* 1 while ifpx_machine_next has something to do without new input. */
int ifpx_machine_has_work(const struct ifpx_machine *m);
/* 1 while a journal or snapshot repair is under way. */
int ifpx_machine_repairing(const struct ifpx_machine *m);
/* 1 once the first snapshot is installed. */
int ifpx_machine_synced(const struct ifpx_machine *m);
uint64_t ifpx_machine_epoch(const struct ifpx_machine *m);
uint64_t ifpx_machine_seq(const struct ifpx_machine *m);
/* Valid until the next call that takes `now`: a snapshot repair replaces the replica. */
const struct ifpx_replica *ifpx_machine_replica(const struct ifpx_machine *m);
struct ifpx_stats *ifpx_machine_stats(struct ifpx_machine *m);

#ifdef __cplusplus
}
#endif

#endif
