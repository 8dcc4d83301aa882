import DMACore
import Foundation
import Glibc
@testable import PCI
import Testing

/// Issue [O] class 1: files that never end or are not files. Every attribute of a sysfs tree is
/// replaced by `/dev/zero` (a link), a FIFO and a sparse file of gigabytes; the loader must finish
/// at once with an error naming the file, the reason and the errno, having read nothing unbounded.
@Suite("Hostile sysfs files: /dev/zero, FIFOs, huge sparse files and links out of the tree are refused at once")
struct HostileFileTests {
    enum Kind: String, CaseIterable, Sendable {
        case devZero, fifo, sparse, outsideLink
    }

    static let attributes = ["config", "vendor", "device", "class", "resource", "dma_mask_bits", "numa_node", "driver_name"]

    /// Puts a hostile `kind` where `file` was, and a guard that unblocks a reader stuck on a FIFO
    /// after two seconds (so an unfixed reader fails the time check instead of hanging the suite).
    static func plant(_ kind: Kind, at file: String) throws {
        try? FileManager.default.removeItem(atPath: file)
        switch kind {
        case .devZero:
            try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: "/dev/zero")
        case .outsideLink:
            try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: "/etc/passwd")
        case .fifo:
            #expect(mkfifo(file, 0o600) == 0)
            let path = file
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 2)
                let fd = open(path, O_RDWR | O_NONBLOCK)
                if fd >= 0 { close(fd) }
            }
        case .sparse:
            let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            #expect(fd >= 0)
            #expect(ftruncate(fd, 8 << 30) == 0)  // 8 GiB of holes
            close(fd)
        }
    }

    static func expectedErrno(_ kind: Kind) -> Errno {
        switch kind {
        case .devZero, .outsideLink: .EXDEV
        case .fifo: .EINVAL
        case .sparse: .EFBIG
        }
    }

    static let cases: [(String, Kind)] = attributes.flatMap { name in Kind.allCases.map { (name, $0) } }

    @Test("each attribute as /dev/zero, a FIFO, an 8 GiB sparse file or a link to /etc/passwd", arguments: cases)
    func attribute(_ name: String, _ kind: Kind) throws {
        let b = try BadInputTests.written(after: { try Self.plant(kind, at: $0.devicePath("0000:03:00.0").appendingPathComponent(name).path) })
        defer { b.remove() }
        let start = ContinuousClock.now
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(error?.file.hasSuffix("0000:03:00.0/\(name)") == true)
        #expect(error?.errno == Self.expectedErrno(kind))
        #expect(error?.message.hasPrefix("refused: ") == true)
    }

    @Test("a bus/pci/devices entry that is a FIFO, /dev/zero or a huge file instead of a link", arguments: [Kind.fifo, .devZero, .sparse])
    func deviceEntry(_ kind: Kind) throws {
        let b = try BadInputTests.written(after: {
            try Self.plant(kind, at: $0.root.appendingPathComponent("bus/pci/devices/0000:04:00.0").path)
        })
        defer { b.remove() }
        let start = ContinuousClock.now
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(error?.file.hasSuffix("bus/pci/devices/0000:04:00.0") == true)
        if kind != .devZero {  // a link to /dev/zero is read as a link, and leads outside the tree
            #expect(error?.errno == (kind == .fifo ? .EINVAL : .EFBIG))
        }
    }

    @Test("a device folder reached through a link to a folder outside the tree")
    func folderOutside() throws {
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("outside-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: outside) }
        let b = try BadInputTests.written(after: { b in
            // The switch's upstream port folder is moved outside and linked back: everything below it leaves the tree.
            let inside = b.devicePath("0000:01:00.0")
            try FileManager.default.moveItem(at: inside, to: outside)
            try FileManager.default.createSymbolicLink(atPath: inside.path, withDestinationPath: outside.path)
        })
        defer { b.remove() }
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(error?.errno == .EXDEV)
        #expect(error?.message.contains("outside the tree") == true)
    }

    @Test("a link to a file inside the tree is followed; a link that loops is refused")
    func linkInside() throws {
        let b = try BadInputTests.written(after: { b in
            let vendor = b.devicePath("0000:03:00.0").appendingPathComponent("numa_node").path
            try FileManager.default.removeItem(atPath: vendor)
            try FileManager.default.createSymbolicLink(atPath: vendor, withDestinationPath: "../numa_node")
        })
        defer { b.remove() }
        #expect(try b.load().function(bdf("0000:03:00.0"))?.numaNode == -1)
        let looping = try BadInputTests.written(after: { b in
            let file = b.devicePath("0000:03:00.0").appendingPathComponent("class").path
            try FileManager.default.removeItem(atPath: file)
            try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: "class")
        })
        defer { looping.remove() }
        let error = #expect(throws: InputFileError.self) { try looping.load() }
        #expect(error?.errno == .ELOOP && error?.file.hasSuffix("0000:03:00.0/class") == true)
    }

    @Test("a config space longer than 4096 bytes is refused; 4096 is read whole")
    func configSize() throws {
        let long = try BadInputTests.written(after: {
            try Data(repeating: 0, count: 4097).write(to: $0.devicePath("0000:03:00.0").appendingPathComponent("config"))
        })
        defer { long.remove() }
        let error = #expect(throws: InputFileError.self) { try long.load() }
        #expect(error?.errno == .EFBIG && error?.file.hasSuffix("0000:03:00.0/config") == true)
        let b = try BadInputTests.written()
        defer { b.remove() }
        #expect(try b.load().functions.count == switchTopology().count)
    }
}
