import Foundation
import Testing

/// Issue [O] item 4: `dmabuf topo` prints large and deep trees in time and size linear in the
/// number of devices (each device's children were found by scanning every device, recursively).
@Suite("Scale: dmabuf topo on 10,000 devices")
struct ScaleCLITests {
    static func bdf(_ i: Int) -> String { String(format: "0000:%02x:%02x.%d", (i >> 8) & 0xff, (i >> 3) & 0x1f, i & 7) }

    /// Writes `text` to a new temporary file and returns its path.
    static func temporaryFile(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scale-\(UUID().uuidString).yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test("a chain of 10,000 bridges prints every level, indented to 64 levels, with deeper levels numbered (linear output)")
    func deepChain() throws {
        var text = "cpu: intel:0x6\ndevices:\n"
        for i in 0..<10_000 {
            let parent = i == 0 ? "null" : "\"\(Self.bdf(i - 1))\""
            text += "  - {bdf: \"\(Self.bdf(i))\", vendor: 0x10b5, device: 0x9781, class: 0x060400, parent: \(parent), port: downstream-port}\n"
        }
        let path = try Self.temporaryFile(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try runDMABuf(["topo", "--file", path])
        #expect(result.status == 0, "\(result.stderr.prefix(500))")
        let lines = result.stdout.split(separator: "\n")
        // Every bridge once, and the first once more in the host bridge's line (its identity device).
        #expect(lines.filter { $0.contains("[10b5:9781]") }.count == 10_001)
        // Quadratic indentation would be about 150 MB; 10,000 lines of at most 64 levels are a few MB.
        #expect(result.stdout.utf8.count < 4_000_000, "\(result.stdout.utf8.count) bytes")
        #expect(result.stdout.contains("[level 9999] "))
        #expect(lines.contains { $0.hasPrefix(String(repeating: " ", count: 3 * 64) + "\\- ") || $0.hasPrefix(String(repeating: " ", count: 3 * 64) + "└─ ") })
    }

    @Test("10,000 devices under 40 root ports print as a tree, each device under its own parent, in order")
    func wideTree() throws {
        var text = "cpu: intel:0x6\ndevices:\n  - {bdf: \"0000:00:00.0\", vendor: 0x8086, device: 0x2020, class: 0x060000}\n"
        var written = 1
        var port = 0
        while written < 10_000 {
            port += 1
            let rp = String(format: "0000:00:%02x.%d", port >> 3, port & 7)
            text += "  - {bdf: \"\(rp)\", vendor: 0x8086, device: 0x2030, class: 0x060400, port: root-port, acs: 0x0}\n"
            written += 1
            for fn in 0..<256 where written < 10_000 {
                text += "  - {bdf: \"" + String(format: "0000:%02x:%02x.%d", port, fn >> 3, fn & 7)
                    + "\", vendor: 0x15b3, device: 0x101d, class: 0x020000, parent: \"\(rp)\", port: endpoint}\n"
                written += 1
            }
        }
        let path = try Self.temporaryFile(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try runDMABuf(["topo", "--file", path])
        #expect(result.status == 0, "\(result.stderr.prefix(500))")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.filter { $0.contains("[15b3:101d]") }.count == 10_000 - 1 - port)
        // The first root port's children come right after it, its last child drawn as the last.
        let first = try #require(lines.firstIndex { $0.contains("00:00.1  ") })
        #expect(lines[first + 1].contains("01:00.0  "))
        #expect(lines[first + 256].contains("01:1f.7  ") && (lines[first + 256].contains("\\- ") || lines[first + 256].contains("└─ ")))
        #expect(lines[first + 257].contains("00:00.2  "))
    }
}
