import DMACore

/// Reads a PCI topology from a sysfs tree: `/sys`, or a copy of it with `bus/pci/devices/*` links
/// into `devices/pci*/...` (`drivers/pci/pci-sysfs.c` writes the files read here).
///
/// The parent of a device is the PCI device whose folder encloses it; its host bridge is the
/// `pciDDDD:BB` folder. A link may be a real symbolic link or, in copies made by tools that do not
/// keep links, a file holding the link's text. Per device: `vendor`, `device`, `class`, `config`
/// and `resource` are required; `dma_mask_bits`, `numa_node` and the driver are read when there.
///
/// Every file is read as the kernel sizes it (at most a page, `SysfsFiles.attributeLimit`) and
/// opened without blocking; a file that is not a regular file (a FIFO, `/dev/zero`, a folder), one
/// that is longer, and a link or device folder that resolves outside the tree are refused with an
/// error naming the file, the reason and the errno, before anything is read from them.
public enum SysfsTopologyLoader {
    /// Loads the tree under `root`.
    /// - Throws: ``InputFileError`` naming the file for a missing, unparseable or refused file
    ///   (not a regular file, too long), a link out of the tree, or an inconsistent tree; a 64-byte `config` (a non-root read) is a warning
    ///   in the topology instead, with ACS taken as unknown.
    /// - Note: `progress` is called after each device with (devices read, devices in all), for a
    ///   progress line on large trees.
    public static func load(root: String, cpu: CPUInfo, progress: ((Int, Int) -> Void)? = nil) throws(InputFileError) -> PCITopology {
        try InputFileError.loading(root) { try loadChecked(root: root, cpu: cpu, progress: progress) }
    }

    private static func loadChecked(root: String, cpu: CPUInfo, progress: ((Int, Int) -> Void)?) throws -> PCITopology {
        let rootPath = SysfsFiles.standardize(root)
        let devicesDir = rootPath == "/" ? "/bus/pci/devices" : rootPath + "/bus/pci/devices"
        let treeDir = rootPath == "/" ? "/devices" : rootPath + "/devices"
        guard let entries = SysfsFiles.list(devicesDir) else {
            throw InputFileError(file: devicesDir, "cannot list PCI devices: no such folder (is this a sysfs tree?)")
        }
        // Where the tree really is: links and device folders must resolve below it.
        let realRoot = SysfsFiles.realPath(rootPath) ?? rootPath
        let realTree = SysfsFiles.realPath(treeDir) ?? treeDir
        var functions: [PCIFunction] = []
        var folders: [PCIAddress: String] = [:]
        var warnings: [String] = []
        let total = entries.count
        for (done, entry) in entries.sorted().enumerated() {
            progress?(done, total)
            let entryPath = devicesDir + "/" + entry
            let address: PCIAddress
            do { address = try PCIAddress(parsing: entry) } catch {
                throw InputFileError(file: entryPath, "'\(printable(entry))' is not a PCI address")
            }
            let linkText: String
            if let target = SysfsFiles.readLink(entryPath) {
                linkText = target
            } else if let bytes = try refusing(entryPath, { () throws(SysfsFiles.Refusal) in try SysfsFiles.read(entryPath) }),
                !bytes.isEmpty, !bytes.contains(0),
                String(validating: bytes, as: UTF8.self) != nil
            {
                linkText = SysfsFiles.text(bytes)
            } else {
                throw InputFileError(file: entryPath, "neither a link nor a file holding a link into devices/")
            }
            let target = SysfsFiles.standardize(linkText, relativeTo: devicesDir)
            guard target.hasPrefix(treeDir + "/") else {
                throw InputFileError(file: entryPath, "the link '\(printable(linkText))' points outside the tree (\(printable(target)))")
            }
            let components = target.dropFirst(treeDir.count + 1).split(separator: "/").map(String.init)
            // The last host bridge on the path: an Intel VMD endpoint opens a PCI domain of its own
            // below it (`.../0000:00:05.0/pci10000:e0/10000:e0:00.0`), whose root bus has no
            // upstream bridge and whose host bridge is `pci10000:e0` (`drivers/pci/controller/vmd.c`).
            guard let hostIndex = components.lastIndex(where: isHostBridgeName) else {
                throw InputFileError(file: entryPath, "the link '\(printable(linkText))' does not lead through a pciDDDD:BB host bridge folder")
            }
            guard components.last == entry else {
                throw InputFileError(file: entryPath, "the link '\(printable(linkText))' ends in '\(printable(components.last ?? ""))', not in \(printable(entry))")
            }
            let enclosing = components[(hostIndex + 1)..<(components.count - 1)].compactMap { try? PCIAddress(parsing: $0) }
            let dir = target
            guard let folder = SysfsFiles.Folder(dir) else {
                throw InputFileError(file: entryPath, "the link '\(printable(linkText))' leads to \(printable(dir)), which is not a folder")
            }
            if let real = folder.realPath, !real.hasPrefix(realTree + "/") {
                throw InputFileError(
                    file: dir, errno: .EXDEV, "refused: the device folder resolves outside the tree (to \(real)); a link on the way leaves it")
            }
            let function = try readFunction(
                address: address, folder: folder, dir: dir, tree: realRoot, parent: enclosing.last, hostBridge: components[hostIndex],
                warnings: &warnings)
            functions.append(function)
            folders[address] = dir
        }
        do {
            return try PCITopology(checking: cpu, functions: functions, warnings: warnings)
        } catch {
            // Named at the device's folder (its resource file for a BAR problem).
            let folder = folders[error.address].map { error.inBARs ? $0 + "/resource" : $0 }
            throw InputFileError(file: folder ?? rootPath, error.error)
        }
    }

