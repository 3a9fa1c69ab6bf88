/* ifpx subscriber: see ifpx.h. The protocol logic follows
 * ifpx.subscribers.subscriber step for step; read that for the reasoning. */
#include "ifpx.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <zmq.h>

#define REQUEST_CAP 512
#define RETIRED_EPOCHS 16
#define MAX_PROBING 8
#define N_TOPICS 7

static const char *const TOPICS[N_TOPICS] = {"link", "addr", "route", "neigh", "port", "sync", "hb"};
enum { T_LINK, T_ADDR, T_ROUTE, T_NEIGH, T_PORT, T_SYNC, T_HB };

enum req_kind { REQ_NONE, REQ_SNAPSHOT, REQ_REPLAY };

/* What waits for ifpx_poll: a live message (applied, then dispatched) or the
 * difference a snapshot made (already in the replica: dispatched only). */
struct item {
    struct item *next;
    struct ifpx_msg *msg;
    struct ifpx_replica *old;   /* diff items: the state before the snapshot */
    struct ifpx_diff diff;
    int stage;                  /* diff items: 0 begin marker, 1 walk, 2 end marker, 3 done */
    int repair;                 /* 0: the initial sync */
    char reason[128];
};

struct ifpx_sub {
    void *zctx;
    int own_ctx;
    void *sub, *ctl;
    char events[256], control[256];
    char curve_server[41], curve_public[41], curve_secret[41];
    int curve;
    unsigned topics;            /* bit per TOPICS index */
    int hb_timeout_ms, request_timeout_ms;
    struct ifpx_callbacks cb;
    void *ctx;
    void (*log)(int, const char *, void *);

    struct ifpx_replica *rep;
    /* On the heap: with its next hops an event is 9 KiB, too much for a small lcore stack. */
    struct ifpx_event *ev;
    uint64_t epoch, seq;
    int synced;
    /* Epochs that are not the bridge's (earlier lives, and any a snapshot proved bogus),
     * and unknown ones seen since the snapshot that will settle them was asked for. */
    uint64_t retired[RETIRED_EPOCHS], probing[MAX_PROBING];
    unsigned n_retired, next_retired, n_probing;
    int64_t probe_at;
    uint64_t tseq[N_TOPICS], tseq_at[N_TOPICS];

    struct ifpx_msg **held;
    size_t n_held, cap_held;
    struct item *head, *tail;

    enum req_kind req;
    uint64_t req_id, next_id;
    int64_t req_sent;
    char req_reason[128];
    char *reply;                /* a reply received, installed once the queue is empty */
    size_t reply_len;

