/* ifpx subscriber: see ifpx.h. Sockets, CURVE and commands around the protocol machine
 * (ifpx_machine.c), which holds every rule of following the bridge. */
#include "ifpx.h"
#include "ifpx_machine_int.h"
#include "ifpx_mp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>


struct ifpx_sub {
    void *zctx;
    int own_ctx;
    void *sub, *ctl;
    char events[256], control[256];
    char curve_server[41], curve_public[41], curve_secret[41];
    int curve;
    unsigned topics;            /* bit per TOPICS index */
    struct ifpx_callbacks cb;
    void *ctx;
    void (*log)(int, const char *, void *);
    struct ifpx_machine *m;
    /* On the heap: with its next hops an event is 9 KiB, too much for a small lcore stack. */
    struct ifpx_event *ev;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define logf_(s, ...) ifpx_log((s)->log, (s)->ctx, __VA_ARGS__)

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

/* ---- between the sockets and the machine ------------------------------------------------ */

/* Carries out what the machine asked for: requests on the control socket. */
static void perform(struct ifpx_sub *s)
{
    struct ifpx_action a;
    while (ifpx_machine_action(s->m, &a)) {
        if (a.kind == IFPX_ACT_RESET) {
            if (s->ctl)
                zmq_close(s->ctl);
            s->ctl = NULL;
            continue;
        }
        if (a.request != IFPX_REQ_REPORT)
            logf_(s, LOG_INFO, "%s repair: %s",
                  a.request == IFPX_REQ_SNAPSHOT ? "snapshot" : "journal", a.reason);
        if (!s->ctl && !(s->ctl = open_socket(s, ZMQ_DEALER, s->control))) {
            logf_(s, LOG_ERR, "cannot open the control socket: %s", zmq_strerror(errno));
            continue;
        }
        if (a.len < 0 || send_request(s->ctl, a.buf, a.len, 1))
            logf_(s, LOG_WARNING, "control request not sent: %s", zmq_strerror(errno));
        /* unsent or unanswered alike: the request timeout retries it */
    }
}

/* Reads one published message: 1 if there was one. */
static int read_one(struct ifpx_sub *s)
{
    zmq_msg_t f[2];
    int n = recv_frames(s->sub, f);
    if (n <= 0)
        return 0;
    if (n == 2)
        ifpx_machine_on_message(s->m, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]),
                                zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), now_ms());
    else
        ifpx_machine_on_bad_message(s->m);
    close_frames(f, n);
    perform(s);
    return 1;
}

/* Hands replies on the control socket to the machine, then lets time pass. */
static void service_control(struct ifpx_sub *s)
{
    zmq_msg_t f[2];
    int n;
    while (s->ctl && ifpx_machine_awaiting_reply(s->m) && (n = recv_frames(s->ctl, f)) > 0) {
        if (n <= 2) {
            zmq_msg_t *last = &f[n - 1];
            ifpx_machine_on_reply(s->m, zmq_msg_data(last), zmq_msg_size(last), now_ms());
        }
        close_frames(f, n);
    }
    ifpx_machine_tick(s->m, now_ms());
    perform(s);
}

/* ---- delivery ---------------------------------------------------------------------------------- */

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
    case IFPX_RULE_ADD: return cb->rule_add;
    case IFPX_RULE_DEL: return cb->rule_del;
    case IFPX_RULE6_ADD: return cb->rule6_add;
    case IFPX_RULE6_DEL: return cb->rule6_del;
    case IFPX_NHGROUP_SET: return cb->nhgroup_set;
    case IFPX_NHGROUP_DEL: return cb->nhgroup_del;
    case IFPX_GROUTE_ADD: return cb->groute_add;
    case IFPX_GROUTE_DEL: return cb->groute_del;
    case IFPX_GROUTE6_ADD: return cb->groute6_add;
    case IFPX_GROUTE6_DEL: return cb->groute6_del;
    default: return NULL;
    }
}