    /// Whether `name` is a host bridge's folder, `pciDDDD:BB` (`pci%04x:%02x`: a domain of 4 to 8
    /// hexadecimal digits, so VMD's `pci10000:e0` is one).
    static func isHostBridgeName(_ name: String) -> Bool {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        guard name.hasPrefix("pci"), parts.count == 2, (7...11).contains(parts[0].count), parts[1].count == 2 else { return false }
        let hexDigits: (Substring) -> Bool = { $0.allSatisfy { $0.isASCII && $0.isHexDigit } }
        return hexDigits(parts[0].dropFirst(3)) && hexDigits(parts[1])
    }

    /// Runs a bounded read of `path`, turning a refusal into an error that names the file.
    private static func refusing(_ path: String, _ read: () throws(SysfsFiles.Refusal) -> [UInt8]?) throws(InputFileError) -> [UInt8]? {
        do { return try read() } catch { throw InputFileError(file: path, errno: error.errno, "refused: \(error.reason)") }
    }

    /// The bytes of the attribute `name` of the device folder, read bounded (see ``SysfsFiles``).
    private static func attribute(_ folder: borrowing SysfsFiles.Folder, _ dir: String, _ name: String, tree: String) throws -> [UInt8]? {
        do { return try folder.read(name, within: tree) } catch {
            throw InputFileError(file: dir + "/" + name, errno: error.errno, "refused: \(error.reason)")
        }
    }

    private static func readText(
        _ folder: borrowing SysfsFiles.Folder, _ dir: String, _ name: String, tree: String, required: Bool = true
    ) throws -> String? {
        guard let data = try attribute(folder, dir, name, tree: tree) else {
            if required { throw InputFileError(file: dir + "/" + name, "missing or unreadable") }
            return nil
        }
        return SysfsFiles.text(data)
    }

    private static func readHex(_ folder: borrowing SysfsFiles.Folder, _ dir: String, _ name: String, tree: String, max: UInt64)
        throws -> UInt64
    {
        let text = try readText(folder, dir, name, tree: tree)!
        let digits = text.hasPrefix("0x") ? String(text.dropFirst(2)) : text
        guard let value = UInt64(digits, radix: 16), value <= max else {
            throw InputFileError(file: dir + "/" + name, line: 1, "'\(printable(text))' is not a hexadecimal value up to \(hex(max))")
        }
        return value
    }