    int64_t last_rx;
    struct ifpx_stats stats;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(struct ifpx_sub *s, int level, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    if (!s->log)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s->log(level, text, s->ctx);
}

static int topic_index(const char *topic)
{
    for (int i = 0; i < N_TOPICS; i++)
        if (!strcmp(topic, TOPICS[i]))
            return i;
    return -1;
}

/* ---- sockets ------------------------------------------------------------------------- */

/* A certificate as `ifpx keygen` (zmq_auth) writes it: `public-key = "..."`, `secret-key = "..."`. */
static int cert_key(const char *path, const char *name, char out[41])
{
    char line[256];
    int found = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (!found && fgets(line, sizeof line, f)) {
        char *p = line + strspn(line, " \t");
        size_t n = strlen(name);
        if (strncmp(p, name, n))
            continue;
        char *q = strchr(p + n, '"');
        if (q && strlen(q + 1) >= 41 && q[41] == '"') {
            memcpy(out, q + 1, 40);
            out[40] = '\0';
            found = 1;
        }
    }
    fclose(f);
    return found ? 0 : -1;
}

static int setup_curve(struct ifpx_sub *s, const struct ifpx_options *opt)
{
    if (opt->curve_server_key || opt->curve_public_key || opt->curve_secret_key) {
        if (!opt->curve_server_key || !opt->curve_public_key || !opt->curve_secret_key ||
            strlen(opt->curve_server_key) != 40 || strlen(opt->curve_public_key) != 40 ||
            strlen(opt->curve_secret_key) != 40)
            return -1;
        memcpy(s->curve_server, opt->curve_server_key, 41);
        memcpy(s->curve_public, opt->curve_public_key, 41);
        memcpy(s->curve_secret, opt->curve_secret_key, 41);
        s->curve = 1;
        return 0;
    }
    const char *server = getenv("IFPX_CURVE_SERVER_KEY"), *cert = getenv("IFPX_CURVE_CERT");
    if (!server || !*server || !cert || !*cert)
        return 0;
    if (cert_key(server, "public-key", s->curve_server) ||
        cert_key(cert, "public-key", s->curve_public) ||
        cert_key(cert, "secret-key", s->curve_secret))
        return -1;
    s->curve = 1;
    return 0;
}

static void *open_socket(struct ifpx_sub *s, int type, const char *endpoint)
{
    int zero = 0;
    void *sock = zmq_socket(s->zctx, type);
    if (!sock)
        return NULL;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (s->curve && (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, s->curve_server, 41) ||
                     zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, s->curve_public, 41) ||
                     zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, s->curve_secret, 41))) {
        zmq_close(sock);
        return NULL;
    }
    if (zmq_connect(sock, endpoint)) {
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* One multipart message without blocking: frame count, or 0 when none, -1 on error.
 * Frames beyond the second are dropped (the protocol has none). */
static int recv_frames(void *sock, zmq_msg_t frames[2])
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        int rc;
        do
            rc = zmq_msg_recv(&part, sock, ZMQ_DONTWAIT);
        while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            zmq_msg_close(&part);
            if (n == 0 && errno == EAGAIN)
                return 0;
            /* a multipart message arrives whole, so EAGAIN mid-way cannot happen */
            for (int i = 0; i < n && i < 2; i++)
                zmq_msg_close(&frames[i]);
            return -1;
        }
        more = zmq_msg_more(&part);
        if (n < 2)
            frames[n] = part;
        else
            zmq_msg_close(&part);
        n++;
    }
    return n;
}

static void close_frames(zmq_msg_t frames[2], int n)
{
    for (int i = 0; i < n && i < 2; i++)
        zmq_msg_close(&frames[i]);
}

static int send_request(void *sock, const char *buf, int len, int dealer)
{
    int rc;
    if (dealer) {
        do
            rc = zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        while (rc < 0 && errno == EINTR);
        if (rc < 0)
            return -1;
    }
    do
        rc = zmq_send(sock, buf, (size_t)len, dealer ? ZMQ_DONTWAIT : 0);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -1 : 0;
}

/* zmq_poll that survives signals: the time left is recomputed after each EINTR. */
static int poll_items(zmq_pollitem_t *items, int n, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        int rc = zmq_poll(items, n, timeout_ms);
        if (rc >= 0 || errno != EINTR)
            return rc;
        timeout_ms = (int)(end - now_ms());
        if (timeout_ms < 0)
            timeout_ms = 0;
    }
}

static void start_snapshot(struct ifpx_sub *s, const char *reason);

/* ---- the queue ------------------------------------------------------------------------- */

static void push(struct ifpx_sub *s, struct item *it)
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

static void pop(struct ifpx_sub *s)
{
    struct item *it = s->head;
    s->head = it->next;
    if (!s->head)
        s->tail = NULL;
    free_item(it);
}

static void enqueue_msg(struct ifpx_sub *s, struct ifpx_msg *msg)
{
    struct item *it = calloc(1, sizeof *it);
    if (!it) {
        /* Losing a message silently is not an option: start over from a snapshot. */
        ifpx_msg_free(msg);
        logf_(s, LOG_ERR, "out of memory queueing a message: resynchronising");
        start_snapshot(s, "out of memory");
        return;
    }
    it->msg = msg;
    push(s, it);
}

/* ---- requests ---------------------------------------------------------------------------- */

static void drop_reply(struct ifpx_sub *s)
{
    free(s->reply);
    s->reply = NULL;
    s->reply_len = 0;
}

static void send_req(struct ifpx_sub *s, enum req_kind kind, const char *buf, int len,
                     const char *reason)
{
    if (!s->ctl && !(s->ctl = open_socket(s, ZMQ_DEALER, s->control))) {
        logf_(s, LOG_ERR, "cannot open the control socket: %s", zmq_strerror(errno));
        return;
    }
    drop_reply(s);
    s->req = kind;
    s->req_sent = now_ms();
    snprintf(s->req_reason, sizeof s->req_reason, "%s", reason);
    if (len < 0 || send_request(s->ctl, buf, len, 1))
        logf_(s, LOG_WARNING, "control request not sent: %s", zmq_strerror(errno));
    /* unsent or unanswered alike: the request timeout retries it */
}

