import DMACore

/// A function's configuration space as read from sysfs `config`: the standard header, the
/// capability list and the PCIe extended capability chain (`include/uapi/linux/pci_regs.h`).
///
/// Reads past the end of what was read give nothing, as the kernel's config reads fail past
/// `cfg_size`; chains are walked with the kernel's guards (`pci_find_next_ext_capability` and
/// `__pci_find_next_cap_ttl` in `drivers/pci/pci.c`): a capability ID of 0 is followed like any
/// other, the walk stops at a zero header or a pointer below the start of its area, and a step
/// budget ends a loop. What the guards hit is reported as a note, not hidden.
public struct ConfigSpace: Sendable {
    /// The bytes as read (64, 256 or 4096 of them in practice).
    public let bytes: [UInt8]

    /// `PCI_CFG_SPACE_SIZE`: the standard space.
    public static let standardSize = 256
    /// `PCI_CFG_SPACE_EXP_SIZE`: with PCIe extended space.
    public static let extendedSize = 4096
    /// `PCI_CAP_ID_EXP`.
    public static let pcieCapabilityID: UInt8 = 0x10
    /// `PCI_EXT_CAP_ID_ACS`.
    public static let acsCapabilityID: UInt16 = 0x0d

    /// Wraps the bytes.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// A byte, or `nil` past the end.
    public func u8(_ offset: Int) -> UInt8? { offset >= 0 && offset < bytes.count ? bytes[offset] : nil }
    /// A little-endian 16-bit word, or `nil` past the end.
    public func u16(_ offset: Int) -> UInt16? {
        guard let lo = u8(offset), let hi = u8(offset + 1) else { return nil }
        return UInt16(lo) | UInt16(hi) << 8
    }
    /// A little-endian 32-bit word, or `nil` past the end.
    public func u32(_ offset: Int) -> UInt32? {
        guard let lo = u16(offset), let hi = u16(offset + 2) else { return nil }
        return UInt32(lo) | UInt32(hi) << 16
    }

    /// The header type without the multi-function bit (0 normal, 1 PCI-to-PCI bridge).
    public var headerType: UInt8? { u8(0x0e).map { $0 & 0x7f } }

    /// Finds a standard capability (`__pci_find_next_cap_ttl`: at most 48 steps, pointers below
    /// 0x40 end the list, ID 0xff ends it).
    public func capability(_ id: UInt8) -> (offset: Int?, note: String?) {
        guard let status = u16(0x06), status & 0x10 != 0, var position = u8(0x34).map(Int.init) else { return (nil, nil) }
        var ttl = 48
        while ttl > 0 {
            ttl -= 1
            if position < 0x40 { return (nil, nil) }
            position &= ~3
            guard let header = u16(position) else {
                return (nil, "capability pointer \(hex(UInt64(position))) is past the \(bytes.count) bytes read")
            }
            let capID = UInt8(header & 0xff)
            if capID == 0xff { return (nil, nil) }
            if capID == id { return (position, nil) }
            position = Int(header >> 8)
        }
        return (nil, "the capability list does not end after 48 steps (a loop); stopped as the kernel does")
    }

    /// Finds an extended capability (`pci_find_next_ext_capability`: start at 0x100, stop at a
    /// zero header or a next pointer below 0x100, at most 480 steps; ID 0 entries are followed).
    public func extendedCapability(_ id: UInt16) -> (offset: Int?, note: String?) {
        guard bytes.count > Self.standardSize else { return (nil, nil) }
        var position = Self.standardSize
        guard var header = u32(position), header != 0 else { return (nil, nil) }
        var ttl = (Self.extendedSize - Self.standardSize) / 8
        var visited: Set<Int> = []
        var note: String?
        while ttl > 0 {
            ttl -= 1
            if UInt16(header & 0xffff) == id { return (position, note) }
            if !visited.insert(position).inserted, note == nil {
                note = "the extended capability chain loops at \(hex(UInt64(position))); the walk stops after 480 steps as the kernel's does"
            }
            position = Int((header >> 20) & 0xffc)
            if position < Self.standardSize { return (nil, note) }
            guard let next = u32(position) else {
                return (nil, "extended capability pointer \(hex(UInt64(position))) is past the \(bytes.count) bytes read")
            }
            header = next
        }
        return (nil, note)
    }

    /// The PCIe port type from the PCIe capability (`PCI_EXP_FLAGS_TYPE`), `nil` without one.
    public var portType: PCIePortType? {
        guard let offset = capability(Self.pcieCapabilityID).offset, let flags = u16(offset + 2) else { return nil }
        return PCIePortType(rawValue: Int((flags >> 4) & 0xf))
    }

    /// The ACS state: unknown when the extended space was not read (a 64-byte non-root read), absent
    /// with only standard space or no ACS capability, else its capability and control words
    /// (`PCI_ACS_CAP` at +4, `PCI_ACS_CTRL` at +6).
    public var acs: (state: ACSState, note: String?) {
        if bytes.count < Self.standardSize { return (.unknown, nil) }
        let (offset, note) = extendedCapability(Self.acsCapabilityID)
        guard let offset, let capability = u16(offset + 4), let control = u16(offset + 6) else { return (.absent, note) }
        return (.present(offset: offset, capability: capability, control: control), note)
    }

    /// The bus address programmed in BAR `index`, when the register was read and is a memory BAR.
    public func barBusAddress(_ index: Int) -> DMAAddress? {
        guard let low = u32(0x10 + 4 * index), low & 1 == 0 else { return nil }
        var address = UInt64(low & ~0xf)
        if (low >> 1) & 3 == 2 {
            guard let high = u32(0x10 + 4 * (index + 1)) else { return nil }
            address |= UInt64(high) << 32
        }
        return address == 0 ? nil : DMAAddress(address)
    }
}
