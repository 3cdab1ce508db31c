/* Non-inline wrappers for DPDK's `static inline` fast-path functions, which bindgen cannot bind.
 *
 * Each wrapper is a one-line forward; built with the same cflags as DPDK (-march, -include
 * rte_config.h) so the inlined bodies match the library's ABI. Names are `vigil_rte_*`. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>

uint16_t vigil_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                                uint16_t nb_pkts) {
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t vigil_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                                uint16_t nb_pkts) {
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *vigil_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int vigil_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count) {
    return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void vigil_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void vigil_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count) {
    rte_pktmbuf_free_bulk(mbufs, count);
}

void *vigil_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint16_t vigil_rte_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }

uint32_t vigil_rte_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }

/* Single-segment length: sets data_len and pkt_len together. */
void vigil_rte_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len) {
    m->data_len = len;
    m->pkt_len = len;
}

uint16_t vigil_rte_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }

uint16_t vigil_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

uint16_t vigil_rte_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }

char *vigil_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

char *vigil_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }

char *vigil_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) {
    return rte_pktmbuf_prepend(m, len);
}

void vigil_rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

int vigil_rte_errno(void) { return rte_errno; }

unsigned vigil_rte_lcore_id(void) { return rte_lcore_id(); }
