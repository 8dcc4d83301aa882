// The conformance runner the `dma-conformance` plugin builds and runs. The mask-ignoring ops are a
// known-broken example: the suite must fail them on exactly the DMA-mask check.
import DMAConformance
import Foundation
import VendorOps

exit(DMAConformanceRunner.main([
    .init(IdentityOps()),
    .init(WindowOps()),
    .init(IdentityOps.maskIgnoring, expectedFailures: [.dmaMask]),
]))
