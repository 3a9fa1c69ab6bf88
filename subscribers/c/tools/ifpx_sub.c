/* ifpx_sub: the C subscriber on the command line. Binds ports if asked, syncs,
 * prints every event as a JSON line, and writes its state on SIGUSR1.
 *
 *   ifpx_sub [--events EP] [--control EP] [--topics LIST] [--bind PORT=PROXY]...
 *            [--state FILE] [--rcvhwm N] [--quiet] [--mark ROUTES]...
 *            [--until-dead PORT --probe PREFIX/LEN]
 *            [--name NAME] [--report-ms MS]
 *
 * --name and --report-ms: how it reports to the bridge (ifpx_set_worker; --report-ms -1:
 * no reports).
 *
 *   ifpx_sub [--control EP] --wait-applied TIMEOUT_MS [--worker NAME]...
 *
 * waits with ifpx_wait_applied() for the bridge's seq now, prints {"rc", "done", "seq",
 * "workers", "waiting": [names]} and exits 0 when done, 1 when not.
 *
 * The state file (written whole, then renamed into place) holds
 * {"gen": N, "epoch", "seq", "applied", "stats": {...}, "state": <replica>}, with gen counting
 * the writes: the tests use it to compare this library with the bridge and with
 * the Python Subscriber. It is also written once synced. SIGTERM/SIGINT: exit 0.
 *
 * With --mark (the benchmark's C subscriber, bench/), it prints one JSON line once
 * synced, {"synced": T, "routes": N}, then one per mark, in the order given, when
 * the replica first holds that many routes with no repair under way:
 * {"routes": N, "t": T, "rss": BYTES, "gaps": G, "snapshot_repairs": R}; T is
 * CLOCK_MONOTONIC in seconds (Python's time.monotonic()), rss the growth since start.
 * With --until-dead PORT --probe PREFIX/LEN (the next-hop failure benchmark), once the
 * marks are reached it prints {"dead": PORT, "t": T} when the route to PREFIX/LEN (main
 * table, metric 0) has no live hop through PORT any more.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ifpx.h"
#include "ifpx_json.h"

static volatile sig_atomic_t report_wanted, stop;

static void on_usr1(int sig) { (void)sig; report_wanted = 1; }
static void on_term(int sig) { (void)sig; stop = 1; }

static int quiet;

static int print_event(const struct ifpx_event *ev, void *ctx)
{
    (void)ctx;
    if (!quiet) {
        ifpx_json_event(stdout, ev);
        fputc('\n', stdout);
        fflush(stdout);
    }
    return 0;
}

static void log_stderr(int level, const char *text, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "ifpx_sub: level=%d %s\n", level, text);
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static int write_state(struct ifpx_sub *s, const char *path, unsigned gen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    const struct ifpx_stats *st = ifpx_stats(s);
    fprintf(f, "{\"gen\": %u, \"epoch\": %llu, \"seq\": %llu, \"applied\": %llu, "
               "\"stats\": {\"messages\": %llu, "
               "\"events\": %llu, \"bad_messages\": %llu, \"gaps\": %llu, \"journal_repairs\": %llu, "
               "\"snapshot_repairs\": %llu, \"epochs\": %llu, \"heartbeat_misses\": %llu, "
               "\"request_retries\": %llu, \"snapshot_refusals\": %llu, "
               "\"inconsistent\": %llu}, \"cfg_done\": %s, \"state\": ",
            gen, (unsigned long long)ifpx_epoch(s), (unsigned long long)ifpx_seq(s),
            (unsigned long long)ifpx_applied(s, NULL),
            (unsigned long long)st->messages, (unsigned long long)st->events,
            (unsigned long long)st->bad_messages, (unsigned long long)st->gaps,
            (unsigned long long)st->journal_repairs, (unsigned long long)st->snapshot_repairs,
            (unsigned long long)st->epochs, (unsigned long long)st->heartbeat_misses,
            (unsigned long long)st->request_retries,
            (unsigned long long)st->snapshot_refusals, (unsigned long long)st->inconsistent,
            ifpx_state(s)->cfg_done ? "true" : "false");
    ifpx_replica_json(ifpx_state(s), f);
    fprintf(f, "}\n");
    if (fclose(f))
        return -1;
    return rename(tmp, path);
}

static const char *arg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "ifpx_sub: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return argv[++*i];
}

/* --bind PORT=PROXY: 0 once bound; otherwise the reason on stderr and the exit status
 * (2 for a malformed argument, 1 when the bridge refused or did not answer). */
