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

/* Pages hold at least eight blocks: one slice up to 8 KiB, then the next power of two.
 * A class whose table is too big for a header slot (below 80 B) keeps it at the end of
 * its page on whole OS pages, which costs blocks; its page is the first of 1, 2 or 4
 * slices where that cost is below 0.5% of a packed table's count (else the least):
 * 16 B one slice (0.4%), 32 B two (0.1%), 48 B two (1.1%), 64 B four (0.0%).  (Eight
 * slices would cost 48 B 0.3%, but runs of eight free slices are rarer: a heap built
 * after other allocations took a segment more.) */
unsigned bin_page_slices(unsigned bin)
{
    size_t bs = bin_block_size(bin);
    unsigned slices = 1;
    while ((size_t)slices * SLICE_SIZE < 8 * bs)
        slices *= 2;
    size_t width = bs >= WIDE_SIDE_MIN ? 2 : 1;
    if (SLICE_SIZE / bs * width <= SIDE_SLOT_BYTES)
        return slices;
    unsigned best = slices;
    size_t best_loss = SIZE_MAX;   /* blocks fewer than a packed table's, per 100,000 */
    for (unsigned s = slices; s <= 4; s *= 2) {
        size_t area = (size_t)s * SLICE_SIZE, side_bytes;
        size_t packed = area / (bs + width);
        size_t loss = (packed - side_at_end(area, bs, width, OS_PAGE_SIZE, &side_bytes)) * 100000 / packed;
        if (loss < 500)
            return s;
        if (loss < best_loss) {
            best_loss = loss;
            best = s;
        }
    }
    return best;
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
