import DMACore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

/// An acquire context (`struct ww_acquire_ctx`, `include/linux/ww_mutex.h`, made by
/// `ww_acquire_init`): the owner of the reservation locks taken with it. The calls that need the
/// lock (map, unmap, pin, unpin, invalidate, the exporters' moves) take the context that holds it,
/// and ``ReservationObject/assertHeld(_:by:)`` compares owners, as `dma_resv_assert_held` does
/// for the task that holds the lock.
///
/// Contexts are ordered by their stamp (`ctx->stamp`, from a global counter): when a context that
/// already holds a lock waits for one held by an older context, it must back off (`EDEADLK`,
/// the wait-die rule of `kernel/locking/ww_mutex.h`), drop its locks and try again; a context with
/// no lock held simply waits.
public final class ReservationContext: Sendable, Hashable, CustomStringConvertible {
    private static let nextStamp = Atomic<UInt64>(1)
    /// The stamp: a lower one is older and wins a conflict.
    public let stamp: UInt64
    private let acquired = Atomic<Int>(0)

    /// `ww_acquire_init`: a new context holding no lock.
    public init() { stamp = Self.nextStamp.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// How many reservation locks this context holds (`ctx->acquired`).
    public var acquiredCount: Int { acquired.load(ordering: .acquiring) }

    func didAcquire() { acquired.wrappingAdd(1, ordering: .releasing) }
    func didRelease() { acquired.wrappingSubtract(1, ordering: .releasing) }

    public static func == (a: ReservationContext, b: ReservationContext) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    public var description: String { "acquire context #\(stamp)" }
}

/// The lock word of a reservation object: its owner, and a condition that waiters sleep on
/// (`struct ww_mutex`: a mutex with an owner context; contended waiters sleep in its wait list).
///
/// Built on `pthread_mutex_t` and `pthread_cond_t` because waiting needs a condition variable,
/// which `Synchronization.Mutex` does not have; ThreadSanitizer sees both.
private final class ReservationLockWord: @unchecked Sendable {
    // @unchecked: `owner` and `ownerThread` are read and written only with `mutex` held, and the
    // two pthread objects are allocated once and never move.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var owner: ReservationContext?
    private var ownerThread: pthread_t?

    enum Outcome {
        case acquired
        case busy(ReservationContext)
        case sameContext
        case sameThread(ReservationContext)
        case backOff(ReservationContext)
    }

    init() {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Takes the lock for `context`, sleeping while another context holds it when `wait` is set.
    func acquire(_ context: ReservationContext, wait: Bool) -> Outcome {
        locked {
            let me = pthread_self()
            while let holder = owner {
                if holder === context { return .sameContext }
                // The thread that holds the lock (through another context) would wait for itself.
                if let thread = ownerThread, pthread_equal(thread, me) != 0 { return .sameThread(holder) }
                guard wait else { return .busy(holder) }
                // Wait-die: a younger context that holds other locks must not wait for an older one.
                if context.acquiredCount > 0, context.stamp > holder.stamp { return .backOff(holder) }
                pthread_cond_wait(condition, mutex)
            }
            owner = context
            ownerThread = me
            context.didAcquire()
            return .acquired
        }
    }

    /// Drops the lock if `context` holds it and wakes the waiters; `false` otherwise.
    func release(_ context: ReservationContext) -> Bool {
        locked {
            guard owner === context else { return false }
            owner = nil
            ownerThread = nil
            context.didRelease()
            pthread_cond_broadcast(condition)
            return true
        }
    }

    var currentOwner: ReservationContext? { locked { owner } }
}

/// The reservation object of a buffer (`struct dma_resv`, `drivers/dma-buf/dma-resv.c`): a lock
/// that serialises moves and dynamic maps, and the fences of the work using the buffer.
///
/// The lock is a `ww_mutex` (`dma_resv_lock`, `kernel/locking/ww_mutex.h`) owned by a
/// ``ReservationContext``:
/// - ``lock(_:)`` sleeps while another context holds it (no spinning), and ``tryLock(_:)`` says
///   `false` instead (`dma_resv_trylock`);
/// - the same context taking it twice is `EDEADLK` (the kernel answers `-EALREADY`, which callers
///   treat as a deadlock avoided); so is a thread that holds it through one context asking again
///   through another (it would wait for itself forever: lockdep's "possible recursive locking");
/// - a context that already holds other reservation locks and finds this one held by an older
///   context gets `EDEADLK` rather than waiting (wait-die): it must unlock everything and retry;
/// - calls that the kernel guards with `dma_resv_assert_held` take the context and throw
///   `DMAError/Code/lockNotHeld` when it is not the owner, instead of corrupting state;
/// - unlocking with a context that does not hold it is `EPERM`.
///
/// Hold the lock only in synchronous code: ``withLock(_:)`` gives its context to a synchronous
/// body, which is the form every caller in this package uses.
public final class ReservationObject: Sendable {
    private let word = ReservationLockWord()
    private let fences = ModelMutex<[(DMAFence, DMAFenceUsage)]>([])

    /// An unlocked object with no fences.
    public init() {}

    /// `dma_resv_lock(obj, ctx)`: takes the lock for `context`, waiting while another holds it.
    /// - Throws: `DMAError/Code/wouldDeadlock` (`EDEADLK`) when `context` already holds it, when
    ///   this thread holds it through another context, or when `context` must back off (wait-die).
    public func lock(_ context: ReservationContext) throws(DMAError) {
        try check(word.acquire(context, wait: true), context, "dma_resv_lock")
    }