int ifpx_poll(struct ifpx_sub *s, unsigned max_events)
{
    unsigned n = 0;
    struct ifpx_event *ev = s->ev;
    struct ifpx_stats *st = ifpx_machine_stats(s->m);
    int64_t now = now_ms();
    service_control(s);
    while (n < max_events) {
        if (ifpx_machine_next(s->m, ev, now)) {
            st->events++;
            ifpx_cb fn = handler(&s->cb, ev->kind);
            if (fn && fn(ev, s->ctx))
                st->callback_errors++;
            n++;
            continue;
        }
        perform(s); /* what installing a reply asked for */
        if (!read_one(s))
            break;
        now = now_ms();
        if (ifpx_machine_awaiting_reply(s->m))
            service_control(s);
    }
    ifpx_machine_tick(s->m, now_ms());
    perform(s);
    return (int)n;
}

int ifpx_wait(struct ifpx_sub *s, int timeout_ms)
{
    if (ifpx_machine_has_work(s->m))
        return 1;
    zmq_pollitem_t items[2] = {{s->sub, 0, ZMQ_POLLIN, 0}, {s->ctl, 0, ZMQ_POLLIN, 0}};
    int n = s->ctl && ifpx_machine_awaiting_reply(s->m) ? 2 : 1;
    return poll_items(items, n, timeout_ms) > 0;
}

int ifpx_sync(struct ifpx_sub *s, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    ifpx_machine_start(s->m, now_ms());
    perform(s);
    while (!ifpx_machine_synced(s->m)) {
        int64_t left = end - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        ifpx_wait(s, left < 100 ? (int)left : 100);
        while (read_one(s))
            ;
        service_control(s);
        ifpx_machine_settle(s->m, now_ms());
        perform(s);
    }
    return 0;
}

/* ---- life --------------------------------------------------------------------------------------- */

static unsigned parse_topics(const char *list)
{
    unsigned mask = (1u << T_PORT) | (1u << T_SYNC) | (1u << T_HB);
    if (!list)
        return mask | (1u << T_LINK) | (1u << T_ADDR) | (1u << T_ROUTE) | (1u << T_NEIGH) |
               (1u << T_RULE);
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
             endpoint(opt->events, "IFPX_EVENTS", IFPX_DEFAULT_EVENTS));
    snprintf(s->control, sizeof s->control, "%s",
             endpoint(opt->control, "IFPX_CONTROL", IFPX_DEFAULT_CONTROL));
    s->log = opt->log;
    s->ctx = ctx;
    if (cb)
        s->cb = *cb;
    if (!s->topics || setup_curve(s, opt)) {
        free(s);
        errno = EINVAL;
        return NULL;
    }
    s->m = ifpx_machine_new(s->topics,
                            opt->heartbeat_timeout_ms > 0 ? opt->heartbeat_timeout_ms : 3500,
                            opt->request_timeout_ms > 0 ? opt->request_timeout_ms : 5000,
                            now_ms(), opt->log, ctx);
    s->ev = malloc(sizeof *s->ev);
    s->zctx = opt->zmq_context;
    if (!s->zctx) {
        s->zctx = zmq_ctx_new();
        s->own_ctx = 1;
    }
    if (!s->m || !s->ev || !s->zctx)
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
    if (ifpx_set_worker(s, NULL, 0)) {
        /* A $IFPX_WORKER_NAME that cannot be a name: said, and reports made as host:pid. */
        logf_(s, LOG_WARNING, "IFPX_WORKER_NAME is not a worker name; reporting as host:pid");
        unsetenv("IFPX_WORKER_NAME");
        ifpx_set_worker(s, NULL, 0);
    }
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
    struct ifpx_action bye;
    if (s->ctl && ifpx_machine_farewell(s->m, &bye)) {
        /* Said without waiting for an answer: a closing worker of a live process is
         * gone, not stalled (the bridge waits for those). A short linger lets it out. */
        int linger = 200;
        zmq_setsockopt(s->ctl, ZMQ_LINGER, &linger, sizeof linger);
        send_request(s->ctl, bye.buf, bye.len, 1);
    }
    if (s->ctl)
        zmq_close(s->ctl);
    if (s->own_ctx && s->zctx)
        zmq_ctx_term(s->zctx);
    ifpx_machine_free(s->m);
    free(s->ev);
    free(s);
}

