import DMACore
import LinuxDMABuf

/// The configuration facts the two kernels of the tier differ in, each asserted for the series
/// booted (docs/kernel-tier.md): Debian's 6.12 has no PCI_P2PDMA and MOVE_NOTIFY off (the symbol
/// exists, "is not set"), and no VFIO dma-buf export (it came in 6.19); Debian's 7.3 has
/// PCI_P2PDMA and VFIO_PCI_DMABUF, and no MOVE_NOTIFY symbol at all (always on since 7.1).
@MainActor
func configFacts() {
    let release = KernelConfig.release() ?? "?"
    let parts = release.split(separator: ".").prefix(2).compactMap { Int($0.prefix(while: \.isNumber)) }
    let series = parts.count == 2 ? parts[0] * 100 + parts[1] : 0
    guard let text = try? SystemCalls.readFile("/boot/config-\(release)").get() else {
        runner.check("config.read", false, "/boot/config-\(release) is not in the initramfs")
        return
    }
    let config = String(decoding: text, as: UTF8.self)
    let parsed = KernelConfig(source: "/boot/config-\(release)", parsing: config)
    runner.check("config.read", true, "\(parsed.values.count) options in /boot/config-\(release), series \(series / 100).\(series % 100)")
    let moveNotifyMentioned = config.contains("CONFIG_DMABUF_MOVE_NOTIFY")
    if series >= 701 {
        runner.check("config.pci-p2pdma", parsed.value("CONFIG_PCI_P2PDMA") == "y", "CONFIG_PCI_P2PDMA=\(parsed.value("CONFIG_PCI_P2PDMA")), expected y on \(release)")
        runner.check("config.move-notify", !moveNotifyMentioned, "CONFIG_DMABUF_MOVE_NOTIFY \(moveNotifyMentioned ? "still mentioned" : "absent: the symbol is gone, invalidation always on (7.1)")")
        runner.check("config.vfio-dmabuf", parsed.value("CONFIG_VFIO_PCI_DMABUF") == "y", "CONFIG_VFIO_PCI_DMABUF=\(parsed.value("CONFIG_VFIO_PCI_DMABUF")), expected y (VFIO dma-buf export, 6.19)")
    } else {
        runner.check("config.pci-p2pdma", parsed.value("CONFIG_PCI_P2PDMA") == "not set", "CONFIG_PCI_P2PDMA \(parsed.value("CONFIG_PCI_P2PDMA")), expected not set on Debian's \(release)")
        runner.check("config.move-notify", moveNotifyMentioned && parsed.value("CONFIG_DMABUF_MOVE_NOTIFY") == "not set",
            "CONFIG_DMABUF_MOVE_NOTIFY \(moveNotifyMentioned ? parsed.value("CONFIG_DMABUF_MOVE_NOTIFY") : "absent"), expected the symbol present and not set (importers pin before 7.1)")
        runner.check("config.vfio-dmabuf", parsed.values["CONFIG_VFIO_PCI_DMABUF"] == nil, "CONFIG_VFIO_PCI_DMABUF \(parsed.value("CONFIG_VFIO_PCI_DMABUF")), expected absent before 6.19")
    }
}
