import DMACore
import Foundation
import PCI
import Testing

/// Issue [O] class 5 in the topology layer: numbers the kernel cannot write are refused where
/// they are read, the same way by every loader, so that what is read exports and loads back.
@Suite("Integer input: CPU families, DMA mask bits and NUMA nodes outside what the kernel writes")
struct IntegerInputTests {
    @Test("--cpu takes hexadecimal digits only, up to family 0x10e", arguments: [
        ("amd:-1", false), ("amd:+19", false), ("amd:", false), ("amd:0x", false), ("amd:0x10f", false), ("amd:ffffffffffffffff1", false),
        ("amd::19", false), ("amd:0x-1", false), ("intel:0x6", true), ("amd:19", true), ("AMD:0x10E", true), ("other:0", true),
    ])
    func cpu(_ text: String, _ valid: Bool) {
        let parsed = try? CPUInfo(parsing: text)
        #expect((parsed != nil) == valid)
        if let parsed { #expect(!parsed.description.contains("-")) }
    }

    @Test("a negative or huge family in /proc/cpuinfo is not taken")
    func procCPUInfo() {
        #expect(CPUInfo.parse(procCPUInfo: "vendor_id\t: AuthenticAMD\ncpu family\t: -1\n")?.family == 0)
        #expect(CPUInfo.parse(procCPUInfo: "vendor_id\t: AuthenticAMD\ncpu family\t: 25\n")?.family == 25)
    }

    @Test("dma_mask_bits of 999, -1 or banana, and numa_node of banana, are refused naming the file", arguments: [
        ("dma_mask_bits", "999"), ("dma_mask_bits", "65"), ("dma_mask_bits", "-1"), ("dma_mask_bits", "banana"), ("numa_node", "banana"),
        ("numa_node", "-2"),
    ])
    func sysfsNumbers(_ name: String, _ value: String) throws {
        let b = try BadInputTests.written(after: {
            try Data((value + "\n").utf8).write(to: $0.devicePath("0000:03:00.0").appendingPathComponent(name))
        })
        defer { b.remove() }
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(error?.file.hasSuffix("0000:03:00.0/\(name)") == true && error?.line == 1)
        #expect(error?.message.contains(value) == true)
    }

    @Test("every mask bits value the kernel can write is read, exported and loaded back", arguments: [0, 32, 64])
    func maskRoundTrip(_ bits: Int) throws {
        let b = try BadInputTests.written({ $0.devices[5].dmaMask = bits })
        defer { b.remove() }
        let topology = try b.load()
        #expect(topology.function(bdf("0000:03:00.0"))?.dmaMaskBits == bits)
        let again = try YAMLTopology.load(YAMLTopology.export(topology), file: "export.yaml", cpu: topology.cpu)
        #expect(again.function(bdf("0000:03:00.0"))?.dmaMaskBits == bits)
    }

    @Test("error text: control bytes are escaped and a long value is cut")
    func printable() {
        #expect(ErrorText.printable("a\u{1B}[31mb\r\n\0") == "a\\u{1B}[31mb\\u{D}\\u{A}\\u{0}")
        let long = ErrorText.printable(String(repeating: "x", count: 2_000_000))
        #expect(long.count < 200 && long.hasSuffix("(1999880 more bytes)"))
    }
}

/// Issue [O] class 7 in the sysfs reader: a BAR that ends before it starts was dropped unseen.
@Suite("A memory BAR that ends before it starts is refused, naming the resource file and line")
struct BAREndBeforeStartTests {
    @Test("resource line 1: start 0x400000000000, end 0x3fffffffffff")
    func endBeforeStart() throws {
        let b = try BadInputTests.written(after: {
            var lines = ["0x0000400000000000 0x00003fffffffffff 0x000000000014220c"]
            lines += Array(repeating: "0x0000000000000000 0x0000000000000000 0x0000000000000000", count: 12)
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: $0.devicePath("0000:03:00.0").appendingPathComponent("resource"))
        })
        defer { b.remove() }
        let error = #expect(throws: InputFileError.self) { try b.load() }
        #expect(error?.file.hasSuffix("0000:03:00.0/resource") == true && error?.line == 1)
        #expect(error?.message.contains("ends") == true)
    }
}
