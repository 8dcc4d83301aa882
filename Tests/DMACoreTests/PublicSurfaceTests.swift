import Foundation
import Testing

/// Issue [N] item 5: what only this package uses is `package`, not `public`, and Yams does not
/// reach the public surface. Read from the sources, as `scripts/count-public.sh` counts them.
@Suite("The public surface: package-only code is not public")
struct PublicSurfaceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func swiftFiles(_ folder: String) throws -> [(path: String, text: String)] {
        let base = root.appendingPathComponent(folder)
        let names = (FileManager.default.enumerator(atPath: base.path)?.allObjects as? [String]) ?? []
        return try names.filter { $0.hasSuffix(".swift") }.sorted().map {
            (folder + "/" + $0, try String(contentsOfFile: base.appendingPathComponent($0).path, encoding: .utf8))
        }
    }

    static var publicDeclaration: Regex<AnyRegexOutput> { try! Regex(#"(?m)^\s*(@\w+(\([^)]*\))?\s+)*(public|open)\s"#) }

    @Test("the CLI library declares nothing public (its users are this package's executables and tests)")
    func cliLibrary() throws {
        let files = try Self.swiftFiles("Sources/DMABufCLI")
        #expect(files.count > 5)
        for (path, text) in files {
            #expect(text.matches(of: Self.publicDeclaration).isEmpty, "\(path) declares something public")
        }
    }

    @Test("the package's helpers are not public", arguments: [
        ("Sources/DMACore/PthreadMutex.swift", "PthreadMutex / ModelMutex"),
        ("Sources/PCI/YAMLSupport.swift", "YAMLReader / YAMLMapping"),
        ("Sources/PCI/YAMLReader+Limits.swift", "YAMLLimits"),
        ("Sources/DMACore/SystemCalls.swift", "the system-call layer"),
        ("Fuzz/Targets/SysfsManifest.swift", "the fuzz targets' sysfs manifest"),
    ])
    func helpers(_ path: String, _ what: String) throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
        #expect(text.matches(of: Self.publicDeclaration).isEmpty, "\(what) (\(path)) is public")
    }

    @Test("hex, formatBytes and explain are package functions", arguments: [
        ("Sources/DMACore/Addresses.swift", "hex"), ("Sources/DMACore/Addresses.swift", "formatBytes"),
        ("Sources/LinuxDMABuf/Errors.swift", "explain"),
    ])
    func freeFunctions(_ path: String, _ name: String) throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
        #expect(text.contains("package func \(name)("), "\(path): \(name) is not a package function")
    }

    @Test("no source imports Yams publicly: its types stay out of the public API")
    func yamsImport() throws {
        for (path, text) in try Self.swiftFiles("Sources") + Self.swiftFiles("Fuzz/Targets") {
            #expect(!text.contains("\nimport Yams") && !text.hasPrefix("import Yams") && !text.contains("public import Yams"), "\(path) imports Yams publicly")
        }
    }

    /// A module named like a type it declares makes `Module.Type` ambiguous for its users (Swift
    /// resolves `PCITopology.x` to the type, so the module's other names cannot be qualified). The
    /// PCI model's module was called `PCITopology`, like its main class, until this test.
    @Test("no module declares a type with the module's own name")
    func moduleNames() throws {
        let modules = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Sources").path)
        #expect(modules.contains("PCI"))
        for module in modules {
            for (path, text) in try Self.swiftFiles("Sources/" + module) {
                let declaration = try Regex(#"(?m)^\s*(public\s+|package\s+)?(final\s+)?(class|struct|enum|protocol|actor)\s+"# + module + #"\b"#)
                let clash = text.firstMatch(of: declaration) != nil
                #expect(!clash, "\(path) declares a type named like its module \(module)")
            }
        }
    }
}
