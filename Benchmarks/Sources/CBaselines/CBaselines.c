#include "CBaselines.h"

#include <string.h>

size_t cb_map_bus_address(const cb_range *in, size_t count, uint64_t bus_offset, cb_segment *out) {
    for (size_t i = 0; i < count; i++) {
        out[i].address = in[i].start + bus_offset;
        out[i].length = in[i].length;
        out[i].is_bus_address = 1;
    }
    return count;
}

uint64_t cb_unmap_walk(const cb_segment *segments, size_t count) {
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (!segments[i].is_bus_address) total += segments[i].length;
    }
    return total;
}

void cb_memcpy(void *dst, const void *src, size_t count) { memcpy(dst, src, count); }

long cb_linear_find(const uint64_t *starts, const uint64_t *lasts, size_t count, uint64_t address) {
    for (size_t i = 0; i < count; i++) {
        if (starts[i] <= address && address <= lasts[i]) return (long)i;
    }
    return -1;
}
