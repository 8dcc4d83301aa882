/// A PCI function's address, `DDDD:BB:DD.F` (`pci_name`): domain, bus, device (slot) and function.
///
/// It names every device of the model (a ``P2PProvider``'s owner, the client a ``P2PTopology``
/// judges), so a name is parsed once, where it is made, and a malformed one is refused there
/// (`EINVAL`) instead of being judged "not supported" later.
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
        // On the UTF-8 bytes: the sysfs reader parses an address for every folder of every path.
        guard let (domain, bus, device, function) = Self.parse(Array(text.utf8)) else {
            throw DMAError(.invalidArgument, .EINVAL, "'\(ErrorText.printable(text))' is not a PCI address (DDDD:BB:DD.F)")
        }
        try self.init(domain: domain, bus: bus, device: device, function: function)
    }

    /// `[DDDD:]BB:DD.F`: a domain of 1 to 8 hexadecimal digits (0 when absent), then exactly two,
    /// two and one digits.
    private static func parse(_ bytes: [UInt8]) -> (UInt32, UInt8, UInt8, UInt8)? {
        func hexValue(_ slice: ArraySlice<UInt8>) -> UInt32? {
            var value: UInt32 = 0
            for byte in slice {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return slice.isEmpty ? nil : value
        }
        let colons = bytes.indices.filter { bytes[$0] == UInt8(ascii: ":") }
        guard colons.count == 1 || colons.count == 2 else { return nil }
        let domainEnd = colons.count == 2 ? colons[0] : nil
        let busStart = domainEnd.map { $0 + 1 } ?? 0
        let busEnd = colons[colons.count - 1]
        let slot = bytes[(busEnd + 1)...]
        guard let domainText = domainEnd.map({ bytes[..<$0] }) ?? Optional(bytes[0..<0]), domainText.count <= 8,
            busEnd - busStart == 2, slot.count == 4, slot[slot.startIndex + 2] == UInt8(ascii: "."),
            let bus = hexValue(bytes[busStart..<busEnd]),
            let device = hexValue(slot.prefix(2)), let function = hexValue(slot.suffix(1))
        else { return nil }
        let domain = domainEnd == nil ? 0 : hexValue(domainText)
        guard let domain else { return nil }
        return (domain, UInt8(bus), UInt8(device), UInt8(function))
    }

    /// `PCI_DEVFN(device, function)`.
    public var devfn: UInt8 { device << 3 | function }

    /// The kernel's name, `0000:03:00.0`.
    public var description: String {
        Self.hex(domain, digits: 4) + ":" + Self.hex(bus, digits: 2) + ":" + Self.hex(device, digits: 2) + "." + String(function)
    }

    /// The short form without the domain, `03:00.0`.
    public var short: String { Self.hex(bus, digits: 2) + ":" + Self.hex(device, digits: 2) + "." + String(function) }

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

    /// `value` in lower-case hexadecimal, zero-padded to at least `digits` digits.
    private static func hex<T: BinaryInteger>(_ value: T, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
