// swift-tools-version: 6.2
//
// The libFuzzer executables of DMABufKit: one per fuzz target, each a thin LLVMFuzzerTestOneInput
// over an entry point of the root package's DMAFuzzTargets (RELIABILITY.md). `make fuzz` builds
// them with `-sanitize=fuzzer,address -parse-as-library` and runs each for a fixed count of inputs.

import PackageDescription

let targets = ["config-space", "sysfs", "topology-yaml", "scenario-yaml", "fdinfo"]

// Linux only, as the root package (see the note on `platforms` in ../Package.swift).
let package = Package(
    name: "DMABufKitFuzz",
    dependencies: [.package(name: "DMABufKit", path: "..")],
    targets: targets.map { name in
        .executableTarget(
            name: "fuzz-\(name)",
            dependencies: [.product(name: "DMAFuzzTargets", package: "DMABufKit")],
            path: "Sources/fuzz-\(name)",
            swiftSettings: [.treatAllWarnings(as: .error)]
        )
    }
)
