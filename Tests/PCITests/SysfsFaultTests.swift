import DMACore
import Foundation
import Glibc
import PCI
import Synchronization
import Testing

/// Faults injected into the sysfs reader through the package's one system-call layer
/// (`SystemCalls` in DMACore), as the real-kernel layer's faults are (ReliabilityTests): the reader
/// opens, stats and reads every attribute through it, so a test can answer in the kernel's place.
@Suite("The sysfs reader under injected system-call faults")
struct SysfsFaultTests {
    /// Lets every call be made, except: the first try of each open and read fails with EINTR when
    /// `interrupt` is set, and every read of a file opened by the name `failing` fails with `fault`.
    final class FaultySysfs: SystemCallInterceptor, Sendable {
        struct Books {
            var calls: [SystemCall] = []
            var interrupted = 0
            var failingFDs: Set<Int32> = []
            var lastInterrupted: SystemCall?
        }
        let books = Mutex(Books())
        let failing: String?
        let fault: Errno
        let interrupt: Bool

        init(failing: String? = nil, fault: Errno = .EIO, interrupt: Bool = false) {
            self.failing = failing
            self.fault = fault
            self.interrupt = interrupt
        }

        func intercept(_ call: SystemCall, argument: UnsafeMutableRawPointer?) -> SystemCallOutcome {
            books.withLock { books -> SystemCallOutcome in
                books.calls.append(call)
                switch call {
                case .openAt(let folder, let path, let flags):
                    if interrupt && books.lastInterrupted != call {
                        books.lastInterrupted = call
                        books.interrupted += 1
                        return .fails(.EINTR)
                    }
                    books.lastInterrupted = nil
                    guard path.split(separator: "/").last.map(String.init) == failing else { return .perform }
                    let fd = path.withCString { openat(folder, $0, flags) }
                    if fd < 0 { return .fails(Errno(rawValue: errno)) }
                    books.failingFDs.insert(fd)
                    return .returns(Int(fd))
                case .read(let fd, _):
                    if books.failingFDs.contains(fd) { return .fails(fault) }
                    if interrupt && books.lastInterrupted != call {
                        books.lastInterrupted = call
                        books.interrupted += 1
                        return .fails(.EINTR)
                    }
                    books.lastInterrupted = nil
                    return .perform
                case .close(let fd):
                    books.failingFDs.remove(fd)
                    return .perform
                default:
                    return .perform
                }
            }
        }
    }

    static let q35 = fixtures.appendingPathComponent("qemu-q35").path

    @Test("a read that fails (EIO, EACCES, ENOMEM) is the load's error, with that errno and the file", arguments: [Errno.EIO, .EACCES, .ENOMEM])
    func readFault(_ fault: Errno) throws {
        let cpu = try CPUInfo(parsing: "intel:0x6")
        let kernel = FaultySysfs(failing: "config", fault: fault)
        let error = #expect(throws: InputFileError.self) {
            try SystemCalls.$interceptor.withValue(kernel) { try SysfsTopologyLoader.load(root: Self.q35, cpu: cpu) }
        }
        #expect(error?.errno == fault, "\(String(describing: error))")
        #expect(error?.file.hasSuffix("/config") == true, "\(String(describing: error))")
        #expect(error?.message.contains(fault.name) == true, "\(String(describing: error))")
        // The failing file's descriptor was closed through the layer too.
        let books = kernel.books.withLock { $0 }
        #expect(books.failingFDs.isEmpty)
        #expect(books.calls.contains { if case .openAt(_, let path, _) = $0 { path == "config" } else { false } })
    }

    @Test("EINTR on each open and read of the sysfs reader is retried: the same topology, every call made again")
    func interruptedCallsAreRetried() throws {
        let cpu = try CPUInfo(parsing: "intel:0x6")
        let plain = try SysfsTopologyLoader.load(root: Self.q35, cpu: cpu)
        let kernel = FaultySysfs(interrupt: true)
        let interrupted = try SystemCalls.$interceptor.withValue(kernel) { try SysfsTopologyLoader.load(root: Self.q35, cpu: cpu) }
        #expect(interrupted.functions == plain.functions)
        let books = kernel.books.withLock { $0 }
        let reads = books.calls.filter { if case .read = $0 { true } else { false } }.count
        // 21 functions, at least vendor, device, class, config and resource each: opened and read.
        #expect(books.interrupted >= 2 * 21 * 5, "\(books.interrupted) calls interrupted")
        #expect(reads >= 2 * 21 * 5)
    }
}