static void start_snapshot(struct ifpx_sub *s, const char *reason)
{
    char buf[REQUEST_CAP];
    if (s->req == REQ_SNAPSHOT)
        return;
    logf_(s, LOG_INFO, "snapshot repair: %s", reason);
    s->req_id = ++s->next_id;
    send_req(s, REQ_SNAPSHOT, buf, ifpx_encode_snapshot(buf, sizeof buf, s->req_id), reason);
}

static void start_replay(struct ifpx_sub *s, uint64_t from_seq, const char *reason)
{
    char buf[REQUEST_CAP];
    const char *topics[N_TOPICS];
    int n = 0;
    if (s->req != REQ_NONE)
        return;
    for (int t = 0; t < N_TOPICS; t++)
        if (t != T_HB && (s->topics & (1u << t)))
            topics[n++] = TOPICS[t];
    s->req_id = ++s->next_id;
    int len = ifpx_encode_replay(buf, sizeof buf, s->req_id, s->epoch, from_seq, topics, n);
    send_req(s, REQ_REPLAY, buf, len, reason);
}

/* ---- receiving ---------------------------------------------------------------------------- */

static void process(struct ifpx_sub *s, struct ifpx_msg *msg);

static void drop_held(struct ifpx_sub *s)
{
    for (size_t i = 0; i < s->n_held; i++)
        ifpx_msg_free(s->held[i]);
    s->n_held = 0;
}

static void hold(struct ifpx_sub *s, struct ifpx_msg *msg)
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
        start_snapshot(s, "too far behind during repair");
    }
}

static void on_heartbeat(struct ifpx_sub *s, struct ifpx_msg *msg)
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

static void retire(struct ifpx_sub *s, uint64_t epoch)
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
static void foreign(struct ifpx_sub *s, struct ifpx_msg *msg)
{
    uint64_t epoch = ifpx_msg_header(msg)->epoch;
    if (epoch_in(s->retired, s->n_retired, epoch)) {
        ifpx_msg_free(msg);
        return;
    }
    if (epoch_in(s->probing, s->n_probing, epoch)) {
        hold(s, msg);
        return;
    }
    if (s->req != REQ_SNAPSHOT) {
        int64_t now = now_ms();
        if (now - s->probe_at < IFPX_EPOCH_PROBE_MS) {
            ifpx_msg_free(msg); /* its next message or heartbeat asks again */
            return;
        }
        s->probe_at = now;
        s->stats.epochs++;
        start_snapshot(s, "new bridge epoch");
    }
    if (s->n_probing < MAX_PROBING) {
        s->probing[s->n_probing++] = epoch;
        hold(s, msg);
    } else {
        ifpx_msg_free(msg);
    }
}

static void process(struct ifpx_sub *s, struct ifpx_msg *msg)
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
        hold(s, msg);
        return;
    }
    s->tseq[t] = h->tseq;
    s->tseq_at[t] = h->seq;
    s->seq = h->seq;
    enqueue_msg(s, msg);
}

static void on_payload(struct ifpx_sub *s, const char *topic, size_t topic_len,
                       const char *payload, size_t len)
{
    int status;
    struct ifpx_header hdr;
    struct ifpx_msg *msg = ifpx_msg_open(payload, len, &hdr, &status);
    if (!msg || topic_index(hdr.topic) < 0 || strlen(hdr.topic) != topic_len ||
        memcmp(hdr.topic, topic, topic_len)) {
        s->stats.bad_messages++;
        logf_(s, LOG_WARNING, "dropping a malformed message (status %d)", msg ? IFPX_E_FIELD : status);
        ifpx_msg_free(msg);
        return;
    }
    s->stats.messages++;
    if (s->synced && hdr.epoch != s->epoch) {
        foreign(s, msg); /* proves nothing about the bridge's liveness */
        return;
    }
    s->last_rx = now_ms();
    if (s->req != REQ_NONE || !s->synced)
        hold(s, msg);
    else
        process(s, msg);
}

