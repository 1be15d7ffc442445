/* Anchor build of DPDK's rte_thash_gfni for benches. With pkg-config's
 * -march=corei7, DPDK 22.11's rte_thash_gfni() is a stub returning 0; this
 * file alone is compiled with GFNI and AVX-512 enabled so the real code is
 * generated. Callers must check the CPU flags first (it would fault). */
#include <rte_thash.h>
#include "shim.h"

int _dmpd_gfni_anchor_built(void)
{
#if defined(__GFNI__) && defined(__AVX512F__)
	return 1;
#else
	return 0;
#endif
}

uint32_t _dmpd_thash_gfni(const uint64_t *mtrx, const uint8_t *tuple, int len)
{ return rte_thash_gfni(mtrx, tuple, len); }

void _dmpd_thash_gfni_bulk(const uint64_t *mtrx, int len, uint8_t *tuple[], uint32_t val[], uint32_t num)
{ rte_thash_gfni_bulk(mtrx, len, tuple, val, num); }
