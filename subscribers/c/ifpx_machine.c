/* ifpx's protocol machine: see ifpx_machine.h. It follows ifpx.subscribers.sync step for
 * step; read that for the reasoning. */
#include "ifpx_machine.h"
#include "ifpx_machine_int.h"
#include "ifpx_contract_tables.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

const char *const ifpx_topic_names[IFPX_N_TOPICS] = {IFPX_TOPIC_NAMES};

void ifpx_log(ifpx_log_fn log, void *ctx, int level, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    if (!log)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    log(level, text, ctx);
}

int ifpx_topic_index(const char *topic)
{
    for (int i = 0; i < N_TOPICS; i++)
        if (!strcmp(topic, TOPICS[i]))
            return i;
    return -1;
}


/* ---- the queue ------------------------------------------------------------------------- */

void ifpx_m_push(struct ifpx_machine *s, struct item *it)
{
    it->next = NULL;
    if (s->tail)
        s->tail->next = it;
    else
        s->head = it;
    s->tail = it;
}

static void free_item(struct item *it)
{
    ifpx_msg_free(it->msg);
    if (it->old) {
        ifpx_replica_clear(it->old);
        free(it->old);
    }
    free(it);
}

static void pop(struct ifpx_machine *s)
{
    struct item *it = s->head;
    /* Its last event has been through the application: so has everything up to it. */
    s->applied_epoch = it->epoch;
    s->applied_seq = it->seq;
    s->head = it->next;
    if (!s->head)
        s->tail = NULL;
    free_item(it);
}

static void enqueue_msg(struct ifpx_machine *s, struct ifpx_msg *msg)
{
    struct item *it = calloc(1, sizeof *it);
    if (!it) {
        /* Losing a message silently is not an option: start over from a snapshot. */
        ifpx_msg_free(msg);
        ifpx_m_log(s, LOG_ERR, "out of memory queueing a message: resynchronising");
        ifpx_m_start_snapshot(s, "out of memory");
        return;
    }
    it->msg = msg;
    it->epoch = ifpx_msg_header(msg)->epoch;
    it->seq = ifpx_msg_header(msg)->seq;
    ifpx_m_push(s, it);
}

/* ---- requests ---------------------------------------------------------------------------- */

static void drop_reply(struct ifpx_machine *s)
{
    free(s->reply);
    s->reply = NULL;
    s->reply_len = 0;
}

