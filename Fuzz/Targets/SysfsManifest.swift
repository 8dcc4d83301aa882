import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A sysfs tree as bytes, so that a fuzzer can mutate a tree: a sequence of records, each
/// `kind (1 byte) · path length (1) · path · content length (2, little-endian) · content`.
/// Kinds: `D` a folder, `F` a file holding the content, `L` a symbolic link whose target is the
/// content (anything: out of the tree, absolute, to itself, a loop). Any other kind byte is a file.
/// A record cut short by the end of the input keeps what is there (a truncated file).
///
/// Paths are kept inside the tree (empty, `.` and `..` components are dropped); link targets are
/// not, as the reader must stand links pointing anywhere.
package struct SysfsManifest: Sendable, Equatable {
    package enum Kind: UInt8, Sendable {
        case directory = 0x44  // D
        case file = 0x46  // F
        case link = 0x4c  // L
    }

    package struct Entry: Sendable, Equatable {
        package var kind: Kind
        package var path: String
        package var content: [UInt8]

        package init(kind: Kind, path: String, content: [UInt8]) {
            self.kind = kind
            self.path = path
            self.content = content
        }
    }

    package var entries: [Entry]

    package init(entries: [Entry]) { self.entries = entries }

    /// Decodes the records of `data`.
    package init(decoding data: [UInt8]) {
        entries = []
        var i = 0
        while i + 2 <= data.count {
            let kind = Kind(rawValue: data[i]) ?? .file
            let pathLength = Int(data[i + 1])
            i += 2
            let path = String(decoding: data[i..<min(data.count, i + pathLength)], as: UTF8.self)
            i = min(data.count, i + pathLength)
            var contentLength = 0
            if i + 2 <= data.count {
                contentLength = Int(data[i]) | Int(data[i + 1]) << 8
                i += 2
            } else {
                i = data.count
            }
            let content = Array(data[i..<min(data.count, i + contentLength)])
            i = min(data.count, i + contentLength)
            entries.append(Entry(kind: kind, path: path, content: content))
        }
    }

    /// The records as bytes (paths over 255 bytes and contents over 65535 are cut).
    package func encoded() -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries {
            let path = Array(entry.path.utf8.prefix(255))
            let content = entry.content.prefix(65535)
            out.append(entry.kind.rawValue)
            out.append(UInt8(path.count))
            out += path
            out.append(UInt8(content.count & 0xff))
            out.append(UInt8(content.count >> 8))
            out += content
        }
        return out
    }

    /// The path made safe: inside the tree, at most 16 components.
    static func safePath(_ path: String) -> String? {
        let components = path.split(separator: "/").filter { $0 != "." && $0 != ".." && !$0.contains("\0") }.prefix(16)
        return components.isEmpty ? nil : components.joined(separator: "/")
    }

    /// Writes the tree under `root`; records that cannot be made (a parent that is a file, a
    /// second record for one path) are skipped, as a tree cannot hold them.
    package func materialize(at root: URL) {
        let fm = FileManager.default
        try? fm.createDirectory(at: root, withIntermediateDirectories: true)
        for entry in entries {
            guard let path = Self.safePath(entry.path) else { continue }
            let url = root.appendingPathComponent(path)
            try? fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            switch entry.kind {
            case .directory:
                try? fm.createDirectory(at: url, withIntermediateDirectories: true)
            case .file:
                // open/write rather than FileManager.createFile, whose atomic write syncs the file
                // to disk: the fuzzer writes thousands of trees a minute.
                let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                guard fd >= 0 else { continue }
                entry.content.withUnsafeBytes { bytes in
                    var done = 0
                    while done < bytes.count {
                        let count = write(fd, bytes.baseAddress! + done, bytes.count - done)
                        if count <= 0 { break }
                        done += count
                    }
                }
                close(fd)
            case .link:
                let target = String(decoding: entry.content, as: UTF8.self)
                guard !target.isEmpty, !target.contains("\0") else { continue }
                try? fm.createSymbolicLink(atPath: url.path, withDestinationPath: target)
            }
        }
    }

    /// Reads a tree back as a manifest (to make a seed from a real or fixture tree): folders,
    /// files (their first `maximumFileSize` bytes) and links, sorted by path.
    package static func read(root: URL, maximumFileSize: Int = 4096) -> SysfsManifest {
        let fm = FileManager.default
        var entries: [Entry] = []
        func walk(_ relative: String) {
            let full = relative.isEmpty ? root.path : root.path + "/" + relative
            guard let names = try? fm.contentsOfDirectory(atPath: full) else { return }
            for name in names.sorted() {
                let childRelative = relative.isEmpty ? name : relative + "/" + name
                let childFull = full + "/" + name
                if let target = try? fm.destinationOfSymbolicLink(atPath: childFull) {
                    entries.append(Entry(kind: .link, path: childRelative, content: Array(target.utf8)))
                    continue
                }
                var isDirectory: ObjCBool = false
                guard fm.fileExists(atPath: childFull, isDirectory: &isDirectory) else { continue }
                if isDirectory.boolValue {
                    entries.append(Entry(kind: .directory, path: childRelative, content: []))
                    walk(childRelative)
                } else {
                    let bytes = fm.contents(atPath: childFull).map { Array($0.prefix(maximumFileSize)) } ?? []
                    entries.append(Entry(kind: .file, path: childRelative, content: bytes))
                }
            }
        }
        walk("")
        return SysfsManifest(entries: entries)
    }
}