int ifpx_set_worker(struct ifpx_sub *s, const char *name, int interval_ms)
{
    char host[65] = "", fallback[96];
    uint64_t instance = 0;
    if (interval_ms < 0)
        return ifpx_machine_set_identity(s->m, NULL, 0, NULL, 0, NULL, 0);
    gethostname(host, sizeof host - 1);
    if (!name) {
        const char *env = getenv("IFPX_WORKER_NAME");
        snprintf(fallback, sizeof fallback, "%s:%d", host, (int)getpid());
        name = env && *env ? env : fallback;
    }
    if (getrandom(&instance, sizeof instance, 0) != sizeof instance)
        instance = (uint64_t)now_ms() * 6364136223846793005ULL ^ (uint64_t)getpid();
    instance &= INT64_MAX;
    return ifpx_machine_set_identity(s->m, name, instance ? instance : 1, host, (uint32_t)getpid(),
                                     "libifpx/" IFPX_VERSION, interval_ms ? interval_ms : 1000);
}

uint64_t ifpx_applied(const struct ifpx_sub *s, uint64_t *epoch)
{
    return ifpx_machine_applied(s->m, epoch);
}

const struct ifpx_replica *ifpx_state(const struct ifpx_sub *s) { return ifpx_machine_replica(s->m); }
const struct ifpx_stats *ifpx_stats(const struct ifpx_sub *s) { return ifpx_machine_stats(s->m); }
uint64_t ifpx_epoch(const struct ifpx_sub *s) { return ifpx_machine_epoch(s->m); }
uint64_t ifpx_seq(const struct ifpx_sub *s) { return ifpx_machine_seq(s->m); }
int ifpx_repairing(const struct ifpx_sub *s) { return ifpx_machine_repairing(s->m); }

/* ---- one-shot commands ----------------------------------------------------------------------------- */

/* The workers a wait_applied answer waited for, to name them in the next polls. */
struct pinned {
    char names[256][65];
    const char *ptrs[256];
    unsigned n;
    int set;
};

/* One request on a short-lived REQ socket; a wait_applied result decoded into *wait (and
 * the workers it names into *pin, once). */
static int command_reply(const struct ifpx_options *opt, const char *buf, int len,
                         int timeout_ms, struct ifpx_reply *reply, struct ifpx_wait_result *wait,
                         struct pinned *pin)
{
    struct ifpx_sub s;
    memset(&s, 0, sizeof s);
    memset(reply, 0, sizeof *reply);
    opt = opt ? opt : &(const struct ifpx_options){0};
    snprintf(s.control, sizeof s.control, "%s",
             endpoint(opt->control, "IFPX_CONTROL", IFPX_DEFAULT_CONTROL));
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
            else if (!reply->ok)
                rc = -EPROTO;
            else if (wait && ifpx_mp_wait_applied(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), wait,
                                                  pin && !pin->set ? pin->names : NULL, 256))
                rc = -EBADMSG;
            else
                rc = 0;
            /* Nobody yet: whoever comes is waited for (not pinned to nobody). */
            if (!rc && pin && !pin->set && wait->n_workers > 0 && wait->n_workers <= 256) {
                pin->n = wait->n_workers;
                for (unsigned i = 0; i < pin->n; i++)
                    pin->ptrs[i] = pin->names[i];
                pin->set = 1;
            }
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