static void push_action(struct ifpx_machine *s, const struct ifpx_action *a)
{
    if (s->n_actions == MAX_ACTIONS) {
        /* The caller carries out actions after every call; this cannot fill up. */
        ifpx_m_log(s, LOG_ERR, "action queue full: dropping the oldest");
        memmove(s->actions, s->actions + 1, (MAX_ACTIONS - 1) * sizeof *s->actions);
        s->n_actions--;
    }
    s->actions[s->n_actions++] = *a;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void send_req(struct ifpx_machine *s, enum ifpx_request_kind kind, uint64_t from_seq,
                     const char *reason)
{
    struct ifpx_action a = {.kind = IFPX_ACT_SEND, .request = kind};
    const char *topics[N_TOPICS];
    int n = 0;
    drop_reply(s);
    s->req = kind;
    s->req_deferred = 0;
    s->req_id = ++s->next_id;
    s->req_sent = s->now;
    snprintf(s->req_reason, sizeof s->req_reason, "%s", reason);
    a.id = s->req_id;
    snprintf(a.reason, sizeof a.reason, "%s", reason);
    if (kind == REQ_SNAPSHOT && (s->topics & (1u << T_FIB))) {
        /* The group form names its topics (sorted, as the Python machine does): the
         * bridge keeps them published until the subscription reaches it. Only then,
         * for a bridge before protocol minor 3 refuses the field. */
        for (int t = 0; t < N_TOPICS; t++)
            if (s->topics & (1u << t))
                topics[n++] = TOPICS[t];
        qsort(topics, (size_t)n, sizeof topics[0], by_name);
        a.len = ifpx_encode_snapshot_topics(a.buf, sizeof a.buf, a.id, topics, n);
    } else if (kind == REQ_SNAPSHOT) {
        a.len = ifpx_encode_snapshot(a.buf, sizeof a.buf, a.id);
    } else {
        for (int t = 0; t < N_TOPICS; t++)
            if (t != T_HB && (s->topics & (1u << t)))
                topics[n++] = TOPICS[t];
        a.epoch = s->epoch;
        a.from_seq = from_seq;
        a.len = ifpx_encode_replay(a.buf, sizeof a.buf, a.id, s->epoch, from_seq, topics, n);
    }
    /* An encoding that failed is a request never answered: the request timeout retries it. */
    push_action(s, &a);
}

void ifpx_m_start_snapshot(struct ifpx_machine *s, const char *reason)
{
    if (s->req == REQ_SNAPSHOT)
        return;
    send_req(s, REQ_SNAPSHOT, 0, reason);
}

void ifpx_m_snapshot_refused(struct ifpx_machine *s, const char *reason, const char *why)
{
    /* Asking again at once would loop as fast as the bridge answers (see sync.py). */
    s->stats.snapshot_refusals++;
    s->snapshot_wait = s->snapshot_wait ? s->snapshot_wait * 2 : IFPX_SNAPSHOT_RETRY_FIRST_MS;
    if (s->snapshot_wait > IFPX_SNAPSHOT_RETRY_MAX_MS)
        s->snapshot_wait = IFPX_SNAPSHOT_RETRY_MAX_MS;
    ifpx_m_log(s, LOG_WARNING, "snapshot refused (%s): asking again in %lld ms", why,
               (long long)s->snapshot_wait);
    s->req = REQ_SNAPSHOT;
    s->req_deferred = 1;
    s->req_id = 0;
    s->req_sent = s->now + s->snapshot_wait;
    snprintf(s->req_reason, sizeof s->req_reason, "%s", reason);
}

static void start_replay(struct ifpx_machine *s, uint64_t from_seq, const char *reason)
{
    if (s->req != REQ_NONE)
        return;
    send_req(s, REQ_REPLAY, from_seq, reason);
}

/* ---- receiving ---------------------------------------------------------------------------- */


static void drop_held(struct ifpx_machine *s)
{
    for (size_t i = 0; i < s->n_held; i++)
        ifpx_msg_free(s->held[i]);
    s->n_held = 0;
}

void ifpx_m_hold(struct ifpx_machine *s, struct ifpx_msg *msg)
{
    if (!strcmp(ifpx_msg_header(msg)->topic, "hb")) {
        ifpx_msg_free(msg); /* a heartbeat only matters against the state it arrives in */
        return;
    }
    if (s->n_held == s->cap_held) {
        size_t cap = s->cap_held ? s->cap_held * 2 : 64;
        struct ifpx_msg **bigger = realloc(s->held, cap * sizeof *bigger);
        if (bigger) {
            s->held = bigger;
            s->cap_held = cap;
        }
    }
    if (s->n_held < s->cap_held && s->n_held < IFPX_MAX_HELD) {
        s->held[s->n_held++] = msg;
        return;
    }
    /* Too far behind (or out of memory): a snapshot covers everything dropped here. */
    ifpx_msg_free(msg);
    drop_held(s);
    if (s->req != REQ_SNAPSHOT) {
        s->req = REQ_NONE;
        ifpx_m_start_snapshot(s, "too far behind during repair");
    }
}

static void on_heartbeat(struct ifpx_machine *s, struct ifpx_msg *msg)
{
    struct ifpx_event *hb = malloc(sizeof *hb);
    uint64_t from = UINT64_MAX;
    if (hb && ifpx_msg_next(msg, hb) && hb->kind == IFPX_HEARTBEAT) {
        for (int i = 0; i < hb->n_topics; i++) {
            int t = topic_index(hb->topic_seqs[i].topic);
            if (t < 0 || t == T_HB || !(s->topics & (1u << t)))
                continue;
            if (hb->topic_seqs[i].tseq > s->tseq[t] && s->tseq_at[t] < from)
                from = s->tseq_at[t];
        }
        if (from != UINT64_MAX) {
            s->stats.gaps++;
            start_replay(s, from, "lost tail");
        } else {
            /* Nothing missing on our topics: once what is queued is delivered, so is
             * everything up to the heartbeat's seq (other topics are not ours). */
            const struct ifpx_header *h = ifpx_msg_header(msg);
            if (s->tail) {
                s->tail->epoch = h->epoch;
                s->tail->seq = h->seq;
            } else {
                s->applied_epoch = h->epoch;
                s->applied_seq = h->seq;
            }
        }
    }
    free(hb);
    ifpx_msg_free(msg);
}

static int epoch_in(const uint64_t *set, unsigned n, uint64_t epoch)
{
    for (unsigned i = 0; i < n; i++)
        if (set[i] == epoch)
            return 1;
    return 0;
}

void ifpx_m_retire(struct ifpx_machine *s, uint64_t epoch)
{
    if (epoch_in(s->retired, s->n_retired, epoch))
        return;
    s->retired[s->next_retired] = epoch;
    s->next_retired = (s->next_retired + 1) % RETIRED_EPOCHS;
    if (s->n_retired < RETIRED_EPOCHS)
        s->n_retired++;
}

/* A message of another epoch: a restarted bridge, a straggler of an earlier life, or
 * garbage. As the Python Subscriber._foreign: ask for one snapshot, hold what the
 * asked-about epochs send meanwhile, believe the snapshot. */
static void foreign(struct ifpx_machine *s, struct ifpx_msg *msg)
{
    uint64_t epoch = ifpx_msg_header(msg)->epoch;
    if (epoch_in(s->retired, s->n_retired, epoch)) {
        ifpx_msg_free(msg);
        return;
    }
    if (epoch_in(s->probing, s->n_probing, epoch)) {
        ifpx_m_hold(s, msg);
        return;
    }
    if (s->req != REQ_SNAPSHOT) {
        int64_t now = s->now;
        if (now - s->probe_at < IFPX_EPOCH_PROBE_MS) {
            ifpx_msg_free(msg); /* its next message or heartbeat asks again */
            return;
        }
        s->probe_at = now;
        s->stats.epochs++;
        ifpx_m_start_snapshot(s, IFPX_REASON_RESTARTED);
    }
    if (s->n_probing < MAX_PROBING) {
        s->probing[s->n_probing++] = epoch;
        ifpx_m_hold(s, msg);
    } else {
        ifpx_msg_free(msg);
    }
}

void ifpx_m_process(struct ifpx_machine *s, struct ifpx_msg *msg)
{
    const struct ifpx_header *h = ifpx_msg_header(msg);
    int t = topic_index(h->topic);
    if (h->epoch != s->epoch) {
        foreign(s, msg);
        return;
    }
    if (t == T_HB) {
        on_heartbeat(s, msg);
        return;
    }
    uint64_t last = s->tseq[t];
    if (h->tseq <= last) {
        ifpx_msg_free(msg);
        return;
    }
    if (h->tseq > last + 1) {
        char reason[32];
        snprintf(reason, sizeof reason, "gap on %s", h->topic);
        s->stats.gaps++;
        start_replay(s, s->tseq_at[t], reason);
        ifpx_m_hold(s, msg);
        return;
    }
    s->tseq[t] = h->tseq;
    s->tseq_at[t] = h->seq;
    s->seq = h->seq;
    enqueue_msg(s, msg);
}

void ifpx_machine_on_message(struct ifpx_machine *s, const char *topic, size_t topic_len,
                          const char *payload, size_t len, int64_t now)
{
    int status;
    struct ifpx_header hdr;
    struct ifpx_msg *msg = ifpx_msg_open(payload, len, &hdr, &status);
    s->now = now;
    if (!msg || topic_index(hdr.topic) < 0 || strlen(hdr.topic) != topic_len ||
        memcmp(hdr.topic, topic, topic_len)) {
        s->stats.bad_messages++;
        ifpx_m_log(s, LOG_WARNING, "dropping a malformed message (status %d)", msg ? IFPX_E_FIELD : status);
        ifpx_msg_free(msg);
        return;
    }
    s->stats.messages++;
    if (s->synced && hdr.epoch != s->epoch) {
        foreign(s, msg); /* proves nothing about the bridge's liveness */
        return;
    }
    s->last_rx = now;
    if (s->req != REQ_NONE || !s->synced)
        ifpx_m_hold(s, msg);
    else
        ifpx_m_process(s, msg);
}

void ifpx_machine_on_bad_message(struct ifpx_machine *s)
{
    s->stats.bad_messages++;
}

static void on_report_reply(struct ifpx_machine *s, const struct ifpx_reply *r)
{
    s->report_id = 0;
    if (r->ok) {
        if (s->refusal[0])
            ifpx_m_log(s, LOG_INFO, "reports taken again");
        s->refusal[0] = '\0';
    } else if (!strcmp(r->code, "unknown_command") || !strcmp(r->code, "not_supported")) {
        /* A bridge older than protocol minor 2: it has no use for reports. */
        ifpx_m_log(s, LOG_INFO, "the bridge takes no reports (%s); not sending any", r->message);
        s->reports_off = 1;
    } else if (strcmp(r->message, s->refusal)) {
        ifpx_m_log(s, LOG_WARNING, "report refused: %s: %s", r->code, r->message);
        snprintf(s->refusal, sizeof s->refusal, "%s", r->message);
    }
}

void ifpx_machine_on_reply(struct ifpx_machine *s, const char *buf, size_t len, int64_t now)
{
    struct ifpx_reply head;
    int repair_out = s->req != REQ_NONE && !s->req_deferred && !s->reply;
    s->now = now;
    /* Decoded once: a snapshot reply is a whole table. */
    if ((!repair_out && !s->report_id) || ifpx_decode_reply(buf, len, &head))
        return; /* nothing asked, or garbage */
    if (s->report_id && head.id == s->report_id) {
        on_report_reply(s, &head);
        return;
    }
    if (!repair_out || head.id != s->req_id)
        return; /* an answer to a request given up on */
    if (!(s->reply = malloc(len ? len : 1))) {
        ifpx_m_log(s, LOG_ERR, "out of memory keeping a reply: the request timeout retries it");
        return;
    }
    memcpy(s->reply, buf, len);
    s->reply_len = len;
}

/* The report of what has been applied, into a (leaving: the subscriber's last one). */
static void report_action(struct ifpx_machine *s, struct ifpx_action *a, int leaving)
{
    int repairing = s->req != REQ_NONE;
    const char *topics[N_TOPICS];
    int n = 0;
    for (int t = 0; t < N_TOPICS; t++)
        if (s->topics & (1u << t))
            topics[n++] = TOPICS[t];
    struct ifpx_report r = {
        .worker = s->name, .instance = s->instance, .host = s->host, .pid = s->pid,
        .client = s->client, .epoch = s->applied_epoch, .seq = s->applied_seq,
        .synced = s->synced, .repairing = repairing, .topics = topics, .n_topics = n,
        .interval_ms = s->interval_ms, .stats = &s->stats,
    };
    *a = (struct ifpx_action){.kind = IFPX_ACT_SEND, .request = IFPX_REQ_REPORT};
    a->id = ++s->next_id;
    a->epoch = s->applied_epoch;
    a->from_seq = s->applied_seq;
    a->len = ifpx_encode_report_ex(a->buf, sizeof a->buf, a->id, &r, leaving);
    if (a->len < 0) {
        r.stats = NULL; /* the counters are what can be left out */
        a->len = ifpx_encode_report_ex(a->buf, sizeof a->buf, a->id, &r, leaving);
    }
    snprintf(a->reason, sizeof a->reason, leaving ? "leaving" : "report");
}

int ifpx_machine_farewell(struct ifpx_machine *s, struct ifpx_action *out)
{
    if (!s->reporting || !s->reported || s->reports_off)
        return 0; /* the bridge has no row of ours */
    report_action(s, out, 1);
    return out->len > 0;
}

static void report(struct ifpx_machine *s, int64_t now)
{
    int64_t since = now - s->report_sent;
    if (s->report_id) {
        if (since <= s->request_timeout_ms)
            return;
        s->report_id = 0; /* unanswered: the bridge may be gone; the next one tells */
    }
    int repairing = s->req != REQ_NONE;
    int changed = !s->reported || s->rep_epoch != s->applied_epoch ||
                  s->rep_seq != s->applied_seq || s->rep_synced != s->synced ||
                  s->rep_repairing != repairing;
    int due = since >= s->interval_ms;
    /* Idle after a burst: the application has been through all it was given. */
    int idle = changed && !s->head && !s->reply && since >= IFPX_MIN_REPORT_GAP_MS;
    if (!(due || idle) || s->reports_off)
        return;
    struct ifpx_action a;
    report_action(s, &a, 0);
    s->report_id = a.id;
    s->report_sent = now;
    s->reported = 1;
    s->rep_epoch = s->applied_epoch;
    s->rep_seq = s->applied_seq;
    s->rep_synced = s->synced;
    s->rep_repairing = repairing;
    push_action(s, &a);
}

void ifpx_machine_tick(struct ifpx_machine *s, int64_t now)
{
    s->now = now;
    if (s->reporting)
        report(s, now);
    if (s->req_deferred) {
        char reason[128];
        if (now >= s->req_sent) {
            snprintf(reason, sizeof reason, "%s", s->req_reason);
            s->req = REQ_NONE;
            ifpx_m_start_snapshot(s, reason);
        }
    } else if (s->req != REQ_NONE && !s->reply && now - s->req_sent > s->request_timeout_ms) {
        /* Lazy Pirate: the bridge may be gone; a fresh connection drops the stale request. */
        struct ifpx_action reset = {.kind = IFPX_ACT_RESET};
        char reason[128];
        s->stats.request_retries++;
        push_action(s, &reset);
        s->req = REQ_NONE;
        snprintf(reason, sizeof reason, "%s", s->req_reason);
        ifpx_m_start_snapshot(s, reason);
    } else if (s->req == REQ_NONE && s->synced && now - s->last_rx > s->hb_timeout_ms) {
        s->stats.heartbeat_misses++;
        s->last_rx = now;
        ifpx_m_start_snapshot(s, "heartbeats missed");
    }
}

void ifpx_machine_start(struct ifpx_machine *s, int64_t now)
{
    s->now = now;
    if (!s->synced && s->req == REQ_NONE)
        ifpx_m_start_snapshot(s, "initial sync");
}

/* ---- delivery ---------------------------------------------------------------------------------- */

static void marker(struct ifpx_event *ev, enum ifpx_kind kind, const char *reason)
{
    memset(ev, 0, offsetof(struct ifpx_event, nh));
    ev->kind = kind;
    snprintf(ev->reason, sizeof ev->reason, "%s", reason);
}

/* The next event of the queue's head: 1, or 0 when the head is exhausted. */
static int next_event(struct ifpx_machine *s, struct item *it, struct ifpx_event *ev)
{
    if (it->msg) {
        if (!ifpx_msg_next(it->msg, ev))
            return 0;
        int rc = ifpx_replica_apply(s->rep, ev);
        if (rc == -EPROTO) {
            /* Neither it nor the rest of its message is applied or delivered: the
             * snapshot's difference will say what is true. */
            s->stats.inconsistent++;
            ifpx_m_log(s, LOG_WARNING, "inconsistent event (%s): taking a snapshot",
                       ifpx_kind_name(ev->kind));
            while (ifpx_msg_next(it->msg, ev))
                ;
            ifpx_m_start_snapshot(s, "inconsistent event");
            return 0;
        }
        if (rc) {
            ifpx_m_log(s, LOG_ERR, "out of memory applying an event: resynchronising");
            ifpx_m_start_snapshot(s, "out of memory");
        }
        return 1;
    }
    switch (it->stage) {
    case 0:
        it->stage = 1;
        if (it->repair) {
            marker(ev, IFPX_RESYNC_BEGIN, it->reason);
            return 1;
        }
        /* fall through */
    case 1:
        if (ifpx_diff_next(&it->diff, ev))
            return 1;
        it->stage = 2;
        /* fall through */
    case 2:
        it->stage = 3;
        if (it->repair) {
            marker(ev, IFPX_RESYNC_END, it->reason);
            ev->changes = it->diff.count;
            return 1;
        }
        if (s->rep->cfg_done && !it->old->cfg_done) {
            marker(ev, IFPX_CFG_DONE, "");
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}


/* ---- the caller's side ---------------------------------------------------------------------- */

void ifpx_machine_settle(struct ifpx_machine *s, int64_t now)
{
    s->now = now;
    if (s->reply && !s->head)
        ifpx_m_install_reply(s);
}

int ifpx_machine_next(struct ifpx_machine *s, struct ifpx_event *ev, int64_t now)
{
    s->now = now;
    for (;;) {
        if (s->head) {
            if (next_event(s, s->head, ev))
                return 1;
            pop(s);
            continue;
        }
        if (!s->reply)
            return 0;
        ifpx_m_install_reply(s);
    }
}

int ifpx_machine_action(struct ifpx_machine *s, struct ifpx_action *out)
{
    if (!s->n_actions)
        return 0;
    *out = s->actions[0];
    memmove(s->actions, s->actions + 1, (s->n_actions - 1) * sizeof *s->actions);
    s->n_actions--;
    return 1;
}

int ifpx_machine_awaiting_reply(const struct ifpx_machine *s)
{
    return (s->req != REQ_NONE && !s->req_deferred && !s->reply) || s->report_id;
}

uint64_t ifpx_machine_applied(const struct ifpx_machine *s, uint64_t *epoch)
{
    if (epoch)
        *epoch = s->applied_epoch;
    return s->applied_seq;
}

static int printable_word(const char *text, size_t max)
{
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i++)
        if (text[i] < '!' || text[i] > '~')
            return 0;
    return n >= 1 && n <= max;
}

int ifpx_machine_set_identity(struct ifpx_machine *s, const char *name, uint64_t instance,
                              const char *host, uint32_t pid, const char *client,
                              int interval_ms)
{
    if (!name) {
        s->reporting = 0;
        return 0;
    }
    if (!printable_word(name, 64) || !instance || instance > INT64_MAX ||
        interval_ms < 50 || interval_ms > 60000)
        return -EINVAL;
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->host, sizeof s->host, "%s", host ? host : "");
    snprintf(s->client, sizeof s->client, "%s", client ? client : "");
    s->instance = instance;
    s->pid = pid;
    s->interval_ms = interval_ms;
    s->report_sent = s->now - interval_ms;
    s->reporting = 1;
    return 0;
}
int ifpx_machine_has_work(const struct ifpx_machine *s) { return s->head || s->reply; }
int ifpx_machine_repairing(const struct ifpx_machine *s) { return s->req != REQ_NONE; }
int ifpx_machine_synced(const struct ifpx_machine *s) { return s->synced; }
uint64_t ifpx_machine_epoch(const struct ifpx_machine *s) { return s->epoch; }
uint64_t ifpx_machine_seq(const struct ifpx_machine *s) { return s->seq; }
const struct ifpx_replica *ifpx_machine_replica(const struct ifpx_machine *s) { return s->rep; }
struct ifpx_stats *ifpx_machine_stats(struct ifpx_machine *s) { return &s->stats; }

struct ifpx_machine *ifpx_machine_new(unsigned topics, int heartbeat_timeout_ms,
                                int request_timeout_ms, int64_t now, ifpx_log_fn log,
                                void *log_ctx)
{
    struct ifpx_machine *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    /* Initialised at once: ifpx_machine_free clears whatever exists. */
    if (!(s->rep = malloc(sizeof *s->rep))) {
        free(s);
        return NULL;
    }
    ifpx_replica_init(s->rep);
    s->topics = topics;
    s->hb_timeout_ms = heartbeat_timeout_ms;
    s->request_timeout_ms = request_timeout_ms;
    s->log = log;
    s->ctx = log_ctx;
    s->now = s->last_rx = now;
    s->probe_at = now - IFPX_EPOCH_PROBE_MS;
    return s;
}

void ifpx_machine_free(struct ifpx_machine *s)
{
    if (!s)
        return;
    while (s->head)
        pop(s);
    drop_held(s);
    free(s->held);
    drop_reply(s);
    ifpx_replica_clear(s->rep);
    free(s->rep);
    free(s);
}