static int bind_one(const struct ifpx_options *opt, const char *arg)
{
    struct ifpx_reply reply;
    char spec[64];
    snprintf(spec, sizeof spec, "%s", arg);
    char *eq = strchr(spec, '=');
    if (!eq) {
        fprintf(stderr, "ifpx_sub: --bind wants PORT=PROXY\n");
        return 2;
    }
    *eq = '\0';
    int rc = ifpx_bind(opt, (uint16_t)atoi(spec), eq + 1, 5000, &reply);
    if (!rc)
        return 0;
    fprintf(stderr, "ifpx_sub: bind %s=%s: %s %s\n", spec, eq + 1,
            rc == -EPROTO ? reply.code : strerror(-rc), reply.message);
    return 1;
}

static int wait_applied(const struct ifpx_options *opt, int timeout_ms,
                        const char *const *workers, int n)
{
    struct ifpx_wait_result res;
    struct ifpx_reply reply;
    int rc = ifpx_wait_applied(opt, 0, workers, n, timeout_ms, &res, &reply);
    printf("{\"rc\": %d, \"done\": %d, \"seq\": %llu, \"workers\": %u, \"waiting\": [", rc,
           res.done, (unsigned long long)res.seq, res.n_workers);
    for (unsigned i = 0; i < res.n_waiting && i < 8; i++)
        printf("%s\"%s\"", i ? ", " : "", res.waiting[i]);
    printf("], \"code\": \"%s\"}\n", reply.code);
    return rc == 0 ? 0 : 1;
}

/* Whether the main-table route to `probe` ("prefix/len", metric 0) is missing or has a live
 * hop through DPDK port `port`. */
