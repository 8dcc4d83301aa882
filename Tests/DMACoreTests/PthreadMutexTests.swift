import DMACore
import Dispatch
import Testing

@Suite("PthreadMutex and ModelMutex: the model's lock, and the one ThreadSanitizer can see")
struct PthreadMutexTests {
    @Test("withLock hands the value over under the lock and returns what the body returns")
    func value() {
        let lock = PthreadMutex([1, 2])
        let count = lock.withLock { value in
            value.append(3)
            return value.count
        }
        #expect(count == 3)
        #expect(lock.withLock { $0 } == [1, 2, 3])
    }

    @Test("A typed error thrown under the lock comes out with its type, and the lock is free again")
    func typedThrow() {
        let lock = PthreadMutex(0)
        do {
            try lock.withLock { (value) throws(DMAError) -> Void in
                value += 1
                throw DMAError(.invalidArgument, .EINVAL, "thrown under the lock")
            }
            Issue.record("no error")
        } catch {
            #expect(error.code == .invalidArgument)
        }
        // An error-checking mutex still held by this thread would fail this second lock.
        #expect(lock.withLock { $0 } == 1)
    }

    @Test("Eight threads adding under the lock lose no update, with either lock")
    func concurrentUpdates() {
        let pthread = PthreadMutex(0)
        let model = ModelMutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<1000 {
                pthread.withLock { $0 += 1 }
                model.withLock { $0 += 1 }
            }
        }
        #expect(pthread.withLock { $0 } == 8000)
        #expect(model.withLock { $0 } == 8000)
    }
}
