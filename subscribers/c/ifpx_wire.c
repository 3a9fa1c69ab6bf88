/* ifpx wire decoding: see ifpx_wire.h. */
#include "ifpx_wire.h"

#include <arpa/inet.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_MESSAGE_BYTES (16u << 20)
#define MAX_BATCH 4096u

static const char *const KIND_NAMES[IFPX_KIND_COUNT] = {
    "mac_change", "mtu_change", "link_change",
    "addr_add", "addr_del", "addr6_add", "addr6_del",
    "route_add", "route_del", "route6_add", "route6_del",
    "neigh_add", "neigh_del", "neigh6_add", "neigh6_del",
    "cfg_done", "port_bound", "port_unbound",
    "proxy_gone", "proxy_renamed", "proxy_back",
    "resync_begin", "resync_end", "heartbeat",
};

const char *ifpx_kind_name(enum ifpx_kind kind)
{
    return (unsigned)kind < IFPX_KIND_COUNT ? KIND_NAMES[kind] : "?";
}

static int key_is(const msgpack_object *key, const char *name)
{
    size_t n = strlen(name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == n &&
           memcmp(key->via.str.ptr, name, n) == 0;
}

static const msgpack_object *field(const msgpack_object *map, const char *name)
{
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (key_is(&map->via.map.ptr[i].key, name))
            return &map->via.map.ptr[i].val;
    return NULL;
}

static int get_uint(const msgpack_object *map, const char *name, uint64_t max, uint64_t *out,
                    int required, uint64_t dflt)
{
    const msgpack_object *o = field(map, name);
    if (!o) {
        *out = dflt;
        return required ? IFPX_E_FIELD : IFPX_OK;
    }
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
        return IFPX_E_FIELD;
    *out = o->via.u64;
    return IFPX_OK;
}

static int get_bool(const msgpack_object *map, const char *name, int *out, int dflt)
{
    const msgpack_object *o = field(map, name);
    if (!o) {
        *out = dflt;
        return IFPX_OK;
    }
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return IFPX_E_FIELD;
    *out = o->via.boolean;
    return IFPX_OK;
}

/* Copies a string into a NUL-terminated buffer; 1 if null (when allowed). */
static int get_str(const msgpack_object *o, char *buf, size_t size)
{
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= size)
        return IFPX_E_FIELD;
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    return IFPX_OK;
}

static int parse_ip(const msgpack_object *o, int *family, uint8_t out[16])
{
    char text[INET6_ADDRSTRLEN];
    if (get_str(o, text, sizeof text))
        return IFPX_E_FIELD;
    memset(out, 0, 16);
    if (inet_pton(AF_INET, text, out) == 1) {
        *family = AF_INET;
        return IFPX_OK;
    }
    if (inet_pton(AF_INET6, text, out) == 1) {
        *family = AF_INET6;
        return IFPX_OK;
    }
    return IFPX_E_FIELD;
}

static int parse_mac(const msgpack_object *o, int *has, uint8_t mac[6])
{
    char text[18];
    unsigned b[6];
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        *has = 0;
        return IFPX_OK;
    }
    if (get_str(o, text, sizeof text) || strlen(text) != 17 ||
        sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
        return IFPX_E_FIELD;
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)b[i];
    *has = 1;
    return IFPX_OK;
}

static int parse_nexthops(const msgpack_object *o, struct ifpx_event *ev)
{
    if (!o) {
        ev->nh_count = 0;
        return IFPX_OK;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    if (o->via.array.size > IFPX_MAX_NEXTHOPS)
        return IFPX_E_LIMIT;
    ev->nh_count = (uint16_t)o->via.array.size;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *h = &o->via.array.ptr[i];
        struct ifpx_nexthop *nh = &ev->nh[i];
        uint64_t v;
        if (h->type != MSGPACK_OBJECT_MAP)
            return IFPX_E_FIELD;
        const msgpack_object *gw = field(h, "gateway");
        nh->has_gateway = gw && gw->type != MSGPACK_OBJECT_NIL;
        if (nh->has_gateway && parse_ip(gw, &nh->gw_family, nh->gateway))
            return IFPX_E_FIELD;
        if (get_uint(h, "ifindex", INT32_MAX, &v, 1, 0))
            return IFPX_E_FIELD;
        nh->ifindex = (uint32_t)v;
        const msgpack_object *port = field(h, "port_id");
        if (!port || port->type == MSGPACK_OBJECT_NIL) {
            nh->port_id = -1;
        } else {
            if (port->type != MSGPACK_OBJECT_POSITIVE_INTEGER || port->via.u64 > 65535)
                return IFPX_E_FIELD;
            nh->port_id = (int32_t)port->via.u64;
        }
        if (get_uint(h, "weight", 256, &v, 0, 1) || v < 1)
            return IFPX_E_FIELD;
        nh->weight = (uint16_t)v;
    }
    return IFPX_OK;
}

