import Foundation
import Testing

/// `dmabuf doctor` run as a user runs it, on the captured roots of Tests/LinuxDMABufTests/Fixtures/doctor.
@Suite("dmabuf doctor")
struct DoctorCLITests {
    static func root(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../LinuxDMABufTests/Fixtures/doctor/\(name)").standardizedFileURL.path
    }

    @Test("Plain text: the counts, then each verdict before its reasons, remedies and costs; exit 1 when a pair is not zero-copy")
    func plainText() throws {
        let result = try runDMABuf(["doctor", "--root", Self.root("h200-vm")])
        #expect(result.status == 1, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == "1 pair(s): 1 no")
        #expect(lines[2] == "0000:00:06.0 -> 0000:00:03.0: no (route: not-supported)")
        #expect(lines[3].hasPrefix("  no: the kernel 6.18 is built without CONFIG_PCI_P2PDMA"))
        #expect(lines[3].hasSuffix("[/boot/config-6.18]"))
        #expect(lines[4] == "    remedy: boot a kernel built with CONFIG_PCI_P2PDMA=y (Debian's 7.x kernels have it)")
        #expect(lines[5] == "    cost: a different kernel and a reboot")
        #expect(result.stdout.contains("Facts read:\n  kernel 6.18 [/proc/sys/kernel/osrelease]"))
        #expect(result.stdout.contains("0000:00:06.0: gpu, 10de:2335"))
        #expect(!result.stdout.contains(Self.root("h200-vm")), "the root's own path leaks into the report")
    }

    @Test("One pair asked: every reason, info included; exit 0 when it is zero-copy")
    func onePairZeroCopy() throws {
        let result = try runDMABuf(["doctor", "0b:00.0", "0b:00.1", "--root", Self.root("linux-7.3-skylake-noiommu")])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("1 pair(s): 1 zero-copy\n\n0000:0b:00.0 -> 0000:0b:00.1: zero-copy (route: bus-address)\n  info: "))
        #expect(result.stdout.contains("info: CONFIG_PCI_P2PDMA=y [/boot/config-7.3.4+deb13-amd64]"))
    }

    @Test("--json: the pairs with their reasons and the facts, each with its source")
    func json() throws {
        let result = try runDMABuf(["doctor", "0000:0b:00.0", "0000:0b:00.1", "--json", "--root", Self.root("linux-7.3-skylake-iommu")])
        #expect(result.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let pairs = try #require(object["pairs"] as? [[String: Any]])
        #expect(pairs.count == 1)
        #expect(pairs[0]["verdict"] as? String == "no")
        let reasons = try #require(pairs[0]["reasons"] as? [[String: Any]])
        #expect(reasons[0]["code"] as? String == "acs-redirect")
        let remedy = try #require(reasons[0]["remedy"] as? [String: String])
        #expect(remedy["action"] == "add the kernel parameter pci=disable_acs_redir=0000:00:12.0")
        let kernel = try #require(object["kernel"] as? [String: Any])
        #expect(kernel["dmaParameters"] as? [String] == ["intel_iommu=on", "iommu=nopt"])
    }

    @Test("Bad input is exit 2: an unknown device, a root that is not a machine, --capture with other options", arguments: [
        ["doctor", "0000:99:00.0", "--root", root("h200-vm")],
        ["doctor", "--root", "/nonexistent-doctor-root"],
        ["doctor", "--capture", "/tmp/x", "--json"],
    ])
    func badInput(arguments: [String]) throws {
        let result = try runDMABuf(arguments)
        #expect(result.status == 2, "\(result.stdout)")
        #expect(result.stderr.hasPrefix("error: ") || result.stderr.contains("Error: "))
    }

    @Test("--capture of the live machine, then --root on the copy: the same JSON as the live diagnosis")
    func captureThenRoot() throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("doctor-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let captured = try runDMABuf(["doctor", "--capture", copy])
        #expect(captured.status == 0, "\(captured.stderr)")
        #expect(captured.stdout.hasPrefix("captured "))
        let live = try runDMABuf(["doctor", "--json"])
        let offline = try runDMABuf(["doctor", "--json", "--root", copy])
        #expect(live.status == offline.status)
        #expect(live.stdout == offline.stdout)
    }
}
