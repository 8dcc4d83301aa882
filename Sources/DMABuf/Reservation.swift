import DMACore
import Synchronization

/// How a fence is used (`enum dma_resv_usage`, `include/linux/dma-resv.h`), ordered so that a
/// lower usage is waited for by every higher one.
public enum DMAFenceUsage: Int, Hashable, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    /// `DMA_RESV_USAGE_KERNEL`: memory management (a migration copy).
    case kernel = 0
    /// `DMA_RESV_USAGE_WRITE`: an implicit-sync writer.
    case write = 1
    /// `DMA_RESV_USAGE_READ`: an implicit-sync reader.
    case read = 2
    /// `DMA_RESV_USAGE_BOOKKEEP`: not for implicit sync.
    case bookkeep = 3

    public static func < (a: DMAFenceUsage, b: DMAFenceUsage) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .kernel: "kernel"
        case .write: "write"
        case .read: "read"
        case .bookkeep: "bookkeep"
        }
    }
}

/// A fence: a point on a timeline that signals once (`struct dma_fence`, `drivers/dma-buf/dma-fence.c`).
public final class DMAFence: Sendable, CustomStringConvertible {
    /// The timeline.
    public let context: UInt64
    /// The point on it.
    public let seqno: UInt64
    private let signalled = ModelMutex(false)

    /// A fence that is not yet signalled.
    public init(context: UInt64, seqno: UInt64) {
        self.context = context
        self.seqno = seqno
    }

    /// `dma_fence_signal`. Signalling twice is harmless, as in the kernel (it returns -EINVAL there).
    /// - Returns: whether this call signalled it.
    @discardableResult
    public func signal() -> Bool { signalled.withLock { was in defer { was = true }; return !was } }

    /// `dma_fence_is_signaled`.
    public var isSignalled: Bool { signalled.withLock { $0 } }

    public var description: String { "fence \(context):\(seqno) \(isSignalled ? "signalled" : "pending")" }
}

/// The reservation object of a buffer (`struct dma_resv`, `drivers/dma-buf/dma-resv.c`): a lock
/// that serialises moves and dynamic maps, and the fences of the work using the buffer.
///
/// The lock is modelled so that forgetting it is caught: calls that the kernel guards with
/// `dma_resv_assert_held` throw `DMAError/Code/lockNotHeld` here instead of corrupting state.
/// Locking twice is `EDEADLK` (a `ww_mutex` taken again in the same context), unlocking an
/// unlocked object is `EPERM`.
public final class ReservationObject: Sendable {
    private struct State {
        var held = false
        var fences: [(DMAFence, DMAFenceUsage)] = []
    }

    private let state = ModelMutex(State())

    /// An unlocked object with no fences.
    public init() {}

    /// `dma_resv_lock`.
    /// - Throws: `EDEADLK` when it is already held.
    public func lock() throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            guard !state.held else {
                throw DMAError(.lockNotHeld, .EDEADLK, "dma_resv_lock: the reservation lock is already held (EDEADLK)")
            }
            state.held = true
        }
    }

    /// `dma_resv_unlock`.
    /// - Throws: `EPERM` when it is not held.
    public func unlock() throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            guard state.held else { throw DMAError(.lockNotHeld, .EPERM, "dma_resv_unlock: the reservation lock is not held") }
            state.held = false
        }
    }

    /// Runs `body` with the lock held.
    public func withLock<T>(_ body: () throws(DMAError) -> T) throws(DMAError) -> T {
        try lock()
        defer { try? unlock() }
        return try body()
    }

    /// Whether the lock is held.
    public var isHeld: Bool { state.withLock { $0.held } }

    /// `dma_resv_assert_held`, as an error a caller can act on.
    /// - Throws: `DMAError/Code/lockNotHeld` naming the call.
    public func assertHeld(_ call: String) throws(DMAError) {
        guard isHeld else {
            throw DMAError(.lockNotHeld, .EINVAL, "\(call) needs the buffer's reservation lock held (dma_resv_assert_held); take it with dma_resv_lock first")
        }
    }

    /// `dma_resv_add_fence`: adds a fence with a usage; needs the lock.
    /// - Throws: `DMAError/Code/lockNotHeld`.
    public func addFence(_ fence: DMAFence, usage: DMAFenceUsage) throws(DMAError) {
        try assertHeld("dma_resv_add_fence")
        state.withLock { $0.fences.append((fence, usage)) }
    }

    /// The fences a waiter for `usage` must wait for: those of that usage or a lower one
    /// (`dma_resv_iter` with `usage`), unsignalled only.
    public func pendingFences(for usage: DMAFenceUsage) -> [DMAFence] {
        state.withLock { state in state.fences.filter { $0.1 <= usage && !$0.0.isSignalled }.map(\.0) }
    }

    /// `dma_resv_test_signaled`: whether every fence a waiter for `usage` waits for has signalled.
    public func isIdle(for usage: DMAFenceUsage) -> Bool { pendingFences(for: usage).isEmpty }

    /// Drops signalled fences (what `dma_resv_prune` does).
    public func prune() { state.withLock { $0.fences.removeAll { $0.0.isSignalled } } }
}

extension DMAError.Code {
    /// A call that needs the reservation lock was made without it (or the lock was taken twice).
    public static let lockNotHeld = DMAError.Code("reservation-lock")
    /// The buffer or attachment is in use (a live mapping at detach, a pinned buffer to move).
    public static let busy = DMAError.Code("busy")
}
