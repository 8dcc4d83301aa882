import DMACore
import Testing

@Suite("Kernel versions and their rule sets")
struct KernelVersionTests {
    @Test("Releases parse as uname -r prints them, and order by major then minor")
    func parsing() {
        #expect(KernelVersion(parsing: "6.12") == KernelVersion(6, 12))
        #expect(KernelVersion(parsing: "6.12.95+deb12-amd64") == KernelVersion(6, 12))
        #expect(KernelVersion(parsing: "v7.1-rc3") == KernelVersion(7, 1))
        #expect(KernelVersion(parsing: "5.15.0-91-generic") == KernelVersion(5, 15))
        for bad in ["", "6", "6.", ".12", "six.twelve", "6.12x", "99999.1", "-6.12"] {
            #expect(KernelVersion(parsing: bad) == nil, "\(bad)")
        }
        #expect(KernelVersion(6, 9) < KernelVersion(6, 12))
        #expect(KernelVersion(6, 19) < KernelVersion(7, 0))
        #expect(KernelVersion.newest == KernelVersion(7, 3))
        #expect(KernelRules.newest.version == .newest)
    }

    @Test("Every rule names the release it came in and a kernel file; the table is the one docs/kernel-versions.md shows")
    func ruleTable() {
        let table = Dictionary(uniqueKeysWithValues: KernelRule.allCases.map { ($0, $0.introduced.description) })
        #expect(
            table == [
                .moveNotifyAlwaysOn: "7.1", .noMappingCacheAtAttach: "6.15", .mapPhysMMIO: "6.18", .vfioDMABufExport: "6.19",
                .revocableAttachments: "7.1", .gpuPinsInVRAM: "6.15", .p2pAMDRootComplex: "5.2", .p2pHostBridgeWhitelist: "5.4",
                .p2pAMDZenCPU: "5.9", .p2pRootPortIdentity: "5.19", .revocablePinnedMR: "7.1",
            ])
        for rule in KernelRule.allCases {
            #expect(rule.kernelFile.hasPrefix("drivers/") || rule.kernelFile.hasPrefix("kernel/"), "\(rule)")
            #expect(!rule.summary.isEmpty)
        }
        #expect(KernelRule.vfioDMABufExport.kernelFile == "drivers/vfio/pci/vfio_pci_dmabuf.c")
        #expect(KernelRule.mapPhysMMIO.kernelFile == "kernel/dma/mapping.c")
    }

    @Test("CONFIG_DMABUF_MOVE_NOTIFY is a config value before 7.1 (default off) and gone, always on, from 7.1 (drivers/dma-buf/Kconfig)")
    func moveNotify() throws {
        let debian = KernelRules(KernelVersion(6, 12))
        #expect(debian.moveNotify == .off && debian.everyMapPins && !debian.gpuMayPinInVRAM)
        #expect(debian.description == "6.12 (CONFIG_DMABUF_MOVE_NOTIFY not set)")
        let set = KernelRules(KernelVersion(6, 12), moveNotify: true)
        #expect(set.moveNotify == .on && !set.everyMapPins && set.gpuMayPinInVRAM)
        #expect(set.argument == "6.12+move-notify")
        let new = KernelRules(KernelVersion(7, 1), moveNotify: false)
        #expect(new.moveNotify == .alwaysOn && !new.everyMapPins, "7.1 has no such option: asking for it off changes nothing")
        #expect(new.moveNotify.description == "absent (always on since 7.1)")
        #expect(try KernelRules(parsing: "6.12+move-notify") == set)
        #expect(try KernelRules(parsing: "newest") == .newest)
        #expect(try KernelRules(parsing: "6.12.95+deb12-amd64") == debian)
    }

    @Test("A kernel the model has no rules for, or MOVE_NOTIFY named on 7.1, is EINVAL naming the forms accepted")
    func badKernel() {
        for text in ["4.19", "seven", "7.1+move-notify", ""] {
            let error = #expect(throws: DMAError.self) { try KernelRules(parsing: text) }
            #expect(error?.errno == .EINVAL && error?.code == .invalidArgument, "\(text)")
        }
    }

    @Test("The running kernel's rules: its release and its config value; the newest when nothing can be read")
    func running() {
        #expect(KernelRules.running(release: nil, moveNotifyValue: nil) == .newest)
        #expect(KernelRules.running(release: "garbage", moveNotifyValue: "y") == .newest)
        #expect(KernelRules.running(release: "6.8.0-45-generic", moveNotifyValue: nil) == KernelRules(KernelVersion(6, 8)))
        #expect(KernelRules.running(release: "6.8.0-45-generic", moveNotifyValue: "y").moveNotify == .on)
        #expect(KernelRules.running(release: "7.3.4", moveNotifyValue: nil).moveNotify == .alwaysOn)
    }

    @Test("dma_map_resource before 6.18, dma_map_phys with DMA_ATTR_MMIO from 6.18 (kernel/dma/mapping.c); move_notify before 7.1, invalidate_mappings from 7.1 (drivers/dma-buf/dma-buf.c)")
    func callNames() {
        #expect(KernelRules(KernelVersion(6, 17)).mmioMapCall == "dma_map_resource")
        #expect(KernelRules(KernelVersion(6, 18)).mmioMapCall == "dma_map_phys(DMA_ATTR_MMIO)")
        #expect(KernelRules(KernelVersion(7, 0)).invalidateCallName == "move_notify")
        #expect(KernelRules(KernelVersion(7, 1)).invalidateCallName == "invalidate_mappings")
        #expect(!KernelRules(KernelVersion(6, 18)).has(.vfioDMABufExport) && KernelRules(KernelVersion(6, 19)).has(.vfioDMABufExport))
        #expect(KernelRules(KernelVersion(6, 14)).cachesMappingAtAttach && !KernelRules(KernelVersion(6, 15)).cachesMappingAtAttach)
    }
}