    /// `dma_resv_trylock`: takes the lock for `context` if nobody holds it.
    /// - Returns: `false` when another context holds it (busy).
    /// - Throws: `EDEADLK` when `context` already holds it.
    public func tryLock(_ context: ReservationContext) throws(DMAError) -> Bool {
        switch word.acquire(context, wait: false) {
        case .acquired: return true
        case .busy, .sameThread, .backOff: return false
        case .sameContext: throw Self.twice(context, "dma_resv_trylock")
        }
    }

    private func check(_ outcome: ReservationLockWord.Outcome, _ context: ReservationContext, _ call: String) throws(DMAError) {
        switch outcome {
        case .acquired: return
        case .sameContext: throw Self.twice(context, call)
        case .sameThread(let holder):
            throw DMAError(
                .wouldDeadlock, .EDEADLK,
                "\(call): this thread already holds the reservation lock through \(holder); asking for it again through \(context) would wait forever (use the context that holds it)")
        case .backOff(let holder):
            throw DMAError(
                .wouldDeadlock, .EDEADLK,
                "\(call): \(context) holds \(context.acquiredCount) other reservation lock(s) and this one is held by the older \(holder): back off (unlock all and retry), as ww_mutex's wait-die rule says")
        case .busy(let holder):
            throw DMAError(.busy, .EBUSY, "\(call): the reservation lock is held by \(holder)")
        }
    }

    private static func twice(_ context: ReservationContext, _ call: String) -> DMAError {
        DMAError(.wouldDeadlock, .EDEADLK, "\(call): \(context) already holds this reservation lock (taken twice in one context)")
    }

    /// `dma_resv_unlock`.
    /// - Throws: `EPERM` when `context` does not hold it.
    public func unlock(_ context: ReservationContext) throws(DMAError) {
        guard word.release(context) else {
            throw DMAError(.lockNotHeld, .EPERM, "dma_resv_unlock: \(context) does not hold the reservation lock")
        }
    }

    /// Runs `body` with the lock held by a new context (`ww_acquire_init`, `dma_resv_lock`, …,
    /// `dma_resv_unlock`, `ww_acquire_fini`), waiting for it while another context holds it.
    /// - Throws: what ``lock(_:)`` throws (the body does not run then), or what `body` throws.
    public func withLock<T>(_ body: (ReservationContext) throws(DMAError) -> T) throws(DMAError) -> T {
        let context = ReservationContext()
        try lock(context)
        defer { _ = word.release(context) }
        return try body(context)
    }

    /// Whether some context holds the lock.
    public var isHeld: Bool { word.currentOwner != nil }

    /// Whether `context` holds the lock.
    public func isHeld(by context: ReservationContext) -> Bool { word.currentOwner === context }

    /// `dma_resv_assert_held`, as an error a caller can act on: `context` must be the owner.
    /// - Throws: `DMAError/Code/lockNotHeld` naming the call.
    public func assertHeld(_ call: String, by context: ReservationContext) throws(DMAError) {
        guard let owner = word.currentOwner else {
            throw DMAError(.lockNotHeld, .EINVAL, "\(call) needs the buffer's reservation lock held (dma_resv_assert_held); take it with dma_resv_lock first")
        }
        guard owner === context else {
            throw DMAError(.lockNotHeld, .EINVAL, "\(call) needs the buffer's reservation lock held by \(context), but \(owner) holds it (dma_resv_assert_held)")
        }
    }

    /// `dma_resv_add_fence`: adds a fence with a usage; needs the lock.
    /// - Throws: `DMAError/Code/lockNotHeld`.
    public func addFence(_ fence: DMAFence, usage: DMAFenceUsage, by context: ReservationContext) throws(DMAError) {
        try assertHeld("dma_resv_add_fence", by: context)
        fences.withLock { $0.append((fence, usage)) }
    }

    /// The fences a waiter for `usage` must wait for: those of that usage or a lower one
    /// (`dma_resv_iter` with `usage`), unsignalled only.
    public func pendingFences(for usage: DMAFenceUsage) -> [DMAFence] {
        fences.withLock { fences in fences.filter { $0.1 <= usage && !$0.0.isSignalled }.map(\.0) }
    }

    /// `dma_resv_test_signaled`: whether every fence a waiter for `usage` waits for has signalled.
    public func isIdle(for usage: DMAFenceUsage) -> Bool { pendingFences(for: usage).isEmpty }

    /// Drops signalled fences (what `dma_resv_prune` does).
    public func prune() { fences.withLock { $0.removeAll { $0.0.isSignalled } } }
}

extension DMAError.Code {
    /// A call that needs the reservation lock was made without it, or by a context that does not
    /// own it (`dma_resv_assert_held`).
    public static let lockNotHeld = DMAError.Code("reservation-lock")
    /// Taking the reservation lock would deadlock (`EDEADLK`): the same context twice, the holding
    /// thread again through another context, or a context that must back off (wait-die).
    public static let wouldDeadlock = DMAError.Code("would-deadlock")
    /// The buffer or attachment is in use (a live mapping at detach, a pinned buffer to move).
    public static let busy = DMAError.Code("busy")
}
