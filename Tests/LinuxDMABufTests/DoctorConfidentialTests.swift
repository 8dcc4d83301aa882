import DMACore
import Foundation
@testable import LinuxDMABuf
import Testing

/// Confidential-computing guests as `dmabuf doctor` recognises them without root: the hand-made
/// overlays of Fixtures/doctor/coco (README.md there) laid over a copy of the H200 VM root whose
/// GPU reaches the NIC through an AMD Zen host bridge (`DoctorTests.maskRoot`).
@Suite struct DoctorConfidentialTests {
    /// A copy of the H200 VM root (GPU 00:06.0, NIC 00:03.0) with the overlay `name` copied over it.
    static func root(_ name: String, driver: String = "nvidia", config: String = "CONFIG_PCI_P2PDMA=y\n", edit: (String) throws -> Void = { _ in })
        throws -> String
    {
        let root = try DoctorTests.maskRoot(bits: 64, domain: nil, driver: driver, config: config)
        let overlay = "\(DoctorTests.fixtures)/coco/\(name)"
        let fm = FileManager.default
        for case let relative as String in fm.enumerator(atPath: overlay)! {
            var folder: ObjCBool = false
            guard fm.fileExists(atPath: "\(overlay)/\(relative)", isDirectory: &folder) else { continue }
            let target = "\(root)/\(relative)"
            if folder.boolValue {
                try fm.createDirectory(atPath: target, withIntermediateDirectories: true)
            } else {
                try? fm.removeItem(atPath: target)
                try fm.copyItem(atPath: "\(overlay)/\(relative)", toPath: target)
            }
        }
        try edit(root)
        return root
    }

    /// The facts and the GPU → NIC pair judged twice: over a P2P route (the GPU's VRAM is MMIO:
    /// never bounced) and with amdgpu on a kernel without P2PDMA (the buffer migrates to system
    /// memory, whose DMA a confidential guest bounces).
    static func judged(_ name: String, edit: (String) throws -> Void = { _ in }) throws
        -> (facts: DoctorFacts, p2p: DoctorPairReport, migrated: DoctorPairReport)
    {
        let p2pRoot = try root(name, edit: edit)
        defer { try? FileManager.default.removeItem(atPath: p2pRoot) }
        let migratedRoot = try root(name, driver: "amdgpu", config: "# CONFIG_PCI_P2PDMA is not set\n", edit: edit)
        defer { try? FileManager.default.removeItem(atPath: migratedRoot) }
        let facts = try DoctorFacts.gather(root: DoctorRoot(p2pRoot))
        let p2p = Doctor.judge(provider: "0000:00:06.0", client: "0000:00:03.0", facts)
        let migrated = Doctor.judge(provider: "0000:00:06.0", client: "0000:00:03.0", try DoctorFacts.gather(root: DoctorRoot(migratedRoot)))
        return (facts, p2p, migrated)
    }

    /// Each guest, the fact that proves it and its source, in the doctor's order of checks.
    @Test(arguments: [
        ("sev-snp", "AMD SEV-SNP guest", "/sys/devices/platform/sev-guest"),
        ("sev-es-log", "AMD SEV-ES guest", "kernel log (/dev/kmsg): Memory Encryption Features active: AMD SEV SEV-ES"),
        ("s390-pv", "s390 Protected Virtualization guest", "/sys/firmware/uv/prot_virt_guest = 1"),
        ("ppc-svm", "powerpc Secure Virtual Machine", "/sys/devices/system/cpu/svm = 1"),
        ("arm-cca", "Arm CCA realm", "/sys/devices/platform/arm-cca-dev"),
        ("tdx-dev", "TDX guest", "/dev/tdx_guest"),
        ("tdx-flag", "TDX guest", "/proc/cpuinfo (flag tdx_guest)"),
    ])
    func guestBouncesSystemMemoryOnly(name: String, guest: String, source: String) throws {
        let (facts, p2p, migrated) = try Self.judged(name)
        #expect(facts.confidentialGuest == DoctorFact(guest, source: source))
        #expect(facts.confidential.unknown == nil)

        // A bounced GPU → system-memory transfer: degraded, the copy named.
        #expect(migrated.verdict == .degraded)
        #expect(DoctorTests.codes(migrated, .degraded).contains("confidential-guest"))
        #expect(migrated.copies == DoctorCopies(kind: "bounce", bytesPerTransfer: "every byte of every transfer, once per direction"))
        let reason = try #require(migrated.reasons.first { $0.code == "confidential-guest" })
        #expect(reason.text.hasPrefix("\(guest): device DMA of private memory always bounces"))
        #expect(reason.source == source)

        // P2P MMIO is not bounced: only info, the verdict the route gives (the AMD Zen host bridge).
        if facts.cpu.value.hasPrefix("amd") {
            #expect(p2p.route == "through-host-bridge")
            #expect(p2p.verdict == .zeroCopy)
        }
        #expect(p2p.reasons.contains { $0.code == "confidential-guest" && $0.effect == .info && $0.text.hasSuffix("P2P MMIO is not bounced") })
        #expect(!p2p.reasons.contains { $0.code == "confidential-unknown" })
    }