/* Reads one published message: 1 if there was one. */
static int read_one(struct ifpx_sub *s)
{
    zmq_msg_t f[2];
    int n = recv_frames(s->sub, f);
    if (n <= 0)
        return 0;
    if (n == 2)
        on_payload(s, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), zmq_msg_data(&f[1]),
                   zmq_msg_size(&f[1]));
    else
        s->stats.bad_messages++;
    close_frames(f, n);
    return 1;
}

/* Takes the reply to the current request off the control socket, if it came. */
static void take_reply(struct ifpx_sub *s)
{
    zmq_msg_t f[2];
    int n;
    while ((n = recv_frames(s->ctl, f)) > 0) {
        struct ifpx_reply head;
        zmq_msg_t *last = &f[n >= 2 ? 1 : 0];
        const char *data = zmq_msg_data(last);
        size_t len = zmq_msg_size(last);
        if (n <= 2 && !ifpx_decode_reply(data, len, &head) && head.id == s->req_id &&
            (s->reply = malloc(len ? len : 1))) {
            memcpy(s->reply, data, len);
            s->reply_len = len;
            close_frames(f, n);
            return;
        }
        close_frames(f, n); /* an answer to a request given up on, or garbage */
    }
}

static void service_control(struct ifpx_sub *s)
{
    if (s->req == REQ_NONE || s->reply)
        return;
    if (s->ctl)
        take_reply(s);
    if (!s->reply && now_ms() - s->req_sent > s->request_timeout_ms) {
        /* Lazy Pirate: the bridge may be gone; a fresh socket drops the stale request. */
        char reason[128];
        s->stats.request_retries++;
        if (s->ctl)
            zmq_close(s->ctl);
        s->ctl = NULL;
        s->req = REQ_NONE;
        snprintf(reason, sizeof reason, "%s", s->req_reason);
        start_snapshot(s, reason);
    }
}

/* ---- installing replies --------------------------------------------------------------------- */

struct apply_ctx {
    struct ifpx_sub *s;
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

static void install_snapshot(struct ifpx_sub *s, const char *buf, size_t len, const char *reason)
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
        rc = ifpx_decode_snapshot(buf, len, &snap, apply_wanted, &a);
    if (rc) {
        logf_(s, LOG_WARNING, "unusable snapshot (status %d): asking again", rc);
        if (target)
            ifpx_replica_clear(target);
        free(target);
        if (old && old != s->rep)
            free(old);
        free(it);
        start_snapshot(s, reason);
        return;
    }
    it->old = old;
    it->repair = s->synced;
    snprintf(it->reason, sizeof it->reason, "%s", reason);
    ifpx_diff_init(&it->diff, old, target);
    if (s->synced)
        s->stats.snapshot_repairs++;
    else
        free(s->rep);  /* the empty replica made at open */
    s->rep = target;
    push(s, it);

