/// Text from an input file made safe to put in an error message: control characters (escape
/// sequences, carriage returns, NULs) are written as `\u{1B}`-style escapes instead of reaching the
/// terminal, and a long text is cut, so that no message echoes megabytes of a file.
public enum ErrorText {
    /// The most characters of input one message echoes by default.
    public static let defaultLimit = 120
    /// The most characters one whole error message holds by default.
    public static let defaultMessageLimit = 2000

    /// `text` with every control character escaped, cut after `limit` characters with a note of
    /// how many bytes were left out: for a value quoted inside a message.
    /// - Complexity: O(`limit`) plus a count of the bytes left out.
    public static func printable(_ text: some StringProtocol, limit: Int = defaultLimit) -> String {
        escaped(text, limit: limit, keepNewlines: false, note: "more bytes")
    }

    /// A whole message made safe: control characters other than newlines escaped, and cut after
    /// `limit` characters with a note of how many bytes were left out.
    /// - Complexity: O(`limit`) plus a count of the bytes left out.
    public static func message(_ text: String, limit: Int = defaultMessageLimit) -> String {
        escaped(text, limit: limit, keepNewlines: true, note: "more bytes of message cut")
    }

    private static func escaped(_ text: some StringProtocol, limit: Int, keepNewlines: Bool, note: String) -> String {
        var out = ""
        var kept = 0
        var index = text.startIndex
        while index != text.endIndex, kept < limit {
            for scalar in text[index].unicodeScalars {
                switch scalar.value {
                case 0x0a where keepNewlines, 0x20..<0x7f, 0xa0...: out.unicodeScalars.append(scalar)
                default: out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                }
            }
            kept += 1
            index = text.index(after: index)
        }
        if index != text.endIndex {
            out += "… (\(text.utf8.count - text[..<index].utf8.count) \(note))"
        }
        return out
    }
}
