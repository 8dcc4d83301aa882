import DMACore
import Foundation
@testable import PCI
import Testing

/// The sysfs reader's own file access (plain system calls instead of Foundation, for speed): its
/// path handling must mean what `URL.standardizedFileURL` meant before.
@Suite("SysfsFiles: lexical paths, reads until end of file, links and folders")
struct SysfsFilesTests {
    @Test("standardize resolves . and .. lexically, like URL.standardizedFileURL", arguments: [
        ("../../devices/pci0000:00/0000:00:01.0", "/sys/bus/pci/devices"),
        ("/a/./b//c/", "/x"), ("/..", "/x"), ("../../../../..", "/sys/bus"), ("x/../y/.", "/base"), ("/", "/x"),
    ])
    func standardize(_ path: String, _ base: String) {
        let expected = URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: base, isDirectory: true)).standardizedFileURL.path
        #expect(SysfsFiles.standardize(path, relativeTo: base) == expected)
    }

    @Test("a relative path is taken against the working folder")
    func relative() {
        #expect(SysfsFiles.standardize("some/where/..") == FileManager.default.currentDirectoryPath + "/some")
    }

    @Test("files are read to their end up to a limit, links read as text, folders told apart")
    func files() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-files-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let big = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }  // more than one 4 KiB read
        #expect(FileManager.default.createFile(atPath: dir + "/big", contents: Data(big)))
        #expect(FileManager.default.createFile(atPath: dir + "/empty", contents: Data()))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: "../somewhere/else")
        try FileManager.default.createSymbolicLink(atPath: dir + "/loop", withDestinationPath: "loop")
        #expect(try SysfsFiles.read(dir + "/big", limit: 16384) == big)
        #expect(try SysfsFiles.read(dir + "/big", limit: 10_000) == big)
        let tooLong = #expect(throws: SysfsFiles.Refusal.self) { try SysfsFiles.read(dir + "/big", limit: 9_999) }
        #expect(tooLong?.errno == .EFBIG)
        #expect(try SysfsFiles.read(dir + "/empty") == [])
        #expect(try SysfsFiles.read(dir + "/missing") == nil)
        let loop = #expect(throws: SysfsFiles.Refusal.self) { try SysfsFiles.read(dir + "/loop") }
        #expect(loop?.errno == .ELOOP)
        #expect(SysfsFiles.readLink(dir + "/link") == "../somewhere/else")
        #expect(SysfsFiles.readLink(dir + "/big") == nil)
        #expect(opens(dir) && !opens(dir + "/big") && !opens(dir + "/loop") && !opens(dir + "/missing"))
        guard let folder = SysfsFiles.Folder(dir) else { Issue.record("cannot open \(dir)"); return }
        #expect(try folder.read("big", limit: 16384) == big && folder.read("missing") == nil)
        #expect(folder.readLink("link") == "../somewhere/else" && folder.readLink("big") == nil)
        #expect(Set(SysfsFiles.list(dir) ?? []) == ["big", "empty", "link", "loop"])
        #expect(SysfsFiles.list(dir + "/big") == nil)
        #expect(SysfsFiles.text(Array(" \t0x10de\n".utf8)) == "0x10de" && SysfsFiles.text(Array(" \n".utf8)) == "")
        #expect(SysfsFiles.text(Array("a b\n".utf8)) == "a b")
    }

    func opens(_ path: String) -> Bool {
        guard let folder = SysfsFiles.Folder(path) else { return false }
        return folder.fd >= 0
    }

    @Test("0x-prefixed hexadecimal fields, up to 64 bits", arguments: [
        ("0x0000000000000000", 0 as UInt64?), ("0x00000000fe000000", 0xfe00_0000), ("0xFFFFFFFFFFFFFFFF", UInt64.max),
        ("0x00000000000000001", 1), ("0x10000000000000000", nil), ("0x", nil), ("fe000000", nil), ("0x12g", nil), ("0x+1", nil),
    ])
    func prefixedHex(_ text: String, _ value: UInt64?) {
        #expect(SysfsFiles.prefixedHex(Array(text.utf8)) == value)
    }
}
