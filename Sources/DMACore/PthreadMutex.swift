import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

#if DMA_PTHREAD_LOCKS
/// The lock every piece of shared model state is behind: ``PthreadMutex`` in this build
/// (`-DDMA_PTHREAD_LOCKS`, which `make sanitize` passes), so that ThreadSanitizer sees it.
package typealias ModelMutex<Value: ~Copyable> = PthreadMutex<Value>
#else
/// The lock every piece of shared model state is behind: `Synchronization.Mutex`, or
/// ``PthreadMutex`` when built with `-DDMA_PTHREAD_LOCKS` (as `make sanitize` does), so that
/// ThreadSanitizer sees it. The two have the same `init(_:)` and `withLock(_:)`.
package typealias ModelMutex<Value: ~Copyable> = Synchronization.Mutex<Value>
#endif

/// A lock around a value, with the shape of `Synchronization.Mutex` (`init(_:)`,
/// `withLock(_:)` with typed throws), built on a heap-allocated `pthread_mutex_t`.
///
/// Why it exists: ThreadSanitizer learns a lock's happens-before edges by intercepting
/// `pthread_mutex_lock` and `pthread_mutex_unlock`. `Synchronization.Mutex` on Linux takes a futex
/// with atomics inside the standard library, which is not built with ThreadSanitizer, so two
/// accesses made under one `Mutex` from two threads look unordered to it and are reported as
/// races. Under `make sanitize` the model's locks are this type (``ModelMutex``), which the
/// sanitizer sees; RELIABILITY.md has the runs that showed it. It is not the default because an
/// uncontended `withLock` costs about 15 ns here against about 6 ns for `Mutex`, and each lock is
/// two heap allocations.
///
/// The lock is an error-checking mutex: taking it again on the thread that holds it is a
/// precondition failure (as it is for `Mutex`), not a silent deadlock.
package struct PthreadMutex<Value: ~Copyable>: ~Copyable {
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    /// Creates a lock holding `initialValue`.
    package init(_ initialValue: consuming sending Value) {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK))
        let status = pthread_mutex_init(lock, &attributes)
        pthread_mutexattr_destroy(&attributes)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
        value.deinitialize(count: 1)
        value.deallocate()
    }

    /// Calls `body` with the value while holding the lock, and returns what it returns.
    ///
    /// - Throws: what `body` throws; the lock is released either way.
    package borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        let locked = pthread_mutex_lock(lock)
        precondition(locked == 0, "pthread_mutex_lock failed: \(locked) (EDEADLK: the lock is already held by this thread)")
        defer { pthread_mutex_unlock(lock) }
        return try body(&value.pointee)
    }
}

// The value is reached only through `withLock`, under the lock, and enters and leaves it as
// `sending`: the same reasoning that makes `Synchronization.Mutex` Sendable.
extension PthreadMutex: @unchecked Sendable where Value: ~Copyable {}
