/* Decode message payloads given as hex lines on stdin (a line starting with "S " holds a
 * reply to `snapshot` instead, "G " one read in the group form, "R " any other reply); print each event as a JSON line
 * with the field names of the wire contract. Exit 0 if every line decoded, 1 if some
 * line was rejected (its status is printed as {"error": N}). Used by the tests to hold
 * the C decoder to the Python models, and to feed it hostile input. */
#include "ifpx_json.h"
#include "ifpx_wire.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int print_event(const struct ifpx_event *e, void *ctx)
{
    (void)ctx;
    ifpx_json_event(stdout, e);
    putchar('\n');
    return 0;
}

/* A journalled message inside a replay reply: decoded as any message. */
static int check_payload(const char *payload, size_t len, void *ctx)
{
    struct ifpx_header hdr;
    (void)ctx;
    return ifpx_decode_message(payload, len, &hdr, NULL, NULL) ? 1 : 0;
}

int main(void)
{
    static char line[1 << 22];
    static char bin[1 << 21];
    int failed = 0;
    while (fgets(line, sizeof line, stdin)) {
        int grouped = strncmp(line, "G ", 2) == 0;
        int snapshot = grouped || strncmp(line, "S ", 2) == 0, reply = strncmp(line, "R ", 2) == 0;
        char *hex = snapshot || reply ? line + 2 : line;
        size_t n = strcspn(hex, "\r\n");
        size_t len = n / 2;
        if (n % 2 || len > sizeof bin) {
            printf("{\"error\": %d}\n", IFPX_E_FORMAT);
            failed = 1;
            continue;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned b;
            if (sscanf(hex + 2 * i, "%2x", &b) != 1) { len = 0; break; }
            bin[i] = (char)b;
        }
        if (reply) {
            struct ifpx_reply r;
            uint64_t epoch;
            int rc = ifpx_decode_reply(bin, len, &r);
            if (!rc && r.ok && !strcmp(r.type, "replay"))
                rc = ifpx_decode_replay(bin, len, &epoch, check_payload, NULL);
            if (rc) {
                printf("{\"error\": %d}\n", rc);
                failed = 1;
            } else {
                printf("{\"reply\": {\"id\": %llu, \"ok\": %s}}\n", (unsigned long long)r.id,
                       r.ok ? "true" : "false");
            }
            fflush(stdout);
            continue;
        }
        if (snapshot) {
            struct ifpx_snapshot snap;
            int rc = ifpx_decode_snapshot_form(bin, len, &snap, grouped, print_event, NULL);
            if (rc) {
                printf("{\"error\": %d}\n", rc);
                failed = 1;
            } else {
                printf("{\"snapshot\": {\"epoch\": %llu, \"seq\": %llu, \"cfg_done\": %s}}\n",
                       (unsigned long long)snap.epoch, (unsigned long long)snap.seq,
                       snap.cfg_done ? "true" : "false");
            }
            fflush(stdout);
            continue;
        }
        struct ifpx_header hdr;
        int rc = ifpx_decode_message(bin, len, &hdr, print_event, NULL);
        if (rc) {
            printf("{\"error\": %d}\n", rc);
            failed = 1;
        } else {
            printf("{\"header\": {\"epoch\": %llu, \"seq\": %llu, \"tseq\": %llu, \"topic\": ",
                   (unsigned long long)hdr.epoch, (unsigned long long)hdr.seq,
                   (unsigned long long)hdr.tseq);
            ifpx_json_str(stdout, hdr.topic);
            printf(", \"events\": %u}}\n", hdr.n_events);
        }
        fflush(stdout);
    }
    return failed;
}
