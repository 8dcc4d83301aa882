import DMABuf
import DMACore
import Synchronization

/// The dma-buf an exporter made (`dma_buf_export`), held by the exporter until its `release`. Each
/// exporter here keeps a reference to its buffer, as a GEM object keeps `dma_buf` and a heap
/// buffer its `dma_buf` (`drivers/dma-buf/heaps/system_heap.c`), and drops it when the buffer's
/// last reference goes (`dma_buf_release` calls the exporter's `release`), which breaks the
/// exporter ↔ buffer reference cycle. The one home of the rule the three exporters share: after
/// the release no call of the exporter's own reaches the buffer (`ENODEV`), and reading
/// ``buffer`` is a programmer error.
final class ExportedBuffer: Sendable {
    private let box = ModelMutex<DMABuffer?>(nil)
    /// What ``live(_:)`` says once the buffer is released, after the call's name.
    private let whenReleased: String

    /// A holder with no buffer yet; `whenReleased` ends the `ENODEV` message of a call after the
    /// release.
    init(whenReleased: String) {
        self.whenReleased = whenReleased
    }

    /// Holds `buffer`: the exporter's own reference, taken once, right after the export.
    func hold(_ buffer: DMABuffer) {
        box.withLock { $0 = buffer }
    }

    /// The dma-buf.
    /// - Precondition: it has not been released.
    var buffer: DMABuffer {
        box.withLock { box in
            guard let buffer = box else { preconditionFailure("the exporter's buffer was used after its release") }
            return buffer
        }
    }

    /// The dma-buf for one of the exporter's own calls, named `call` in the error.
    /// - Throws: `ENODEV` after ``drop()``.
    func live(_ call: String? = nil) throws(DMAError) -> DMABuffer {
        guard let buffer = box.withLock({ $0 }) else {
            throw DMAError(.noDevice, .ENODEV, (call.map { "\($0): " } ?? "") + whenReleased)
        }
        return buffer
    }

    /// Drops the exporter's reference (its `release`).
    func drop() {
        box.withLock { $0 = nil }
    }
}
