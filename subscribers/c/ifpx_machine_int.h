/* Internal to libifpx, not installed: the protocol machine's state, shared by
 * ifpx_machine.c (messages, requests, delivery) and ifpx_install.c (installing replies). */
#ifndef IFPX_MACHINE_INT_H
#define IFPX_MACHINE_INT_H

#include "ifpx_machine.h"

#define RETIRED_EPOCHS 16
#define MAX_PROBING 8
#define MAX_ACTIONS 8

enum { T_LINK, T_ADDR, T_ROUTE, T_NEIGH, T_PORT, T_SYNC, T_HB, T_RULE, T_FIB };
#define N_TOPICS IFPX_N_TOPICS
#define TOPICS ifpx_topic_names
#define REQ_NONE IFPX_REQ_NONE
#define REQ_SNAPSHOT IFPX_REQ_SNAPSHOT
#define REQ_REPLAY IFPX_REQ_REPLAY
#define topic_index ifpx_topic_index

/* What waits for delivery: a live message (applied, then delivered) or the difference a
 * snapshot made (already in the replica: delivered only). */
struct item {
    struct item *next;
    struct ifpx_msg *msg;
    struct ifpx_replica *old;   /* diff items: the state before the snapshot */
    struct ifpx_diff diff;
    int stage;                  /* diff items: 0 begin marker, 1 walk, 2 end marker, 3 done */
    int repair;                 /* 0: the initial sync */
    uint64_t epoch, seq;        /* once delivered, everything up to here is */
    char reason[128];
};

struct ifpx_machine {
    unsigned topics;            /* bit per TOPICS index */
    int hb_timeout_ms, request_timeout_ms;
    ifpx_log_fn log;
    void *ctx;
    int64_t now;                /* the time given by the call under way */

    struct ifpx_replica *rep;
    uint64_t epoch, seq;
    int synced;
    uint64_t tseq[N_TOPICS], tseq_at[N_TOPICS];
    /* Epochs that are not the bridge's (earlier lives, and any a snapshot proved bogus),
     * and unknown ones seen since the snapshot that will settle them was asked for. */
    uint64_t retired[RETIRED_EPOCHS], probing[MAX_PROBING];
    unsigned n_retired, next_retired, n_probing;
    int64_t probe_at;

    struct ifpx_msg **held;
    size_t n_held, cap_held;
    struct item *head, *tail;

    enum ifpx_request_kind req;
    uint64_t req_id, next_id;
    int64_t req_sent;           /* when it was sent; when it is due, if deferred */
    int req_deferred;           /* a snapshot not sent yet: the back-off after a refusal */
    int64_t snapshot_wait;      /* the last back-off, ms; 0 once a snapshot is taken */
    char req_reason[128];
    char *reply;                /* the reply received, installed once the queue is empty */
    size_t reply_len;

    struct ifpx_action actions[MAX_ACTIONS];
    unsigned n_actions;

    int64_t last_rx;
    struct ifpx_stats stats;

    /* Reports: who we are, what the application has been through, the report out. */
    int reporting, reports_off;
    char name[65], host[65], client[33];
    uint64_t instance;
    uint32_t pid;
    int interval_ms;
    uint64_t applied_epoch, applied_seq;
    uint64_t report_id;
    int64_t report_sent;
    int reported;               /* what the last report said, below, is known */
    uint64_t rep_epoch, rep_seq;
    int rep_synced, rep_repairing;
    char refusal[256];
};

/* Formats a line for a log callback (nothing when log is NULL). */
void ifpx_log(ifpx_log_fn log, void *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define ifpx_m_log(s, ...) ifpx_log((s)->log, (s)->ctx, __VA_ARGS__)
void ifpx_m_start_snapshot(struct ifpx_machine *s, const char *reason);
/* A snapshot refused (an error reply, or not a snapshot): asks again after a back-off. */
void ifpx_m_snapshot_refused(struct ifpx_machine *s, const char *reason, const char *why);
/* Queues an item for delivery. */
void ifpx_m_push(struct ifpx_machine *s, struct item *it);
/* Keeps a message until the repair under way ends (bounded: IFPX_MAX_HELD). */
void ifpx_m_hold(struct ifpx_machine *s, struct ifpx_msg *msg);
/* Applies the sequence and epoch rules to a message and queues it if it is next. */
void ifpx_m_process(struct ifpx_machine *s, struct ifpx_msg *msg);
void ifpx_m_retire(struct ifpx_machine *s, uint64_t epoch);
/* Installs the reply kept for the request out (a snapshot or a journal replay). */
void ifpx_m_install_reply(struct ifpx_machine *s);

#endif
