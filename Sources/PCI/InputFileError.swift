import DMACore

/// The one error of the files the package reads: a topology (a YAML file or a sysfs tree), a
/// scenario, and the file a person names on the command line. It names the file (and the line and
/// column, for YAML and `resource`) and carries the errno the kernel gives for the same refusal.
///
/// Every loader throws only this type: ``InputFile/read(_:what:limit:)``,
/// ``YAMLTopology/load(_:file:cpu:overrideCPU:)``, ``SysfsTopologyLoader/load(root:cpu:progress:)``
/// and the scenario parser (`Scenario.parse` in DMAScenario), so a caller catches one error for
/// every file.
public struct InputFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file that is wrong.
    public let file: String
    /// The 1-based line, when known.
    public let line: Int?
    /// The 1-based column, when known.
    public let column: Int?
    /// What is wrong and what to do.
    public let message: String
    /// The errno the kernel gives for the same refusal: `EINVAL` for malformed content (the
    /// default), `E2BIG` for YAML nested or aliased past the limits, the errno of a failed open or
    /// read (`ENOENT`, `EACCES`, `EIO`), `ELOOP`, `EXDEV`, `EISDIR` or `EFBIG` for a file of a
    /// sysfs tree that was refused unread (see ``SysfsTopologyLoader``), and the errno of a model
    /// error about a value in the file (an address that wraps is `EOVERFLOW`).
    public let errno: Errno

    /// Creates an error. The file name and the message are made safe to print here, whatever
    /// input they quote: control characters are escaped (no escape sequence reaches a terminal)
    /// and each is cut to a sane length (`ErrorText` in DMACore).
    public init(file: String, line: Int? = nil, column: Int? = nil, errno: Errno = .EINVAL, _ message: String) {
        self.file = ErrorText.printable(file, limit: 4096)
        self.line = line
        self.column = column
        self.errno = errno
        self.message = ErrorText.message(message)
    }

    /// An error about a value in the file that a model type refused (`PCIAddress`, `CPUInfo`,
    /// `KernelRules`): its message and errno, placed at the file, line and column.
    public init(file: String, line: Int? = nil, column: Int? = nil, _ error: DMAError) {
        self.init(file: file, line: line, column: column, errno: error.errno, error.message)
    }

    public var description: String {
        var place = file
        if let line { place += ":\(line)" }
        if let column { place += ":\(column)" }
        return "\(place): \(message)"
    }
}

extension InputFileError {
    /// Runs a loader's body and gives whatever it throws as this error: this error as it is, a
    /// model error with its errno, anything else in words, each about `file` (at `line` and
    /// `column` when given). The loaders' public entry points throw only ``InputFileError`` through it.
    package static func loading<Value>(
        _ file: String, line: Int? = nil, column: Int? = nil, _ body: () throws -> Value
    ) throws(InputFileError) -> Value {
        do {
            return try body()
        } catch let error as InputFileError {
            throw error
        } catch let error as DMAError {
            throw InputFileError(file: file, line: line, column: column, error)
        } catch {
            throw InputFileError(file: file, line: line, column: column, "\(error)")
        }
    }
}

/// The name the load error had before scenario files shared it; for this package's own code only.
package typealias TopologyLoadError = InputFileError
