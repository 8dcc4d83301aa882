// swift-tools-version: 6.2
//
// DMABufKit: an executable model of the Linux DMA-BUF and DMA-mapping machinery, a real layer over
// the kernel, and a conformance suite for DMA ops. The module map is in DESIGN.md section 2.

import PackageDescription

/// Every target of this package is built in Swift 6 language mode with all warnings as errors.
let strict: [SwiftSetting] = [
    .treatAllWarnings(as: .error),
]

// Linux only (glibc): LinuxDMABuf, the system-call layer in DMACore and the sysfs reader call
// Glibc and link libdrm and zlib, so the package builds nowhere else (Swift 6.2 or later, the tools
// version above). `platforms` is left out on purpose: SwiftPM has no Linux entry for it (it only
// raises the minimum Apple OS versions), and the macOS 15 it named before was a platform the code
// never built on.
let package = Package(
    name: "DMABufKit",
    products: [
        .library(name: "DMACore", targets: ["DMACore"]),
        .library(name: "DMAMapping", targets: ["DMAMapping"]),
        .library(name: "PCI", targets: ["PCI"]),
        .library(name: "DMABuf", targets: ["DMABuf"]),
        .library(name: "DMADevices", targets: ["DMADevices"]),
        .library(name: "DMAScenario", targets: ["DMAScenario"]),
        .library(name: "DMAConformance", targets: ["DMAConformance"]),
        .plugin(name: "DMAConformancePlugin", targets: ["DMAConformancePlugin"]),
        .library(name: "LinuxDMABuf", targets: ["LinuxDMABuf"]),
        .executable(name: "dmabuf", targets: ["dmabuf"]),
        // The fuzz targets' entry points, for the libFuzzer package in Fuzz/ (RELIABILITY.md).
        .library(name: "DMAFuzzTargets", targets: ["DMAFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // Value types for addresses, ranges, scatter-lists, directions, masks and errors, plus the
        // simulated physical memory every rule is checked against. No I/O.
        .target(name: "DMACore", swiftSettings: strict),
        // The DMA-mapping API: the DMAOps protocol and registry, devices, the built-in ops
        // (direct, IOMMU, swiotlb, virt), the DMA-API debug layer and the simulated DMA engine.
        .target(name: "DMAMapping", dependencies: ["DMACore"], swiftSettings: strict),
        // PCI topology: host bridges, ports, endpoints, BARs and ACS; the P2P distance and map-type
        // rules of drivers/pci/p2pdma.c; loaders from YAML and from a sysfs tree.
        .target(
            name: "PCI",
            dependencies: ["DMACore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // libdrm and the dma-buf, udmabuf and dma-heap uapi headers, with C shims for the ioctl
        // request macros; zlib for /proc/config.gz.
        .systemLibrary(name: "CLibDRM", pkgConfig: "libdrm", providers: [.apt(["libdrm-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // The real kernel: DRM devices, dumb buffers, PRIME, dma-buf fds (size, fdinfo, sync, name,
        // sync files, mmap), udmabuf, dma-heaps, the /proc census and kernel config facts.
        .target(name: "LinuxDMABuf", dependencies: ["DMACore", "PCI", "CLibDRM", "CZlib"], swiftSettings: strict),
        // DMA-BUF: buffers, the exporter's and importer's ops, attachments, pin, map/unmap,
        // invalidate_mappings, the reservation object (drivers/dma-buf/dma-buf.c).
        .target(name: "DMABuf", dependencies: ["DMACore", "DMAMapping"], swiftSettings: strict),
        // Exporters and importers users recognise: GPU VRAM, VFIO BAR, the system heap; RDMA NIC
        // MRs, GPU and HFI-style importers.
        .target(name: "DMADevices", dependencies: ["DMACore", "DMAMapping", "DMABuf"], swiftSettings: strict),
        // Scenario files and the simulated machine: `dmabuf simulate`, the built-in stories.
        .target(
            name: "DMAScenario",
            dependencies: ["DMACore", "DMAMapping", "DMABuf", "DMADevices", "PCI", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // The conformance suite any DMAOps (and any exporter) can be run against; imports no test
        // framework, so Swift Testing, XCTest, the CLI and the SwiftPM plugin all use it.
        .target(name: "DMAConformance", dependencies: ["DMACore", "DMAMapping", "DMABuf"], swiftSettings: strict),
        // `swift package dma-conformance`: builds and runs a package's conformance runners.
        .plugin(
            name: "DMAConformancePlugin",
            capability: .command(
                intent: .custom(verb: "dma-conformance", description: "Run the DMABufKit conformance suite on this package's DMA ops")),
            path: "Plugins/DMAConformancePlugin"
        ),
        // The CUDA driver API, loaded with dlopen at run time (no CUDA SDK needed to build).
        .target(name: "CUDA", dependencies: ["DMACore"], swiftSettings: strict),
        // The command-line tool's commands, as a library so that tests can run them in-process.
        .target(
            name: "DMABufCLI",
            dependencies: [
                "DMACore", "DMAMapping", "PCI", "DMABuf", "DMADevices", "DMAScenario", "DMAConformance", "CUDA",
                "LinuxDMABuf",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // The kernel tier's runner: story 7 on a real kernel (scripts/kernel-tier boots it in QEMU).
        .executableTarget(
            name: "dmabuf-kernel-selftest",
            dependencies: ["LinuxDMABuf", "DMABufCLI", "DMACore", "CLibDRM", "DMABuf", "DMADevices", "DMAScenario", "PCI"],
            path: "Sources/KernelSelfTest",
            swiftSettings: strict
        ),
        .executableTarget(name: "dmabuf", dependencies: ["DMABufCLI"], swiftSettings: strict),
        // Examples: the six stories told with the library API (tests run them and compare the output).
        .executableTarget(
            name: "P2PSameSwitch", dependencies: ["DMAScenario", "DMADevices", "DMABuf", "DMAMapping", "DMACore"],
            path: "Examples/P2PSameSwitch", exclude: ["expected-output.txt"], swiftSettings: strict),
        .executableTarget(
            name: "P2PThroughHostBridge", dependencies: ["DMAScenario", "DMADevices", "DMABuf", "DMAMapping", "DMACore"],
            path: "Examples/P2PThroughHostBridge", exclude: ["expected-output.txt"], swiftSettings: strict),
        .executableTarget(
            name: "MigrateToSystemMemory", dependencies: ["DMAScenario", "DMADevices", "DMABuf", "DMAMapping", "DMACore"],
            path: "Examples/MigrateToSystemMemory", exclude: ["expected-output.txt"], swiftSettings: strict),
        .executableTarget(
            name: "HFICustomOps", dependencies: ["DMAScenario", "DMADevices", "DMABuf", "DMAMapping", "DMACore"],
            path: "Examples/HFICustomOps", exclude: ["expected-output.txt"], swiftSettings: strict),
        .executableTarget(
            name: "BounceBuffers32Bit", dependencies: ["DMAScenario", "DMADevices", "DMABuf", "DMAMapping", "DMACore"],
            path: "Examples/BounceBuffers32Bit", exclude: ["expected-output.txt"], swiftSettings: strict),
        .executableTarget(
            name: "VFIORevoke", dependencies: ["DMAScenario", "DMADevices", "DMABuf", "DMAMapping", "DMACore"],
            path: "Examples/VFIORevoke", exclude: ["expected-output.txt"], swiftSettings: strict),

        // The fuzz targets' entry points (Fuzz/Targets): libFuzzer drives them from Fuzz/, and
        // ReliabilityTests replays their corpora and regression inputs (RELIABILITY.md).
        .target(
            name: "DMAFuzzTargets", dependencies: ["DMACore", "PCI", "DMAScenario", "LinuxDMABuf"],
            path: "Fuzz/Targets", swiftSettings: strict),

        .testTarget(name: "DMACoreTests", dependencies: ["DMACore"], swiftSettings: strict),
        .testTarget(name: "DMAMappingTests", dependencies: ["DMACore", "DMAMapping"], swiftSettings: strict),
        .testTarget(
            name: "PCITests",
            dependencies: ["PCI", "DMACore", "DMAMapping"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LinuxDMABufTests", dependencies: ["LinuxDMABuf", "DMACore", "CLibDRM", "PCI"], exclude: ["Fixtures"],
            swiftSettings: strict),
        .testTarget(
            name: "DMABufTests",
            dependencies: ["DMABuf", "DMADevices", "DMAScenario", "DMACore", "DMAMapping", "PCI"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DMAScenarioTests",
            dependencies: ["DMAScenario", "DMACore", "PCI"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DMAConformanceTests",
            dependencies: ["DMAConformance", "DMACore", "DMAMapping", "DMABuf"],
            swiftSettings: strict
        ),
        .testTarget(name: "CUDATests", dependencies: ["CUDA"], swiftSettings: strict),
        // Fuzz corpus and regression replay, injected system-call faults, model fault injection.
        .testTarget(
            name: "ReliabilityTests",
            dependencies: [
                "DMAFuzzTargets", "LinuxDMABuf", "DMABuf", "DMADevices", "DMAScenario", "DMAMapping", "DMACore", "PCI", "CLibDRM",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DMABufCLITests",
            dependencies: ["DMABufCLI", "DMAMapping", "DMACore", "LinuxDMABuf", "PCI"],
            swiftSettings: strict
        ),
    ]
)
