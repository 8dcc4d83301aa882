import DMACore
import PCI

/// A failure the tool reports, and the one place its wording is made: `error: ERRNO: message` on
/// standard error when an errno goes with it (a model error, a file that cannot be loaded), else
/// `error: message`; the exit code is 2 (bad input), as `dmabufMain` returns it.
struct CLIError: Error, CustomStringConvertible {
    /// The errno of the failure, when there is one.
    let errno: Errno?
    /// What went wrong, for a person.
    let message: String

    /// A failure in the tool's own words, with the errno that goes with it when there is one.
    init(_ message: String, errno: Errno? = nil) {
        self.errno = errno
        self.message = message
    }

    /// A model error: its errno and message.
    init(_ error: DMAError) { self.init(error.message, errno: error.errno) }

    /// A file that could not be loaded: its errno, and the message with the file, line and column.
    init(_ error: InputFileError) { self.init(error.description, errno: error.errno) }

    var description: String { errno.map { "error: \($0.name): \(message)" } ?? "error: \(message)" }
}