static int through_live(const struct ifpx_replica *r, const char *probe, int port)
{
    char text[64];
    uint8_t dst[16] = {0};
    snprintf(text, sizeof text, "%s", probe);
    char *slash = strchr(text, '/');
    if (!slash)
        return 1;
    *slash = 0;
    int family = strchr(text, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, text, dst) != 1)
        return 1;
    const struct ifpx_route *rt =
        ifpx_replica_route(r, family, dst, (uint8_t)atoi(slash + 1), 254, 0);
    if (!rt)
        return 1;
    uint16_t n;
    const struct ifpx_nexthop *nh = ifpx_replica_hops(r, rt, &n);
    for (int i = 0; i < n; i++)
        if (nh[i].port_id == port && !(nh[i].flags & IFPX_NH_DEAD))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    struct ifpx_options opt = {.log = log_stderr};
    const char *state = NULL;
    const char *binds[64];
    int n_binds = 0;
    size_t marks[64];
    int n_marks = 0, next_mark = 0, report_ms = 0, until_dead = -1;
    const char *probe = NULL;
    const char *name = NULL;
    const char *wait_workers[64];
    int n_wait_workers = 0, wait_ms = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events"))
            opt.events = arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--control"))
            opt.control = arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--topics"))
            opt.topics = arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--state"))
            state = arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--bind") && n_binds < 64)
            binds[n_binds++] = arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--rcvhwm"))
            opt.rcvhwm = atoi(arg(argc, argv, &i));
        else if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else if (!strcmp(argv[i], "--mark") && n_marks < 64)
            marks[n_marks++] = (size_t)strtoull(arg(argc, argv, &i), NULL, 10);
        else if (!strcmp(argv[i], "--until-dead"))
            until_dead = atoi(arg(argc, argv, &i));
        else if (!strcmp(argv[i], "--probe"))
            probe = arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--name"))
            name = arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--report-ms"))
            report_ms = atoi(arg(argc, argv, &i));
        else if (!strcmp(argv[i], "--wait-applied"))
            wait_ms = atoi(arg(argc, argv, &i));
        else if (!strcmp(argv[i], "--worker") && n_wait_workers < 64)
            wait_workers[n_wait_workers++] = arg(argc, argv, &i);
        else {
            fprintf(stderr, "usage: ifpx_sub [--events EP] [--control EP] [--topics LIST] "
                            "[--bind PORT=PROXY]... [--state FILE] [--rcvhwm N] [--quiet] "
                            "[--mark ROUTES]... [--until-dead PORT --probe PREFIX] [--name NAME] "
                            "[--report-ms MS]\n");
            return 2;
        }
    }
    if (wait_ms >= 0)
        return wait_applied(&opt, wait_ms, n_wait_workers ? wait_workers : NULL, n_wait_workers);
    signal(SIGUSR1, on_usr1);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    for (int i = 0; i < n_binds; i++) {
        int rc = bind_one(&opt, binds[i]);
        if (rc)
            return rc;
    }
    struct ifpx_callbacks cb;
    ifpx_cb *slot = (ifpx_cb *)&cb;
    for (size_t i = 0; i < sizeof cb / sizeof *slot; i++)
        slot[i] = print_event;
    struct ifpx_sub *s = ifpx_open(&opt, &cb, NULL);
    if (!s) {
        fprintf(stderr, "ifpx_sub: %s\n", strerror(errno));
        return 1;
    }
    if ((name || report_ms) && ifpx_set_worker(s, name, report_ms)) {
        fprintf(stderr, "ifpx_sub: bad --name or --report-ms\n");
        ifpx_close(s);
        return 2;
    }
    long rss0 = rss_bytes();
    while (!stop && ifpx_sync(s, 1000) == -ETIMEDOUT)
        ;
    if (n_marks) {
        printf("{\"synced\": %.6f, \"routes\": %zu}\n", monotonic(), ifpx_state(s)->routes.n);
        fflush(stdout);
    }
    unsigned gen = 0;
    int pending_first = 1;
    while (!stop) {
        int idle = !ifpx_poll(s, 256);
        if (idle)
            ifpx_wait(s, 50);
        /* --until-dead: a mark once idle too (every event before it delivered), so that
         * what follows is timed alone */
        if (next_mark < n_marks && ifpx_state(s)->routes.n == marks[next_mark] &&
            !ifpx_repairing(s) && (until_dead < 0 || idle)) {
            const struct ifpx_stats *st = ifpx_stats(s);
            printf("{\"routes\": %zu, \"t\": %.6f, \"rss\": %ld, \"gaps\": %llu, "
                   "\"snapshot_repairs\": %llu}\n",
                   marks[next_mark++], monotonic(), rss_bytes() - rss0,
                   (unsigned long long)st->gaps, (unsigned long long)st->snapshot_repairs);
            fflush(stdout);
        }
        if (until_dead >= 0 && probe && next_mark == n_marks &&
            !through_live(ifpx_state(s), probe, until_dead)) {
            printf("{\"dead\": %d, \"t\": %.6f}\n", until_dead, monotonic());
            fflush(stdout);
            until_dead = -1;
        }
        /* The first report waits for the snapshot's events to be delivered. */
        if ((report_wanted || pending_first) && state && !ifpx_wait(s, 0)) {
            report_wanted = pending_first = 0;
            if (write_state(s, state, ++gen))
                fprintf(stderr, "ifpx_sub: cannot write %s: %s\n", state, strerror(errno));
        }
    }
    ifpx_close(s);
    return 0;
}