/* A map of topic -> tseq (heartbeats and snapshots carry one). */
static int parse_topic_seqs(const msgpack_object *o, uint8_t *n, struct ifpx_topic_seq *out)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return IFPX_E_FIELD;
    if (o->via.map.size > IFPX_MAX_TOPICS)
        return IFPX_E_LIMIT;
    *n = (uint8_t)o->via.map.size;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (get_str(&kv->key, out[i].topic, sizeof out[i].topic) ||
            kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return IFPX_E_FIELD;
        out[i].tseq = kv->val.via.u64;
    }
    return IFPX_OK;
}

static int kind_of(const msgpack_object *map, enum ifpx_kind *kind)
{
    const msgpack_object *k = field(map, "kind");
    if (!k || k->type != MSGPACK_OBJECT_STR)
        return IFPX_E_FIELD;
    for (int i = 0; i < IFPX_KIND_COUNT; i++)
        if (key_is(k, KIND_NAMES[i])) {
            *kind = (enum ifpx_kind)i;
            return IFPX_OK;
        }
    return IFPX_E_KIND;
}

int ifpx_kind_is_port_scoped(enum ifpx_kind k)
{
    return k <= IFPX_ADDR6_DEL || (k >= IFPX_NEIGH_ADD && k <= IFPX_NEIGH6_DEL) ||
           (k >= IFPX_PORT_BOUND && k <= IFPX_PROXY_BACK);
}

