import CLibDRM
import DMACore
import Glibc

/// A PCI function opened through VFIO the classic way (`Documentation/driver-api/vfio.rst`): its
/// IOMMU group's `/dev/vfio/N`, a container with the type-1 v2 IOMMU, and the device fd
/// (`VFIO_GROUP_GET_DEVICE_FD`). The function must already be bound to `vfio-pci` (see
/// ``bindToVFIOPCI(device:sysfs:)``). Closing it is VFIO's "device closed", which revokes every
/// dma-buf exported from it (`vfio_pci_dma_buf_cleanup`, 7.1 on).
public struct VFIODevice: ~Copyable {
    /// The request numbers of `include/uapi/linux/vfio.h`, from the uapi header (CLibDRM's shim).
    enum Request {
        static let setIOMMU = IoctlRequest("VFIO_SET_IOMMU", dmabufkit_VFIO_SET_IOMMU())
        static let groupSetContainer = IoctlRequest("VFIO_GROUP_SET_CONTAINER", dmabufkit_VFIO_GROUP_SET_CONTAINER())
        static let groupGetDeviceFD = IoctlRequest("VFIO_GROUP_GET_DEVICE_FD", dmabufkit_VFIO_GROUP_GET_DEVICE_FD())
        static let deviceReset = IoctlRequest("VFIO_DEVICE_RESET", dmabufkit_VFIO_DEVICE_RESET())
        static let deviceFeature = IoctlRequest("VFIO_DEVICE_FEATURE", dmabufkit_VFIO_DEVICE_FEATURE())
    }

    /// `VFIO_TYPE1v2_IOMMU`.
    static let type1v2IOMMU = Int(dmabufkit_VFIO_TYPE1v2_IOMMU())
    /// `VFIO_DEVICE_FEATURE_GET`: read a feature (an export is a GET).
    public static let featureGet = dmabufkit_VFIO_DEVICE_FEATURE_GET()
    /// `VFIO_DEVICE_FEATURE_SET`.
    public static let featureSet = dmabufkit_VFIO_DEVICE_FEATURE_SET()
    /// `VFIO_DEVICE_FEATURE_PROBE`.
    public static let featureProbe = dmabufkit_VFIO_DEVICE_FEATURE_PROBE()
    /// `VFIO_DEVICE_FEATURE_DMA_BUF` (6.19).
    public static let featureDMABuf = dmabufkit_VFIO_DEVICE_FEATURE_DMA_BUF()

    /// The function (`0000:00:05.0`).
    public let device: String
    private let container: Int32
    private let group: Int32
    private let fd: Int32

    /// Opens the function's group and device.
    /// - Throws: `ENOENT` when it has no IOMMU group (no IOMMU, and no-IOMMU mode is off);
    ///   the errno of each step otherwise (`EPERM` from `VFIO_SET_IOMMU` without interrupt
    ///   remapping unless `vfio_iommu_type1.allow_unsafe_interrupts=1`).
    public init(device: String, sysfs: String = "/sys", devices: String = "/dev") throws(DMAError) {
        self.device = device
        guard case .success(let link) = SystemCalls.readLink("\(sysfs)/bus/pci/devices/\(device)/iommu_group"),
            let groupNumber = link.split(separator: "/").last
        else {
            throw DMAError(.notFound, .ENOENT, "\(device) has no IOMMU group (boot with an IOMMU, intel_iommu=on)")
        }
        let container = try Self.open("\(devices)/vfio/vfio", "the VFIO container")
        let group: Int32
        do { group = try Self.open("\(devices)/vfio/\(groupNumber)", "IOMMU group \(groupNumber)") } catch {
            _ = SystemCalls.close(container)
            throw error
        }
        var containerFD = container
        var failure: DMAError?
        if case .failure(let errno) = SystemCalls.ioctl(group, Request.groupSetContainer, &containerFD) {
            failure = DMAError(.notSupported, errno, "VFIO_GROUP_SET_CONTAINER for group \(groupNumber) failed (\(errno.name))")
        } else if case .failure(let errno) = SystemCalls.ioctl(container, Request.setIOMMU, UnsafeMutableRawPointer(bitPattern: Self.type1v2IOMMU)) {
            failure = DMAError(.notSupported, errno, "VFIO_SET_IOMMU(TYPE1v2) failed (\(errno.name)); without interrupt remapping load vfio_iommu_type1 with allow_unsafe_interrupts=1")
        }
        var deviceFD: Int32 = -1
        if failure == nil {
            var name = Array(device.utf8CString)
            switch name.withUnsafeMutableBytes({ SystemCalls.ioctl(group, Request.groupGetDeviceFD, $0.baseAddress) }) {
            case .success(let opened): deviceFD = opened
            case .failure(let errno): failure = DMAError(.notFound, errno, "VFIO_GROUP_GET_DEVICE_FD(\(device)) failed (\(errno.name)): is it bound to vfio-pci?")
            }
        }
        if let failure {
            _ = SystemCalls.close(group)
            _ = SystemCalls.close(container)
            throw failure
        }
        self.container = container
        self.group = group
        self.fd = deviceFD
    }

