import CLibDRM
import DMACore
import Glibc

/// A DRM driver's identity, as `DRM_IOCTL_VERSION` reports it (libdrm's `drmGetVersion`,
/// `drivers/gpu/drm/drm_ioctl.c`, `drm_version`).
public struct DRMVersion: Sendable, Hashable, Codable {
    /// The driver's name: `vgem`, `virtio_gpu`, `amdgpu`, `i915`, `nvidia-drm`.
    public var name: String
    /// The driver's major version.
    public var major: Int
    /// The driver's minor version.
    public var minor: Int
    /// The driver's patch level.
    public var patchLevel: Int
    /// The driver's date string.
    public var date: String
    /// The driver's description.
    public var description: String

    /// Creates a version record.
    public init(name: String, major: Int, minor: Int, patchLevel: Int, date: String = "", description: String = "") {
        self.name = name
        self.major = major
        self.minor = minor
        self.patchLevel = patchLevel
        self.date = date
        self.description = description
    }
}

/// A DRM device as libdrm's `drmGetDevices2` describes it from sysfs: its nodes and its bus.
public struct DRMBusDevice: Sendable, Hashable, Codable {
    /// The primary node (`/dev/dri/cardN`), which allows modesetting and dumb buffers.
    public var primaryNode: String?
    /// The render node (`/dev/dri/renderDN`), for unprivileged rendering and PRIME.
    public var renderNode: String?
    /// `pci`, `platform` (vgem), `usb`, `host1x`, `other`, or `unknown` for a node found in
    /// `/dev/dri` that `drmGetDevices2` does not describe (it leaves out devices whose sysfs it
    /// cannot parse, for example on a bus newer than the installed libdrm).
    public var bus: String
    /// The PCI address (`0000:00:02.0`) for a PCI device.
    public var pciAddress: String?
    /// The PCI vendor and device IDs (`1af4:1050`) for a PCI device.
    public var pciID: String?

    /// Creates a device record.
    public init(primaryNode: String?, renderNode: String?, bus: String, pciAddress: String? = nil, pciID: String? = nil) {
        self.primaryNode = primaryNode
        self.renderNode = renderNode
        self.bus = bus
        self.pciAddress = pciAddress
        self.pciID = pciID
    }
}

/// A DRM device with its driver, as ``DRM/devices(devRoot:)`` reports it.
public struct DRMDevice: Sendable, Hashable, Codable {
    /// The nodes and bus.
    public var bus: DRMBusDevice
    /// The driver, read by opening a node (`drmGetVersion`); `nil` when no node could be opened.
    public var driver: DRMVersion?
    /// Why the driver could not be read, if it could not.
    public var error: String?
}

/// DRM device enumeration (libdrm's `drmGetDevices2`, `drmGetVersion`).
public enum DRM {
    /// Every DRM device: those `drmGetDevices2` describes, plus any node in `DEVROOT/dri` it
    /// skipped, each with its driver read through a node. A missing `/dev/dri` gives an empty list.
    ///
    /// - Complexity: one open and one `DRM_IOCTL_VERSION` pair per device.
    public static func devices(devRoot: String = "/dev") -> [DRMDevice] {
        var described = (try? SystemCalls.drmGetDevices().get()) ?? []
        // drmGetDevices2 reports nodes under /dev/dri; map them under devRoot for a test's tree.
        if devRoot != "/dev" {
            described = described.map { device in
                var device = device
                device.primaryNode = device.primaryNode.map { devRoot + $0.dropFirst("/dev".count) }
                device.renderNode = device.renderNode.map { devRoot + $0.dropFirst("/dev".count) }
                return device
            }
        }
        let known = Set(described.flatMap { [$0.primaryNode, $0.renderNode].compactMap { $0 } })
        let names = ((try? SystemCalls.listDirectory("\(devRoot)/dri").get()) ?? []).sorted(by: nodeOrder)
        for name in names where name.hasPrefix("card") || name.hasPrefix("renderD") {
            let path = "\(devRoot)/dri/\(name)"
            if known.contains(path) { continue }
            if name.hasPrefix("card") {
                described.append(DRMBusDevice(primaryNode: path, renderNode: nil, bus: "unknown"))
            } else {
                described.append(DRMBusDevice(primaryNode: nil, renderNode: path, bus: "unknown"))
            }
        }
        return described.map { bus in
            guard let path = bus.primaryNode ?? bus.renderNode else {
                return DRMDevice(bus: bus, driver: nil, error: "no node")
            }
            do throws(DMAError) {
                let node = try DRMNode(path: path)
                return DRMDevice(bus: bus, driver: try node.version(), error: nil)
            } catch {
                return DRMDevice(bus: bus, driver: nil, error: error.description)
            }
        }
    }

