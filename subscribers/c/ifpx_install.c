/* Installing the replies to the protocol machine's requests: a snapshot (its difference
 * queued for delivery) or a journal replay (the missing messages merged with the held
 * ones, in order). See ifpx_machine.h. */
#include "ifpx_machine.h"
#include "ifpx_machine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* ---- installing replies --------------------------------------------------------------------- */

struct apply_ctx {
    struct ifpx_machine *s;
    struct ifpx_replica *target;
    int failed;
};

static int apply_wanted(const struct ifpx_event *ev, void *arg)
{
    struct apply_ctx *a = arg;
    int t = topic_index(ifpx_kind_topic(ev->kind));
    if (t >= 0 && (a->s->topics & (1u << t)) && ifpx_replica_apply(a->target, ev))
        a->failed = 1;
    return a->failed;
}

static int by_seq(const void *a, const void *b)
{
    const struct ifpx_header *x = ifpx_msg_header(*(struct ifpx_msg *const *)a);
    const struct ifpx_header *y = ifpx_msg_header(*(struct ifpx_msg *const *)b);
    if (x->epoch != y->epoch)
        return x->epoch < y->epoch ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void install_snapshot(struct ifpx_machine *s, const char *buf, size_t len, const char *reason)
{
    struct ifpx_snapshot snap;
    struct item *it = calloc(1, sizeof *it);
    struct ifpx_replica *target = malloc(sizeof *target);
    struct ifpx_replica *old = s->synced ? s->rep : malloc(sizeof *old);
    struct apply_ctx a = {s, target, 0};
    int rc = -1;

    if (target)
        ifpx_replica_init(target);
    if (old && !s->synced)
        ifpx_replica_init(old);
    if (it && target && old)
        /* the group form when routes are taken by group alone */
        rc = ifpx_decode_snapshot_form(buf, len, &snap,
                                       (s->topics & (1u << T_FIB)) && !(s->topics & (1u << T_ROUTE)),
                                       apply_wanted, &a);
    if (rc) {
        char why[48];
        snprintf(why, sizeof why, "unusable, status %d", rc);
        if (target)
            ifpx_replica_clear(target);
        free(target);
        if (old && old != s->rep)
            free(old);
        free(it);
        ifpx_m_snapshot_refused(s, reason, why);
        return;
    }
    s->snapshot_wait = 0;
    it->old = old;
    it->repair = s->synced;
    /* Whatever made us ask (missed heartbeats while it was down, say), a snapshot of
     * another epoch says what happened: the bridge restarted. */
    snprintf(it->reason, sizeof it->reason, "%s",
             s->synced && s->epoch != snap.epoch ? IFPX_REASON_RESTARTED : reason);
    ifpx_diff_init(&it->diff, old, target);
    if (s->synced)
        s->stats.snapshot_repairs++;
    else
        free(s->rep);  /* the empty replica made at open */
    s->rep = target;
    it->epoch = snap.epoch;
    it->seq = snap.seq;
    ifpx_m_push(s, it);

    if (s->synced && s->epoch != snap.epoch)
        ifpx_m_retire(s, s->epoch);
    for (unsigned i = 0; i < s->n_probing; i++)
        if (s->probing[i] != snap.epoch)
            ifpx_m_retire(s, s->probing[i]);
    s->n_probing = 0;
    s->epoch = snap.epoch;
    s->seq = snap.seq;
    s->last_rx = s->now;
    for (int t = 0; t < N_TOPICS; t++) {
        s->tseq[t] = 0;
        s->tseq_at[t] = snap.seq;
    }
    for (int i = 0; i < snap.n_topics; i++) {
        int t = topic_index(snap.topic_seqs[i].topic);
        if (t >= 0)
            s->tseq[t] = snap.topic_seqs[i].tseq;
    }
    s->synced = 1;
    struct ifpx_msg **held = s->held;
    size_t n = s->n_held;
    s->held = NULL;
    s->n_held = s->cap_held = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ifpx_header *h = ifpx_msg_header(held[i]);
        if (h->epoch != s->epoch) /* the snapshot is the bridge's word on the live epoch */
            ifpx_msg_free(held[i]);
        else if (s->req != REQ_NONE)
            ifpx_m_hold(s, held[i]);
        else if (h->seq <= snap.seq)
            ifpx_msg_free(held[i]);
        else
            ifpx_m_process(s, held[i]);
    }
    free(held);
}

struct replay_ctx {
    struct ifpx_msg **msgs;
    size_t n, cap;
    int failed;
};

static int collect(const char *payload, size_t len, void *arg)
{
    struct replay_ctx *r = arg;
    int status;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct ifpx_msg **bigger = realloc(r->msgs, cap * sizeof *bigger);
        if (!bigger)
            return r->failed = 1;
        r->msgs = bigger;
        r->cap = cap;
    }
    if (!(r->msgs[r->n] = ifpx_msg_open(payload, len, NULL, &status)))
        return r->failed = 1;
    r->n++;
    return 0;
}

static void install_replay(struct ifpx_machine *s, const char *buf, size_t len, const char *reason)
{
    struct replay_ctx r = {0};
    uint64_t epoch;
    int rc = ifpx_decode_replay(buf, len, &epoch, collect, &r);
    if (rc || r.failed) {
        for (size_t i = 0; i < r.n; i++)
            ifpx_msg_free(r.msgs[i]);
        free(r.msgs);
        ifpx_m_log(s, LOG_WARNING, "bad journal reply: falling back to a snapshot");
        ifpx_m_start_snapshot(s, reason);
        return;
    }
    s->stats.journal_repairs++;
    size_t total = r.n + s->n_held;
    struct ifpx_msg **all = realloc(r.msgs, (total ? total : 1) * sizeof *all);
    if (!all) {
        for (size_t i = 0; i < r.n; i++)
            ifpx_msg_free(r.msgs[i]);
        free(r.msgs);
        ifpx_m_start_snapshot(s, reason);
        return;
    }
    if (s->n_held)
        memcpy(all + r.n, s->held, s->n_held * sizeof *all);
    s->n_held = 0;
    qsort(all, total, sizeof *all, by_seq);
    for (size_t i = 0; i < total; i++) {
        if (s->req != REQ_NONE)
            ifpx_m_hold(s, all[i]);
        else
            ifpx_m_process(s, all[i]);
    }
    free(all);
}

/* The reply to the current request, once everything before it has been delivered. */
void ifpx_m_install_reply(struct ifpx_machine *s)
{
    struct ifpx_reply head;
    char reason[128];
    char *buf = s->reply;
    size_t len = s->reply_len;
    enum ifpx_request_kind kind = s->req;
    s->reply = NULL;
    s->req = REQ_NONE;
    snprintf(reason, sizeof reason, "%s", s->req_reason);
    int ok = !ifpx_decode_reply(buf, len, &head) && head.ok;
    if (ok && kind == REQ_SNAPSHOT && !strcmp(head.type, "snapshot")) {
        install_snapshot(s, buf, len, reason);
    } else if (ok && kind == REQ_REPLAY && !strcmp(head.type, "replay")) {
        install_replay(s, buf, len, reason);
    } else if (kind == REQ_SNAPSHOT) {
        char why[300];
        snprintf(why, sizeof why, "%s: %s", ok ? "not a snapshot" : head.code, head.message);
        ifpx_m_snapshot_refused(s, reason, why);
    } else {
        ifpx_m_log(s, LOG_INFO, "replay refused (%s): falling back to a snapshot",
                   ok ? "not a replay" : head.code);
        ifpx_m_start_snapshot(s, reason);
    }
    free(buf);
}
