import DMACore

// The hexadecimal text of the topology report and the YAML reader: bus numbers, IDs.

func hex2(_ value: UInt8) -> String {
    let text = String(value, radix: 16)
    return text.count == 1 ? "0" + text : text
}

func hex4<T: BinaryInteger>(_ value: T) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 4 - text.count)) + text
}

/// Formats a 16-bit ID as `0x10de`.
func hexID(_ value: UInt16) -> String { "0x" + hex4(value) }
