import DMACore
import DMAScenario
import Foundation
import PCI
import Testing

/// The steps of a run without the setup entries.
func steps(_ result: ScenarioResult) -> [StepResult] { result.steps.filter { !$0.op.isSetup } }

@Suite("The six stories, asserted on bytes and verdicts")
struct StoryTests {
    static func run(_ n: Int) throws -> ScenarioResult {
        let result = try ScenarioRunner.run(try Story.all[n - 1].scenario())
        #expect(result.ok, "story \(n): \(result.steps.filter { !$0.asExpected }.map { "\($0.index) \($0.op): \($0.errno?.name ?? "") \($0.message) \($0.expectation?.text ?? "")" }) \(result.debugReports)")
        #expect(result.debugReports.isEmpty)
        return result
    }

    @Test("Story 1: GPU→NIC under one switch moves data with bus addresses, nothing bounced or migrated; the MR is mapped at registration (mlx5)")
    func story1() throws {
        let s = steps(try Self.run(1))
        let registration = s[0]
        #expect(registration.op == .step(.attach) && registration.ok && registration.mapType == .busAddress && registration.placement == .vram)
        #expect(registration.bouncedBytes == 0 && registration.migratedBytes == 0)
        #expect(s[1].op == .step(.deviceRead) && s[1].mapType == nil, "no fault: mapped already")
        #expect(s.allSatisfy { ($0.bouncedBytes ?? 0) == 0 && ($0.migratedBytes ?? 0) == 0 })
        #expect(s[3].op == .step(.cpuRead) && s[3].message.contains("as expected"))
    }

    @Test("Story 2: a whitelisted host bridge carries P2P through the IOMMU as MMIO")
    func story2() throws {
        let s = steps(try Self.run(2))
        #expect(s[1].mapType == .throughHostBridge && s[1].peerToPeer == true && s[1].placement == .vram)
    }

    @Test("Story 3: P2P impossible, the buffer migrates exactly its size and the NIC maps system pages")
    func story3() throws {
        let s = steps(try Self.run(3))
        #expect(s[0].peerToPeer == false)
        #expect(s[1].migratedBytes == 1 << 20 && s[1].placement == .system && s[1].mapType == .host)
        #expect(s[2].message.contains("as expected"))
    }

    @Test("Story 4: the raw P2P list is EREMOTEIO; amdgpu keeps P2P by the route alone and the VRAM map is ENOMEM (amdgpu_vram_mgr.c); evicted, the HFI maps system pages")
    func story4() throws {
        let s = steps(try Self.run(4))
        #expect(s[0].op == .step(.rawMap) && !s[0].ok && s[0].errno == .EREMOTEIO)
        #expect(s[1].peerToPeer == true)
        #expect(s[2].op == .step(.map) && !s[2].ok && s[2].errno == .ENOMEM)
        #expect(s[3].op == .step(.evict) && s[3].placement == .system && s[3].migratedBytes == 256 << 10)
        #expect(s[4].placement == .system && s[4].mapType == .host && s[4].migratedBytes == 0)
        #expect(s[5].message.contains("as expected"))
    }

    @Test("Story 5: a 32-bit device bounces, and the bytes are right in every direction")
    func story5() throws {
        let s = steps(try Self.run(5))
        let maps = s.filter { $0.op == .step(.map) }
        #expect(maps.count == 3 && maps.allSatisfy { $0.bouncedBytes == 64 << 10 })
        let checks = s.filter { $0.message.contains("as expected") }
        #expect(checks.count == 4)  // device-read ×2 and cpu-read ×2, the last of the partial write
    }

    @Test("Story 6: revoke tells every dynamic importer, the dead mapping faults, maps fail until restore")
    func story6() throws {
        let s = steps(try Self.run(6))
        #expect(s[0].errno == .EOPNOTSUPP)
        let revoke = try #require(s.first { $0.op == .step(.revoke) })
        #expect(revoke.notified == ["mr", "nic"])
        let afterRevoke = s.drop { $0.op != .step(.revoke) }.dropFirst()
        #expect(afterRevoke.prefix(3).map(\.errno) == [.EIO, .ENODEV, .ENODEV])
        let restoredMap = try #require(s.last { $0.op == .step(.map) })
        #expect(restoredMap.ok && restoredMap.mapType == .busAddress)
    }

