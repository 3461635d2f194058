/* trim.c — placeholder until _heapmin lands */
#include "internal.h"
size_t heap_trim_all(bool everything) { (void)everything; return 0; }
