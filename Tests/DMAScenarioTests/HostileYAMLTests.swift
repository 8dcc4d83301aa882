import DMACore
import DMAScenario
import Foundation
import PCI
import Testing

/// Issue [O] class 3: YAML that expands or nests without bound. Every loader of YAML (a topology
/// file, a scenario, a scenario's inline topology) is given an alias bomb (as values and as mapping
/// keys) and 10,000-deep nesting; each must end in well under a second with `E2BIG` at a line.
@Suite("Hostile YAML: alias bombs, deep nesting, deep parent chains and numbers, in linear time")
struct HostileYAMLTests {
    /// Nine levels of ten aliases each: 10^9 scalars when expanded.
    static func bomb(indent: String) -> String {
        var lines = [indent + "l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...9 {
            lines.append(indent + "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The same bomb used as mapping keys (which the composer hashes to find duplicates).
    static func keyBomb(indent: String) -> String {
        bomb(indent: indent) + indent + "keys:\n" + (0..<10).map { "\(indent)  ? [*l9, \($0)]\n\(indent)  : 1" }.joined(separator: "\n") + "\n"
    }

    static let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)

    /// Every YAML loader, on one document: the topology loader, the scenario parser with the
    /// document at its top and inside an inline topology.
    static let loaders: [(String, @Sendable (String) throws -> Void)] = [
        ("topology", { text in _ = try YAMLTopology.load(text, file: "t.yaml", cpu: try CPUInfo(parsing: "intel:0x6")) }),
        ("scenario", { text in _ = try Scenario.parse(text, file: "s.yaml") }),
        ("inline topology", { text in
            let indented = text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
            _ = try Scenario.parse("topology:\n  inline:\n" + indented + "\n", file: "s.yaml")
        }),
    ]

    static let documents: [(String, String)] = [
        ("alias bomb", bomb(indent: "")),
        ("alias bomb as keys", keyBomb(indent: "")),
        ("10,000-deep flow nesting", "devices: " + deep + "\n"),
        ("10,000-deep nesting at the top", deep + "\n"),
        ("200-deep block and flow nesting", "devices:\n  - " + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "\n"),
    ]

    @Test("every loader refuses every hostile document with E2BIG at a line, in well under a second", arguments: 0..<5, 0..<3)
    func hostile(_ documentIndex: Int, _ loaderIndex: Int) throws {
        let (_, text) = Self.documents[documentIndex]
        let (_, load) = Self.loaders[loaderIndex]
        let start = ContinuousClock.now
        let error = #expect(throws: InputFileError.self) { try load(text) }
        #expect(ContinuousClock.now - start < .milliseconds(500))
        #expect(error?.errno == .E2BIG && error?.line != nil && error?.column != nil)
        #expect(error.map { $0.message.contains("alias") || $0.message.contains("nested") } == true)
    }

    @Test("a few aliases and ordinary nesting still load")
    func fewAliases() throws {
        let text = """
            devices:
              - &root {bdf: "0000:00:00.0", vendor: 0x8086, device: 0x1234, class: 0x060000}
              - {bdf: "0000:00:01.0", vendor: &v 0x1234, device: 1, class: 0x060400, port: root-port}
              - {bdf: "0000:01:00.0", vendor: *v, device: 2, class: 0x020000, parent: "0000:00:01.0"}
            """
        let t = try YAMLTopology.load(text, file: "t.yaml", cpu: try CPUInfo(parsing: "intel:0x6"))
        let nic = try PCIAddress(parsing: "0000:01:00.0")
        #expect(t.functions.count == 3 && t.function(nic)?.vendor == 0x1234)
    }

    /// A chain of `count` bridges, each the parent of the next (the host-bridge lookup was recursive).
    static func chain(_ count: Int, loopBack: Bool = false) -> String {
        var out = "devices:\n"
        func bdf(_ i: Int) -> String { String(format: "0000:%02x:%02x.%d", (i >> 8) & 0xff, (i >> 3) & 0x1f, i & 7) }
        for i in 0..<count {
            let parent = i == 0 ? (loopBack ? "\"\(bdf(count - 1))\"" : "null") : "\"\(bdf(i - 1))\""
            out += "  - {bdf: \"\(bdf(i))\", vendor: 1, device: 1, class: 0x060400, parent: \(parent)}\n"
        }
        return out
    }

    @Test("a parent chain 10,000 deep loads without recursion; a chain that loops is named at its line")
    func deepChain() throws {
        let t = try YAMLTopology.load(Self.chain(10_000), file: "t.yaml", cpu: try CPUInfo(parsing: "intel:0x6"))
        #expect(t.functions.count == 10_000)
        #expect(Set(t.functions.map(\.hostBridge)) == ["pci0000:00"])
        let error = #expect(throws: InputFileError.self) {
            try YAMLTopology.load(Self.chain(50, loopBack: true), file: "t.yaml", cpu: try CPUInfo(parsing: "intel:0x6"))
        }
        #expect(error?.message.contains("loop") == true && error?.line != nil)
    }

    @Test("a PCITopology with a chain 10,000 deep is checked in linear time")
    func deepChainModel() throws {
        func address(_ i: Int) throws -> PCIAddress {
            try PCIAddress(bus: UInt8(i >> 8), device: UInt8((i >> 3) & 0x1f), function: UInt8(i & 7))
        }
        let functions = try (0..<10_000).map { i in
            PCIFunction(
                address: try address(i), vendor: 1, device: 1, classCode: 0x060400, parent: i == 0 ? nil : try address(i - 1),
                hostBridge: "pci0000:00")
        }
        let start = ContinuousClock.now
        let t = try PCITopology(cpu: try CPUInfo(parsing: "intel:0x6"), functions: functions)
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(t.functions.count == 10_000)
    }

    @Test("numbers: one number and at most one unit, in linear time", arguments: [
        ("4096", 4096 as UInt64?), ("0x1000", 0x1000), ("4KiB", 4096), ("16 MiB", 16 << 20), (" 2 GiB ", 2 << 30), ("1TiB", 1 << 40),
        ("1KiBKiB", nil), ("KiB", nil), ("0xKiB", nil), ("-1", nil), ("+1", nil), ("1 0", nil), ("", nil), ("0x", nil), ("0x+1", nil),
        ("16777216TiB", nil), ("18446744073709551616", nil), ("18446744073709551615", UInt64.max),
    ])
    func numbers(_ text: String, _ value: UInt64?) {
        #expect(YAMLReader.parseNumber(text) == value)
    }

    @Test("a size with 20,000 unit suffixes is refused at once")
    func manySuffixes() {
        let text = "1" + String(repeating: "KiB", count: 20_000)
        let start = ContinuousClock.now
        #expect(YAMLReader.parseNumber(text) == nil)
        #expect(ContinuousClock.now - start < .milliseconds(100))
    }
}
