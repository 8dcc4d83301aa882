import DMACore
import Synchronization

/// The ops a machine knows, by name: the built-in ones and any a third party registers.
///
/// The kernel has no registry of this kind (a driver or the platform code calls `set_dma_ops`);
/// the model has one so that a scenario, the CLI and the conformance suite can name ops, and so
/// that third-party ops plug in exactly as the built-in ones do.
public final class DMAOpsRegistry: Sendable {
    private let table = ModelMutex<[String: any DMAOps]>([:])

    /// An empty registry.
    public init() {}

    /// A registry holding the four built-in ops: `direct`, `iommu`, `swiotlb` and `virt`.
    public static func builtIn() -> DMAOpsRegistry {
        let registry = DMAOpsRegistry()
        for ops: any DMAOps in [DirectDMAOps(), IOMMUDMAOps(), DirectDMAOps.swiotlb, VirtDMAOps()] {
            try! registry.register(ops)  // the four names are distinct
        }
        return registry
    }

    /// Registers `ops` under its name.
    /// - Throws: `DMAError/Code/alreadyExists` (`EEXIST`) when the name is taken (nothing is
    ///   overwritten); `EINVAL` for an empty name.
    public func register(_ ops: any DMAOps) throws(DMAError) {
        guard !ops.name.isEmpty else {
            throw DMAError(.invalidArgument, .EINVAL, "DMA ops need a name to be registered")
        }
        try table.withLock { (table) throws(DMAError) in
            if table[ops.name] != nil {
                throw DMAError(.alreadyExists, .EEXIST, "DMA ops named '\(ops.name)' are already registered")
            }
            table[ops.name] = ops
        }
    }

    /// The ops registered as `name`.
    /// - Throws: `DMAError/Code/notFound` (`ENOENT`) naming the known ops.
    public func ops(named name: String) throws(DMAError) -> any DMAOps {
        let (found, known) = table.withLock { ($0[name], $0.keys.sorted()) }
        guard let found else {
            throw DMAError(.notFound, .ENOENT, "no DMA ops named '\(name)'; registered: \(known.joined(separator: ", "))")
        }
        return found
    }

    /// The ops of a device (`get_dma_ops`): the device's own, checked to be registered here.
    /// - Throws: `ENOENT` when the device's ops are not in this registry.
    public func ops(for device: DMADevice) throws(DMAError) -> any DMAOps {
        try ops(named: device.ops.name)
    }

    /// Every registered ops, sorted by name.
    public var all: [any DMAOps] { table.withLock { $0.values.sorted { $0.name < $1.name } } }
}
