/* Exported wrappers for DPDK static inline functions. Compiled with exactly
 * pkg-config's cflags so that struct layouts match the installed libdpdk. */
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_thash.h>
#include "shim.h"

int _rte_errno(void) { return rte_errno; }
void _rte_errno_set(int v) { rte_errno = v; }
unsigned _rte_lcore_id(void) { return rte_lcore_id(); }
uint64_t _rte_rdtsc(void) { return rte_rdtsc(); }
uint64_t _rte_get_tsc_hz(void) { return rte_get_tsc_hz(); }
void _rte_pause(void) { rte_pause(); }

uint16_t _rte_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }
uint16_t _rte_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }

struct rte_mbuf *_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int _rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, count); }
void _rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void _rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count) { rte_pktmbuf_free_bulk(mbufs, count); }
void *_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
uint32_t _rte_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }
uint16_t _rte_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }
uint16_t _rte_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t _rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
char *_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
int _rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
void _rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }
uint16_t _rte_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
void _rte_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v) { rte_mbuf_refcnt_update(m, v); }
uint32_t _rte_mbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }
int _rte_mbuf_is_contiguous(const struct rte_mbuf *m) { return rte_is_contiguous(m); }

unsigned _rte_mempool_avail_count(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }
unsigned _rte_mempool_in_use_count(const struct rte_mempool *mp) { return rte_mempool_in_use_count(mp); }

unsigned _rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n, unsigned *free_space)
{ return rte_ring_enqueue_burst(r, objs, n, free_space); }
unsigned _rte_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n, unsigned *available)
{ return rte_ring_dequeue_burst(r, objs, n, available); }
unsigned _rte_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
unsigned _rte_ring_free_count(const struct rte_ring *r) { return rte_ring_free_count(r); }

uint32_t _rte_softrss(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key)
{ return rte_softrss(input_tuple, input_len, rss_key); }
uint32_t _rte_softrss_be(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key)
{ return rte_softrss_be(input_tuple, input_len, rss_key); }
void _rte_convert_rss_key(const uint32_t *orig, uint32_t *targ, int len)
{ rte_convert_rss_key(orig, targ, len); }
