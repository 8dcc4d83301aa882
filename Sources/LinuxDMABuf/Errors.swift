import DMACore

extension DMAError.Code {
    /// A system call failed: the errno is the kernel's own answer.
    public static let systemCallFailed = Self("system-call-failed")
    /// Refused before the system call, in a case the kernel refuses with the same errno, so that
    /// the caller gets the kernel's answer without a round trip (and with a sentence saying why).
    public static let refusedBeforeCall = Self("refused-before-call")
    /// The kernel's dma-buf list (debugfs `dma_buf/bufinfo`) cannot be read: debugfs is not
    /// mounted, is root-only, or the kernel refuses it; the errno says which.
    public static let debugfsUnavailable = Self("debugfs-unavailable")
}

extension DMAError {
    /// A failed system call, with the kernel's errno and a sentence explaining it for this call.
    static func systemCall(_ call: String, _ errno: Errno, _ detail: String = "") -> DMAError {
        var message = "\(call) failed: \(errno.name) (\(errno.rawValue)), \(errno.summary)"
        if !detail.isEmpty { message += "; " + detail }
        if let explanation = explain(errno, call: call) { message += ". " + explanation }
        return DMAError(.systemCallFailed, errno, message)
    }

    /// A call refused before it reached the kernel, with the errno the kernel would give.
    static func refused(_ call: String, _ errno: Errno, _ why: String) -> DMAError {
        DMAError(.refusedBeforeCall, errno, "\(call) refused before the call (the kernel answers \(errno.name) too): \(why)")
    }
}

/// A sentence for the errno values an exporter or the dma-buf core gives in a way that surprises a
/// user, or `nil` when the errno's own summary says enough.
///
/// - `ENOTSUPP` (524) is kernel-internal (`include/linux/errno.h`) and has no `strerror` text
///   ("Unknown error 524"); `nv_dmabuf` returns it from `mmap` because it has no CPU mapping.
/// - `ENODEV` from `DRM_IOCTL_PRIME_FD_TO_HANDLE`: the importing driver cannot import a dma-buf it
///   did not export (virtio-gpu in 6.1 to 6.12 without blob resources).
/// - `ENOTTY` from a dma-buf or DRM ioctl: the fd is not of the kind the request belongs to.
package func explain(_ errno: Errno, call: String) -> String? {
    switch errno {
    case .ENOTSUPP:
        if call.hasPrefix("mmap") {
            return "ENOTSUPP is a kernel-internal errno that the exporter leaked to user space: it has no CPU mapping of this buffer (nv_dmabuf does this for CUDA VRAM), so reach it through a device importer, not mmap"
        }
        return "ENOTSUPP is a kernel-internal errno (include/linux/errno.h) that the driver leaked to user space; strerror calls it \"Unknown error 524\""
    case .ENODEV where call.contains("PRIME_FD_TO_HANDLE"):
        return "the importing driver cannot import a dma-buf exported by another driver (virtio-gpu cannot, on kernels 6.1 to 6.12)"
    case .ENOTTY:
        return "the file descriptor does not belong to a driver that knows this request"
    case .ENOENT where call.hasPrefix("open(/dev"):
        return "the device node is absent: this kernel does not have the driver, or it is not loaded"
    default:
        return nil
    }
}
