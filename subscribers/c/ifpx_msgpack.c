/* Reading msgpack documents safely: the bounds check that runs before msgpack-c
 * allocates anything, and the typed field readers every decoder shares. */
#include "ifpx_mp.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int ifpx_mp_key_is(const msgpack_object *key, const char *name)
{
    size_t n = strlen(name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == n &&
           memcmp(key->via.str.ptr, name, n) == 0;
}

const msgpack_object *ifpx_mp_field(const msgpack_object *map, const char *name)
{
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (ifpx_mp_key_is(&map->via.map.ptr[i].key, name))
            return &map->via.map.ptr[i].val;
    return NULL;
}

int ifpx_mp_uint(const msgpack_object *map, const char *name, uint64_t max, uint64_t *out,
                    int required, uint64_t dflt)
{
    const msgpack_object *o = ifpx_mp_field(map, name);
    if (!o) {
        *out = dflt;
        return required ? IFPX_E_FIELD : IFPX_OK;
    }
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
        return IFPX_E_FIELD;
    *out = o->via.u64;
    return IFPX_OK;
}

int ifpx_mp_bool(const msgpack_object *map, const char *name, int *out, int dflt)
{
    const msgpack_object *o = ifpx_mp_field(map, name);
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
int ifpx_mp_str(const msgpack_object *o, char *buf, size_t size)
{
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= size)
        return IFPX_E_FIELD;
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
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

#define MAX_REPLY_BYTES (1u << 30)

/* Unpacks `buf` (at most `limit` bytes, checked first) as exactly one msgpack map. */
static int unpack_map(const char *buf, size_t len, size_t limit, msgpack_unpacked *up)
{
    size_t off = 0;
    msgpack_unpacked_init(up);
    if (len > limit)
        return IFPX_E_LIMIT;
    int rc = ifpx_msgpack_check(buf, len);
    if (rc)
        return rc;
    if (msgpack_unpack_next(up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        up->data.type != MSGPACK_OBJECT_MAP)
        return IFPX_E_FORMAT;
    return IFPX_OK;
}

int ifpx_mp_begin(const char *buf, size_t len, size_t limit, msgpack_unpacked *up,
                  struct ifpx_event **ev)
{
    /* On the heap: with its next hops an event is 6 KiB, too much for a small lcore stack. */
    if (!(*ev = malloc(sizeof **ev))) {
        msgpack_unpacked_init(up);
        return IFPX_E_LIMIT;
    }
    return unpack_map(buf, len, limit, up);
}

int ifpx_mp_unpack(const char *buf, size_t len, msgpack_unpacked *up)
{
    return unpack_map(buf, len, MAX_REPLY_BYTES, up);
}
