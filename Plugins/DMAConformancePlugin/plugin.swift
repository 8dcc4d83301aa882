import Foundation
import PackagePlugin

/// `swift package dma-conformance [--runner PRODUCT ...] [--json]`: builds the package's
/// conformance runners (executable products whose name ends in `Conformance`, or the ones named
/// with `--runner`), runs each, and fails when a runner reports unexpected results.
///
/// A runner is one line of `main.swift` over the `DMAConformance` library:
/// `exit(DMAConformanceRunner.main([.init(MyOps())]))`.
@main
struct DMAConformancePlugin: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        var extractor = ArgumentExtractor(arguments)
        let requested = extractor.extractOption(named: "runner")
        let json = extractor.extractFlag(named: "json") > 0
        let runners = context.package.products.compactMap { $0 as? ExecutableProduct }.filter {
            requested.isEmpty ? $0.name.hasSuffix("Conformance") : requested.contains($0.name)
        }
        guard !runners.isEmpty else {
            Diagnostics.error(
                "no conformance runner: add an executable product whose name ends in 'Conformance' (its main.swift calls DMAConformanceRunner.main), or name one with --runner")
            throw PluginFailure.noRunner
        }
        var failed: [String] = []
        for runner in runners {
            let build = try packageManager.build(.product(runner.name), parameters: .init(configuration: .debug, logging: .concise))
            guard build.succeeded else {
                print(build.logText)
                Diagnostics.error("building \(runner.name) failed")
                throw PluginFailure.buildFailed(runner.name)
            }
            guard let executable = build.builtArtifacts.first(where: { $0.kind == .executable && $0.url.lastPathComponent == runner.name })
            else {
                Diagnostics.error("\(runner.name) built, but no executable named \(runner.name) came out")
                throw PluginFailure.buildFailed(runner.name)
            }
            if !json { print("== \(runner.name)") }
            let process = Process()
            process.executableURL = executable.url
            process.arguments = (json ? ["--json"] : []) + extractor.remainingArguments
            try process.run()
            process.waitUntilExit()
            if process.terminationStatus != 0 { failed.append(runner.name) }
        }
        if !failed.isEmpty {
            Diagnostics.error("conformance: unexpected results from \(failed.joined(separator: ", "))")
            throw PluginFailure.unexpected(failed)
        }
    }
}

enum PluginFailure: Error {
    case noRunner
    case buildFailed(String)
    case unexpected([String])
}
