/// Text from an input file made safe to put in an error message: control characters (escape
/// sequences, carriage returns, NULs) are written as `\u{1B}`-style escapes instead of reaching the
/// terminal, and a long text is cut, so that no message echoes megabytes of a file.
public enum ErrorText {
    /// The most characters of input one message echoes by default.
    public static let defaultLimit = 120

    /// `text` with control characters escaped, cut after `limit` characters with a note of how
    /// many were left out.
    /// - Complexity: O(`limit`) whatever the length of `text` (only what is kept is looked at,
    ///   plus a count of the rest).
    public static func printable(_ text: some StringProtocol, limit: Int = defaultLimit) -> String {
        var out = ""
        var kept = 0
        var index = text.startIndex
        while index != text.endIndex, kept < limit {
            for scalar in text[index].unicodeScalars {
                switch scalar.value {
                case 0x20..<0x7f, 0xa0...: out.unicodeScalars.append(scalar)
                default: out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                }
            }
            kept += 1
            index = text.index(after: index)
        }
        if index != text.endIndex {
            out += "… (\(text.utf8.count - text[..<index].utf8.count) more bytes)"
        }
        return out
    }
}