    /// `VFIO_DEVICE_FEATURE` with `VFIO_DEVICE_FEATURE_DMA_BUF`: exports BAR ranges as a dma-buf.
    /// Every field is passed as given, so bad input reaches the kernel's own checks.
    /// - Parameters:
    ///   - region: `region_index`, the BAR (0…5; 6 is the ROM, 7 the config space).
    ///   - ranges: the `(offset, length)` ranges within the BAR, as `struct vfio_region_dma_range`.
    ///   - flags: the export's `flags` field, which must be 0.
    ///   - openFlags: `open_flags` of the new fd (`O_RDWR | O_CLOEXEC` by default).
    ///   - featureFlags: the `vfio_device_feature` flags besides the feature number (GET for an export).
    ///   - rangeCount: `nr_ranges` as told to the kernel; `nil` means `ranges.count`.
    /// - Returns: the exported dma-buf, or the kernel's errno.
    public func exportDMABuf(
        region: UInt32, ranges: [(offset: UInt64, length: UInt64)], flags: UInt32 = 0, openFlags: UInt32 = UInt32(O_RDWR | O_CLOEXEC),
        featureFlags: UInt32 = VFIODevice.featureGet, rangeCount: UInt32? = nil
    ) -> Result<DMABufFD, Errno> {
        // struct vfio_device_feature { u32 argsz, flags; } then struct vfio_device_feature_dma_buf
        // { u32 region_index, open_flags, flags, nr_ranges; } then nr_ranges x { u64 offset, length }.
        let size = 8 + 16 + 16 * ranges.count
        var words = [UInt32](repeating: 0, count: size / 4)
        words[0] = UInt32(size)
        words[1] = featureFlags | Self.featureDMABuf
        words[2] = region
        words[3] = openFlags
        words[4] = flags
        words[5] = rangeCount ?? UInt32(ranges.count)
        for (index, range) in ranges.enumerated() {
            let base = 6 + index * 4
            words[base] = UInt32(truncatingIfNeeded: range.offset)
            words[base + 1] = UInt32(truncatingIfNeeded: range.offset >> 32)
            words[base + 2] = UInt32(truncatingIfNeeded: range.length)
            words[base + 3] = UInt32(truncatingIfNeeded: range.length >> 32)
        }
        let result = words.withUnsafeMutableBytes { SystemCalls.ioctl(fd, Request.deviceFeature, $0.baseAddress) }
        return result.map { DMABufFD(adopting: $0) }
    }

