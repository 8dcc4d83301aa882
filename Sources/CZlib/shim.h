// CZlib: zlib, to read the kernel's own configuration from /proc/config.gz (CONFIG_IKCONFIG_PROC).
#ifndef DMABUFKIT_CZLIB_SHIM_H
#define DMABUFKIT_CZLIB_SHIM_H

#include <zlib.h>

// inflateInit2 is a macro; 15 + 32 lets zlib detect the gzip header.
static inline int dmabufkit_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);
}

#endif
