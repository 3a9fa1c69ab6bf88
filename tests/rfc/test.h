/* The part of DPDK's app/test/test.h that a unit test of the IF proxy RFC uses: its
 * REGISTER_TEST_COMMAND becomes a main() that starts the EAL, runs the test and says
 * "Test OK" or "Test Failed" as DPDK's test runner does. */
#ifndef IFPX_RFC_TEST_H
#define IFPX_RFC_TEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_common.h>
#include <rte_debug.h>
#include <rte_eal.h>
#include <rte_ring.h>

#define REGISTER_TEST_COMMAND(name, fn)                                                     \
    int main(int argc, char **argv)                                                         \
    {                                                                                       \
        if (rte_eal_init(argc, argv) < 0)                                                   \
            return 2;                                                                       \
        int rc = fn();                                                                      \
        printf("%s: %s\n", #name, rc ? "Test Failed" : "Test OK");                          \
        fflush(stdout);                                                                     \
        rte_eal_cleanup();                                                                  \
        return rc ? 1 : 0;                                                                  \
    }

#endif