static int command(const struct ifpx_options *opt, const char *buf, int len, int timeout_ms,
                   struct ifpx_reply *reply)
{
    return command_reply(opt, buf, len, timeout_ms, reply, NULL, NULL);
}

int ifpx_bind(const struct ifpx_options *opt, uint16_t port_id, const char *proxy,
              int timeout_ms, struct ifpx_reply *reply)
{
    char buf[IFPX_REQUEST_CAP];
    int len = ifpx_encode_bind(buf, sizeof buf, (uint64_t)now_ms(), port_id, proxy);
    return command(opt, buf, len, timeout_ms, reply);
}

int ifpx_unbind(const struct ifpx_options *opt, uint16_t port_id, int timeout_ms,
                struct ifpx_reply *reply)
{
    char buf[IFPX_REQUEST_CAP];
    int len = ifpx_encode_unbind(buf, sizeof buf, (uint64_t)now_ms(), port_id);
    return command(opt, buf, len, timeout_ms, reply);
}

int ifpx_bind_exclusive(const struct ifpx_options *opt, uint16_t port_id, const char *proxy,
                        int timeout_ms, struct ifpx_reply *reply)
{
    char buf[IFPX_REQUEST_CAP];
    int len = ifpx_encode_bind_ex(buf, sizeof buf, (uint64_t)now_ms(), port_id, proxy, 1);
    return command(opt, buf, len, timeout_ms, reply);
}

int ifpx_unbind_from(const struct ifpx_options *opt, uint16_t port_id, const char *proxy,
                     int timeout_ms, struct ifpx_reply *reply)
{
    char buf[IFPX_REQUEST_CAP];
    int len = ifpx_encode_unbind_from(buf, sizeof buf, (uint64_t)now_ms(), port_id, proxy);
    return command(opt, buf, len, timeout_ms, reply);
}

int ifpx_wait_applied(const struct ifpx_options *opt, uint64_t seq, const char *const *workers,
                      int n_workers, int timeout_ms, struct ifpx_wait_result *out,
                      struct ifpx_reply *reply)
{
    /* Room for 256 names of 64 bytes. */
    enum { CAP = 256 * 70 + 256 };
    struct ifpx_options o = opt ? *opt : (struct ifpx_options){0};
    int64_t end = now_ms() + timeout_ms;
    uint64_t epoch = 0;
    struct ifpx_reply scratch;
    int rc;
    memset(out, 0, sizeof *out);
    if (!reply)
        reply = &scratch;
    memset(reply, 0, sizeof *reply);
    if (n_workers < 0 || n_workers > 256 || (n_workers && !workers))
        return -EINVAL;
    char *buf = malloc(CAP);
    /* Without names: the workers live at the first poll, who stay waited for if they go
     * (without the memory for that, whoever is live at each poll). */
    struct pinned *pin = workers ? NULL : calloc(1, sizeof *pin);
    /* One context for every poll rather than one each. */
    if (!buf || (!o.zmq_context && !(o.zmq_context = zmq_ctx_new()))) {
        free(pin);
        free(buf);
        return -ENOMEM;
    }
    for (;;) {
        int left = (int)(end - now_ms());
        if (pin && pin->set) {
            workers = pin->ptrs;
            n_workers = (int)pin->n;
        }
        int len = ifpx_encode_wait_applied(buf, CAP, (uint64_t)now_ms(), seq, epoch, workers,
                                           n_workers);
        rc = command_reply(&o, buf, len, left > 0 ? left : 1, reply, out, pin);
        if (rc)
            break;
        seq = out->seq;
        epoch = out->epoch;
        if (out->done)
            break;
        if (now_ms() >= end) {
            rc = -ETIMEDOUT;
            break;
        }
        struct timespec pause = {0, 20 * 1000000};
        nanosleep(&pause, NULL);
    }
    if (!opt || !opt->zmq_context)
        zmq_ctx_term(o.zmq_context);
    free(pin);
    free(buf);
    return rc;
}