static int parse_event(const msgpack_object *m, struct ifpx_event *ev)
{
    uint64_t v;
    int rc;
    if (m->type != MSGPACK_OBJECT_MAP)
        return IFPX_E_FORMAT;
    memset(ev, 0, offsetof(struct ifpx_event, nh));
    if ((rc = kind_of(m, &ev->kind)))
        return rc;
    enum ifpx_kind k = ev->kind;
    if (ifpx_kind_is_port_scoped(k)) {
        if (get_uint(m, "port_id", 65535, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->port_id = (uint16_t)v;
        if (get_uint(m, "ifindex", INT32_MAX, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->ifindex = (uint32_t)v;
        if (get_str(field(m, "proxy"), ev->proxy, sizeof ev->proxy))
            return IFPX_E_FIELD;
    }
    switch (k) {
    case IFPX_MAC_CHANGE:
        if (parse_mac(field(m, "mac"), &ev->has_mac, ev->mac) || !ev->has_mac)
            return IFPX_E_FIELD;
        break;
    case IFPX_MTU_CHANGE:
        if (get_uint(m, "mtu", UINT32_MAX, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->mtu = (uint32_t)v;
        break;
    case IFPX_LINK_CHANGE:
        if (get_bool(m, "up", &ev->up, 0) || get_bool(m, "carrier", &ev->carrier, 0) ||
            !field(m, "up"))
            return IFPX_E_FIELD;
        break;
    case IFPX_ADDR_ADD: case IFPX_ADDR_DEL: case IFPX_ADDR6_ADD: case IFPX_ADDR6_DEL:
    case IFPX_NEIGH_ADD: case IFPX_NEIGH_DEL: case IFPX_NEIGH6_ADD: case IFPX_NEIGH6_DEL: {
        int six = (k == IFPX_ADDR6_ADD || k == IFPX_ADDR6_DEL || k == IFPX_NEIGH6_ADD ||
                   k == IFPX_NEIGH6_DEL);
        if (parse_ip(field(m, "ip"), &ev->family, ev->ip) ||
            ev->family != (six ? AF_INET6 : AF_INET))
            return IFPX_E_FIELD;
        if (k <= IFPX_ADDR6_DEL) {
            if (get_uint(m, "prefixlen", six ? 128 : 32, &v, 1, 0))
                return IFPX_E_FIELD;
            ev->prefixlen = (uint8_t)v;
        } else {
            if (parse_mac(field(m, "mac"), &ev->has_mac, ev->mac))
                return IFPX_E_FIELD;
            const msgpack_object *st = field(m, "state");
            if (st && get_str(st, ev->state, sizeof ev->state))
                return IFPX_E_FIELD;
        }
        break;
    }
    case IFPX_ROUTE_ADD: case IFPX_ROUTE_DEL: case IFPX_ROUTE6_ADD: case IFPX_ROUTE6_DEL: {
        int six = (k == IFPX_ROUTE6_ADD || k == IFPX_ROUTE6_DEL);
        if (parse_ip(field(m, "dst"), &ev->family, ev->ip) ||
            ev->family != (six ? AF_INET6 : AF_INET))
            return IFPX_E_FIELD;
        if (get_uint(m, "prefixlen", six ? 128 : 32, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->prefixlen = (uint8_t)v;
        if (get_uint(m, "table", UINT32_MAX, &v, 0, 254))
            return IFPX_E_FIELD;
        ev->table = (uint32_t)v;
        if (get_uint(m, "proto", 255, &v, 0, 0))
            return IFPX_E_FIELD;
        ev->proto = (uint8_t)v;
        if (get_uint(m, "metric", UINT32_MAX, &v, 0, 0))
            return IFPX_E_FIELD;
        ev->metric = (uint32_t)v;
        if ((rc = parse_nexthops(field(m, "nexthops"), ev)))
            return rc;
        break;
    }
    case IFPX_PROXY_RENAMED:
        if (get_str(field(m, "old_name"), ev->old_name, sizeof ev->old_name))
            return IFPX_E_FIELD;
        break;
    case IFPX_PROXY_BACK:
        if (get_uint(m, "old_ifindex", INT32_MAX, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->old_ifindex = (uint32_t)v;
        break;
    case IFPX_RESYNC_BEGIN: case IFPX_RESYNC_END:
        if (get_str(field(m, "reason"), ev->reason, sizeof ev->reason))
            return IFPX_E_FIELD;
        if (k == IFPX_RESYNC_END && get_uint(m, "changes", UINT64_MAX, &ev->changes, 0, 0))
            return IFPX_E_FIELD;
        break;
    case IFPX_HEARTBEAT: {
        const msgpack_object *iv = field(m, "interval");
        if ((rc = parse_topic_seqs(field(m, "topic_seqs"), &ev->n_topics, ev->topic_seqs)))
            return rc;
        ev->interval = 1.0;
        if (iv) {
            if (iv->type != MSGPACK_OBJECT_FLOAT64 && iv->type != MSGPACK_OBJECT_FLOAT32)
                return IFPX_E_FIELD;
            ev->interval = iv->via.f64;
        }
        break;
    }
    default:
        break;
    }
    return IFPX_OK;
}

/* ---- bounds before allocation ------------------------------------------------------ */

#define MAX_DEPTH 16

/* A big-endian length of `bytes` bytes at *p; -1 if the buffer ends first. */
static int be_len(const unsigned char **p, const unsigned char *end, int bytes, uint64_t *out)
{
    if (end - *p < bytes)
        return -1;
    *out = 0;
    for (int i = 0; i < bytes; i++)
        *out = (*out << 8) | (*p)[i];
    *p += bytes;
    return 0;
}

/* 0 if buf is one msgpack object, nested at most MAX_DEPTH deep, in which every declared
 * length fits in the bytes that are really there. msgpack-c sizes its allocations by the
 * declared counts, so without this the 5 bytes `dd ff ff ff ff` (an array of four billion
 * elements) ask it for about 100 GiB; after it, what it allocates is bounded by len. */
int ifpx_msgpack_check(const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    uint64_t left[MAX_DEPTH + 1];
    int depth = 0;
    left[0] = 1;
    while (depth >= 0) {
        if (!left[depth]) {
            depth--;
            continue;
        }
        left[depth]--;
        if (p >= end)
            return IFPX_E_FORMAT;
        unsigned b = *p++;
        uint64_t n = 0, items = 0, skip = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, false, true: the byte is the value */
        } else if (b <= 0x8f) {
            items = 2 * (uint64_t)(b & 0x0f);
        } else if (b <= 0x9f) {
            items = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else if (b >= 0xc4 && b <= 0xc6) { /* bin 8/16/32 */
            if (be_len(&p, end, 1 << (b - 0xc4), &skip))
                return IFPX_E_FORMAT;
        } else if (b >= 0xc7 && b <= 0xc9) { /* ext 8/16/32: length, then a type byte */
            if (be_len(&p, end, 1 << (b - 0xc7), &skip))
                return IFPX_E_FORMAT;
            skip += 1;
        } else if (b >= 0xca && b <= 0xd3) { /* float32/64, uint8..64, int8..64 */
            static const unsigned char width[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
            skip = width[b - 0xca];
        } else if (b >= 0xd4 && b <= 0xd8) { /* fixext 1/2/4/8/16 and its type byte */
            skip = 1 + (1u << (b - 0xd4));
        } else if (b >= 0xd9 && b <= 0xdb) { /* str 8/16/32 */
            if (be_len(&p, end, 1 << (b - 0xd9), &skip))
                return IFPX_E_FORMAT;
        } else if (b == 0xdc || b == 0xdd) { /* array 16/32 */
            if (be_len(&p, end, b == 0xdc ? 2 : 4, &n))
                return IFPX_E_FORMAT;
            items = n;
        } else if (b == 0xde || b == 0xdf) { /* map 16/32 */
            if (be_len(&p, end, b == 0xde ? 2 : 4, &n))
                return IFPX_E_FORMAT;
            items = 2 * n;
        } else {
            return IFPX_E_FORMAT; /* 0xc1: never used */
        }
        if (skip > (uint64_t)(end - p))
            return IFPX_E_FORMAT;
        p += skip;
        if (items) {
            /* every element takes at least one byte */
            if (items > (uint64_t)(end - p))
                return IFPX_E_FORMAT;
            if (depth == MAX_DEPTH)
                return IFPX_E_LIMIT;
            left[++depth] = items;
        }
    }
    return p == end ? IFPX_OK : IFPX_E_FORMAT;
}

/* Unpacks ``buf`` as exactly one msgpack map and allocates the event buffer. */
static int begin(const char *buf, size_t len, size_t limit, msgpack_unpacked *up,
                 struct ifpx_event **ev)
{
    size_t off = 0;
    *ev = NULL;
    msgpack_unpacked_init(up);
    if (len > limit)
        return IFPX_E_LIMIT;
    /* On the heap: with its next hops an event is 6 KiB, too much for a small lcore stack. */
    if (!(*ev = malloc(sizeof **ev)))
        return IFPX_E_LIMIT;
    int rc = ifpx_msgpack_check(buf, len);
    if (rc)
        return rc;
    if (msgpack_unpack_next(up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        up->data.type != MSGPACK_OBJECT_MAP)
        return IFPX_E_FORMAT;
    return IFPX_OK;
}

struct ifpx_msg {
    msgpack_unpacked up;
    struct ifpx_header hdr;
    const msgpack_object *events;
    uint32_t next;
    char *buf; /* the unpacked strings point into it */
};

static int parse_header(const msgpack_object *root, struct ifpx_header *hdr,
                        const msgpack_object **events)
{
    uint64_t v;
    memset(hdr, 0, sizeof *hdr);
    if (get_uint(root, "v", 255, &v, 1, 0) || v != 1)
        return IFPX_E_FIELD;
    hdr->v = (int)v;
    if (get_uint(root, "epoch", UINT64_MAX, &hdr->epoch, 1, 0) ||
        get_uint(root, "seq", UINT64_MAX, &hdr->seq, 1, 0) ||
        get_uint(root, "tseq", UINT64_MAX, &hdr->tseq, 1, 0) ||
        get_str(field(root, "topic"), hdr->topic, sizeof hdr->topic))
        return IFPX_E_FIELD;
    const msgpack_object *ts = field(root, "ts");
    if (!ts || (ts->type != MSGPACK_OBJECT_FLOAT64 && ts->type != MSGPACK_OBJECT_FLOAT32))
        return IFPX_E_FIELD;
    hdr->ts = ts->via.f64;
    *events = field(root, "events");
    if (!*events || (*events)->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    if ((*events)->via.array.size > MAX_BATCH)
        return IFPX_E_LIMIT;
    hdr->n_events = (*events)->via.array.size;
    return IFPX_OK;
}

struct ifpx_msg *ifpx_msg_open(const char *buf, size_t len, struct ifpx_header *hdr, int *status)
{
    struct ifpx_event *ev;
    struct ifpx_msg *m = calloc(1, sizeof *m);
    int rc = IFPX_E_LIMIT;

    if (!m || !(m->buf = malloc(len ? len : 1))) {
        free(m);
        *status = IFPX_E_LIMIT;
        return NULL;
    }
    memcpy(m->buf, buf, len);
    if ((rc = begin(m->buf, len, MAX_MESSAGE_BYTES, &m->up, &ev)) ||
        (rc = parse_header(&m->up.data, &m->hdr, &m->events)))
        goto fail;
    /* Every event is checked now, so that none is applied from a message that is bad later
     * on; each must belong to the message's topic, and a heartbeat message is one heartbeat
     * (the envelope's rules, as the Python Message enforces them). */
    rc = IFPX_E_FIELD;
    if (!m->hdr.n_events || (!strcmp(m->hdr.topic, "hb") && m->hdr.n_events != 1))
        goto fail;
    for (uint32_t i = 0; i < m->events->via.array.size; i++) {
        if ((rc = parse_event(&m->events->via.array.ptr[i], ev)))
            goto fail;
        if (strcmp(ifpx_kind_topic(ev->kind), m->hdr.topic)) {
            rc = IFPX_E_FIELD;
            goto fail;
        }
    }
    free(ev);
    if (hdr)
        *hdr = m->hdr;
    *status = IFPX_OK;
    return m;
fail:
    free(ev);
    ifpx_msg_free(m);
    *status = rc;
    return NULL;
}

int ifpx_msg_next(struct ifpx_msg *m, struct ifpx_event *ev)
{
    if (m->next >= m->events->via.array.size)
        return 0;
    return parse_event(&m->events->via.array.ptr[m->next++], ev) == IFPX_OK ? 1 : 0;
}

const struct ifpx_header *ifpx_msg_header(const struct ifpx_msg *m)
{
    return &m->hdr;
}

void ifpx_msg_free(struct ifpx_msg *m)
{
    if (!m)
        return;
    msgpack_unpacked_destroy(&m->up);
    free(m->buf);
    free(m);
}

int ifpx_decode_message(const char *buf, size_t len, struct ifpx_header *hdr,
                        ifpx_event_cb cb, void *ctx)
{
    int rc;
    struct ifpx_msg *m = ifpx_msg_open(buf, len, hdr, &rc);
    struct ifpx_event *ev = malloc(sizeof *ev);

    if (m && ev) {
        while (ifpx_msg_next(m, ev))
            if (cb && cb(ev, ctx)) {
                rc = IFPX_E_CALLBACK;
                break;
            }
    } else if (m) {
        rc = IFPX_E_LIMIT;
    }
    free(ev);
    ifpx_msg_free(m);
    return rc;
}

/* ---- snapshots ----------------------------------------------------------------- */

#define MAX_SNAPSHOT_BYTES (1u << 30)

static int emit(ifpx_event_cb cb, void *ctx, const struct ifpx_event *ev)
{
    return cb && cb(ev, ctx) ? IFPX_E_CALLBACK : IFPX_OK;
}

static int snapshot_ports(const msgpack_object *ports, struct ifpx_event *ev, ifpx_event_cb cb,
                          void *ctx)
{
    int rc;
    uint64_t v;
    if (!ports || ports->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    for (uint32_t i = 0; i < ports->via.array.size; i++) {
        const msgpack_object *p = &ports->via.array.ptr[i];
        if (p->type != MSGPACK_OBJECT_MAP)
            return IFPX_E_FIELD;
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        if (get_uint(p, "port_id", 65535, &v, 1, 0))
            return IFPX_E_FIELD;
        ev->port_id = (uint16_t)v;
        if (get_uint(p, "ifindex", INT32_MAX, &v, 1, 0) ||
            get_str(field(p, "proxy"), ev->proxy, sizeof ev->proxy))
            return IFPX_E_FIELD;
        ev->ifindex = (uint32_t)v;
        ev->kind = IFPX_PORT_BOUND;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
        if (parse_mac(field(p, "mac"), &ev->has_mac, ev->mac))
            return IFPX_E_FIELD;
        if (ev->has_mac) {
            ev->kind = IFPX_MAC_CHANGE;
            if ((rc = emit(cb, ctx, ev)))
                return rc;
        }
        if (get_uint(p, "mtu", UINT32_MAX, &v, 0, 0))
            return IFPX_E_FIELD;
        ev->mtu = (uint32_t)v;
        ev->kind = IFPX_MTU_CHANGE;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
        if (get_bool(p, "up", &ev->up, 0) || get_bool(p, "carrier", &ev->carrier, 0))
            return IFPX_E_FIELD;
        ev->kind = IFPX_LINK_CHANGE;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
        const msgpack_object *addrs = field(p, "addrs");
        if (!addrs || addrs->type != MSGPACK_OBJECT_ARRAY)
            return IFPX_E_FIELD;
        for (uint32_t j = 0; j < addrs->via.array.size; j++) {
            char text[INET6_ADDRSTRLEN + 5];
            char *slash;
            if (get_str(&addrs->via.array.ptr[j], text, sizeof text) ||
                !(slash = strchr(text, '/')))
                return IFPX_E_FIELD;
            *slash = '\0';
            int plen = atoi(slash + 1);
            memset(ev->ip, 0, sizeof ev->ip);
            if (inet_pton(AF_INET, text, ev->ip) == 1 && plen >= 0 && plen <= 32) {
                ev->family = AF_INET;
                ev->kind = IFPX_ADDR_ADD;
            } else if (inet_pton(AF_INET6, text, ev->ip) == 1 && plen >= 0 && plen <= 128) {
                ev->family = AF_INET6;
                ev->kind = IFPX_ADDR6_ADD;
            } else {
                return IFPX_E_FIELD;
            }
            ev->prefixlen = (uint8_t)plen;
            if ((rc = emit(cb, ctx, ev)))
                return rc;
        }
    }
    return IFPX_OK;
}

static int snapshot_gone(const msgpack_object *bindings, struct ifpx_event *ev, ifpx_event_cb cb,
                         void *ctx)
{
    int rc;
    uint64_t v;
    if (!bindings || bindings->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    for (uint32_t i = 0; i < bindings->via.array.size; i++) {
        const msgpack_object *b = &bindings->via.array.ptr[i];
        const msgpack_object *state = b->type == MSGPACK_OBJECT_MAP ? field(b, "state") : NULL;
        if (!state)
            return IFPX_E_FIELD;
        if (!key_is(state, "gone"))
            continue; /* active bindings arrive with their port's state */
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        if (get_uint(b, "port_id", 65535, &v, 1, 0) ||
            get_str(field(b, "proxy"), ev->proxy, sizeof ev->proxy))
            return IFPX_E_FIELD;
        ev->port_id = (uint16_t)v;
        ev->kind = IFPX_PROXY_GONE;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
    }
    return IFPX_OK;
}

static const msgpack_object *port_of(const msgpack_object *ports, uint64_t port_id)
{
    for (uint32_t i = 0; i < ports->via.array.size; i++) {
        const msgpack_object *o = field(&ports->via.array.ptr[i], "port_id");
        if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == port_id)
            return &ports->via.array.ptr[i];
    }
    return NULL;
}

static int snapshot_neighs(const msgpack_object *neighs, const msgpack_object *ports,
                           struct ifpx_event *ev, ifpx_event_cb cb, void *ctx)
{
    int rc;
    uint64_t v;
    if (!neighs || neighs->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    for (uint32_t i = 0; i < neighs->via.array.size; i++) {
        const msgpack_object *n = &neighs->via.array.ptr[i];
        const msgpack_object *port;
        if (n->type != MSGPACK_OBJECT_MAP)
            return IFPX_E_FIELD;
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        if (get_uint(n, "port_id", 65535, &v, 1, 0) || !(port = port_of(ports, v)))
            return IFPX_E_FIELD;
        ev->port_id = (uint16_t)v;
        if (get_uint(port, "ifindex", INT32_MAX, &v, 1, 0) ||
            get_str(field(port, "proxy"), ev->proxy, sizeof ev->proxy))
            return IFPX_E_FIELD;
        ev->ifindex = (uint32_t)v;
        if (parse_ip(field(n, "ip"), &ev->family, ev->ip) ||
            parse_mac(field(n, "mac"), &ev->has_mac, ev->mac) ||
            get_str(field(n, "state"), ev->state, sizeof ev->state))
            return IFPX_E_FIELD;
        ev->kind = ev->family == AF_INET ? IFPX_NEIGH_ADD : IFPX_NEIGH6_ADD;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
    }
    return IFPX_OK;
}

static int snapshot_routes(const msgpack_object *routes, struct ifpx_event *ev, ifpx_event_cb cb,
                           void *ctx)
{
    int rc;
    if (!routes || routes->type != MSGPACK_OBJECT_MAP)
        return IFPX_E_FIELD;
    const msgpack_object *sets = field(routes, "nexthop_sets");
    const msgpack_object *rows = field(routes, "rows");
    if (!sets || sets->type != MSGPACK_OBJECT_ARRAY || !rows || rows->type != MSGPACK_OBJECT_ARRAY)
        return IFPX_E_FIELD;
    for (uint32_t i = 0; i < rows->via.array.size; i++) {
        const msgpack_object *r = &rows->via.array.ptr[i];
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 7)
            return IFPX_E_FIELD;
        const msgpack_object *c = r->via.array.ptr;
        for (int j = 0; j < 7; j++)
            if (j != 1 && c[j].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return IFPX_E_FIELD;
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        uint64_t fam = c[0].via.u64, plen = c[2].via.u64, nhs = c[6].via.u64;
        if ((fam != 4 && fam != 6) || parse_ip(&c[1], &ev->family, ev->ip) ||
            ev->family != (fam == 4 ? AF_INET : AF_INET6) || plen > (fam == 4 ? 32u : 128u) ||
            c[3].via.u64 > UINT32_MAX || c[4].via.u64 > 255 || c[5].via.u64 > UINT32_MAX ||
            nhs >= sets->via.array.size)
            return IFPX_E_FIELD;
        ev->kind = fam == 4 ? IFPX_ROUTE_ADD : IFPX_ROUTE6_ADD;
        ev->prefixlen = (uint8_t)plen;
        ev->table = (uint32_t)c[3].via.u64;
        ev->proto = (uint8_t)c[4].via.u64;
        ev->metric = (uint32_t)c[5].via.u64;
        if ((rc = parse_nexthops(&sets->via.array.ptr[nhs], ev)))
            return rc;
        if ((rc = emit(cb, ctx, ev)))
            return rc;
    }
    return IFPX_OK;
}

int ifpx_decode_snapshot(const char *buf, size_t len, struct ifpx_snapshot *snap,
                         ifpx_event_cb cb, void *ctx)
{
    msgpack_unpacked up;
    struct ifpx_event *ev;
    int rc = begin(buf, len, MAX_SNAPSHOT_BYTES, &up, &ev);

    if (rc)
        goto out;
    const msgpack_object *ok = field(&up.data, "ok");
    const msgpack_object *res = field(&up.data, "result");
    const msgpack_object *type = res && res->type == MSGPACK_OBJECT_MAP ? field(res, "type") : NULL;
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean || !type ||
        !key_is(type, "snapshot")) {
        rc = IFPX_E_FIELD;
        goto out;
    }
    memset(snap, 0, sizeof *snap);
    if (get_uint(res, "epoch", UINT64_MAX, &snap->epoch, 1, 0) ||
        get_uint(res, "seq", UINT64_MAX, &snap->seq, 1, 0) ||
        get_bool(res, "cfg_done", &snap->cfg_done, 0)) {
        rc = IFPX_E_FIELD;
        goto out;
    }
    if ((rc = parse_topic_seqs(field(res, "topic_seqs"), &snap->n_topics, snap->topic_seqs)))
        goto out;
    const msgpack_object *state = field(res, "state");
    if (!state || state->type != MSGPACK_OBJECT_MAP) {
        rc = IFPX_E_FIELD;
        goto out;
    }
    const msgpack_object *ports = field(state, "ports");
    if ((rc = snapshot_gone(field(state, "bindings"), ev, cb, ctx)) ||
        (rc = snapshot_ports(ports, ev, cb, ctx)) ||
        (rc = snapshot_neighs(field(state, "neighs"), ports, ev, cb, ctx)) ||
        (rc = snapshot_routes(field(state, "routes"), ev, cb, ctx)))
        goto out;
    if (snap->cfg_done) {
        memset(ev, 0, offsetof(struct ifpx_event, nh));
        ev->kind = IFPX_CFG_DONE;
        rc = emit(cb, ctx, ev);
    }
out:
    msgpack_unpacked_destroy(&up);
    free(ev);
    return rc;
}

/* ---- replies and requests ---------------------------------------------------------- */

#define MAX_REPLY_BYTES (1u << 30)

static int unpack_reply(const char *buf, size_t len, msgpack_unpacked *up)
{
    size_t off = 0;
    msgpack_unpacked_init(up);
    if (len > MAX_REPLY_BYTES)
        return IFPX_E_LIMIT;
    int rc = ifpx_msgpack_check(buf, len);
    if (rc)
        return rc;
    if (msgpack_unpack_next(up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        up->data.type != MSGPACK_OBJECT_MAP)
        return IFPX_E_FORMAT;
    return IFPX_OK;
}

int ifpx_decode_reply(const char *buf, size_t len, struct ifpx_reply *r)
{
    msgpack_unpacked up;
    int rc = unpack_reply(buf, len, &up);
    memset(r, 0, sizeof *r);
    if (rc)
        goto out;
    const msgpack_object *root = &up.data;
    const msgpack_object *ok = field(root, "ok");
    rc = IFPX_E_FIELD;
    if (get_uint(root, "id", UINT64_MAX, &r->id, 1, 0) || !ok ||
        ok->type != MSGPACK_OBJECT_BOOLEAN)
        goto out;
    r->ok = ok->via.boolean;
    if (r->ok) {
        const msgpack_object *res = field(root, "result");
        if (!res || res->type != MSGPACK_OBJECT_MAP || get_str(field(res, "type"), r->type,
                                                                sizeof r->type))
            goto out;
    } else {
        const msgpack_object *err = field(root, "error");
        if (!err || err->type != MSGPACK_OBJECT_MAP ||
            get_str(field(err, "code"), r->code, sizeof r->code))
            goto out;
        const msgpack_object *msg = field(err, "message");
        if (msg && msg->type == MSGPACK_OBJECT_STR) {
            size_t n = msg->via.str.size < sizeof r->message - 1 ? msg->via.str.size
                                                                 : sizeof r->message - 1;
            memcpy(r->message, msg->via.str.ptr, n);
            r->message[n] = '\0';
        }
    }
    rc = IFPX_OK;
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}

int ifpx_decode_replay(const char *buf, size_t len, uint64_t *epoch, ifpx_payload_cb cb,
                       void *ctx)
{
    msgpack_unpacked up;
    int rc = unpack_reply(buf, len, &up);
    if (rc)
        goto out;
    const msgpack_object *res = field(&up.data, "result");
    const msgpack_object *type = res && res->type == MSGPACK_OBJECT_MAP ? field(res, "type") : NULL;
    const msgpack_object *msgs = type ? field(res, "messages") : NULL;
    rc = IFPX_E_FIELD;
    if (!type || !key_is(type, "replay") || !msgs || msgs->type != MSGPACK_OBJECT_ARRAY ||
        get_uint(res, "epoch", UINT64_MAX, epoch, 1, 0))
        goto out;
    for (uint32_t i = 0; i < msgs->via.array.size; i++)
        if (msgs->via.array.ptr[i].type != MSGPACK_OBJECT_BIN)
            goto out;
    rc = IFPX_OK;
    for (uint32_t i = 0; i < msgs->via.array.size && rc == IFPX_OK; i++) {
        const msgpack_object_bin *b = &msgs->via.array.ptr[i].via.bin;
        if (cb(b->ptr, b->size, ctx))
            rc = IFPX_E_CALLBACK;
    }
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}

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

const char *ifpx_kind_topic(enum ifpx_kind k)
{
    if (k <= IFPX_LINK_CHANGE)
        return "link";
    if (k <= IFPX_ADDR6_DEL)
        return "addr";
    if (k <= IFPX_ROUTE6_DEL)
        return "route";
    if (k <= IFPX_NEIGH6_DEL)
        return "neigh";
    if (k >= IFPX_PORT_BOUND && k <= IFPX_PROXY_BACK)
        return "port";
    if (k == IFPX_HEARTBEAT)
        return "hb";
    return "sync";
}
