import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A built executable of this package, by name: it sits beside the test bundle in the build folder.
func builtProduct(_ name: String) -> URL {
    let buildFolder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let binary = buildFolder.appendingPathComponent(name)
    if FileManager.default.fileExists(atPath: binary.path) { return binary }
    return buildFolder.deletingLastPathComponent().appendingPathComponent(name)
}

/// Runs `executable` with `arguments` and returns its exit status and everything it wrote to its
/// standard output and standard error.
///
/// Two rules, both broken by the helper's first version; the first is what hung the CLI tests
/// under the address sanitizer:
/// - Both pipes are read at the same time, each on a thread of its own. Reading standard output to
///   its end before standard error deadlocks as soon as the child writes more than a pipe holds
///   (64 KiB) to standard error before exiting: the child blocks in `write`, the parent in `read`.
///   LeakSanitizer's report at a leaking child's exit was such a write (RELIABILITY.md).
/// - No child inherits another child's pipes. `Foundation.Pipe` makes plain pipes (not
///   close-on-exec), and `Process` on Linux closes the parent's other descriptors in the child by a
///   scan of `/proc/self/fd` made before its `posix_spawn`, which misses a pipe another thread
///   makes in between; such a child holds the other test's write end, and that test's read waits
///   for the wrong child. Here the pipes are made close-on-exec, and making them, spawning and
///   closing the parent's write ends is one step under a lock, so no spawn of this helper can
///   see a write end of another. (`dup2` onto 1 and 2 clears the flag for the child's own ends.)
func runChild(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, stdout: Data, stderr: Data) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let (out, err) = try spawnLock.withLock { _ throws -> (ClosingPipe, ClosingPipe) in
        let out = try ClosingPipe()
        let err = try ClosingPipe()
        process.standardOutput = out.write
        process.standardError = err.write
        try process.run()
        // The parent's copies of the write ends: once they are closed, only the child holds them.
        try out.write.close()
        try err.write.close()
        return (out, err)
    }
    let stdout = PipeDrain(out.read)
    let stderr = PipeDrain(err.read)
    let (outBytes, errBytes) = (stdout.wait(), stderr.wait())
    process.waitUntilExit()
    return (process.terminationStatus, outBytes, errBytes)
}

/// Held while the helper makes its pipes, spawns and closes the parent's write ends.
private let spawnLock = Mutex(())

/// A pipe whose two ends are close-on-exec.
struct ClosingPipe {
    let read: FileHandle
    let write: FileHandle

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        // Glibc's pipe2 is not visible to Swift; the flag is set at once instead. A spawn by code
        // other than this helper could still land between the two calls.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        read = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        write = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
    }
}

/// Reads a file handle to its end on a thread of its own (not a dispatch or cooperative pool
/// thread, which a blocking read would take from other tests).
final class PipeDrain: Sendable {
    private let bytes = Mutex<Data?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            let data = handle.readDataToEndOfFile()
            bytes.withLock { $0 = data }
            done.signal()
        }
    }

    /// Waits for the end of the file and returns every byte read.
    func wait() -> Data {
        done.wait()
        return bytes.withLock { $0 ?? Data() }
    }
}

@Suite("The helper that runs the built binaries")
struct ChildProcessTests {
    @Test("A child that fills its standard error pipe before it writes to standard output and exits does not hang the reader")
    func largeStandardError() throws {
        // 256 KiB is four times what a Linux pipe holds. The helper's first version, which read
        // standard output to its end before standard error, waited here forever.
        let count = 256 * 1024
        let result = try runChild(URL(fileURLWithPath: "/bin/sh"), ["-c", "head -c \(count) /dev/zero >&2; echo done"])
        #expect(result.status == 0)
        #expect(String(decoding: result.stdout, as: UTF8.self) == "done\n")
        #expect(result.stderr.count == count)
    }
}
