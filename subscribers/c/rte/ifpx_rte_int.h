/* What ifpx_rte.c (v3, the control thread) and ifpx_rte_v1.c (v1's callbacks) share. */
#ifndef IFPX_RTE_INT_H
#define IFPX_RTE_INT_H

#include "rte_if_proxy.h"

/* A v3 event, as v1's callbacks take it: a port event (its port_id) or CFG_DONE. Route
 * events are not taken here: v3 has one per port, v1 one per route. */
void ifpx_rte_v1_event(const struct rte_ifpx_event *e);

/* A route event, once per route (its port_id is not read). */
void ifpx_rte_v1_route(const struct rte_ifpx_event *e);

/* Forget v1's callbacks (rte_ifpx_close, rte_ifpx_callbacks_unregister_all). */
void ifpx_rte_v1_clear(void);

#endif
