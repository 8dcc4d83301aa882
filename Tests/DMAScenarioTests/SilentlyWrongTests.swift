import DMACore
import DMAScenario
import Foundation
import PCI
import Testing

/// Issue [O] class 7: inputs that were accepted and then gave a wrong result without a word.
@Suite("Silently wrong results: contradictory or impossible input is refused where it is written")
struct SilentlyWrongTests {
    @Test("a buffer with both fill and pattern, a step with byte and pattern, and expectByte with expectPattern are refused at their line", arguments: [
        "buffers:\n  - {name: b, exporter: system-heap, size: 4096, fill: 1, pattern: 2}\n",
        "buffers:\n  - {name: b, exporter: system-heap, size: 4096}\nsteps:\n  - cpu-write: {buffer: b, byte: 1, pattern: 2}\n",
        "buffers:\n  - {name: b, exporter: system-heap, size: 4096}\nsteps:\n  - cpu-read: {buffer: b, expectByte: 1, expectPattern: 2}\n",
    ])
    func fillAndPattern(_ text: String) throws {
        let error = #expect(throws: InputFileError.self) { try Scenario.parse(text, file: "s.yaml") }
        #expect(error?.message.contains("both given") == true && error?.line != nil && error?.file == "s.yaml")
    }

    static func topology(secondBus: String, secondHostBridge: String? = nil) -> String {
        """
        devices:
          - {bdf: "0000:00:01.0", vendor: 0x1234, device: 1, class: 0x060400, port: root-port}
          - {bdf: "0000:01:00.0", vendor: 0x10de, device: 1, class: 0x030200, parent: "0000:00:01.0",
             bars: [{index: 0, start: 0x4000000000, size: 0x100000, bus: 0x80000000}]}
          - {bdf: "0000:00:02.0", vendor: 0x1234, device: 1, class: 0x060400, port: root-port\(secondHostBridge.map { ", hostBridge: \($0)" } ?? "")}
          - {bdf: "0000:02:00.0", vendor: 0x15b3, device: 1, class: 0x020000, parent: "0000:00:02.0"\(secondHostBridge.map { ", hostBridge: \($0)" } ?? ""),
             bars: [{index: 0, start: 0x4100000000, size: 0x100000, bus: \(secondBus)}]}
        """
    }

    @Test("two BARs at overlapping bus addresses under one host bridge are refused; under two host bridges they are not")
    func busOverlap() throws {
        let cpu = try CPUInfo(parsing: "intel:0x6")
        for bus in ["0x80000000", "0x800ff000", "0x7ff01000"] {
            let error = #expect(throws: InputFileError.self) { try YAMLTopology.load(Self.topology(secondBus: bus), file: "t.yaml", cpu: cpu) }
            #expect(error?.message.contains("overlap on the bus of host bridge pci0000:00") == true)
        }
        #expect(try YAMLTopology.load(Self.topology(secondBus: "0x80100000"), file: "t.yaml", cpu: cpu).providers.count == 2)
        #expect(
            try YAMLTopology.load(Self.topology(secondBus: "0x80000000", secondHostBridge: "pci0000:40"), file: "t.yaml", cpu: cpu)
                .providers.count == 2)
    }
}
