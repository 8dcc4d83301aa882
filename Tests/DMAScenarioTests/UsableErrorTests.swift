import DMACore
import DMAScenario
import Foundation
import PCI
import Testing

/// Issue [O] class 6: every error about a file names the file and, for YAML, the line and column;
/// no raw control byte of the input is echoed, and no error is megabytes long.
@Suite("Errors a person can use: file, line and column; no control bytes; a sane length")
struct UsableErrorTests {
    static let cpu = CPUInfo(vendor: .intel, family: 6)

    static func topologyError(_ text: String) -> InputFileError? {
        #expect(throws: InputFileError.self) { try YAMLTopology.load(text, file: "t.yaml", cpu: cpu) }
    }

    static func expectClean(_ error: (any Error)?) {
        let text = String(describing: error.map { "\($0)" } ?? "")
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x7f }, "\(text.debugDescription)")
        #expect(text.utf8.count < 4096)
    }

    @Test("overlapping BARs, a parent cycle, a duplicate key and an invalid CPU are named at their line", arguments: [
        ("devices:\n  - {bdf: \"0000:01:00.0\", vendor: 1, device: 1, class: 0x020000, bars: [{index: 0, start: 0x1000000, size: 4096}]}\n"
            + "  - {bdf: \"0000:02:00.0\", vendor: 1, device: 1, class: 0x020000,\n     bars: [{index: 0, start: 0x1000000, size: 4096}]}\n", 4, "overlap"),
        ("devices:\n  - {bdf: \"0000:01:00.0\", vendor: 1, device: 1, class: 0x060400, parent: \"0000:02:00.0\"}\n"
            + "  - {bdf: \"0000:02:00.0\", vendor: 1, device: 1, class: 0x060400, parent: \"0000:01:00.0\"}\n", 2, "loop"),
        ("cpu: intel:0x6\ndevices: []\ncpu: amd:0x19\n", 1, "duplicate key 'cpu'"),
        ("cpu: amd:-1\ndevices: []\n", 1, "not a CPU description"),
    ] as [(String, Int, String)])
    func named(_ text: String, _ line: Int, _ message: String) {
        let error = Self.topologyError(text)
        #expect(error?.file == "t.yaml" && error?.line == line && error?.column != nil, "\(String(describing: error))")
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
    }

    @Test("an inline topology's error names the scenario file and the line in it")
    func inline() {
        let text = "title: x\ntopology:\n  inline:\n    devices:\n      - {bdf: \"0000:01:00.0\", vendor: 1, device: 1, class: 0x020000, colour: red}\n"
        let error = #expect(throws: InputFileError.self) { try Scenario.parse(text, file: "s.yaml") }
        #expect(error?.file == "s.yaml" && error?.line == 5, "\(String(describing: error))")
        #expect(error?.message.contains("colour") == true)
    }

    @Test("escape sequences in a key, a value, a file name and a syntax error are not echoed raw")
    func controlBytes() {
        Self.expectClean(Self.topologyError("\u{1B}[2J\u{1B}[31mcolour: red\ndevices: []\n"))
        Self.expectClean(Self.topologyError("devices:\n  - {bdf: \"\u{1B}[2J\", vendor: 1, device: 1, class: 1}\n"))
        Self.expectClean(Self.topologyError("devices:\n  - {bdf: \"0000:01:00.0\", vendor: \"\u{7}\u{1B}]0;pwned\u{7}\", device: 1, class: 1}\n"))
        Self.expectClean(Self.topologyError("devices: [\u{1B}[31m\n"))
        Self.expectClean(#expect(throws: InputFileError.self) {
            try YAMLTopology.load("devices: 1\n", file: "evil\u{1B}[2J.yaml", cpu: Self.cpu)
        })
    }

    @Test("a 2 MB line gives an error of a few hundred bytes, in its value and in a syntax error")
    func longLines() {
        let long = String(repeating: "x", count: 2_000_000)
        for text in ["cpu: \(long)\ndevices: []\n", "devices:\n  - {bdf: \"0000:01:00.0\", vendor: \(long), device: 1, class: 1}\n",
                     "devices: [\"\(long)\", \n  - x\n", "\(long): 1\n"] {
            let error = Self.topologyError(text)
            #expect(error != nil)
            #expect("\(error.map { "\($0)" } ?? "")".utf8.count < 1000, "\(String(describing: error).prefix(300))")
        }
    }
}
