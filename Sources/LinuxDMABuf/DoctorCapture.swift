import DMACore
import Glibc

/// `dmabuf doctor --capture DIR`: copies the files the doctor reads from a machine into a folder
/// with `sys/`, `proc/` and `boot/`, so that `dmabuf doctor --root DIR` gives the same diagnosis
/// elsewhere. Links stay links (with the machine's own relative text), so the copy has the shape
/// of sysfs; `/proc/kallsyms` is copied only when no configuration file exists, and then only
/// the lines of the symbols the doctor looks for. The kernel log is kept only in its lines about
/// memory encryption (`dmesg.txt` at the top of the copy), or, when it could not be read, the
/// errno's name (`dmesg.unreadable`); `/dev/tdx_guest` and `/dev/sev-guest` become empty files.
public enum DoctorCapture {
    /// The attributes of a PCI function the topology loader and the doctor read (`driver_name`
    /// is not sysfs's: copies made before links could be kept hold the driver's name there).
    static let deviceFiles = [
        "vendor", "device", "class", "subsystem_vendor", "subsystem_device", "revision", "config", "resource", "dma_mask_bits",
        "numa_node", "driver_name",
    ]

    /// Copies the facts of `source` (the live machine by default) into `destination`.
    /// - Parameters:
    ///   - source: the machine read.
    ///   - destination: the folder written (created when missing).
    /// - Returns: how many files and links were written.
    /// - Throws: the errno of a folder or file that could not be created in `destination`.
    @discardableResult
    public static func capture(from source: DoctorRoot = .live, to destination: String) throws(DMAError) -> Int {
        var writer = Writer(source: source, destination: DoctorRoot(destination))
        try writer.makeFolder("/")
        for file in ["/proc/sys/kernel/osrelease", "/proc/cmdline", "/proc/cpuinfo", "/proc/modules", "/proc/driver/nvidia/version", "/proc/config.gz"] {
            try writer.copyFile(file)
        }
        if let release = source.text("/proc/sys/kernel/osrelease") { try writer.copyFile("/boot/config-\(release)") }
        if !source.exists("/proc/config.gz"), let release = source.text("/proc/sys/kernel/osrelease"), !source.exists("/boot/config-\(release)"),
            let symbols = source.text("/proc/kallsyms", limit: 256 << 20)
        {
            let kept = symbols.split(separator: "\n").filter { $0.hasSuffix(" " + DoctorFacts.p2pdmaSymbol) }
            try writer.write("/proc/kallsyms", kept.joined(separator: "\n") + "\n")
        }
        for device in source.list("/sys/bus/pci/devices") {
            let link = "/sys/bus/pci/devices/\(device)"
            guard case .success(let text) = SystemCalls.readLink(source.file(link)) else { continue }
            let folder = resolve(text, from: "/sys/bus/pci/devices")
            try writer.makeFolder(folder)
            try writer.copyLink(link)
            for name in deviceFiles { try writer.copyFile(folder + "/" + name) }
            try writer.copyLink(folder + "/driver")
            if try writer.copyLink(folder + "/iommu_group"), case .success(let group) = SystemCalls.readLink(source.file(folder + "/iommu_group")) {
                let groupFolder = resolve(group, from: folder)
                try writer.makeFolder(groupFolder)
                try writer.copyFile(groupFolder + "/type")
            }
            if source.exists(folder + "/p2pmem") {
                try writer.makeFolder(folder + "/p2pmem")
                for name in ["size", "available", "published"] { try writer.copyFile(folder + "/p2pmem/\(name)") }
                // Only its presence matters (mappable); the live file maps device memory.
                if source.exists(folder + "/p2pmem/allocate") { try writer.write(folder + "/p2pmem/allocate", "") }
            }
        }
        for name in source.list("/sys/class/infiniband") {
            // A class entry is a link into /sys/devices (a copy may hold the folder itself).
            let link = "/sys/class/infiniband/\(name)"
            var folder = link
            if case .success(let text) = SystemCalls.readLink(source.file(link)) { folder = resolve(text, from: "/sys/class/infiniband") }
            try writer.makeFolder(folder)
            if folder != link { try writer.copyLink(link) }
            try writer.copyLink(folder + "/device")
            try writer.copyFile(folder + "/parent")
        }
        if source.exists("/sys/kernel/mm/memory_peers") { try writer.makeFolder("/sys/kernel/mm/memory_peers") }
        // Confidential computing: the markers, and the kernel log's lines that say something about
        // memory encryption (or why the log could not be read), so --root judges the same.
        for file in DoctorConfidential.files { try writer.copyFile(file) }
        for folder in DoctorConfidential.folders where source.exists(folder) { try writer.makeFolder(folder) }
        // A device node cannot be copied; an empty file stands for it (only its presence is read).
        for node in DoctorConfidential.deviceNodes where source.exists(node) { try writer.write(node, "") }
        switch DoctorConfidential.kernelLog(source) {
        case .lines(let lines): try writer.write(DoctorConfidential.logFile, lines.map { $0 + "\n" }.joined())
        case .unreadable(let errno): try writer.write(DoctorConfidential.unreadableLogFile, errno + "\n")
        case .notCaptured: break
        }
        return writer.written
    }