    @Test("Each story's summary for dmabuf demo", arguments: 1...6)
    func outcome(n: Int) throws {
        let outcome = try Story.all[n - 1].run()
        #expect(outcome.ok)
        switch n {
        case 1: #expect(outcome.copies == "zero-copy" && outcome.mapType == .busAddress)
        case 2: #expect(outcome.copies == "zero-copy" && outcome.mapType == .throughHostBridge)
        case 3: #expect(outcome.copies == "1 MiB migrated" && outcome.placement == .system)
        case 4: #expect(outcome.errno == .EREMOTEIO && outcome.placement == .system)
        case 5: #expect(outcome.copies == "64 KiB bounced")
        default: #expect(outcome.notified == ["mr", "nic"] && outcome.errno == .ENODEV)
        }
    }

    @Test("docs/scenarios.md shows each story exactly as built in")
    func documented() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/scenarios.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        for story in Story.all {
            #expect(text.contains("### Story \(story.number): \(story.title)"))
            #expect(text.contains("```yaml\n" + story.yaml + "\n```"), "story \(story.number) differs from docs/scenarios.md")
        }
    }
}

@Suite("Scenario bad input: typed errors in the trace, nothing leaks")
struct ScenarioBadInputTests {
    static func run(_ yaml: String) throws -> ScenarioResult { try ScenarioRunner.run(try Scenario.parse(yaml, file: "test.yaml")) }

    @Test("Unknown names, steps out of order, a static importer of a VFIO BAR, a size that is not a page multiple")
    func badSteps() throws {
        let result = try Self.run("""
            buffers:
              - {name: vram, exporter: gpu-vram, device: "0000:03:00.0", size: 64KiB}
              - {name: odd, exporter: system-heap, size: 1000}
              - {name: bar, exporter: vfio-bar, device: "0000:09:00.0", ranges: [{offset: 0, length: 4KiB}]}
              - {name: ghost, exporter: gpu-vram, device: "0000:55:00.0", size: 4KiB}
            importers:
              - {name: nic, device: "0000:04:00.0"}
              - {name: bad-ops, device: "0000:04:00.0", ops: magic}
            steps:
              - map: {importer: nic, buffer: vram}
              - attach: {importer: nobody, buffer: vram}
              - attach: {importer: nic, buffer: nothing}
              - attach: {importer: nic, buffer: vram}
              - map: {importer: nic, buffer: vram}
              - detach: {importer: nic, buffer: vram}
              - unmap: {importer: nic, buffer: vram}
              - unmap: {importer: nic, buffer: vram}
              - attach: {importer: nic, buffer: bar}
              - detach: {importer: nic, buffer: vram}
            """)
        let setup = result.steps.filter { $0.op.isSetup }
        #expect(setup.map(\.ok) == [true, false, true, false, true, false])
        #expect(setup[1].errno == .EINVAL && setup[3].errno == .ENODEV && setup[5].errno == .ENOENT)
        let s = steps(result)
        #expect(s.map(\.errno) == [.ENODEV, .ENOENT, .ENOENT, nil, nil, .EBUSY, nil, .EINVAL, .EOPNOTSUPP, nil])
        #expect(!result.ok)  // unexpected failures make the run fail (exit 1)
        #expect(result.debugReports.isEmpty)  // and nothing leaked
    }

    @Test("A scenario that leaks a mapping on purpose is caught by the debug layer")
    func leak() throws {
        let result = try Self.run("""
            buffers: [{name: heap, exporter: system-heap, size: 8KiB}]
            importers: [{name: nic, device: "0000:04:00.0"}]
            steps:
              - attach: {importer: nic, buffer: heap}
              - map: {importer: nic, buffer: heap}
            """)
        #expect(result.steps.allSatisfy { $0.ok })
        #expect(!result.ok)
        #expect(result.debugReports.count == 1 && result.debugReports[0].contains("pending DMA allocations") && result.debugReports[0].contains("[count=2]"))
    }

    @Test("onError: stop ends the run at the first unexpected failure")
    func stop() throws {
        let result = try Self.run("""
            onError: stop
            buffers: [{name: heap, exporter: system-heap, size: 8KiB}]
            importers: [{name: nic, device: "0000:04:00.0"}]
            steps:
              - unmap: {importer: nic, buffer: heap}
              - attach: {importer: nic, buffer: heap}
            """)
        #expect(steps(result).count == 1)
    }