    /// Where a region starts in the device fd's file offsets: vfio-pci puts region N at N << 40
    /// (`VFIO_PCI_INDEX_TO_OFFSET`, `drivers/vfio/pci/vfio_pci_priv.h`); the config space is region 7.
    static func regionOffset(_ index: Int) -> Int64 { Int64(index) << 40 }

    /// Reads bytes of a region (a BAR, or the config space, 7) through the device fd.
    /// - Returns: the bytes, or the kernel's errno (`EIO` for a BAR while memory decoding is off).
    public func readRegion(_ index: Int, offset: Int64, count: Int) -> Result<[UInt8], Errno> {
        var bytes = [UInt8](repeating: 0, count: count)
        return bytes.withUnsafeMutableBytes { SystemCalls.pread(fd, $0, Self.regionOffset(index) + offset) }.map { Array(bytes.prefix($0)) }
    }

    /// Writes bytes of a region through the device fd.
    public func writeRegion(_ index: Int, offset: Int64, _ bytes: [UInt8]) -> Result<Void, Errno> {
        bytes.withUnsafeBytes { SystemCalls.pwrite(fd, $0, Self.regionOffset(index) + offset) }.map { _ in () }
    }

    /// Turns memory decoding on or off (`PCI_COMMAND_MEMORY`, bit 1 of the command register at
    /// config offset 4). Off revokes every dma-buf of the device (`vfio_pci_dma_buf_move`, 7.1 on).
    public func setMemoryEnabled(_ enabled: Bool) -> Result<Void, Errno> {
        readRegion(7, offset: 4, count: 2).flatMap { command in
            guard command.count == 2 else { return .failure(.EIO) }
            let value = (UInt16(command[0]) | UInt16(command[1]) << 8) & ~2 | (enabled ? 2 : 0)
            return writeRegion(7, offset: 4, [UInt8(value & 0xff), UInt8(value >> 8)])
        }
    }

    /// `VFIO_DEVICE_RESET`: a function-level or bus reset, which revokes the device's dma-bufs
    /// while it runs and restores them after (`vfio_pci_zap_and_down_write_memory_lock`).
    public func reset() -> Result<Void, Errno> {
        SystemCalls.ioctl(fd, Request.deviceReset, nil).map { _ in () }
    }

    deinit {
        _ = SystemCalls.close(fd)
        _ = SystemCalls.close(group)
        _ = SystemCalls.close(container)
    }

    private static func open(_ path: String, _ what: String) throws(DMAError) -> Int32 {
        switch SystemCalls.open(path, O_RDWR) {
        case .success(let fd): return fd
        case .failure(let errno): throw DMAError(.notFound, errno, "cannot open \(what), \(path) (\(errno.name))")
        }
    }

    /// Binds an unbound (or driver-bound) function to `vfio-pci`: `driver_override`, unbind from
    /// its driver, `drivers_probe` (`Documentation/ABI/testing/sysfs-bus-pci`).
    /// - Throws: the errno of the first write that failed (`ENODEV` when vfio-pci is not loaded).
    public static func bindToVFIOPCI(device: String, sysfs: String = "/sys") throws(DMAError) {
        let folder = "\(sysfs)/bus/pci/devices/\(device)"
        if case .success = SystemCalls.readLink("\(folder)/driver") {
            try write("\(folder)/driver/unbind", device)
        }
        try write("\(folder)/driver_override", "vfio-pci")
        try write("\(sysfs)/bus/pci/drivers_probe", device)
        guard case .success(let driver) = SystemCalls.readLink("\(folder)/driver"), driver.hasSuffix("/vfio-pci") else {
            throw DMAError(.noDevice, .ENODEV, "\(device) did not bind to vfio-pci (is the module loaded?)")
        }
    }

    private static func write(_ path: String, _ text: String) throws(DMAError) {
        if case .failure(let errno) = SystemCalls.writeText(path, text) {
            throw DMAError(.notSupported, errno, "writing '\(text)' to \(path) failed (\(errno.name))")
        }
    }
}