    if (s->synced && s->epoch != snap.epoch)
        retire(s, s->epoch);
    for (unsigned i = 0; i < s->n_probing; i++)
        if (s->probing[i] != snap.epoch)
            retire(s, s->probing[i]);
    s->n_probing = 0;
    s->epoch = snap.epoch;
    s->seq = snap.seq;
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
            hold(s, held[i]);
        else if (h->seq <= snap.seq)
            ifpx_msg_free(held[i]);
        else
            process(s, held[i]);
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

static void install_replay(struct ifpx_sub *s, const char *buf, size_t len, const char *reason)
{
    struct replay_ctx r = {0};
    uint64_t epoch;
    int rc = ifpx_decode_replay(buf, len, &epoch, collect, &r);
    if (rc || r.failed) {
        for (size_t i = 0; i < r.n; i++)
            ifpx_msg_free(r.msgs[i]);
        free(r.msgs);
        logf_(s, LOG_WARNING, "bad journal reply: falling back to a snapshot");
        start_snapshot(s, reason);
        return;
    }
    s->stats.journal_repairs++;
    size_t total = r.n + s->n_held;
    struct ifpx_msg **all = realloc(r.msgs, (total ? total : 1) * sizeof *all);
    if (!all) {
        for (size_t i = 0; i < r.n; i++)
            ifpx_msg_free(r.msgs[i]);
        free(r.msgs);
        start_snapshot(s, reason);
        return;
    }
    if (s->n_held)
        memcpy(all + r.n, s->held, s->n_held * sizeof *all);
    s->n_held = 0;
    qsort(all, total, sizeof *all, by_seq);
    for (size_t i = 0; i < total; i++) {
        if (s->req != REQ_NONE)
            hold(s, all[i]);
        else
            process(s, all[i]);
    }
    free(all);
}

/* The reply to the current request, once everything before it has been delivered. */
static void install_reply(struct ifpx_sub *s)
{
    struct ifpx_reply head;
    char reason[128];
    char *buf = s->reply;
    size_t len = s->reply_len;
    enum req_kind kind = s->req;
    s->reply = NULL;
    s->req = REQ_NONE;
    snprintf(reason, sizeof reason, "%s", s->req_reason);
    if (ifpx_decode_reply(buf, len, &head) || !head.ok) {
        logf_(s, LOG_INFO, "repair refused (%s): falling back to a snapshot", head.code);
        start_snapshot(s, reason);
    } else if (kind == REQ_SNAPSHOT && !strcmp(head.type, "snapshot")) {
        install_snapshot(s, buf, len, reason);
    } else if (kind == REQ_REPLAY && !strcmp(head.type, "replay")) {
        install_replay(s, buf, len, reason);
    } else {
        start_snapshot(s, reason);
    }
    free(buf);
}

/* ---- delivery ---------------------------------------------------------------------------------- */

static void marker(struct ifpx_event *ev, enum ifpx_kind kind, const char *reason)
{
    memset(ev, 0, offsetof(struct ifpx_event, nh));
    ev->kind = kind;
    snprintf(ev->reason, sizeof ev->reason, "%s", reason);
}

/* The next event of the queue's head: 1, or 0 when the head is exhausted. */
static int next_event(struct ifpx_sub *s, struct item *it, struct ifpx_event *ev)
{
    if (it->msg) {
        if (!ifpx_msg_next(it->msg, ev))
            return 0;
        if (ifpx_replica_apply(s->rep, ev)) {
            logf_(s, LOG_ERR, "out of memory applying an event: resynchronising");
            start_snapshot(s, "out of memory");
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

static ifpx_cb handler(const struct ifpx_callbacks *cb, enum ifpx_kind k)
{
    switch (k) {
    case IFPX_MAC_CHANGE: return cb->mac_change;
    case IFPX_MTU_CHANGE: return cb->mtu_change;
    case IFPX_LINK_CHANGE: return cb->link_change;
    case IFPX_ADDR_ADD: return cb->addr_add;
    case IFPX_ADDR_DEL: return cb->addr_del;
    case IFPX_ADDR6_ADD: return cb->addr6_add;
    case IFPX_ADDR6_DEL: return cb->addr6_del;
    case IFPX_ROUTE_ADD: return cb->route_add;
    case IFPX_ROUTE_DEL: return cb->route_del;
    case IFPX_ROUTE6_ADD: return cb->route6_add;
    case IFPX_ROUTE6_DEL: return cb->route6_del;
    case IFPX_NEIGH_ADD: return cb->neigh_add;
    case IFPX_NEIGH_DEL: return cb->neigh_del;
    case IFPX_NEIGH6_ADD: return cb->neigh6_add;
    case IFPX_NEIGH6_DEL: return cb->neigh6_del;
    case IFPX_CFG_DONE: return cb->cfg_done;
    case IFPX_PORT_BOUND: return cb->port_bound;
    case IFPX_PORT_UNBOUND: return cb->port_unbound;
    case IFPX_PROXY_GONE: return cb->proxy_gone;
    case IFPX_PROXY_RENAMED: return cb->proxy_renamed;
    case IFPX_PROXY_BACK: return cb->proxy_back;
    case IFPX_RESYNC_BEGIN: return cb->resync_begin;
    case IFPX_RESYNC_END: return cb->resync_end;
    default: return NULL;
    }
}

int ifpx_poll(struct ifpx_sub *s, unsigned max_events)
{
    unsigned n = 0;
    struct ifpx_event *ev = s->ev;
    service_control(s);
    while (n < max_events) {
        if (s->head) {
            if (!next_event(s, s->head, ev)) {
                pop(s);
                continue;
            }
            s->stats.events++;
            ifpx_cb fn = handler(&s->cb, ev->kind);
            if (fn && fn(ev, s->ctx))
                s->stats.callback_errors++;
            n++;
            continue;
        }
        if (s->reply) {
            install_reply(s);
            continue;
        }
        if (!read_one(s))
            break;
        if (s->req != REQ_NONE)
            service_control(s);
    }
    if (s->synced && s->req == REQ_NONE && now_ms() - s->last_rx > s->hb_timeout_ms) {
        s->stats.heartbeat_misses++;
        s->last_rx = now_ms();
        start_snapshot(s, "heartbeats missed");
    }
    return (int)n;
}

int ifpx_wait(struct ifpx_sub *s, int timeout_ms)
{
    if (s->head || s->reply)
        return 1;
    zmq_pollitem_t items[2] = {{s->sub, 0, ZMQ_POLLIN, 0}, {s->ctl, 0, ZMQ_POLLIN, 0}};
    int n = s->ctl && s->req != REQ_NONE ? 2 : 1;
    return poll_items(items, n, timeout_ms) > 0;
}

int ifpx_sync(struct ifpx_sub *s, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    if (!s->synced && s->req == REQ_NONE)
        start_snapshot(s, "initial sync");
    while (!s->synced) {
        int64_t left = end - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        ifpx_wait(s, left < 100 ? (int)left : 100);
        while (read_one(s))
            ;
        service_control(s);
        if (s->reply && !s->head)
            install_reply(s);
    }
    return 0;
}

/* ---- life --------------------------------------------------------------------------------------- */

static unsigned parse_topics(const char *list)
{
    unsigned mask = (1u << T_PORT) | (1u << T_SYNC) | (1u << T_HB);
    if (!list)
        return mask | (1u << T_LINK) | (1u << T_ADDR) | (1u << T_ROUTE) | (1u << T_NEIGH);
    while (*list) {
        size_t n = strcspn(list, ",");
        int found = 0;
        for (int t = 0; t < N_TOPICS; t++)
            if (strlen(TOPICS[t]) == n && !strncmp(list, TOPICS[t], n)) {
                mask |= 1u << t;
                found = 1;
            }
        if (!found && n)
            return 0;
        list += n + (list[n] == ',');
    }
    return mask;
}

static const char *endpoint(const char *given, const char *env, const char *dflt)
{
    const char *e = getenv(env);
    return given ? given : e && *e ? e : dflt;
}

struct ifpx_sub *ifpx_open(const struct ifpx_options *opt, const struct ifpx_callbacks *cb,
                           void *ctx)
{
    static const struct ifpx_options none;
    struct ifpx_sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    opt = opt ? opt : &none;
    s->topics = parse_topics(opt->topics);
    snprintf(s->events, sizeof s->events, "%s",
             endpoint(opt->events, "IFPX_EVENTS", "ipc:///run/ifpx/events.sock"));
    snprintf(s->control, sizeof s->control, "%s",
             endpoint(opt->control, "IFPX_CONTROL", "ipc:///run/ifpx/control.sock"));
    s->hb_timeout_ms = opt->heartbeat_timeout_ms > 0 ? opt->heartbeat_timeout_ms : 3500;
    s->request_timeout_ms = opt->request_timeout_ms > 0 ? opt->request_timeout_ms : 5000;
    s->log = opt->log;
    s->ctx = ctx;
    if (cb)
        s->cb = *cb;
    if (!s->topics || setup_curve(s, opt)) {
        free(s);
        errno = EINVAL;
        return NULL;
    }
    /* Initialised at once: ifpx_close (on a later failure) clears whatever exists. */
    if ((s->rep = malloc(sizeof *s->rep)))
        ifpx_replica_init(s->rep);
    s->ev = malloc(sizeof *s->ev);
    s->probe_at = now_ms() - IFPX_EPOCH_PROBE_MS;
    s->zctx = opt->zmq_context;
    if (!s->zctx) {
        s->zctx = zmq_ctx_new();
        s->own_ctx = 1;
    }
    if (!s->rep || !s->ev || !s->zctx)
        goto fail;
    int hwm = opt->rcvhwm > 0 ? opt->rcvhwm : 100000, zero = 0;
    if (!(s->sub = zmq_socket(s->zctx, ZMQ_SUB)) ||
        zmq_setsockopt(s->sub, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(s->sub, ZMQ_LINGER, &zero, sizeof zero))
        goto fail;
    for (int t = 0; t < N_TOPICS; t++)
        if ((s->topics & (1u << t)) &&
            zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, TOPICS[t], strlen(TOPICS[t])))
            goto fail;
    if (s->curve && (zmq_setsockopt(s->sub, ZMQ_CURVE_SERVERKEY, s->curve_server, 41) ||
                     zmq_setsockopt(s->sub, ZMQ_CURVE_PUBLICKEY, s->curve_public, 41) ||
                     zmq_setsockopt(s->sub, ZMQ_CURVE_SECRETKEY, s->curve_secret, 41)))
        goto fail;
    if (zmq_connect(s->sub, s->events))
        goto fail;
    s->last_rx = now_ms();
    return s;
fail:
    {
        int err = errno;
        ifpx_close(s);
        errno = err ? err : ENOMEM;
    }
    return NULL;
}

void ifpx_close(struct ifpx_sub *s)
{
    if (!s)
        return;
    if (s->sub)
        zmq_close(s->sub);
    if (s->ctl)
        zmq_close(s->ctl);
    if (s->own_ctx && s->zctx)
        zmq_ctx_term(s->zctx);
    while (s->head)
        pop(s);
    drop_held(s);
    free(s->held);
    drop_reply(s);
    if (s->rep) {
        ifpx_replica_clear(s->rep);
        free(s->rep);
    }
    free(s->ev);
    free(s);
}

const struct ifpx_replica *ifpx_state(const struct ifpx_sub *s) { return s->rep; }
const struct ifpx_stats *ifpx_stats(const struct ifpx_sub *s) { return &s->stats; }
uint64_t ifpx_epoch(const struct ifpx_sub *s) { return s->epoch; }
uint64_t ifpx_seq(const struct ifpx_sub *s) { return s->seq; }
int ifpx_repairing(const struct ifpx_sub *s) { return s->req != REQ_NONE; }

/* ---- one-shot commands ----------------------------------------------------------------------------- */

static int command(const struct ifpx_options *opt, const char *buf, int len, int timeout_ms,
                   struct ifpx_reply *reply)
{
    struct ifpx_sub s;
    memset(&s, 0, sizeof s);
    memset(reply, 0, sizeof *reply);
    opt = opt ? opt : &(const struct ifpx_options){0};
    snprintf(s.control, sizeof s.control, "%s",
             endpoint(opt->control, "IFPX_CONTROL", "ipc:///run/ifpx/control.sock"));
    if (len < 0 || setup_curve(&s, opt))
        return -EINVAL;
    s.zctx = opt->zmq_context ? opt->zmq_context : zmq_ctx_new();
    void *sock = s.zctx ? open_socket(&s, ZMQ_REQ, s.control) : NULL;
    int rc = -ETIMEDOUT;
    if (sock && !send_request(sock, buf, len, 0)) {
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        zmq_msg_t f[2];
        int n;
        if (poll_items(&item, 1, timeout_ms) > 0 && (n = recv_frames(sock, f)) > 0) {
            if (ifpx_decode_reply(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), reply))
                rc = -EBADMSG;
            else
                rc = reply->ok ? 0 : -EPROTO;
            close_frames(f, n);
        }
    } else if (!sock) {
        rc = -errno;
    }
    if (sock)
        zmq_close(sock);
    if (s.zctx && !opt->zmq_context)
        zmq_ctx_term(s.zctx);
    return rc;
}

int ifpx_bind(const struct ifpx_options *opt, uint16_t port_id, const char *proxy,
              int timeout_ms, struct ifpx_reply *reply)
{
    char buf[REQUEST_CAP];
    int len = ifpx_encode_bind(buf, sizeof buf, (uint64_t)now_ms(), port_id, proxy);
    return command(opt, buf, len, timeout_ms, reply);
}

int ifpx_unbind(const struct ifpx_options *opt, uint16_t port_id, int timeout_ms,
                struct ifpx_reply *reply)
{
    char buf[REQUEST_CAP];
    int len = ifpx_encode_unbind(buf, sizeof buf, (uint64_t)now_ms(), port_id);
    return command(opt, buf, len, timeout_ms, reply);
}
