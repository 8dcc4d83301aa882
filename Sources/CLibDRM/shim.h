// CLibDRM: libdrm and the kernel's dma-buf, udmabuf and dma-heap user-space headers, for Swift.
//
// Swift cannot call variadic C functions (ioctl, fcntl) or expand function-like macros (_IOW,
// _IOWR), so each ioctl request number and each variadic call the LinuxDMABuf target needs is a
// `static inline` function here. Debian ships no <drm/drm.h>: libdrm's own copies are included
// (pkg-config libdrm adds their folder).
#ifndef DMABUFKIT_CLIBDRM_SHIM_H
#define DMABUFKIT_CLIBDRM_SHIM_H

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/memfd.h>
#include <xf86drm.h>
#include <drm.h>
#include <drm_mode.h>
#include <linux/dma-buf.h>
#include <linux/udmabuf.h>
#include <linux/dma-heap.h>

// ioctl(2), which is variadic.
static inline int dmabufkit_ioctl(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
}

// fcntl(2) with an int argument (F_ADD_SEALS, F_GET_SEALS, F_GETFD), which is variadic.
static inline int dmabufkit_fcntl_int(int fd, int command, int argument) {
    return fcntl(fd, command, argument);
}

// open(2) with a mode, which is variadic.
static inline int dmabufkit_open(const char *path, int flags) {
    return open(path, flags, 0);
}

// O_DIRECT, which glibc names only with _GNU_SOURCE; its per-architecture value __O_DIRECT is
// always there. `dmabuf p2p test` reads a block device straight into peer-to-peer memory with it.
static inline int dmabufkit_o_direct(void) {
    return __O_DIRECT;
}

// VFIO (include/uapi/linux/vfio.h): the request numbers and feature flags as the host's uapi header
// defines them. Debian 12's header predates VFIO_DEVICE_FEATURE_DMA_BUF (6.19), whose number is
// given here when the header lacks it.
#include <linux/vfio.h>
static inline unsigned long dmabufkit_VFIO_SET_IOMMU(void) { return VFIO_SET_IOMMU; }
static inline unsigned long dmabufkit_VFIO_GROUP_SET_CONTAINER(void) { return VFIO_GROUP_SET_CONTAINER; }
static inline unsigned long dmabufkit_VFIO_GROUP_GET_DEVICE_FD(void) { return VFIO_GROUP_GET_DEVICE_FD; }
static inline unsigned long dmabufkit_VFIO_DEVICE_RESET(void) { return VFIO_DEVICE_RESET; }
static inline unsigned long dmabufkit_VFIO_DEVICE_FEATURE(void) { return VFIO_DEVICE_FEATURE; }
static inline unsigned int dmabufkit_VFIO_DEVICE_FEATURE_GET(void) { return VFIO_DEVICE_FEATURE_GET; }
static inline unsigned int dmabufkit_VFIO_DEVICE_FEATURE_SET(void) { return VFIO_DEVICE_FEATURE_SET; }
static inline unsigned int dmabufkit_VFIO_DEVICE_FEATURE_PROBE(void) { return VFIO_DEVICE_FEATURE_PROBE; }
static inline int dmabufkit_VFIO_TYPE1v2_IOMMU(void) { return VFIO_TYPE1v2_IOMMU; }
#ifndef VFIO_DEVICE_FEATURE_DMA_BUF
#define VFIO_DEVICE_FEATURE_DMA_BUF 11
#endif
static inline unsigned int dmabufkit_VFIO_DEVICE_FEATURE_DMA_BUF(void) { return VFIO_DEVICE_FEATURE_DMA_BUF; }

// memfd_create(2) and the memfd seals (mm/memfd.c). glibc declares them only with _GNU_SOURCE,
// which the Swift Glibc module is not built with, so the values of include/uapi/linux/fcntl.h are
// given here.
static inline int dmabufkit_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}
#define DMABUFKIT_F_ADD_SEALS 1033
#define DMABUFKIT_F_GET_SEALS 1034
#define DMABUFKIT_F_SEAL_SEAL 0x0001
#define DMABUFKIT_F_SEAL_SHRINK 0x0002
#define DMABUFKIT_F_SEAL_GROW 0x0004
#define DMABUFKIT_F_SEAL_WRITE 0x0008

// drivers/gpu/drm/drm_ioctl.c: the DRM core's requests.
static inline unsigned long dmabufkit_DRM_IOCTL_VERSION(void) { return DRM_IOCTL_VERSION; }
static inline unsigned long dmabufkit_DRM_IOCTL_GEM_CLOSE(void) { return DRM_IOCTL_GEM_CLOSE; }
static inline unsigned long dmabufkit_DRM_IOCTL_PRIME_HANDLE_TO_FD(void) { return DRM_IOCTL_PRIME_HANDLE_TO_FD; }
static inline unsigned long dmabufkit_DRM_IOCTL_PRIME_FD_TO_HANDLE(void) { return DRM_IOCTL_PRIME_FD_TO_HANDLE; }
static inline unsigned long dmabufkit_DRM_IOCTL_MODE_CREATE_DUMB(void) { return DRM_IOCTL_MODE_CREATE_DUMB; }
static inline unsigned long dmabufkit_DRM_IOCTL_MODE_MAP_DUMB(void) { return DRM_IOCTL_MODE_MAP_DUMB; }
static inline unsigned long dmabufkit_DRM_IOCTL_MODE_DESTROY_DUMB(void) { return DRM_IOCTL_MODE_DESTROY_DUMB; }

// drivers/dma-buf/dma-buf.c: dma_buf_ioctl.
static inline unsigned long dmabufkit_DMA_BUF_IOCTL_SYNC(void) { return DMA_BUF_IOCTL_SYNC; }
static inline unsigned long dmabufkit_DMA_BUF_SET_NAME_B(void) { return DMA_BUF_SET_NAME_B; }
static inline unsigned long dmabufkit_DMA_BUF_IOCTL_EXPORT_SYNC_FILE(void) { return DMA_BUF_IOCTL_EXPORT_SYNC_FILE; }
static inline unsigned long dmabufkit_DMA_BUF_IOCTL_IMPORT_SYNC_FILE(void) { return DMA_BUF_IOCTL_IMPORT_SYNC_FILE; }

// drivers/dma-buf/udmabuf.c and drivers/dma-buf/dma-heap.c.
static inline unsigned long dmabufkit_UDMABUF_CREATE(void) { return UDMABUF_CREATE; }
static inline unsigned long dmabufkit_DMA_HEAP_IOCTL_ALLOC(void) { return DMA_HEAP_IOCTL_ALLOC; }

#endif
