import DMACore
import DMAScenario
import Foundation
import PCI
import Testing

/// Issue [N] item 6: topology files (YAML and sysfs), scenario files and the files a person names
/// all fail with one typed error, `InputFileError`, that names the file and keeps the errno of what
/// went wrong, including the errno of a model error about a value in the file.
@Suite("One load error for every file: typed, named, with the errno kept")
struct LoadErrorTests {
    static let cpu = CPUInfo(vendor: .intel, family: 6)

    /// Each loader as a function that throws only `InputFileError`: this compiles only while every
    /// loader's `throws` clause says so.
    static let loaders: [(name: String, load: @Sendable (String) throws(InputFileError) -> Void)] = [
        ("YAMLTopology.load", { text throws(InputFileError) in _ = try YAMLTopology.load(text, file: "t.yaml", cpu: cpu) }),
        ("Scenario.parse", { text throws(InputFileError) in _ = try Scenario.parse(text, file: "t.yaml") }),
    ]

    @Test("a topology and a scenario with the same malformed YAML fail alike: file, line, EINVAL", arguments: [0, 1])
    func sameErrorForBoth(_ index: Int) {
        let loader = Self.loaders[index]
        do throws(InputFileError) {
            try loader.load("devices: [\n  {bdf: \n")
            Issue.record("\(loader.name) accepted malformed YAML")
        } catch {
            #expect(error.file == "t.yaml" && error.line != nil && error.errno == .EINVAL, "\(loader.name): \(error)")
        }
    }

    @Test("a BAR whose end wraps past 2^64 is EOVERFLOW, the model's errno, placed at its line")
    func modelErrnoKept() {
        let text = """
            devices:
              - {bdf: "0000:01:00.0", vendor: 1, device: 1, class: 0x020000,
                 bars: [{index: 0, start: 0xfffffffffffff000, size: 0x2000}]}

            """
        let error = #expect(throws: InputFileError.self) { try YAMLTopology.load(text, file: "t.yaml", cpu: Self.cpu) }
        #expect(error?.errno == .EOVERFLOW, "\(String(describing: error))")
        #expect(error?.line == 3, "\(String(describing: error))")
    }

    @Test("a scenario's inline topology with a wrapping BAR keeps EOVERFLOW too")
    func modelErrnoKeptInScenario() {
        let text = """
            topology:
              inline:
                devices:
                  - {bdf: "0000:01:00.0", vendor: 1, device: 1, class: 0x020000, bars: [{index: 0, start: 0xfffffffffffff000, size: 0x2000}]}
            steps: []

            """
        let error = #expect(throws: InputFileError.self) { try Scenario.parse(text, file: "s.yaml") }
        #expect(error?.errno == .EOVERFLOW && error?.file == "s.yaml", "\(String(describing: error))")
    }

    @Test("a file that cannot be opened is the same error, with the open's errno")
    func missingFile() {
        let error = #expect(throws: InputFileError.self) { try InputFile.read("/nonexistent/scenario.yaml", what: "the scenario file") }
        #expect(error?.errno == .ENOENT && error?.file == "/nonexistent/scenario.yaml", "\(String(describing: error))")
    }

    @Test("a sysfs tree that is not one is the same error")
    func sysfs() {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("not-sysfs-\(UUID().uuidString)").path
        let error = #expect(throws: InputFileError.self) { try SysfsTopologyLoader.load(root: folder, cpu: Self.cpu) }
        #expect(error?.file.hasSuffix("/bus/pci/devices") == true, "\(String(describing: error))")
    }
}
