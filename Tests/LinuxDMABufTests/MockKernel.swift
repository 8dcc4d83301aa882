import CLibDRM
import DMACore
import Glibc
@testable import LinuxDMABuf
import Synchronization

/// A stand-in kernel for the system-call layer: answers with `handler`, records every call, and
/// keeps the books of descriptors it handed out so a test can check each is closed exactly once.
final class MockKernel: SystemCallInterceptor {
    typealias Handler = @Sendable (SystemCall, UnsafeMutableRawPointer?) -> SystemCallOutcome

    private let handler: Handler
    private let state = Mutex<(calls: [SystemCall], closed: [Int32])>(([], []))

    init(_ handler: @escaping Handler) {
        self.handler = handler
    }

    func intercept(_ call: SystemCall, argument: UnsafeMutableRawPointer?) -> SystemCallOutcome {
        state.withLock { state in
            state.calls.append(call)
            if case .close(let fd) = call { state.closed.append(fd) }
        }
        return handler(call, argument)
    }

    /// Every call so far, in order.
    var calls: [SystemCall] { state.withLock { $0.calls } }
    /// Every descriptor closed so far, in order.
    var closed: [Int32] { state.withLock { $0.closed } }
    /// The ioctl requests made so far, by name.
    var ioctls: [String] {
        calls.compactMap { if case .ioctl(_, let request) = $0 { request.name } else { nil } }
    }
}

/// Runs `body` with `handler` in the kernel's place, for the current task only.
func withMockKernel<R>(_ handler: @escaping MockKernel.Handler, _ body: (MockKernel) throws -> R) rethrows -> R {
    let mock = MockKernel(handler)
    return try SystemCalls.$interceptor.withValue(mock) { try body(mock) }
}

/// Runs `body` expecting a DMAError; returns it, or `nil` when none was thrown.
func dmaError(_ body: () throws -> Void) -> DMAError? {
    do {
        try body()
        return nil
    } catch let error as DMAError {
        return error
    } catch {
        return DMAError(.invalidArgument, .EIO, "not a DMAError: \(error)")
    }
}
