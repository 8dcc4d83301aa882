// libyaml's event parser, which Yams is built on (a C target of the Yams package, found through
// Yams's own dependency on it): its events are read once, before Yams composes a tree, so that a
// document is measured in linear time and without recursion.
internal import CYaml

/// The limits every YAML file of the package is held to before it is composed into a tree: how
/// deep collections nest, and how many nodes aliases may add.
///
/// Yams composes a document recursively, hashes every mapping key to find duplicates, and an alias
/// stands for its whole anchored node: a document of a few hundred bytes can stand for billions of
/// nodes (an "alias bomb"), or nest deep enough to overflow the stack. None of the package's
/// formats nests deeper than about ten levels or needs aliases at all, so the limits are far above
/// what a real file uses and far below what would hang the tools.
package struct YAMLLimits: Sendable, Hashable {
    /// The deepest nesting of sequences and mappings.
    package var maxDepth: Int
    /// The most nodes that aliases may stand for, all aliases together (each alias counts as the
    /// whole node it names, with the aliases inside that node expanded in turn).
    package var maxAliasedNodes: Int

    /// Creates limits.
    package init(maxDepth: Int = 128, maxAliasedNodes: Int = 100_000) {
        self.maxDepth = maxDepth
        self.maxAliasedNodes = maxAliasedNodes
    }

    /// The limits the loaders use.
    package static let standard = YAMLLimits()

    /// Checks `text` against the limits, from libyaml's events.
    ///
    /// A syntax error ends the check without an error (the composer that runs next reports it
    /// with its own words), except libyaml's own nesting limit, which is reported as this one.
    /// - Throws: ``InputFileError`` (`E2BIG`) naming `file`, the line and the column where the
    ///   nesting or the aliases pass the limit.
    /// - Complexity: O(n) in the length of the text, whatever its aliases stand for; no recursion.
    package func check(_ text: String, file: String) throws(InputFileError) {
        var bytes = Array(text.utf8)
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return }
        defer { yaml_parser_delete(&parser) }
        let outcome: InputFileError? = bytes.withUnsafeMutableBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            // The node count of each open collection (aliases expanded), and its anchor.
            var open: [(size: Int, anchor: String?)] = []
            var anchors: [String: Int] = [:]
            var aliased = 0
            func name(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
                pointer.map { String(cString: UnsafePointer($0)) }
            }
            func place(_ event: yaml_event_t, _ message: String) -> InputFileError {
                InputFileError(
                    file: file, line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1, errno: .E2BIG, message)
            }
            /// A node of `size` (aliases expanded) completed: it counts in its collection.
            func completed(_ size: Int, anchor: String?) {
                if let anchor { anchors[anchor] = size }
                if !open.isEmpty { open[open.count - 1].size += size }
            }
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    // libyaml has a nesting limit of its own (1,000 levels), which its scanner can
                    // reach before any event comes: the same refusal, in the same words.
                    let problem = parser.problem.map { String(cString: $0) } ?? ""
                    guard problem.contains("nesting level") else { return nil }
                    return InputFileError(
                        file: file, line: Int(parser.problem_mark.line) + 1, column: Int(parser.problem_mark.column) + 1, errno: .E2BIG,
                        "YAML nested more than \(maxDepth) levels deep; no file of this format needs that")
                }
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return nil
                case YAML_SCALAR_EVENT:
                    completed(1, anchor: name(event.data.scalar.anchor))
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    guard open.count < maxDepth else {
                        return place(event, "YAML nested more than \(maxDepth) levels deep; no file of this format needs that")
                    }
                    let anchor = event.type == YAML_SEQUENCE_START_EVENT
                        ? name(event.data.sequence_start.anchor) : name(event.data.mapping_start.anchor)
                    open.append((1, anchor))
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    guard let closed = open.popLast() else { return nil }
                    completed(closed.size, anchor: closed.anchor)
                case YAML_ALIAS_EVENT:
                    let size = name(event.data.alias.anchor).flatMap { anchors[$0] } ?? 1
                    // Sizes stay at most the limit plus the document's own nodes, so this cannot overflow.
                    aliased += size
                    guard aliased <= maxAliasedNodes else {
                        return place(
                            event,
                            "YAML aliases stand for more than \(maxAliasedNodes) nodes (an alias bomb?); write the values out instead")
                    }
                    completed(size, anchor: nil)
                default:
                    continue
                }
            }
        }
        if let outcome { throw outcome }
    }
}