    private static func readFunction(
        address: PCIAddress, folder: borrowing SysfsFiles.Folder, dir: String, tree: String, parent: PCIAddress?, hostBridge: String,
        warnings: inout [String]
    ) throws -> PCIFunction {
        let vendor = UInt16(try readHex(folder, dir, "vendor", tree: tree, max: 0xffff))
        let device = UInt16(try readHex(folder, dir, "device", tree: tree, max: 0xffff))
        let classCode = UInt32(try readHex(folder, dir, "class", tree: tree, max: 0xff_ffff))
        let configPath = dir + "/config"
        guard let configData = try attribute(folder, dir, "config", tree: tree) else {
            throw InputFileError(file: configPath, "missing or unreadable: the config space is needed for BARs, PCIe port type and ACS")
        }
        let config = ConfigSpace(configData)
        guard config.bytes.count >= 64 else {
            throw InputFileError(file: configPath, "only \(config.bytes.count) bytes; a config space has at least 64")
        }
        if config.bytes.count < ConfigSpace.standardSize {
            warnings.append("config space of \(address) is \(config.bytes.count) bytes: ACS and port type unknown (run as root to read them); its verdicts are conservative")
        }
        let (acs, acsNote) = config.acs
        if let acsNote { warnings.append("\(configPath): \(acsNote)") }
        let capabilityNote = config.capability(ConfigSpace.pcieCapabilityID).note
        if let capabilityNote { warnings.append("\(configPath): \(capabilityNote)") }
        let isBridgeHeader = config.headerType == 1
        let bars = try readBARs(
            try attribute(folder, dir, "resource", tree: tree), dir + "/resource", config: config, count: isBridgeHeader ? 2 : 6)
        let maskText = try readText(folder, dir, "dma_mask_bits", tree: tree, required: false)
        let numaText = try readText(folder, dir, "numa_node", tree: tree, required: false)
        var driver = try readText(folder, dir, "driver_name", tree: tree, required: false)
        if driver == nil, let link = folder.readLink("driver") {
            driver = link.split(separator: "/").last.map(String.init) ?? link
        }
        // The kernel writes fls64 of the mask (0 to 64) and a node number (-1 for none): anything
        // else is refused here, as the YAML loader refuses it, so an export always loads back.
        var maskBits: Int?
        if let maskText {
            guard let bits = Int(maskText), (0...64).contains(bits) else {
                throw InputFileError(
                    file: dir + "/dma_mask_bits", line: 1, "'\(printable(maskText))' is not a number of DMA address bits (0 to 64)")
            }
            maskBits = bits
        }
        var numaNode: Int?
        if let numaText {
            guard let node = Int(numaText), node >= -1, node < 1 << 16 else {
                throw InputFileError(file: dir + "/numa_node", line: 1, "'\(printable(numaText))' is not a NUMA node (-1 for none)")
            }
            numaNode = node
        }
        return PCIFunction(
            address: address, vendor: vendor, device: device, classCode: classCode, parent: parent, hostBridge: hostBridge,
            portType: config.portType, acs: acs, bars: bars, dmaMaskBits: maskBits, numaNode: numaNode, driver: driver)
    }

    /// `IORESOURCE_MEM`, `IORESOURCE_PREFETCH`, `IORESOURCE_MEM_64` (`include/linux/ioport.h`).
    static let resourceMem: UInt64 = 0x200
    static let resourcePrefetch: UInt64 = 0x2000
    static let resourceMem64: UInt64 = 0x10_0000

    private static func readBARs(_ contents: [UInt8]?, _ path: String, config: ConfigSpace, count: Int) throws -> [PCIBAR] {
        guard let data = contents else {
            throw InputFileError(file: path, "missing or unreadable: the BARs are read from it")
        }
        let lines = data.split(separator: 0x0a, omittingEmptySubsequences: true)
        guard lines.count >= 6 else {
            throw InputFileError(file: path, line: lines.count + 1, "truncated: \(lines.count) lines, at least 6 expected (one per BAR)")
        }
        var bars: [PCIBAR] = []
        for index in 0..<count {
            let fields = lines[index].split(separator: 0x20)
            let values = fields.compactMap(SysfsFiles.prefixedHex)
            guard fields.count == 3, values.count == 3 else {
                throw InputFileError(
                    file: path, line: index + 1,
                    "'\(printable(String(decoding: lines[index], as: UTF8.self)))' is not three hexadecimal fields (start end flags)")
            }
            let (start, end, flags) = (values[0], values[1], values[2])
            guard flags & resourceMem != 0 else { continue }
            // A memory BAR the kernel has not placed reads 0 0 (with its flags); one that ends
            // before it starts is nothing the kernel writes (`resource_show`), and is refused.
            guard end >= start else {
                throw InputFileError(file: path, line: index + 1, "BAR \(index) ends (\(hex(end))) before it starts (\(hex(start)))")
            }
            guard end > start || start != 0 else { continue }
            // 0 to 0xffffffffffffffff is 2^64 bytes, one more than a 64-bit size holds.
            let (size, overflow) = (end - start).addingReportingOverflow(1)
            guard !overflow else {
                throw InputFileError(file: path, line: index + 1, "BAR \(index) spans the whole 64-bit address space (\(hex(start))-\(hex(end)))")
            }
            do {
                bars.append(
                    try PCIBAR(
                        index: index, cpuStart: PhysicalAddress(start), size: size,
                        busStart: config.barBusAddress(index) ?? DMAAddress(start), is64Bit: flags & resourceMem64 != 0,
                        prefetchable: flags & resourcePrefetch != 0))
            } catch {
                throw InputFileError(file: path, line: index + 1, error)
            }
        }
        return bars
    }
}
