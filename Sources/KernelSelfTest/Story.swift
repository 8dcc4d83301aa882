import DMACore
import Foundation
import Glibc
import LinuxDMABuf

/// Story 7 on the real kernel: a buffer from each exporter the guest has (virtio-gpu and vgem
/// dumb buffers through PRIME, udmabuf from a sealed memfd, the system dma-heap), each given the
/// common and import checks, then `dmabuf ls` and `dmabuf probe` run as another process over them.
@MainActor
func story() {
    let devices = DRM.devices()
    let vgemNode: DRMNode?
    let virtioNode: DRMNode?
    do throws(DMAError) {
        vgemNode = try DRM.open(driver: "vgem")
    } catch {
        runner.check("drm.open", false, error.description)
        return
    }
    do throws(DMAError) {
        virtioNode = try DRM.open(driver: "virtio_gpu")
    } catch {
        runner.check("drm.open", false, error.description)
        return
    }
    let listing = devices.map { "\($0.bus.primaryNode ?? "-")=\($0.driver?.name ?? "?")" }.joined(separator: " ")
    guard let vgem = consume vgemNode, let virtio = consume virtioNode else {
        runner.check("drm.find-by-driver", false, "vgem or virtio_gpu missing: \(listing)")
        return
    }
    runner.check("drm.find-by-driver", true, "vgem at \(vgem.path), virtio_gpu at \(virtio.path) (\(listing))")

    var inodes: [String: UInt64] = [:]
    var descriptors: [String: Int32] = [:]

    // virtio-gpu: a dumb buffer exported with PRIME.
    var virtioBuffer: DMABufFD? = nil
    runner.section("virtio_gpu") { () throws(DMAError) in
        let dumb = try virtio.createDumbBuffer(width: 64, height: 64, bitsPerPixel: 32)
        runner.check("virtio_gpu.create-dumb", dumb.pitch == 256 && dumb.size == 16384, "pitch \(dumb.pitch), size \(dumb.size)")
        let buffer = try virtio.exportDMABuf(dumb.handle)
        try commonChecks("virtio_gpu", buffer, size: 16384, exporter: "virtio_gpu", name: "ktier-virtio_gpu")
        try importChecks("virtio_gpu", buffer, vgem: vgem, virtio: virtio, intoVirtio: false)
        let own = try virtio.importDMABuf(buffer)
        runner.check("virtio_gpu.self-import-same-handle", own == dumb.handle, "re-import gave \(own), dumb was \(dumb.handle)")
        inodes["ktier-virtio_gpu"] = try buffer.fdinfo().inode
        descriptors["ktier-virtio_gpu"] = buffer.rawValue
        virtioBuffer = consume buffer
    }
    runner.expectFailure("drm.dumb-zero-width-refused", errno: .EINVAL, code: .refusedBeforeCall) {
        _ = try virtio.createDumbBuffer(width: 0, height: 64, bitsPerPixel: 32)
    }

    // vgem: exp_name is "drm".
    var vgemBuffer: DMABufFD? = nil
    runner.section("vgem") { () throws(DMAError) in
        let dumb = try vgem.createDumbBuffer(width: 64, height: 64, bitsPerPixel: 32)
        runner.check("vgem.create-dumb", dumb.pitch == 256 && dumb.size == 16384, "pitch \(dumb.pitch), size \(dumb.size)")
        let buffer = try vgem.exportDMABuf(dumb.handle)
        try commonChecks("vgem", buffer, size: 16384, exporter: "drm", name: "ktier-vgem")
        runner.expectFailure("vgem.virtio_gpu-import-enodev", errno: .ENODEV, code: .systemCallFailed) {
            _ = try virtio.importDMABuf(buffer)
        }
        inodes["ktier-vgem"] = try buffer.fdinfo().inode
        descriptors["ktier-vgem"] = buffer.rawValue
        vgemBuffer = consume buffer
    }

    // udmabuf from a sealed memfd.
    var udmaBuffer: DMABufFD? = nil
    var udmaMapping: DMABufMemoryMap? = nil
    runner.section("udmabuf") { () throws(DMAError) in
        guard let device = try UDMABufDevice.open() else {
            runner.check("udmabuf.present", false, "/dev/udmabuf is absent on this kernel")
            return
        }
        runner.check("udmabuf.present", true, device.path)
        let unsealed = try Memfd(name: "ktier-unsealed", size: 16384)
        runner.expectFailure("udmabuf.unsealed-memfd-refused", errno: .EINVAL, code: .refusedBeforeCall) {
            _ = try device.createBuffer(memfd: unsealed, size: 16384)
        }
        runner.expectFailure("udmabuf.kernel-unsealed-memfd-einval", errno: .EINVAL, code: .systemCallFailed) {
            _ = try device.createBufferUnchecked(memfdDescriptor: unsealed.rawValue, offset: 0, size: 16384)
        }
        runner.expectFailure("udmabuf.kernel-unaligned-size-einval", errno: .EINVAL, code: .systemCallFailed) {
            _ = try device.createBufferUnchecked(memfdDescriptor: unsealed.rawValue, offset: 0, size: 1000)
        }
        let memfd = try Memfd(name: "ktier-udmabuf", size: 16384)
        try memfd.addSeals(.shrink)
        let buffer = try device.createBuffer(memfd: memfd, size: 16384)
        try commonChecks("udmabuf", buffer, size: 16384, exporter: "udmabuf", name: "ktier-udmabuf")
        let word = try memfd.read(count: 4, at: 4)
        let value = word.count == 4 ? word.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } : 0
        runner.check("udmabuf.pattern-visible-in-memfd", value == 0xC0DE_0001, "pread(memfd, 4, 4) = 0x\(String(value, radix: 16))")
        try importChecks("udmabuf", buffer, vgem: vgem, virtio: virtio, intoVirtio: true)
        inodes["ktier-udmabuf"] = try buffer.fdinfo().inode
        descriptors["ktier-udmabuf"] = buffer.rawValue
        udmaMapping = try buffer.map()  // kept for the census: one mapping of 16384 bytes
        udmaBuffer = consume buffer
    }

    // The system dma-heap.
    var heapBuffer: DMABufFD? = nil
    runner.section("heap") { () throws(DMAError) in
        let heaps = DMAHeap.available()
        runner.check("heap.available", heaps.contains("system"), "heaps: \(heaps)")
        let cma = try DMAHeap.open(name: "cma")
        runner.check("heap.cma-absent-not-failure", cma == nil, "CONFIG_DMABUF_HEAPS_CMA is not set in Debian kernels")
        guard let heap = try DMAHeap.open(name: "system") else {
            runner.check("heap.system-present", false, "/dev/dma_heap/system is absent")
            return
        }
        runner.expectFailure("heap.zero-length-refused", errno: .EINVAL, code: .refusedBeforeCall) {
            _ = try heap.allocate(length: 0)
        }
        runner.expectFailure("heap.kernel-zero-length-einval", errno: .EINVAL, code: .systemCallFailed) {
            _ = try heap.allocateUnchecked(length: 0, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 0)
        }
        runner.expectFailure("heap.kernel-heap-flags-einval", errno: .EINVAL, code: .systemCallFailed) {
            _ = try heap.allocateUnchecked(length: 32768, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 1)
        }
        let buffer = try heap.allocate(length: 32768)
        try commonChecks("heap", buffer, size: 32768, exporter: "system", name: "ktier-heap-system")
        try importChecks("heap", buffer, vgem: vgem, virtio: virtio, intoVirtio: true)
        inodes["ktier-heap-system"] = try buffer.fdinfo().inode
        descriptors["ktier-heap-system"] = buffer.rawValue
        heapBuffer = consume buffer
    }

    // `dmabuf ls`, run as another process, sees exactly these buffers, their exporters and holders.
    let expectedExporters = ["ktier-virtio_gpu": "virtio_gpu", "ktier-vgem": "drm", "ktier-udmabuf": "udmabuf", "ktier-heap-system": "system"]
    for (argumentsTag, arguments) in [("ls.pid", ["ls", "--json", "--pid", String(pid)]), ("ls.all", ["ls", "--json"])] {
        let result = runCLI(arguments)
        guard result.status == 0, let census = try? JSONDecoder().decode(DMABufCensus.self, from: Data(result.stdout.utf8)) else {
            runner.check("\(argumentsTag).runs", false, "status \(result.status): \(result.stdout.prefix(300))")
            continue
        }
        runner.check("\(argumentsTag).runs", true, "\(census.buffers.count) buffers, \(census.processesScanned) processes, \(census.unreadable.count) unreadable")
        let seen = Dictionary(census.buffers.map { ($0.name ?? "-", $0) }, uniquingKeysWith: { a, _ in a })
        runner.check("\(argumentsTag).exactly-our-buffers", Set(census.buffers.map(\.inode)) == Set(inodes.values) && census.buffers.count == 4,
                     "inodes seen \(census.buffers.map(\.inode).sorted()), created \(inodes.values.sorted())")
        for (name, exporter) in expectedExporters.sorted(by: { $0.key < $1.key }) {
            let buffer = seen[name]
            let holder = buffer?.holders.first { $0.pid == pid }
            let expectedMappings = name == "ktier-udmabuf" ? 1 : 0
            runner.check("\(argumentsTag).\(name)", buffer?.exporter == exporter && buffer?.inode == inodes[name]
                            && holder.map { $0.fds.contains(descriptors[name] ?? -1) && $0.mappings == expectedMappings } == true
                            && buffer?.holders.count == 1,
                         "exporter \(buffer?.exporter ?? "-"), ino \(buffer.map { String($0.inode) } ?? "-"), holders \(buffer?.holders.map { "\($0.pid)/\($0.comm) fds \($0.fds) maps \($0.mappings)" } ?? [])")
        }
        let totals = Dictionary(census.totals.map { ($0.exporter, $0.bytes) }, uniquingKeysWith: +)
        runner.check("\(argumentsTag).totals", totals == ["virtio_gpu": 16384, "drm": 16384, "udmabuf": 16384, "system": 32768], "\(totals.sorted(by: { $0.key < $1.key }))")
    }
    mapsDuringStory = dmabufMapLines().count
    let text = runCLI(["ls"])
    runner.check("ls.text", text.status == 0 && expectedExporters.keys.allSatisfy { text.stdout.contains($0) }, text.stdout.split(separator: "\n").prefix(3).joined(separator: " | "))

    let probe = runCLI(["probe", "--json"])
    let probeOK = probe.status == 0 && probe.stdout.contains("\"vgem\"") && probe.stdout.contains("\"virtio_gpu\"")
        && probe.stdout.contains("\"udmabuf\" : \"present\"") && probe.stdout.contains("\"system\"") && probe.stdout.contains("\"CONFIG_UDMABUF\" : \"y\"")
    runner.check("probe.json", probeOK, probe.stdout.replacingOccurrences(of: "\n", with: " ").prefix(600) + "")

    // Everything is released here: fds, mappings and DRM nodes go with their owners.
    _ = consume virtioBuffer
    _ = consume vgemBuffer
    _ = consume udmaMapping
    _ = consume udmaBuffer
    _ = consume heapBuffer
}
