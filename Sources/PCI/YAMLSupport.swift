import DMACore
package import Yams

/// A checked view of a YAML document for the package's file formats: every lookup names the file,
/// line and column of the node it complains about, unknown keys are refused, and numbers may be
/// written in decimal, `0x` hexadecimal, or with a `KiB`/`MiB`/`GiB`/`TiB` suffix.
package struct YAMLReader {
    /// The file name used in errors.
    package let file: String

    /// Creates a reader for errors about `file`.
    package init(file: String) { self.file = file }

    /// Parses `text` into its root node, after checking it against ``YAMLLimits/standard``.
    /// - Throws: ``InputFileError`` with the parser's line and column; `E2BIG` for nesting or
    ///   aliases past the limits (checked in linear time before the tree is built).
    package func root(_ text: String) throws(InputFileError) -> Node {
        try YAMLLimits.standard.check(text, file: file)
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            let (mark, problem) = Self.describe(error)
            throw InputFileError(file: file, line: mark?.line, column: mark?.column, "YAML syntax error: \(problem)")
        } catch {
            throw InputFileError(file: file, "YAML error: \(ErrorText.printable(String(describing: error)))")
        }
        guard let node else { throw InputFileError(file: file, line: 1, "the file is empty") }
        return node
    }

    /// Where a parser error is and what it says, in libyaml's words, without the text of the
    /// input line that Yams's own description quotes (a line can be megabytes long).
    static func describe(_ error: YamlError) -> (Mark?, String) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            return (mark, problem + (context.map { " (\($0.text))" } ?? ""))
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\(ErrorText.printable($0))'" }.joined(separator: ", ")
            return (context.mark, "duplicate key \(keys) in one mapping")
        case .reader(let problem, let offset, _, _):
            return (nil, problem + (offset.map { " at byte \($0)" } ?? ""))
        default:
            return (nil, ErrorText.printable(String(describing: error)))
        }
    }

    /// An error at `node`.
    package func error(_ node: Node?, _ message: String) -> InputFileError {
        InputFileError(file: file, line: node?.mark?.line, column: node?.mark?.column, message)
    }

    /// A model error about the value at `node` (its errno kept), placed at the node.
    package func error(_ node: Node?, _ error: DMAError) -> InputFileError {
        InputFileError(file: file, line: node?.mark?.line, column: node?.mark?.column, error)
    }

    /// The node as a mapping whose keys are all in `allowed`, its values found by key text.
    /// - Complexity: O(k) in the number of keys, once; each lookup after is O(1) (Yams's own
    ///   subscript compares every key by its resolved tag, a regular-expression match per key per
    ///   lookup, which made a 100,000-step scenario spend most of its parse there).
    package func mapping(_ node: Node, allowed: Set<String>, what: String) throws(InputFileError) -> YAMLMapping {
        guard let mapping = node.mapping else { throw error(node, "\(what) must be a mapping (key: value)") }
        var values: [String: Node] = [:]
        values.reserveCapacity(mapping.count)
        for (key, value) in mapping {
            guard let name = key.string, allowed.contains(name) else {
                throw error(key, "unknown key '\(ErrorText.printable(key.string ?? "?"))' in \(what); allowed: \(allowed.sorted().joined(separator: ", "))")
            }
            // Yams refuses duplicate keys while composing; the first is kept, as its subscript did.
            if values[name] == nil { values[name] = value }
        }
        return YAMLMapping(values: values)
    }

    /// The node as a sequence.
    package func sequence(_ node: Node, what: String) throws(InputFileError) -> [Node] {
        guard let sequence = node.sequence else { throw error(node, "\(what) must be a list") }
        return Array(sequence)
    }

    /// The node as a string.
    package func string(_ node: Node, what: String) throws(InputFileError) -> String {
        guard let scalar = node.scalar else { throw error(node, "\(what) must be a single value") }
        return scalar.string
    }

    /// Whether the node is YAML null (`null`, `~` or empty).
    package func isNull(_ node: Node) -> Bool {
        guard let scalar = node.scalar else { return false }
        return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// The node as an unsigned number up to `max`.
    package func number(_ node: Node, what: String, max: UInt64 = UInt64.max) throws(InputFileError) -> UInt64 {
        let text = try string(node, what: what).replacingUnderscores()
        guard let value = Self.parseNumber(text), value <= max else {
            throw error(node, "\(what) '\(ErrorText.printable(text))' is not a number up to \(max) (decimal, 0x hex, or with KiB/MiB/GiB/TiB)")
        }
        return value
    }

    /// The node as a signed integer.
    package func integer(_ node: Node, what: String) throws(InputFileError) -> Int {
        let text = try string(node, what: what)
        guard let value = Int(text) else { throw error(node, "\(what) '\(ErrorText.printable(text))' is not an integer") }
        return value
    }

    /// The node as a boolean.
    package func bool(_ node: Node, what: String) throws(InputFileError) -> Bool {
        switch try string(node, what: what).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(node, "\(what) must be true or false")
        }
    }

    /// Parses `4096`, `0x1000`, `4KiB`, `16 MiB`: one decimal or `0x` hexadecimal number, then at
    /// most one unit. Anything else (`1KiBKiB`, `4 0`, `-1`, an empty text) is nil, as is a value
    /// past 2^64 - 1.
    /// - Complexity: O(n) in the length of the text.
    package static func parseNumber(_ text: String) -> UInt64? {
        var digits = Substring(text).drop { $0 == " " }
        while digits.last == " " { digits = digits.dropLast() }
        var scale: UInt64 = 1
        for (suffix, value) in [("KiB", UInt64(1) << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)]
        where digits.hasSuffix(suffix) {
            digits = digits.dropLast(suffix.count)
            while digits.last == " " { digits = digits.dropLast() }
            scale = value
            break
        }
        let base: UInt64?
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            let hex = digits.dropFirst(2)
            base = hex.allSatisfy(\.isHexDigit) ? UInt64(hex, radix: 16) : nil
        } else {
            base = digits.allSatisfy { $0 >= "0" && $0 <= "9" } ? UInt64(digits) : nil
        }
        guard let base else { return nil }
        let (product, overflow) = base.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }
}

/// A YAML mapping checked by ``YAMLReader/mapping(_:allowed:what:)``: its values by key text.
package struct YAMLMapping {
    let values: [String: Node]

    /// A mapping with no keys (the arguments of a step written with none).
    package static var empty: YAMLMapping { YAMLMapping(values: [:]) }

    /// The value of `key`, if the mapping has it.
    package subscript(key: String) -> Node? { values[key] }

    /// The number of keys.
    package var count: Int { values.count }
}

extension String {
    func replacingUnderscores() -> String { filter { $0 != "_" } }
}
