/* Encoding the commands a C subscriber sends: see ifpx_wire.h. */
#include "ifpx_wire.h"

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

int ifpx_encode_replay(char *buf, size_t cap, uint64_t id, uint64_t epoch, uint64_t from_seq,
                       const char *const *topics, int n_topics)
{
    struct request r;
    begin_request(&r, 3, id, "replay");
    pack_str(&r.pk, "epoch");
    msgpack_pack_uint64(&r.pk, epoch);
    pack_str(&r.pk, "from_seq");
    msgpack_pack_uint64(&r.pk, from_seq);
    pack_str(&r.pk, "topics");
    msgpack_pack_array(&r.pk, (size_t)n_topics);
    for (int i = 0; i < n_topics; i++)
        pack_str(&r.pk, topics[i]);
    return finish(&r, buf, cap);
}

int ifpx_encode_bind(char *buf, size_t cap, uint64_t id, uint16_t port_id, const char *proxy)
{
    struct request r;
    begin_request(&r, 2, id, "bind");
    pack_str(&r.pk, "port_id");
    msgpack_pack_uint16(&r.pk, port_id);
    pack_str(&r.pk, "proxy");
    pack_str(&r.pk, proxy);
    return finish(&r, buf, cap);
}

int ifpx_encode_unbind(char *buf, size_t cap, uint64_t id, uint16_t port_id)
{
    struct request r;
    begin_request(&r, 1, id, "unbind");
    pack_str(&r.pk, "port_id");
    msgpack_pack_uint16(&r.pk, port_id);
    return finish(&r, buf, cap);
}