    @Test(
        "Malformed scenarios name the line and column",
        arguments: [
            ("steps:\n  - fly: {importer: a}\n", 2, "unknown step 'fly'"),
            ("buffers:\n  - {name: a, exporter: gpu-ram, device: x, size: 4KiB}\n", 2, "unknown exporter"),
            ("colour: blue\n", 1, "unknown key 'colour'"),
            ("steps:\n  - map: {importer: a, buffer: b, direction: sideways}\n", 2, "unknown direction"),
            ("steps:\n  - map: {importer: a, buffer: b, expect: {errno: EWHAT}}\n", 2, "unknown errno"),
            ("importers:\n  - {name: a, device: x}\n  - {name: a, device: y}\n", 3, "used twice"),
            ("steps:\n  - map: {importer: a, buffer: b}\n    revoke: {buffer: b}\n", 2, "one operation"),
            ("topology: {file: a, sysfs: b}\n", 1, "exactly one"),
        ] as [(String, Int, String)])
    func malformed(yaml: String, line: Int, message: String) throws {
        let error = #expect(throws: InputFileError.self) { try Scenario.parse(yaml, file: "bad.yaml") }
        #expect(error?.file == "bad.yaml")
        #expect(error?.line == line, "\(String(describing: error))")
        #expect(error?.column != nil)
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
    }

    @Test("A scenario on a sysfs copy: the H200 VM gives no P2P, so a GPU buffer is moved for any importer")
    func sysfsTopology() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PCITests/Fixtures/h200-vm").path
        let result = try ScenarioRunner.run(try Scenario.parse("""
            topology: {sysfs: "\(fixtures)"}
            cpu: intel:0x6
            buffers: [{name: vram, exporter: gpu-vram, device: "0000:00:06.0", bar: 2, size: 64KiB, pattern: 1}]
            importers: [{name: net, device: "0000:00:03.0", kind: rdma-dynamic}]
            steps:
              - attach: {importer: net, buffer: vram, expect: {placement: system, migratedBytes: 65536}}
              - device-read: {importer: net, buffer: vram, expectPattern: 1}
              - detach: {importer: net, buffer: vram}
            """, file: "h200.yaml"))
        #expect(result.ok, "\(result.steps.map { "\($0.op) \($0.errno?.name ?? "") \($0.message)" })")
    }
}

/// The six stories under Debian's 6.12 (CONFIG_DMABUF_MOVE_NOTIFY off) and under 7.1, with the
/// outcomes that differ asserted (docs/kernel-versions.md).
@Suite("The six stories per kernel version")
struct StoryKernelTests {
    static let debian612 = KernelRules(KernelVersion(6, 12))
    static let linux71 = KernelRules(KernelVersion(7, 1))

    static func outcome(_ n: Int, _ rules: KernelRules) throws -> StoryOutcome {
        let outcome = try Story.all[n - 1].run(rules: rules)
        #expect(outcome.ok, "story \(n) on \(rules): \(outcome.result.steps.filter { !$0.asExpected }.map { "\($0.index) \($0.op): \($0.message) \($0.expectation?.text ?? "")" })")
        #expect(outcome.rules == rules)
        return outcome
    }

    @Test("Story 1 on 6.12 without MOVE_NOTIFY: the MR's map pins, amdgpu pins in GTT, the VRAM migrates; on 7.1: zero-copy bus-address P2P")
    func story1() throws {
        let old = try Self.outcome(1, Self.debian612)
        #expect(old.placement == .system && old.mapType == .host && old.migratedBytes == 2 << 20 && old.copies == "2 MiB migrated")
        #expect(old.kernel.contains("CONFIG_DMABUF_MOVE_NOTIFY off"))
        let new = try Self.outcome(1, Self.linux71)
        #expect(new.placement == .vram && new.mapType == .busAddress && new.migratedBytes == 0 && new.copies == "zero-copy")
    }

    @Test("Story 2 on 6.12 without MOVE_NOTIFY: system pages, 1 MiB migrated; on 7.1: through the host bridge from VRAM")
    func story2() throws {
        let old = try Self.outcome(2, Self.debian612)
        #expect(old.placement == .system && old.mapType == .host && old.migratedBytes == 1 << 20)
        let new = try Self.outcome(2, Self.linux71)
        #expect(new.placement == .vram && new.mapType == .throughHostBridge && new.migratedBytes == 0)
    }