    /// Opens the primary node (or, with `render`, the render node) of the first device whose
    /// driver is `driver`; `nil` when no such device exists. Select by driver, never by number:
    /// card numbers depend on the order drivers load.
    public static func open(driver: String, render: Bool = false, devRoot: String = "/dev") throws(DMAError) -> DRMNode? {
        for device in devices(devRoot: devRoot) where device.driver?.name == driver {
            if let path = render ? device.bus.renderNode : device.bus.primaryNode {
                return try DRMNode(path: path)
            }
        }
        return nil
    }

    static func nodeOrder(_ a: String, _ b: String) -> Bool {
        func split(_ s: String) -> (String, Int) {
            let digits = s.reversed().prefix(while: { $0.isNumber })
            return (String(s.dropLast(digits.count)), Int(String(digits.reversed())) ?? 0)
        }
        let (pa, na) = split(a), (pb, nb) = split(b)
        return pa == pb ? na < nb : pa < pb
    }
}

/// A GEM buffer object handle, local to one open DRM node (`drivers/gpu/drm/drm_gem.c`).
public struct GEMHandle: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt32
    /// Wraps a handle number.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public var description: String { "handle \(rawValue)" }
}

/// A dumb buffer (`DRM_IOCTL_MODE_CREATE_DUMB`, `drivers/gpu/drm/drm_dumb_buffers.c`): a linear
/// buffer any KMS driver can allocate, here the simplest way to get GEM memory to export.
public struct DumbBuffer: Sendable, Hashable {
    /// The GEM handle on the node that created it.
    public var handle: GEMHandle
    /// The bytes per row the driver chose.
    public var pitch: Int
    /// The size in bytes the driver allocated.
    public var size: Int
}

/// An open DRM node (`/dev/dri/cardN` or `renderDN`) that this value owns: closed exactly once when
/// it is destroyed, which also releases every GEM handle still open on it.
public struct DRMNode: ~Copyable {
    let fd: OwnedFD
    /// The node's path.
    public let path: String

    /// The descriptor number; valid while this value lives.
    public var rawValue: Int32 { fd.rawValue }

    /// Opens a node read-write (`open(O_RDWR | O_CLOEXEC)`).
    public init(path: String) throws(DMAError) {
        switch SystemCalls.open(path, O_RDWR) {
        case .success(let fd): self.fd = OwnedFD(fd)
        case .failure(let errno): throw .systemCall("open(\(path))", errno)
        }
        self.path = path
    }

    /// The driver's name and version (`drmGetVersion`, `DRM_IOCTL_VERSION`).
    public func version() throws(DMAError) -> DRMVersion {
        switch SystemCalls.drmGetVersion(rawValue) {
        case .success(let version): return version
        case .failure(let errno): throw .systemCall("drmGetVersion(\(path))", errno)
        }
    }

