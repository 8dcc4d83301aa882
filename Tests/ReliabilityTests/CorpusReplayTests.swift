import DMAFuzzTargets
import Foundation
import Testing

/// The repository root, found from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Every file below `folder`, sorted.
func inputs(in folder: URL) -> [URL] {
    guard let enumerator = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
    return enumerator.compactMap { $0 as? URL }
        .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
        .sorted { $0.path < $1.path }
}

/// The committed seed corpora and every crash input the fuzzers ever found (Fuzz/regressions),
/// fed to the same entry points libFuzzer drives, without libFuzzer: a crash here is a crash there.
@Suite("Fuzz corpora and regression inputs replay")
struct CorpusReplayTests {
    @Test("each target has a seed corpus", arguments: FuzzTarget.allCases)
    func seeds(_ target: FuzzTarget) {
        #expect(!inputs(in: repositoryRoot.appendingPathComponent("Fuzz/corpus/\(target.rawValue)")).isEmpty)
    }

    @Test("the seed corpus replays without a crash", arguments: FuzzTarget.allCases)
    func corpus(_ target: FuzzTarget) throws {
        for file in inputs(in: repositoryRoot.appendingPathComponent("Fuzz/corpus/\(target.rawValue)")) {
            target.run([UInt8](try Data(contentsOf: file)))
        }
    }

    @Test("every regression input replays without a crash", arguments: FuzzTarget.allCases)
    func regressions(_ target: FuzzTarget) throws {
        for file in inputs(in: repositoryRoot.appendingPathComponent("Fuzz/regressions/\(target.rawValue)")) {
            target.run([UInt8](try Data(contentsOf: file)))
        }
    }

    @Test("a sysfs manifest decodes what it encodes")
    func manifestRoundTrip() {
        let manifest = SysfsManifest(entries: [
            .init(kind: .directory, path: "devices/pci0000:00", content: []),
            .init(kind: .file, path: "devices/pci0000:00/0000:00:00.0/vendor", content: Array("0x8086\n".utf8)),
            .init(kind: .link, path: "bus/pci/devices/0000:00:00.0", content: Array("../../../devices/pci0000:00/0000:00:00.0".utf8)),
        ])
        #expect(SysfsManifest(decoding: manifest.encoded()) == manifest)
    }
}
