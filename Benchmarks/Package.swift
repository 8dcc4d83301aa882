// swift-tools-version: 6.1
//
// DMABufKit's benchmarks (ordo-one/benchmark), kept out of the main package so that `make test`
// never builds them. `make bench` in the parent folder runs them and prints every row as a ratio to
// a baseline measured in the same run; BENCHMARKS.md holds the numbers.

import PackageDescription

let package = Package(
    name: "DMABufKitBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "DMABufKit", path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The baselines in C: address arithmetic into a preallocated array, memcpy, a linear scan.
        .target(name: "CBaselines"),
        .executableTarget(
            name: "DMABufBenchmarks",
            dependencies: [
                "CBaselines",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "DMACore", package: "DMABufKit"),
                .product(name: "DMAMapping", package: "DMABufKit"),
                .product(name: "PCI", package: "DMABufKit"),
                .product(name: "DMAScenario", package: "DMABufKit"),
                .product(name: "LinuxDMABuf", package: "DMABufKit"),
            ],
            path: "Benchmarks/DMABufBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
