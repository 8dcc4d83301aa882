import CLibDRM
import DMACore
import Glibc

// The calls of the package's system-call layer (`SystemCalls` in DMACore) that need this
// target's C shims: ioctl, memfd_create and fcntl (variadic or missing in Swift's Glibc) and the
// libdrm calls. They go through the same interceptor as every other call.

extension IoctlRequest {
    /// `DRM_IOCTL_GEM_CLOSE` (`drivers/gpu/drm/drm_gem.c`, `drm_gem_close_ioctl`).
    package static let gemClose = IoctlRequest("DRM_IOCTL_GEM_CLOSE", dmabufkit_DRM_IOCTL_GEM_CLOSE())
    /// `DRM_IOCTL_PRIME_HANDLE_TO_FD` (`drivers/gpu/drm/drm_prime.c`).
    package static let primeHandleToFD = IoctlRequest("DRM_IOCTL_PRIME_HANDLE_TO_FD", dmabufkit_DRM_IOCTL_PRIME_HANDLE_TO_FD())
    /// `DRM_IOCTL_PRIME_FD_TO_HANDLE` (`drivers/gpu/drm/drm_prime.c`).
    package static let primeFDToHandle = IoctlRequest("DRM_IOCTL_PRIME_FD_TO_HANDLE", dmabufkit_DRM_IOCTL_PRIME_FD_TO_HANDLE())
    /// `DRM_IOCTL_MODE_CREATE_DUMB` (`drivers/gpu/drm/drm_dumb_buffers.c`).
    package static let createDumb = IoctlRequest("DRM_IOCTL_MODE_CREATE_DUMB", dmabufkit_DRM_IOCTL_MODE_CREATE_DUMB())
    /// `DRM_IOCTL_MODE_DESTROY_DUMB` (`drivers/gpu/drm/drm_dumb_buffers.c`).
    package static let destroyDumb = IoctlRequest("DRM_IOCTL_MODE_DESTROY_DUMB", dmabufkit_DRM_IOCTL_MODE_DESTROY_DUMB())
    /// `DMA_BUF_IOCTL_SYNC` (`drivers/dma-buf/dma-buf.c`, `dma_buf_ioctl`).
    package static let dmaBufSync = IoctlRequest("DMA_BUF_IOCTL_SYNC", dmabufkit_DMA_BUF_IOCTL_SYNC())
    /// `DMA_BUF_SET_NAME_B` (`drivers/dma-buf/dma-buf.c`, `dma_buf_set_name`).
    package static let dmaBufSetName = IoctlRequest("DMA_BUF_SET_NAME_B", dmabufkit_DMA_BUF_SET_NAME_B())
    /// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` (`drivers/dma-buf/dma-buf.c`, `dma_buf_export_sync_file`).
    package static let exportSyncFile = IoctlRequest("DMA_BUF_IOCTL_EXPORT_SYNC_FILE", dmabufkit_DMA_BUF_IOCTL_EXPORT_SYNC_FILE())
    /// `DMA_BUF_IOCTL_IMPORT_SYNC_FILE` (`drivers/dma-buf/dma-buf.c`, `dma_buf_import_sync_file`).
    package static let importSyncFile = IoctlRequest("DMA_BUF_IOCTL_IMPORT_SYNC_FILE", dmabufkit_DMA_BUF_IOCTL_IMPORT_SYNC_FILE())
    /// `UDMABUF_CREATE` (`drivers/dma-buf/udmabuf.c`, `udmabuf_ioctl_create`).
    package static let udmabufCreate = IoctlRequest("UDMABUF_CREATE", dmabufkit_UDMABUF_CREATE())
    /// `DMA_HEAP_IOCTL_ALLOC` (`drivers/dma-buf/dma-heap.c`, `dma_heap_ioctl_allocate`).
    package static let dmaHeapAlloc = IoctlRequest("DMA_HEAP_IOCTL_ALLOC", dmabufkit_DMA_HEAP_IOCTL_ALLOC())
}

extension SystemCallOutcome {
    /// The answer to `.drmGetVersion`.
    package static func version(_ version: DRMVersion) -> SystemCallOutcome { .value(version) }
    /// The answer to `.drmGetDevices`.
    package static func devices(_ devices: [DRMBusDevice]) -> SystemCallOutcome { .value(devices) }
}

extension SystemCalls {
    /// `ioctl(2)` with a pointer argument; retried on EINTR (DRM's own `drmIoctl` does the same,
    /// and also retries EAGAIN, which none of the requests here return).
    package static func ioctl(_ fd: Int32, _ request: IoctlRequest, _ argument: UnsafeMutableRawPointer?) -> Result<Int32, Errno> {
        retryingEINTR(.ioctl(fd: fd, request: request), argument) {
            Int(dmabufkit_ioctl(fd, request.number, argument))
        }.map { Int32(truncatingIfNeeded: $0) }
    }

