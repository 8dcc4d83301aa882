// swift-tools-version: 6.2
//
// A vendor's own DMA ops, checked by DMABufKit's conformance suite:
//     swift package dma-conformance
// `name:` pins the dependency's identity, whatever the folder of the DMABufKit checkout is called.

import PackageDescription

let package = Package(
    name: "ThirdPartyOps",
    products: [
        .library(name: "VendorOps", targets: ["VendorOps"]),
        .executable(name: "VendorOpsConformance", targets: ["VendorOpsConformance"]),
    ],
    dependencies: [
        .package(name: "DMABufKit", path: "../.."),
    ],
    targets: [
        .target(
            name: "VendorOps",
            dependencies: [
                .product(name: "DMACore", package: "DMABufKit"),
                .product(name: "DMAMapping", package: "DMABufKit"),
            ]
        ),
        .executableTarget(
            name: "VendorOpsConformance",
            dependencies: ["VendorOps", .product(name: "DMAConformance", package: "DMABufKit")]
        ),
    ]
)