    @Test("Stories 3 and 5 come out the same on both kernels (no P2P in them to lose)")
    func storiesThreeAndFive() throws {
        for n in [3, 5] {
            let old = try Self.outcome(n, Self.debian612)
            let new = try Self.outcome(n, Self.linux71)
            #expect(old.placement == new.placement && old.mapType == new.mapType && old.migratedBytes == new.migratedBytes, "story \(n)")
            #expect(old.bouncedBytes == new.bouncedBytes && old.errno == new.errno, "story \(n)")
        }
    }

    @Test("Story 4 on 6.12 without MOVE_NOTIFY: the map pins, amdgpu pins in GTT, the HFI maps system pages (256 KiB migrated); on 7.1 the VRAM map is ENOMEM until an eviction")
    func story4() throws {
        let old = try Self.outcome(4, Self.debian612)
        #expect(old.placement == .system && old.mapType == .host && old.migratedBytes == 256 << 10 && old.errno == .EREMOTEIO)
        #expect(old.result.steps.filter { $0.op == .step(.map) }.allSatisfy { $0.ok })
        let new = try Self.outcome(4, Self.linux71)
        #expect(new.placement == .system && new.migratedBytes == 256 << 10)
        #expect(new.result.steps.contains { $0.op == .step(.map) && $0.errno == .ENOMEM })
    }

    @Test("Story 6 does not exist before 6.19: the export is refused with ENOTTY naming the version; on 7.1 the revoke tells both importers")
    func story6() throws {
        let old = try Self.outcome(6, Self.debian612)
        #expect(old.errno == .ENOTTY && old.mapType == nil && old.notified == nil)
        #expect(old.kernel.contains("does not exist in Linux 6.12") && old.kernel.contains("6.19"))
        let refusal = old.result.steps.first { $0.op == .createBuffer }
        #expect(refusal?.ok == false && refusal?.message.contains("came in 6.19") == true)
        #expect(!Story.all[5].exists(in: KernelRules(KernelVersion(6, 18))) && Story.all[5].exists(in: KernelRules(KernelVersion(6, 19))))
        let new = try Self.outcome(6, Self.linux71)
        #expect(new.notified == ["mr", "nic"] && new.errno == .ENODEV)
    }

    @Test("Story 6 on 6.19 and 7.0 without MOVE_NOTIFY: every map pins first and VFIO's pin refuses (vfio_pci_dma_buf_pin, drivers/vfio/pci/vfio_pci_dmabuf.c), so nothing maps; with the option it goes as on 7.1")
    func story6WhenMapsPin() throws {
        for version in [KernelVersion(6, 19), KernelVersion(7, 0)] {
            let off = try Self.outcome(6, KernelRules(version))
            #expect(off.notified == ["nic"] && off.errno == .EOPNOTSUPP && off.mapType == nil, "\(version)")
            #expect(off.kernel.contains("VFIO's pin refuses"))
            #expect(off.result.steps.filter { $0.op == .step(.map) }.allSatisfy { $0.errno == .EOPNOTSUPP })
            let on = try Self.outcome(6, KernelRules(version, moveNotify: true))
            #expect(on.notified == ["mr", "nic"] && on.errno == .ENODEV, "\(version)+move-notify")
        }
    }

    @Test("With no kernel named the stories run under the newest rules and say nothing about them")
    func defaultIsNewest() throws {
        for story in Story.all {
            let outcome = try story.run()
            #expect(outcome.ok && outcome.rules == nil && outcome.result.kernel == nil)
            #expect(story.yaml(for: .newest) == story.yaml)
        }
    }

    @Test("A scenario file names its kernel with kernel:, and the runner's kernel overrides it")
    func scenarioKernelKey() throws {
        let yaml = Story.all[0].yaml.replacingOccurrences(of: "topology: builtin", with: "topology: builtin\nkernel: 6.12")
        let scenario = try Scenario.parse(yaml, file: "k.yaml")
        #expect(scenario.kernel == Self.debian612)
        let pinned = try ScenarioRunner.run(scenario)
        #expect(pinned.kernel == Self.debian612)
        #expect(steps(pinned)[0].placement == .system && !pinned.ok, "the file expects 7.1's VRAM; 6.12 gives system memory")
        let overridden = try ScenarioRunner.run(scenario, kernel: Self.linux71)
        #expect(overridden.ok && overridden.kernel == Self.linux71)
        #expect(throws: InputFileError.self) { try Scenario.parse("kernel: 4.4\nsteps: []\n", file: "bad.yaml") }
    }
}
