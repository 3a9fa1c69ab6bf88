/* ifpx_trace: drives the protocol machine (ifpx_machine.h) through a trace, with no socket
 * and no clock, so that tests/test_sync_traces.py can hold it to the Python machine.
 *
 * Reads one step a line on stdin, times in milliseconds:
 *   start AT            ask for the first snapshot
 *   msg AT TOPIC HEX    a published message (its payload frame, hex)
 *   reply AT HEX        a frame from the control connection (hex)
 *   tick AT             time passes
 *   identity 0 NAME INSTANCE INTERVAL_MS   make reports (ifpx_machine_set_identity)
 *   topics 0 LIST       follow these topics ("link,fib,..."; first, if at all)
 * After each step it delivers every event ready and prints, as JSON lines,
 * {"event": KIND} for each, {"send": {...}} for each request the machine asked to send
 * ({"reset": true} for a fresh control connection), then {"step": N}. At the end:
 * {"final": {"epoch", "seq", "synced", "stats": {...}, "state": <replica>}}. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ifpx_machine.h"

static size_t unhex(const char *hex, char *out, size_t cap)
{
    size_t n = strspn(hex, "0123456789abcdef") / 2;
    if (n > cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        out[i] = (char)b;
    }
    return n;
}

static void print_actions(struct ifpx_machine *m)
{
    struct ifpx_action a;
    while (ifpx_machine_action(m, &a)) {
        if (a.kind == IFPX_ACT_RESET)
            printf("{\"send\": {\"reset\": true}}\n");
        else if (a.request == IFPX_REQ_REPORT)
            printf("{\"send\": {\"cmd\": \"report\", \"id\": %" PRIu64 ", \"epoch\": %" PRIu64
                   ", \"seq\": %" PRIu64 "}}\n",
                   a.id, a.epoch, a.from_seq);
        else if (a.request == IFPX_REQ_SNAPSHOT)
            printf("{\"send\": {\"cmd\": \"snapshot\", \"id\": %" PRIu64 "}}\n", a.id);
        else
            printf("{\"send\": {\"cmd\": \"replay\", \"id\": %" PRIu64 ", \"epoch\": %" PRIu64
                   ", \"from_seq\": %" PRIu64 "}}\n",
                   a.id, a.epoch, a.from_seq);
    }
}

static void print_final(struct ifpx_machine *m)
{
    const struct ifpx_stats *st = ifpx_machine_stats(m);
    printf("{\"final\": {\"epoch\": %" PRIu64 ", \"seq\": %" PRIu64 ", \"synced\": %d, "
           "\"stats\": {\"messages\": %" PRIu64 ", \"events\": %" PRIu64
           ", \"bad_messages\": %" PRIu64 ", \"gaps\": %" PRIu64 ", \"journal_repairs\": %" PRIu64
           ", \"snapshot_repairs\": %" PRIu64 ", \"epochs\": %" PRIu64
           ", \"heartbeat_misses\": %" PRIu64 ", \"request_retries\": %" PRIu64
           ", \"callback_errors\": %" PRIu64 ", \"snapshot_refusals\": %" PRIu64
           ", \"inconsistent\": %" PRIu64 "}, \"state\": ",
           ifpx_machine_epoch(m), ifpx_machine_seq(m), ifpx_machine_synced(m), st->messages,
           st->events, st->bad_messages, st->gaps, st->journal_repairs, st->snapshot_repairs,
           st->epochs, st->heartbeat_misses, st->request_retries, st->callback_errors,
           st->snapshot_refusals, st->inconsistent);
    ifpx_replica_json(ifpx_machine_replica(m), stdout);
    printf("}}\n");
}

int main(void)
{
    static char line[1 << 22], bin[1 << 21];
    struct ifpx_event *ev = malloc(sizeof *ev);
    struct ifpx_machine *m = ifpx_machine_new((1u << IFPX_N_TOPICS) - 1, 3500, 5000, 0, NULL, NULL);
    unsigned step = 0;
    if (!ev || !m)
        return 2;
    while (fgets(line, sizeof line, stdin)) {
        char what[16], topic[16];
        long long at;
        int used = 0;
        if (sscanf(line, "%15s %lld %n", what, &at, &used) < 2)
            return 2;
        const char *rest = line + used;
        if (!strcmp(what, "start")) {
            ifpx_machine_start(m, at);
        } else if (!strcmp(what, "msg")) {
            int skip = 0;
            if (sscanf(rest, "%15s %n", topic, &skip) < 1)
                return 2;
            size_t len = unhex(rest + skip, bin, sizeof bin);
            ifpx_machine_on_message(m, topic, strlen(topic), bin, len, at);
        } else if (!strcmp(what, "reply")) {
            size_t len = unhex(rest, bin, sizeof bin);
            ifpx_machine_on_reply(m, bin, len, at);
        } else if (!strcmp(what, "tick")) {
            ifpx_machine_tick(m, at);
        } else if (!strcmp(what, "topics")) {
            /* the topics to follow (before anything else): a machine made afresh */
            unsigned mask = 0;
            char list[256];
            if (sscanf(rest, "%255s", list) != 1)
                return 2;
            for (char *t = strtok(list, ","); t; t = strtok(NULL, ","))
                if (ifpx_topic_index(t) >= 0)
                    mask |= 1u << ifpx_topic_index(t);
                else
                    return 2;
            ifpx_machine_free(m);
            if (!(m = ifpx_machine_new(mask, 3500, 5000, 0, NULL, NULL)))
                return 2;
            continue;
        } else if (!strcmp(what, "identity")) {
            char name[65];
            unsigned long long instance;
            int interval;
            if (sscanf(rest, "%64s %llu %d", name, &instance, &interval) != 3 ||
                ifpx_machine_set_identity(m, name, instance, "", 0, "", interval))
                return 2;
            continue;
        } else {
            return 2;
        }
        while (ifpx_machine_next(m, ev, at))
            printf("{\"event\": \"%s\"}\n", ifpx_kind_name(ev->kind));
        print_actions(m);
        printf("{\"step\": %u}\n", step++);
    }
    print_final(m);
    ifpx_machine_free(m);
    free(ev);
    return 0;
}
