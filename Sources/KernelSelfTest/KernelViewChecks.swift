import DMACore
import Foundation
import LinuxDMABuf

/// `dmabuf ls --kernel` (issue [M]) against the real kernel's debugfs `dma_buf/bufinfo`, run as
/// another process after the story (whose own leak checks are done):
/// - a system-heap buffer imported into vgem (the DRM device here that imports foreign buffers:
///   virtio-gpu refuses every import on 6.12 and 7.3), then its fd closed: `ls --kernel` lists it
///   as held by the kernel only, with vgem attached; plain `ls` does not list it;
/// - a udmabuf mapped, then its fd closed: a holder with a mapping and no fd;
/// - three more imported buffers whose fds are closed, one per round: `--diff` against the view
///   taken before reports them as appeared, held by the kernel, and the system exporter's line
///   grown by three.
@MainActor
func kernelViewChecks() {
    runner.section("ls-kernel") { () throws(DMAError) in
        guard let vgem = try DRM.open(driver: "vgem"), let heap = try DMAHeap.open(name: "system"), let udmabuf = try UDMABufDevice.open() else {
            runner.check("ls-kernel.devices", false, "vgem, the system heap or udmabuf is missing")
            return
        }
        let before = runCLI(["ls", "--kernel", "--json"])
        let beforePath = "/tmp/ls-kernel-before.json"
        _ = FileManager.default.createFile(atPath: beforePath, contents: Data(before.stdout.utf8))
        let baseline = try? JSONDecoder().decode(DMABufKernelView.self, from: Data(before.stdout.utf8))
        runner.check("ls-kernel.runs", before.status == 0 && baseline?.source.readable == true,
            "status \(before.status): bufinfo \(baseline?.source.bufinfo ?? "-") readable \(baseline?.source.readable ?? false), \(baseline?.buffers.count ?? -1) buffers")

        var kernelOnly: UInt64 = 0
        do {
            let buffer = try heap.allocate(length: 65536)
            try buffer.setName("ktier-kernel-only")
            kernelOnly = try buffer.fdinfo().inode ?? 0
            _ = try vgem.importDMABuf(buffer)
        }  // the fd is closed here; vgem's GEM object keeps the buffer
        var mappedOnly: UInt64 = 0
        let memfd = try Memfd(name: "ktier-mapped-only", size: 16384)
        try memfd.addSeals(.shrink)
        var mapping: DMABufMemoryMap? = nil
        do {
            let buffer = try udmabuf.createBuffer(memfd: memfd, size: 16384)
            mappedOnly = try buffer.fdinfo().inode ?? 0
            mapping = try buffer.map()
        }
        let viewRun = runCLI(["ls", "--kernel", "--json"])
        let view = try? JSONDecoder().decode(DMABufKernelView.self, from: Data(viewRun.stdout.utf8))
        let held = view?.buffers.first { $0.inode == kernelOnly }
        runner.check("ls-kernel.held-by-kernel", held?.heldByKernelOnly == true && held?.holders.isEmpty == true && held?.exporter == "system",
            "ino \(kernelOnly): \(held.map { "exporter \($0.exporter ?? "-"), holders \($0.holders.count), heldByKernelOnly \($0.heldByKernelOnly)" } ?? "not listed")")
        runner.check("ls-kernel.attached-device", held.map { !$0.attachedDevices.isEmpty && $0.attachedDevices.allSatisfy { $0.contains("vgem") } } == true,
            "attached devices: \(held?.attachedDevices ?? [])")
        let plain = runCLI(["ls", "--json"])
        let census = try? JSONDecoder().decode(DMABufCensus.self, from: Data(plain.stdout.utf8))
        runner.check("ls-kernel.plain-ls-blind", census != nil && census?.buffers.contains { $0.inode == kernelOnly } == false,
            "plain ls lists \(census?.buffers.count ?? -1) buffers, the kernel-only one \(census?.buffers.contains { $0.inode == kernelOnly } == true ? "among them" : "not among them")")
        let mapped = view?.buffers.first { $0.inode == mappedOnly }
        let holder = mapped?.holders.first { $0.pid == pid }
        runner.check("ls-kernel.mapping-only-holder", holder.map { $0.fds.isEmpty && $0.mappings == 1 } == true && mapped?.heldByKernelOnly == false,
            "ino \(mappedOnly): holders \(mapped?.holders.map { "\($0.pid) fds \($0.fds) maps \($0.mappings)" } ?? [])")

        var leaked: [UInt64] = []
        for round in 0..<3 {
            let buffer = try heap.allocate(length: 4096)
            try buffer.setName("ktier-leak-\(round)")
            leaked.append(try buffer.fdinfo().inode ?? 0)
            _ = try vgem.importDMABuf(buffer)
        }
        let diffRun = runCLI(["ls", "--kernel", "--diff", beforePath, "--json"])
        let diff = try? JSONDecoder().decode(DMABufKernelDiff.self, from: Data(diffRun.stdout.utf8))
        let appeared = Set(diff?.appeared.map(\.inode) ?? [])
        let system = diff?.exporters.first { $0.key == "system" }
        runner.check("ls-kernel.diff-leak-grows", Set(leaked).isSubset(of: appeared) && appeared.contains(kernelOnly) && (system?.buffersDelta ?? 0) >= 4,
            "appeared \(appeared.sorted()), leaked \(leaked), system exporter \(system.map { "\($0.buffersBefore) -> \($0.buffersAfter)" } ?? "-")")
        _ = consume mapping
    }
}
