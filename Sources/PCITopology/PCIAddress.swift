import DMACore

/// A PCI function's address, `DDDD:BB:DD.F` (`pci_name`): domain, bus, device (slot) and function.
public struct PCIAddress: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The PCI domain (segment).
    public let domain: UInt32
    /// The bus number.
    public let bus: UInt8
    /// The device (slot) number, 0…31.
    public let device: UInt8
    /// The function number, 0…7.
    public let function: UInt8

    /// Makes an address.
    /// - Throws: `EINVAL` for a device above 31 or a function above 7.
    public init(domain: UInt32 = 0, bus: UInt8, device: UInt8, function: UInt8) throws(DMAError) {
        guard device < 32, function < 8 else {
            throw DMAError(.invalidArgument, .EINVAL, "PCI device \(device) function \(function) is out of range (0…31, 0…7)")
        }
        self.domain = domain
        self.bus = bus
        self.device = device
        self.function = function
    }

    /// Parses `0000:03:00.0` or the short `03:00.0` (domain 0).
    /// - Throws: `EINVAL` naming the text when it is not a BDF.
    public init(parsing text: String) throws(DMAError) {
        let bad = DMAError(.invalidArgument, .EINVAL, "'\(text)' is not a PCI address (DDDD:BB:DD.F)")
        var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 2 { parts.insert("0000", at: 0) }
        guard parts.count == 3, parts[0].count <= 8, parts[1].count == 2 else { throw bad }
        let slot = parts[2].split(separator: ".", omittingEmptySubsequences: false)
        guard slot.count == 2, slot[0].count == 2, slot[1].count == 1,
            let domain = UInt32(parts[0], radix: 16), let bus = UInt8(parts[1], radix: 16),
            let device = UInt8(slot[0], radix: 16), let function = UInt8(slot[1], radix: 16)
        else { throw bad }
        try self.init(domain: domain, bus: bus, device: device, function: function)
    }

    /// `PCI_DEVFN(device, function)`.
    public var devfn: UInt8 { device << 3 | function }

    /// The kernel's name, `0000:03:00.0`.
    public var description: String {
        hex4(domain) + ":" + hex2(bus) + ":" + hex2(device) + "." + String(function)
    }

    /// The short form without the domain, `03:00.0`.
    public var short: String { hex2(bus) + ":" + hex2(device) + "." + String(function) }

    public static func < (a: PCIAddress, b: PCIAddress) -> Bool {
        (a.domain, a.bus, a.devfn) < (b.domain, b.bus, b.devfn)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

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
