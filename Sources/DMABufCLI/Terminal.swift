import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What the terminal allows: box drawing and colour only when the stream is a terminal, and no
/// colour when `NO_COLOR` is set (no-color.org); progress lines only on a terminal's stderr.
enum Terminal {
    /// Whether standard output is a terminal.
    static var stdoutIsTTY: Bool { isatty(STDOUT_FILENO) == 1 }
    /// Whether standard error is a terminal.
    static var stderrIsTTY: Bool { isatty(STDERR_FILENO) == 1 }
    /// Whether colour may be used on standard output.
    static var colour: Bool { stdoutIsTTY && ProcessInfo.processInfo.environment["NO_COLOR"].map(\.isEmpty) ?? true }
    /// Whether Unicode box drawing may be used on standard output.
    static var boxDrawing: Bool { stdoutIsTTY }

    /// Wraps `text` in an ANSI colour when colour is allowed.
    static func paint(_ text: String, _ code: String) -> String { colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
}

/// A progress line on stderr for work that takes more than a second: silent before that, silent
/// when stderr is not a terminal, and erased when the work ends.
final class ProgressLine {
    private let label: String
    private let start = Date()
    private var shown = false
    private var lastDraw = Date.distantPast

    init(_ label: String) { self.label = label }

    /// Reports `done` of `total`.
    func update(_ done: Int, _ total: Int) {
        guard Terminal.stderrIsTTY else { return }
        let now = Date()
        guard now.timeIntervalSince(start) > 1, now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        shown = true
        FileHandle.standardError.write(Data("\r\(label): \(done)/\(total)\u{1B}[K".utf8))
    }

    /// Erases the line.
    func finish() {
        if shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