    /// `DRM_IOCTL_MODE_CREATE_DUMB`. `drm_mode_create_dumb` refuses a zero width, height or bpp and
    /// sizes that overflow with EINVAL; those are refused here before the call.
    public func createDumbBuffer(width: Int, height: Int, bitsPerPixel: Int) throws(DMAError) -> DumbBuffer {
        let pitch = (width.multipliedReportingOverflow(by: bitsPerPixel).partialValue + 7) / 8
        if width <= 0 || height <= 0 || bitsPerPixel <= 0 || width > Int(UInt32.max) || height > Int(UInt32.max)
            || bitsPerPixel > Int(UInt32.max) || width.multipliedReportingOverflow(by: bitsPerPixel).overflow
            || pitch > Int(UInt32.max) || pitch.multipliedReportingOverflow(by: height).overflow
            || pitch * height > Int(UInt32.max)
        {
            throw .refused("DRM_IOCTL_MODE_CREATE_DUMB", .EINVAL, "width \(width), height \(height) and bpp \(bitsPerPixel) must be non-zero and their size must fit 32 bits")
        }
        var request = drm_mode_create_dumb()
        request.width = UInt32(width)
        request.height = UInt32(height)
        request.bpp = UInt32(bitsPerPixel)
        if case .failure(let errno) = SystemCalls.ioctl(rawValue, .createDumb, &request) {
            throw .systemCall("ioctl(\(path), DRM_IOCTL_MODE_CREATE_DUMB \(width)x\(height)x\(bitsPerPixel))", errno)
        }
        return DumbBuffer(handle: GEMHandle(rawValue: request.handle), pitch: Int(request.pitch), size: Int(request.size))
    }

    /// `DRM_IOCTL_MODE_DESTROY_DUMB`: drops the handle of a dumb buffer.
    public func destroyDumbBuffer(_ handle: GEMHandle) throws(DMAError) {
        var request = drm_mode_destroy_dumb(handle: handle.rawValue)
        if case .failure(let errno) = SystemCalls.ioctl(rawValue, .destroyDumb, &request) {
            throw .systemCall("ioctl(\(path), DRM_IOCTL_MODE_DESTROY_DUMB, \(handle))", errno)
        }
    }

    /// `DRM_IOCTL_GEM_CLOSE`: drops a GEM handle (an imported buffer's, for instance).
    public func closeHandle(_ handle: GEMHandle) throws(DMAError) {
        var request = drm_gem_close(handle: handle.rawValue, pad: 0)
        if case .failure(let errno) = SystemCalls.ioctl(rawValue, .gemClose, &request) {
            throw .systemCall("ioctl(\(path), DRM_IOCTL_GEM_CLOSE, \(handle))", errno)
        }
    }

    /// PRIME export (`DRM_IOCTL_PRIME_HANDLE_TO_FD`, `drm_prime_handle_to_fd_ioctl`): the GEM object
    /// as a dma-buf fd, with `DRM_CLOEXEC` and, when `writable`, `DRM_RDWR` (needed for a writable
    /// mmap). Exporting the same object again gives the same dma-buf (same inode).
    public func exportDMABuf(_ handle: GEMHandle, writable: Bool = true) throws(DMAError) -> DMABufFD {
        var request = drm_prime_handle()
        request.handle = handle.rawValue
        request.flags = UInt32(DRM_CLOEXEC) | (writable ? UInt32(DRM_RDWR) : 0)
        request.fd = -1
        if case .failure(let errno) = SystemCalls.ioctl(rawValue, .primeHandleToFD, &request) {
            throw .systemCall("ioctl(\(path), DRM_IOCTL_PRIME_HANDLE_TO_FD, \(handle))", errno)
        }
        return DMABufFD(adopting: request.fd)
    }

    /// PRIME import (`DRM_IOCTL_PRIME_FD_TO_HANDLE`, `drm_prime_fd_to_handle_ioctl`): a GEM handle on
    /// this node for the dma-buf. A buffer this node exported comes back as its own handle; a
    /// foreign one is attached through the driver's `gem_prime_import`. A driver that cannot
    /// import foreign buffers answers ENODEV (virtio-gpu on 6.1 to 6.12).
    public func importDMABuf(_ buffer: borrowing DMABufFD) throws(DMAError) -> GEMHandle {
        var request = drm_prime_handle()
        request.fd = buffer.rawValue
        if case .failure(let errno) = SystemCalls.ioctl(rawValue, .primeFDToHandle, &request) {
            throw .systemCall("ioctl(\(path), DRM_IOCTL_PRIME_FD_TO_HANDLE, fd \(buffer.rawValue))", errno)
        }
        return GEMHandle(rawValue: request.handle)
    }
}