    @Test func sevSNPShowsEveryMarkerWithItsFile() throws {
        let (facts, _, _) = try Self.judged("sev-snp")
        #expect(facts.confidential.evidence == [
            DoctorFact("AMD SEV-SNP guest", source: "/sys/devices/platform/sev-guest"),
            DoctorFact("AMD SEV-SNP guest (VMPL 0)", source: "/sys/devices/system/cpu/sev/vmpl"),
        ])
        #expect(facts.confidential.kernelLog.value == "not captured")
    }

    /// Plain SEV-ES has no sysfs marker: only the log says so; the unrelated lines are dropped.
    @Test func sevESFromTheLogOnly() throws {
        let (facts, _, migrated) = try Self.judged("sev-es-log")
        #expect(facts.confidential.kernelLog == DoctorFact("readable, 3 memory-encryption line(s)", source: "/dev/kmsg"))
        #expect(facts.confidential.evidence.map(\.value) == [
            "AMD SEV-ES guest", "AMD SEV status: SEV SEV-ES", "memory encryption is active and DMA has bounced through swiotlb",
        ])
        #expect(migrated.verdict == .degraded)
    }

    /// An AMD host with SME (its cpuinfo has sme, sev and sev_es: flags that mean it can HOST SEV
    /// guests): not a guest, nothing bounces, nothing unknown.
    @Test func smeHostIsNotAGuest() throws {
        let (facts, p2p, migrated) = try Self.judged("sme-host")
        #expect(facts.confidentialGuest == nil)
        #expect(facts.confidential.evidence == [
            DoctorFact("AMD SME: this host encrypts its own memory (not a guest)", source: "kernel log (/dev/kmsg): Memory Encryption Features active: AMD SME")
        ])
        #expect(facts.confidential.unknown == nil)
        #expect(p2p.verdict == .zeroCopy)
        #expect(!p2p.reasons.contains { $0.code.hasPrefix("confidential") })
        #expect(Self.codesOf(migrated) == ["kernel-no-p2pdma", "migrates"])
        #expect(migrated.copies?.kind == "migrate")
    }

    /// An AMD KVM guest with no marker and no readable log: SEV or SEV-ES cannot be ruled out.
    /// Info only: never degraded, and the remedy is to read the log as root.
    @Test func amdGuestWithNothingReadableIsUnknown() throws {
        let (facts, p2p, migrated) = try Self.judged("amd-kvm")
        #expect(facts.confidentialGuest == nil)
        #expect(facts.confidential.evidence.isEmpty)
        let unknown = try #require(facts.confidential.unknown)
        #expect(unknown.value == "an AMD SEV or SEV-ES guest cannot be ruled out")
        #expect(unknown.source.hasPrefix("/proc/cpuinfo (AuthenticAMD, flag hypervisor)"))
        for pair in [p2p, migrated] {
            let reason = try #require(pair.reasons.first { $0.code == "confidential-unknown" })
            #expect(reason.effect == .info)
            #expect(reason.remedy?.action.hasPrefix("as root: dmesg | grep -i 'memory encryption'") == true)
        }
        #expect(p2p.verdict == .zeroCopy)
        #expect(Self.codesOf(migrated) == ["kernel-no-p2pdma", "migrates"])
        #expect(migrated.copies?.kind == "migrate")
    }

    /// The same guest with its log readable and silent about encryption: settled, no unknown. With
    /// the log unreadable as a capture records it, the errno and dmesg_restrict are shown.
    @Test func amdGuestLogDecides() throws {
        let silent = try Self.judged("amd-kvm") { root in
            try "[    0.000000] Linux version 7.3.4+deb13-amd64\n[    0.000000] Hypervisor detected: KVM\n".write(
                toFile: "\(root)/dmesg.txt", atomically: true, encoding: .utf8)
        }
        #expect(silent.facts.confidential.kernelLog.value == "readable, no memory-encryption line")
        #expect(silent.facts.confidential.unknown == nil)
        #expect(!silent.p2p.reasons.contains { $0.code.hasPrefix("confidential") })

        let restricted = try Self.judged("amd-kvm") { root in
            try "EPERM\n".write(toFile: "\(root)/dmesg.unreadable", atomically: true, encoding: .utf8)
            try "1\n".write(toFile: "\(root)/proc/sys/kernel/dmesg_restrict", atomically: true, encoding: .utf8)
        }
        #expect(restricted.facts.confidential.kernelLog == DoctorFact(
            "not readable (EPERM)", source: "/dev/kmsg, kernel.dmesg_restrict = 1: only root or CAP_SYSLOG reads the kernel log"))
        #expect(restricted.facts.confidential.unknown?.source.hasSuffix("kernel log not readable (EPERM)") == true)
    }

    /// Intel guests and bare-metal AMD are never "unknown": the task's rule is AMD under a hypervisor.
    @Test func noUnknownOutsideAnAMDGuest() throws {
        for name in ["tdx-flag", "sme-host"] {
            let (facts, _, _) = try Self.judged(name) { root in try? FileManager.default.removeItem(atPath: "\(root)/dmesg.txt") }
            #expect(facts.confidential.unknown == nil, "\(name)")
        }
        // The H200 VM (Intel, no log captured) and the 6.12 q35 root (AMD, no hypervisor flag).
        for name in ["h200-vm", "linux-6.12-q35"] {
            #expect(try DoctorTests.facts(name).confidential.unknown == nil, "\(name)")
        }
        // The EPYC guest captured without its log: honest unknown, as info beside its verdicts.
        let epyc = try DoctorTests.facts("guest-6.12-epyc")
        #expect(epyc.confidential.unknown != nil)
        #expect(Doctor.report(epyc).pairs.allSatisfy { pair in pair.reasons.allSatisfy { $0.code != "confidential-unknown" || $0.effect == .info } })
    }

    /// Every form of the lines the kernel has printed, and lines that are not findings.
    @Test(arguments: [
        ("[    0.4] Memory Encryption Features active: AMD SEV SEV-ES SEV-SNP", "AMD SEV-SNP guest", true),
        ("Memory Encryption Features active: Intel TDX", "Intel TDX guest", true),
        ("AMD Memory Encryption Features active: SEV SEV-ES", "AMD SEV-ES guest", true),
        ("AMD Memory Encryption Features active: SEV", "AMD SEV guest", true),
        ("AMD Memory Encryption Features active: SME", "AMD SME: this host encrypts its own memory (not a guest)", false),
        ("Memory Encryption Features active: AMD SME", "AMD SME: this host encrypts its own memory (not a guest)", false),
        ("AMD Secure Encrypted Virtualization (SEV) active", "AMD SEV guest", true),
        ("tdx: Guest detected", "Intel TDX guest", true),
        ("RME: Using RSI version 1.0", "Arm CCA realm", true),
    ])
    func logLines(line: String, value: String, guest: Bool) throws {
        let finding = try #require(DoctorConfidential.finding(DoctorConfidential.normalised(line)))
        #expect(finding.value == value)
        #expect(finding.guest == guest)
    }

    @Test func linesThatSayNothing() {
        for line in ["software IO TLB: mapped [mem 0x00000000a1000000-0x00000000b0500000] (64MB)", "Hypervisor detected: KVM", ""] {
            #expect(DoctorConfidential.finding(line) == nil, "\(line)")
        }
        #expect(DoctorConfidential.normalised("[   12.345678] tdx: Guest detected") == "tdx: Guest detected")
    }

    /// A /dev/kmsg record: the prefix and the continuation lines are not the message.
    @Test func kmsgRecord() {
        let record = Array("6,812,412345,-;Memory Encryption Features active: AMD SEV\n SUBSYSTEM=cpu\n".utf8)
        #expect(record.withUnsafeBytes { KernelLogCursor.message($0) } == "Memory Encryption Features active: AMD SEV")
        #expect(Array("no prefix\n".utf8).withUnsafeBytes { KernelLogCursor.message($0) } == nil)
    }

    /// The live log is read without blocking and without root: it returns (readable or with an
    /// errno) instead of waiting for the next message.
    @Test(.timeLimit(.minutes(1))) func liveLogNeverBlocks() {
        switch DoctorConfidential.kernelLog(.live) {
        case .lines(let lines): #expect(lines.allSatisfy { DoctorConfidential.finding($0) != nil })
        case .unreadable(let errno): #expect(!errno.isEmpty)
        case .notCaptured: Issue.record("the live machine has no captured log")
        }
    }

    /// --capture keeps every marker and the log's state: the copy gives the same JSON.
    @Test(arguments: ["sev-snp", "sev-es-log", "sme-host", "s390-pv", "ppc-svm", "arm-cca", "tdx-dev", "tdx-flag", "amd-kvm"])
    func captureRoundTrip(name: String) throws {
        let original = try Self.root(name) { root in
            // The unreadable-log form too (a capture made without root).
            if name == "amd-kvm" { try "EPERM\n".write(toFile: "\(root)/dmesg.unreadable", atomically: true, encoding: .utf8) }
        }
        defer { try? FileManager.default.removeItem(atPath: original) }
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("doctor-coco-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try DoctorCapture.capture(from: DoctorRoot(original), to: copy)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let before = Doctor.report(try DoctorFacts.gather(root: DoctorRoot(original)))
        let after = Doctor.report(try DoctorFacts.gather(root: DoctorRoot(copy)))
        #expect(String(decoding: try encoder.encode(after), as: UTF8.self) == String(decoding: try encoder.encode(before), as: UTF8.self))
        #expect(before.confidential.evidence.isEmpty == (name == "amd-kvm"))
    }

    static func codesOf(_ pair: DoctorPairReport) -> [String] { pair.reasons.filter { $0.effect != .info }.map(\.code) }
}
