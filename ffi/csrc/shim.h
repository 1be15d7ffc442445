/* One-line exported wrappers for what bindgen cannot call: DPDK's static
 * inline functions and per-lcore (TLS) variables. Each is prefixed `_`. */
#ifndef DMPD_SHIM_H
#define DMPD_SHIM_H
#include <stdint.h>
struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

int _rte_errno(void);
void _rte_errno_set(int v);
unsigned _rte_lcore_id(void);
uint64_t _rte_rdtsc(void);
uint64_t _rte_get_tsc_hz(void);
void _rte_pause(void);

uint16_t _rte_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t _rte_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *_rte_pktmbuf_alloc(struct rte_mempool *mp);
int _rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void _rte_pktmbuf_free(struct rte_mbuf *m);
void _rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
void *_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint32_t _rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t _rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint16_t _rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t _rte_pktmbuf_tailroom(const struct rte_mbuf *m);
char *_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int _rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void _rte_pktmbuf_reset(struct rte_mbuf *m);
uint16_t _rte_mbuf_refcnt_read(const struct rte_mbuf *m);
void _rte_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v);
uint32_t _rte_mbuf_rss_hash(const struct rte_mbuf *m);
int _rte_mbuf_is_contiguous(const struct rte_mbuf *m);

unsigned _rte_mempool_avail_count(const struct rte_mempool *mp);
unsigned _rte_mempool_in_use_count(const struct rte_mempool *mp);

unsigned _rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n, unsigned *free_space);
unsigned _rte_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n, unsigned *available);
unsigned _rte_ring_count(const struct rte_ring *r);
unsigned _rte_ring_free_count(const struct rte_ring *r);

uint32_t _rte_softrss(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key);
uint32_t _rte_softrss_be(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key);

/* Anchor build of rte_thash_gfni (csrc/gfni_anchor.c, compiled with GFNI and
 * AVX-512 enabled). Call only when the CPU has them. Returns 1 if this object
 * was compiled with real GFNI code, 0 if DPDK's stub was used. */
int _dmpd_gfni_anchor_built(void);
uint32_t _dmpd_thash_gfni(const uint64_t *mtrx, const uint8_t *tuple, int len);
void _dmpd_thash_gfni_bulk(const uint64_t *mtrx, int len, uint8_t *tuple[], uint32_t val[], uint32_t num);

void _rte_convert_rss_key(const uint32_t *orig, uint32_t *targ, int len);
#endif
