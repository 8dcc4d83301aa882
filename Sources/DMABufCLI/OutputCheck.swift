// `stdout` is a C global that Swift 6 cannot prove safe; it is only read here, once, on the main
// thread after the command has finished, when nothing else writes to it.
@preconcurrency import Glibc
import DMACore
import Foundation

/// Flushes standard output, which `print` buffers, and checks that everything printed was
/// written: output to `/dev/full`, to a closed descriptor or to a full disk is an error on
/// standard error and exit code 2, never a silent 0 with nothing written.
func flushOutput(_ code: Int32) -> Int32 {
    let flushed = fflush(stdout) == 0
    let failedEarlier = ferror(stdout) != 0
    guard !flushed || failedEarlier else { return code }
    let failure = flushed
        ? CLIError("cannot write the output to standard output: an earlier write failed")
        : CLIError("cannot write the output to standard output: \(String(cString: strerror(errno)))", errno: Errno(rawValue: errno))
    FileHandle.standardError.write(Data((failure.description + "\n").utf8))
    return code == 0 ? 2 : code
}