    /// `memfd_create(2)` with `MFD_CLOEXEC` added.
    package static func memfdCreate(_ name: String, _ flags: UInt32) -> Result<Int32, Errno> {
        let flags = flags | UInt32(MFD_CLOEXEC)
        return retryingEINTR(.memfdCreate(name: name, flags: flags)) {
            Int(name.withCString { dmabufkit_memfd_create($0, flags) })
        }.map { Int32(truncatingIfNeeded: $0) }
    }

    /// `fcntl(2)` with an integer argument.
    package static func fcntl(_ fd: Int32, _ command: Int32, _ argument: Int32) -> Result<Int32, Errno> {
        retryingEINTR(.fcntl(fd: fd, command: command, argument: argument)) {
            Int(dmabufkit_fcntl_int(fd, command, argument))
        }.map { Int32(truncatingIfNeeded: $0) }
    }

    /// libdrm's `drmGetVersion`: the driver's name, version and description.
    package static func drmGetVersion(_ fd: Int32) -> Result<DRMVersion, Errno> {
        if let outcome = intercepted(.drmGetVersion(fd: fd)) {
            switch outcome {
            case .perform: break
            case .value(let version as DRMVersion): return .success(version)
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered drmGetVersion with a value of the wrong kind")
            }
        }
        var raw: UnsafeMutablePointer<drmVersion>?
        repeat {
            Glibc.errno = 0
            raw = CLibDRM.drmGetVersion(fd)
        } while raw == nil && Glibc.errno == EINTR
        guard let raw else {
            let errno = Glibc.errno
            return .failure(errno == 0 ? .EIO : Errno(rawValue: errno))
        }
        defer { drmFreeVersion(raw) }
        func text(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int32) -> String {
            guard let pointer, length > 0 else { return "" }
            return String(decoding: UnsafeRawBufferPointer(start: pointer, count: Int(length)), as: UTF8.self)
        }
        let v = raw.pointee
        return .success(DRMVersion(
            name: text(v.name, v.name_len), major: Int(v.version_major), minor: Int(v.version_minor),
            patchLevel: Int(v.version_patchlevel), date: text(v.date, v.date_len), description: text(v.desc, v.desc_len)
        ))
    }

    /// libdrm's `drmGetDevices2(0, ...)`: the DRM devices libdrm can describe from sysfs.
    package static func drmGetDevices() -> Result<[DRMBusDevice], Errno> {
        if let outcome = intercepted(.drmGetDevices) {
            switch outcome {
            case .perform: break
            case .value(let devices as [DRMBusDevice]): return .success(devices)
            case .fails(let errno): return .failure(errno)
            default: preconditionFailure("interceptor answered drmGetDevices2 with a value of the wrong kind")
            }
        }
        let count = drmGetDevices2(0, nil, 0)
        if count < 0 { return .failure(Errno(rawValue: -count)) }
        if count == 0 { return .success([]) }
        var pointers = [drmDevicePtr?](repeating: nil, count: Int(count))
        let filled = drmGetDevices2(0, &pointers, count)
        if filled < 0 { return .failure(Errno(rawValue: -filled)) }
        defer { drmFreeDevices(&pointers, filled) }
        var devices: [DRMBusDevice] = []
        for index in 0..<Int(filled) {
            guard let device = pointers[index]?.pointee else { continue }
            var nodes: [String: String] = [:]
            for (bit, kind) in [(DRM_NODE_PRIMARY, "primary"), (DRM_NODE_RENDER, "render")] {
                if device.available_nodes & (1 << bit) != 0, let node = device.nodes[Int(bit)] {
                    nodes[kind] = String(cString: node)
                }
            }
            var bus = "other"
            var pciAddress: String?
            var pciID: String?
            switch device.bustype {
            case DRM_BUS_PCI:
                bus = "pci"
                if let info = device.businfo.pci?.pointee {
                    pciAddress = pciSlotName(domain: Int(info.domain), bus: Int(info.bus), device: Int(info.dev), function: Int(info.func))
                }
                if let ids = device.deviceinfo.pci?.pointee {
                    pciID = hex4(Int(ids.vendor_id)) + ":" + hex4(Int(ids.device_id))
                }
            case DRM_BUS_PLATFORM: bus = "platform"
            case DRM_BUS_USB: bus = "usb"
            case DRM_BUS_HOST1X: bus = "host1x"
            default: break
            }
            devices.append(DRMBusDevice(primaryNode: nodes["primary"], renderNode: nodes["render"], bus: bus, pciAddress: pciAddress, pciID: pciID))
        }
        return .success(devices)
    }

}

func hex4(_ value: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

func pciSlotName(domain: Int, bus: Int, device: Int, function: Int) -> String {
    func hex(_ value: Int, _ width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    return "\(hex(domain, 4)):\(hex(bus, 2)):\(hex(device, 2)).\(function)"
}
