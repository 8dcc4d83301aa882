import DMACore
import Foundation
import Testing

/// Issue [N] item 6: a code keeps one meaning, and so goes with the errno (or the few errnos) the
/// kernel gives for that meaning. Every `DMAError(.code, .ERRNO, …)` the package writes with both
/// named is checked against the pairs below, which restate each code's doc comment in `DMAError`
/// (`invalidArgument` is EINVAL, so a short read is `ioError`/EIO, not `invalidArgument`/EIO).
@Suite("Error codes match their errno across the package's sources")
struct ErrorCodeErrnoTests {
    /// The errnos each code may carry.
    static let allowed: [String: Set<String>] = [
        "invalidArgument": ["EINVAL"],
        "addressOverflow": ["EOVERFLOW"],
        "invalidDirection": ["EINVAL"],
        "kernelBug": ["ENOTRECOVERABLE"],
        "invalidMask": ["EINVAL"],
        // dma-direct and swiotlb: a map that cannot reach or bounce the page is out of memory
        // (`swiotlb_map` fails with no slot) or an I/O error for a whole list (`dma_map_sgtable`).
        "notDMACapable": ["ENOMEM", "EIO"],
        "peerToPeerNotSupported": ["EREMOTEIO"],
        "resourceExhausted": ["ENOMEM", "ENOSPC"],
        "notFound": ["ENOENT", "ENODEV", "ESRCH"],
        "alreadyExists": ["EEXIST"],
        "notMapped": ["EINVAL"],
        "iommuFault": ["EFAULT"],
        "busError": ["EIO"],
        "notSupported": ["EOPNOTSUPP", "ENOTSUPP"],
        "noDevice": ["ENODEV"],
        "debugCheckFailed": ["EINVAL"],
        "timedOut": ["ETIMEDOUT"],
        "ioError": ["EIO"],
        "mapFailed": ["EIO", "EINVAL", "ENOMEM"],
        "notInKernelVersion": ["ENOTTY"],
        // DMABuf's codes: the reservation lock (`ww_mutex`, `dma_resv_assert_held`).
        "busy": ["EBUSY"],
        "lockNotHeld": ["EINVAL", "EPERM"],
        "wouldDeadlock": ["EDEADLK"],
    ]

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Every (file, code, errno) the sources write literally.
    static func pairs() throws -> [(file: String, code: String, errno: String)] {
        let pattern = try Regex(#"DMAError\(\s*\.(\w+),\s*\.([A-Z][A-Z0-9]+)\b"#)
        var found: [(String, String, String)] = []
        for folder in ["Sources", "Fuzz/Targets", "Examples"] {
            let base = root.appendingPathComponent(folder)
            guard let walker = FileManager.default.enumerator(atPath: base.path) else { continue }
            for case let path as String in walker where path.hasSuffix(".swift") {
                let text = try String(contentsOfFile: base.appendingPathComponent(path).path, encoding: .utf8)
                for match in text.matches(of: pattern) {
                    guard let code = match.output[1].substring, let errno = match.output[2].substring else { continue }
                    found.append((folder + "/" + path, String(code), String(errno)))
                }
            }
        }
        return found
    }

    @Test("every code is written with one of its errnos")
    func codesMatchErrnos() throws {
        let pairs = try Self.pairs()
        #expect(pairs.count > 100, "the sources were not found from \(Self.root.path)")
        for (file, code, errno) in pairs {
            #expect(Errno(name: errno) != nil, "\(file): \(errno) is not an errno the model knows")
            guard let allowed = Self.allowed[code] else {
                Issue.record("\(file): the code \(code) is not in the table: give it its errnos")
                continue
            }
            #expect(allowed.contains(errno), "\(file): .\(code) written with \(errno); it goes with \(allowed.sorted())")
        }
    }

    @Test("ETIMEDOUT is a named errno (110), not a raw number", arguments: [("ETIMEDOUT", Int32(110)), ("EDEADLK", 35), ("EIO", 5)])
    func namedErrnos(_ name: String, _ number: Int32) {
        #expect(Errno(name: name)?.rawValue == number)
        #expect(Errno(rawValue: number).name == name)
    }
}
