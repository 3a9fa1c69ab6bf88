/* ifpx_replica_check: the C replica and its difference walker, on recorded snapshots.
 *
 * Each stdin line holds two replies to `snapshot` in hex, "A B". The tool builds
 * replica A and replica B, walks the difference A -> B applying every event to a
 * copy of A, and prints {"applied": <copy>, "target": <B>, "events": N, "again": M},
 * where "again" counts the events of a second walk (0 when the first was complete).
 * Exit status 1 if a line could not be decoded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ifpx_replica.h"

static int apply(const struct ifpx_event *ev, void *r)
{
    return ifpx_replica_apply(r, ev);
}

static size_t unhex(const char *hex, size_t n, char *out)
{
    for (size_t i = 0; i < n / 2; i++) {
        unsigned b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1)
            return 0;
        out[i] = (char)b;
    }
    return n / 2;
}

static int load(const char *hex, size_t n, struct ifpx_replica *r)
{
    struct ifpx_snapshot snap;
    char *bin = malloc(n / 2 + 1);
    int rc = bin ? ifpx_decode_snapshot(bin, unhex(hex, n, bin), &snap, apply, r) : -1;
    free(bin);
    return rc;
}

static uint64_t walk(const struct ifpx_replica *old, const struct ifpx_replica *target,
                     struct ifpx_replica *onto, struct ifpx_event *ev)
{
    struct ifpx_diff d;
    ifpx_diff_init(&d, old, target);
    while (ifpx_diff_next(&d, ev))
        if (onto)
            ifpx_replica_apply(onto, ev);
    return d.count;
}

int main(void)
{
    static char line[1 << 24];
    struct ifpx_event *ev = malloc(sizeof *ev);
    int failed = 0;
    while (ev && fgets(line, sizeof line, stdin)) {
        struct ifpx_replica a, copy, b;
        char *sep = strchr(line, ' ');
        if (!sep) {
            failed = 1;
            continue;
        }
        ifpx_replica_init(&a);
        ifpx_replica_init(&copy);
        ifpx_replica_init(&b);
        size_t na = (size_t)(sep - line), nb = strcspn(sep + 1, "\r\n");
        if (load(line, na, &a) || load(line, na, &copy) || load(sep + 1, nb, &b)) {
            printf("{\"error\": true}\n");
            failed = 1;
        } else {
            uint64_t n = walk(&a, &b, &copy, ev);
            uint64_t again = walk(&copy, &b, NULL, ev);
            printf("{\"applied\": ");
            ifpx_replica_json(&copy, stdout);
            printf(", \"target\": ");
            ifpx_replica_json(&b, stdout);
            printf(", \"events\": %llu, \"again\": %llu}\n", (unsigned long long)n,
                   (unsigned long long)again);
        }
        fflush(stdout);
        ifpx_replica_clear(&a);
        ifpx_replica_clear(&copy);
        ifpx_replica_clear(&b);
    }
    free(ev);
    return failed;
}
