/* sizeclass.c — size classes: 16-byte steps up to 128 bytes, then four per doubling up
 * to MEDIUM_MAX, so a block wastes at most 20% of its size (12.5% on average). */
#include "modules.h"

/* bin_of() for sizes up to SMALL_MAX, indexed by (n + 15) / 16; it must agree with the
 * formula of bin_of() above SMALL_MAX (four classes per doubling from 128 bytes), which
 * sizeclass_check() verifies at start-up. */
const uint8_t small_bin_of[SMALL_MAX / 16 + 1] = {
    1, 1, 2, 3, 4, 5, 6, 7, 8,                 /* 0..128 */
    9, 9, 10, 10, 11, 11, 12, 12,              /* ..256: 160 192 224 256 */
    13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15, 16, 16, 16, 16, /* ..512 */
    17, 17, 17, 17, 17, 17, 17, 17, 18, 18, 18, 18, 18, 18, 18, 18,
    19, 19, 19, 19, 19, 19, 19, 19, 20, 20, 20, 20, 20, 20, 20, 20, /* ..1024 */
};

size_t bin_block_size(unsigned bin)
{
    if (bin <= 8)
        return (size_t)bin * 16;
    unsigned k = bin - 9, b = 7 + k / 4, q = k % 4;
    return ((size_t)1 << b) + (size_t)(q + 1) * ((size_t)1 << (b - 2));
}

/* Pages hold at least eight blocks: one slice up to 8 KiB, then the next power of two. */
unsigned bin_page_slices(unsigned bin)
{
    size_t need = 8 * bin_block_size(bin);
    unsigned slices = 1;
    while ((size_t)slices * SLICE_SIZE < need)
        slices *= 2;
    return slices;
}

/* The table above against the per-doubling formula, at the first allocation. */
void sizeclass_check(void)
{
    for (size_t n = 0; n <= SMALL_MAX; n += 16) {
        size_t w = n ? n : 1;
        unsigned b = w <= 128 ? (unsigned)((w + 15) >> 4) : 0;
        if (w > 128) {
            unsigned lg = 63u - (unsigned)__builtin_clzl(w - 1);
            b = 9 + (lg - 7) * 4 + (unsigned)(((w - 1) >> (lg - 2)) & 3);
        }
        if (small_bin_of[n >> 4] != b || bin_block_size(b) < w)
            fatal_message("size class table is inconsistent");
    }
}
