// Baselines for the DMABufKit benchmarks: what the Swift hot paths are compared with.
#ifndef DMABUFKIT_CBASELINES_H
#define DMABUFKIT_CBASELINES_H

#include <stddef.h>
#include <stdint.h>

/// A mapped segment as the C baseline writes it: the same 24 bytes as DMASegment
/// (address, length, bus-address flag).
typedef struct {
    uint64_t address;
    uint64_t length;
    uint8_t is_bus_address;
} cb_segment;

/// A physical range as the C baseline reads it: start and length, as PhysicalRange.
typedef struct {
    uint64_t start;
    uint64_t length;
} cb_range;

/// "Map": for each of `count` ranges, out[i] = {in[i].start + bus_offset, in[i].length, 1}
/// (pci_p2pdma_bus_addr_map for every entry). Returns the number of segments written.
size_t cb_map_bus_address(const cb_range *in, size_t count, uint64_t bus_offset, cb_segment *out);

/// "Unmap": walks the segments as an unmap does (skipping bus addresses) and returns the total
/// length of the segments that are not bus addresses, so the walk is not optimised away.
uint64_t cb_unmap_walk(const cb_segment *segments, size_t count);

/// memcpy, out of line so the compiler cannot elide or specialise it at the call site.
void cb_memcpy(void *dst, const void *src, size_t count);

/// The index of the range in `starts`/`lasts` (unsorted use: a linear scan) that holds `address`,
/// or -1.
long cb_linear_find(const uint64_t *starts, const uint64_t *lasts, size_t count, uint64_t address);

/// The census baseline (issue [M] item 6): what `dmabuf ls` reads, read the plain C way. For every
/// numeric folder of `proc_root`: each `fd/N` link (readlink), and for a dma-buf one (`/dmabuf:`
/// or `anon_inode:dmabuf`) its `fdinfo/N`, whose `size:` is added up; then the process's `maps`,
/// line by line with a fixed buffer, counting the `/dmabuf:` lines. Returns the number of dma-buf
/// fds seen; `*bytes` gets the sum of their sizes and `*mappings` the dma-buf mapping lines.
uint64_t cb_census(const char *proc_root, uint64_t *bytes, uint64_t *mappings);

#endif