    /// A link's text resolved against the folder holding the link, without touching the disk.
    static func resolve(_ text: String, from folder: String) -> String {
        var parts = text.hasPrefix("/") ? [] : folder.split(separator: "/").map(String.init)
        for part in text.split(separator: "/") {
            if part == ".." { if !parts.isEmpty { parts.removeLast() } } else if part != "." { parts.append(String(part)) }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Writes below the destination root.
    struct Writer {
        let source: DoctorRoot
        let destination: DoctorRoot
        var written = 0

        func makeFolder(_ absolute: String) throws(DMAError) {
            var path = ""
            for part in destination.file(absolute).split(separator: "/", omittingEmptySubsequences: true) {
                path += "/" + part
                if mkdir(path, 0o755) != 0, Glibc.errno != EEXIST {
                    let errno = Errno(rawValue: Glibc.errno)
                    throw DMAError(.invalidArgument, errno, "\(path): cannot create the folder (\(errno.name))")
                }
            }
        }

        /// Copies a file when the source has it (a sysfs attribute reads to its end).
        mutating func copyFile(_ absolute: String) throws(DMAError) {
            guard case .success(let bytes) = SystemCalls.readFile(source.file(absolute), limit: 256 << 20) else { return }
            try write(absolute, bytes)
        }

        mutating func write(_ absolute: String, _ text: String) throws(DMAError) { try write(absolute, Array(text.utf8)) }

        mutating func write(_ absolute: String, _ bytes: [UInt8]) throws(DMAError) {
            try makeFolder(String(absolute[..<(absolute.lastIndex(of: "/") ?? absolute.startIndex)]))
            let path = destination.file(absolute)
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                let errno = Errno(rawValue: Glibc.errno)
                throw DMAError(.invalidArgument, errno, "\(path): cannot create the file (\(errno.name))")
            }
            defer { close(fd) }
            var done = 0
            while done < bytes.count {
                let count = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if count < 0 {
                    if Glibc.errno == EINTR { continue }
                    let errno = Errno(rawValue: Glibc.errno)
                    throw DMAError(.invalidArgument, errno, "\(path): cannot write (\(errno.name))")
                }
                done += count
            }
            written += 1
        }

        /// Copies a link's text when the source has the link; whether it did.
        @discardableResult
        mutating func copyLink(_ absolute: String) throws(DMAError) -> Bool {
            guard case .success(let text) = SystemCalls.readLink(source.file(absolute)) else { return false }
            try makeFolder(String(absolute[..<(absolute.lastIndex(of: "/") ?? absolute.startIndex)]))
            let path = destination.file(absolute)
            unlink(path)
            guard symlink(text, path) == 0 else {
                let errno = Errno(rawValue: Glibc.errno)
                throw DMAError(.invalidArgument, errno, "\(path): cannot create the link (\(errno.name))")
            }
            written += 1
            return true
        }
    }
}
