/* Encoding the commands a C subscriber sends: see ifpx_wire.h. */
#include "ifpx_wire.h"
#include "ifpx_machine.h"

#include <msgpack.h>
#include <string.h>

struct request {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* name: [strs[0], ... strs[n - 1]] */
static void pack_strs(msgpack_packer *pk, const char *name, const char *const *strs, int n)
{
    pack_str(pk, name);
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++)
        pack_str(pk, strs[i]);
}

/* Starts {"v": 1, "id": id, "cmd": cmd, ...n_fields more}. */
static void begin_request(struct request *r, size_t n_fields, uint64_t id, const char *cmd)
{
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&r->pk, n_fields + 3);
    pack_str(&r->pk, "v");
    msgpack_pack_uint8(&r->pk, 1);
    pack_str(&r->pk, "id");
    msgpack_pack_uint64(&r->pk, id);
    pack_str(&r->pk, "cmd");
    pack_str(&r->pk, cmd);
}

/* msgpack_sbuffer grows on the heap; requests are small, so copy into the caller's buffer. */
static int finish(struct request *r, char *buf, size_t cap)
{
    int n = r->sb.size <= cap ? (int)r->sb.size : IFPX_E_LIMIT;
    if (n > 0)
        memcpy(buf, r->sb.data, r->sb.size);
    msgpack_sbuffer_destroy(&r->sb);
    return n;
}

int ifpx_encode_snapshot(char *buf, size_t cap, uint64_t id)
{
    struct request r;
    begin_request(&r, 0, id, "snapshot");
    return finish(&r, buf, cap);
}

int ifpx_encode_snapshot_topics(char *buf, size_t cap, uint64_t id, const char *const *topics,
                                int n_topics)
{
    struct request r;
    begin_request(&r, 1, id, "snapshot");
    pack_strs(&r.pk, "topics", topics, n_topics);
    return finish(&r, buf, cap);
}

int ifpx_encode_replay(char *buf, size_t cap, uint64_t id, uint64_t epoch, uint64_t from_seq,
                       const char *const *topics, int n_topics)
{
    struct request r;
    begin_request(&r, 3, id, "replay");
    pack_str(&r.pk, "epoch");
    msgpack_pack_uint64(&r.pk, epoch);
    pack_str(&r.pk, "from_seq");
    msgpack_pack_uint64(&r.pk, from_seq);
    pack_strs(&r.pk, "topics", topics, n_topics);
    return finish(&r, buf, cap);
}

int ifpx_encode_bind(char *buf, size_t cap, uint64_t id, uint16_t port_id, const char *proxy)
{
    return ifpx_encode_bind_ex(buf, cap, id, port_id, proxy, 0);
}

int ifpx_encode_bind_ex(char *buf, size_t cap, uint64_t id, uint16_t port_id, const char *proxy,
                        int exclusive)
{
    struct request r;
    begin_request(&r, exclusive ? 3 : 2, id, "bind");
    pack_str(&r.pk, "port_id");
    msgpack_pack_uint16(&r.pk, port_id);
    pack_str(&r.pk, "proxy");
    pack_str(&r.pk, proxy);
    if (exclusive) {
        pack_str(&r.pk, "exclusive");
        msgpack_pack_true(&r.pk);
    }
    return finish(&r, buf, cap);
}

int ifpx_encode_unbind(char *buf, size_t cap, uint64_t id, uint16_t port_id)
{
    return ifpx_encode_unbind_from(buf, cap, id, port_id, NULL);
}

int ifpx_encode_unbind_from(char *buf, size_t cap, uint64_t id, uint16_t port_id,
                            const char *proxy)
{
    struct request r;
    begin_request(&r, proxy ? 2 : 1, id, "unbind");
    pack_str(&r.pk, "port_id");
    msgpack_pack_uint16(&r.pk, port_id);
    if (proxy) {
        pack_str(&r.pk, "proxy");
        pack_str(&r.pk, proxy);
    }
    return finish(&r, buf, cap);
}

static void pack_counter(msgpack_packer *pk, const char *name, uint64_t value)
{
    pack_str(pk, name);
    msgpack_pack_uint64(pk, value);
}

int ifpx_encode_report(char *buf, size_t cap, uint64_t id, const struct ifpx_report *rp)
{
    return ifpx_encode_report_ex(buf, cap, id, rp, 0);
}

int ifpx_encode_report_ex(char *buf, size_t cap, uint64_t id, const struct ifpx_report *rp,
                          int leaving)
{
    struct request r;
    begin_request(&r, (rp->stats ? 12 : 11) + (leaving ? 1 : 0), id, "report");
    if (leaving) {
        pack_str(&r.pk, "leaving");
        msgpack_pack_true(&r.pk);
    }
    pack_str(&r.pk, "worker");
    pack_str(&r.pk, rp->worker);
    pack_str(&r.pk, "instance");
    msgpack_pack_uint64(&r.pk, rp->instance);
    pack_str(&r.pk, "host");
    pack_str(&r.pk, rp->host);
    pack_str(&r.pk, "pid");
    msgpack_pack_uint32(&r.pk, rp->pid);
    pack_str(&r.pk, "client");
    pack_str(&r.pk, rp->client);
    pack_str(&r.pk, "epoch");
    msgpack_pack_uint64(&r.pk, rp->epoch);
    pack_str(&r.pk, "seq");
    msgpack_pack_uint64(&r.pk, rp->seq);
    pack_str(&r.pk, "synced");
    rp->synced ? msgpack_pack_true(&r.pk) : msgpack_pack_false(&r.pk);
    pack_str(&r.pk, "repairing");
    rp->repairing ? msgpack_pack_true(&r.pk) : msgpack_pack_false(&r.pk);
    pack_strs(&r.pk, "topics", rp->topics, rp->n_topics);
    pack_str(&r.pk, "interval");
    msgpack_pack_double(&r.pk, rp->interval_ms / 1000.0);
    if (rp->stats) {
        const struct ifpx_stats *st = rp->stats;
        pack_str(&r.pk, "counters");
        msgpack_pack_map(&r.pk, 9);
        pack_counter(&r.pk, "events", st->events);
        pack_counter(&r.pk, "gaps", st->gaps);
        pack_counter(&r.pk, "journal_repairs", st->journal_repairs);
        pack_counter(&r.pk, "snapshot_repairs", st->snapshot_repairs);
        pack_counter(&r.pk, "heartbeat_misses", st->heartbeat_misses);
        pack_counter(&r.pk, "bad_messages", st->bad_messages);
        pack_counter(&r.pk, "callback_errors", st->callback_errors);
        pack_counter(&r.pk, "snapshot_refusals", st->snapshot_refusals);
        pack_counter(&r.pk, "inconsistent", st->inconsistent);
    }
    return finish(&r, buf, cap);
}

int ifpx_encode_wait_applied(char *buf, size_t cap, uint64_t id, uint64_t seq, uint64_t epoch,
                             const char *const *workers, int n_workers)
{
    struct request r;
    begin_request(&r, (seq ? 1u : 0u) + (epoch ? 1u : 0u) + (workers ? 1u : 0u), id,
                  "wait_applied");
    if (seq) {
        pack_str(&r.pk, "seq");
        msgpack_pack_uint64(&r.pk, seq);
    }
    if (epoch) {
        pack_str(&r.pk, "epoch");
        msgpack_pack_uint64(&r.pk, epoch);
    }
    if (workers)
        pack_strs(&r.pk, "workers", workers, n_workers);
    return finish(&r, buf, cap);
}
