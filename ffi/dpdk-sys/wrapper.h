/* Headers bindgen turns into Rust: EAL, lcores, mempools, mbufs, ethdev. Vdevs are passed as EAL
 * arguments (--vdev), so no PMD-specific header is needed. */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ether.h>
#include <rte_ethdev.h>
#include <rte_dev.h>

/* RSS hash-function masks are built from function-like macros (RTE_BIT64) that bindgen cannot
 * evaluate; re-export the ones Vigil uses as enum constants (all fit in 32 bits). */
enum vigil_rte_consts {
    VIGIL_RTE_ETH_RSS_IP = RTE_ETH_RSS_IP,
    VIGIL_RTE_ETH_RSS_UDP = RTE_ETH_RSS_UDP,
    VIGIL_RTE_ETH_RSS_TCP = RTE_ETH_RSS_TCP,
};
