import CLibDRM
import DMACore
import Foundation
import Glibc
@testable import LinuxDMABuf
import Testing

@Suite("DRM nodes, dumb buffers, PRIME, udmabuf and dma-heaps, through the interceptor")
struct DRMAndExporterTests {
    /// A machine where drmGetDevices2 describes only virtio_gpu (card1); vgem (card0) is found in /dev/dri.
    static let twoCards: MockKernel.Handler = { call, _ in
        switch call {
        case .drmGetDevices:
            return .devices([DRMBusDevice(primaryNode: "/dev/dri/card1", renderNode: "/dev/dri/renderD128", bus: "pci", pciAddress: "0000:00:02.0", pciID: "1af4:1050")])
        case .listDirectory("/dev/dri"):
            return .contents(Array("card1\ncard0\nrenderD128\nby-path\n".utf8))
        case .open("/dev/dri/card0", _): return .returns(30)
        case .open("/dev/dri/card1", _): return .returns(31)
        case .open("/dev/dri/renderD128", _): return .returns(32)
        case .drmGetVersion(30): return .version(DRMVersion(name: "vgem", major: 1, minor: 0, patchLevel: 0))
        case .drmGetVersion(31): return .version(DRMVersion(name: "virtio_gpu", major: 0, minor: 1, patchLevel: 0))
        case .close: return .returns(0)
        default: return .fails(.ENOTTY)
        }
    }

    @Test("Devices come from drmGetDevices2 plus the /dev/dri nodes it skipped; each driver is read through a node")
    func enumerate() {
        withMockKernel(Self.twoCards) { kernel in
            let devices = DRM.devices()
            #expect(devices.map(\.driver?.name) == ["virtio_gpu", "vgem"])
            #expect(devices[0].bus.pciAddress == "0000:00:02.0" && devices[0].bus.renderNode == "/dev/dri/renderD128")
            #expect(devices[1].bus.bus == "unknown" && devices[1].bus.primaryNode == "/dev/dri/card0")
            #expect(kernel.closed.sorted() == [30, 31], "every node opened to read its driver is closed once")
        }
    }

    @Test("Cards are selected by driver name, not by number; an absent driver gives nil")
    func openByDriver() throws {
        try withMockKernel(Self.twoCards) { kernel in
            let vgem = Self.path(try DRM.open(driver: "vgem"))
            let amdgpu = Self.path(try DRM.open(driver: "amdgpu"))
            let render = Self.path(try DRM.open(driver: "virtio_gpu", render: true))
            #expect(vgem == "/dev/dri/card0" && amdgpu == nil && render == "/dev/dri/renderD128")
            // Three enumerations open and close both cards; then the chosen nodes are closed once each.
            #expect(kernel.closed.sorted() == [30, 30, 30, 30, 31, 31, 31, 32])
        }
    }

    /// The path of an opened node, which is closed here; `nil` for none.
    static func path(_ node: consuming DRMNode?) -> String? {
        guard let node else { return nil }
        return node.path
    }

    @Test("With no /dev/dri and no devices, enumeration is empty, not an error")
    func noDRI() {
        withMockKernel({ call, _ in
            switch call {
            case .drmGetDevices: return .fails(.ENODEV)
            case .listDirectory: return .fails(.ENOENT)
            default: return .perform
            }
        }) { _ in
            #expect(DRM.devices().isEmpty)
        }
    }

    @Test("Opening a node retries EINTR and reports ENOENT with the path")
    func openNode() {
        let tries = Mutex2()
        withMockKernel({ call, _ in
            switch call {
            case .open("/dev/dri/card0", let flags):
                #expect(flags & O_CLOEXEC != 0 && flags & O_ACCMODE == O_RDWR)
                return tries.next() == 0 ? .fails(.EINTR) : .returns(50)
            case .open: return .fails(.ENOENT)
            default: return .returns(0)
            }
        }) { kernel in
            #expect((try? DRMNode(path: "/dev/dri/card0"))?.rawValue == 50)
            let error = dmaError { _ = try DRMNode(path: "/dev/dri/card9") }
            #expect(error?.errno == .ENOENT && error?.message.contains("/dev/dri/card9") == true)
            #expect(kernel.calls.filter { if case .open = $0 { true } else { false } }.count == 3)
        }
    }

    @Test("CREATE_DUMB sends width, height, bpp and returns the driver's pitch, size and handle; zero sizes are EINVAL before the call")
    func dumb() throws {
        try withMockKernel({ call, argument in
            if case .ioctl(_, let request) = call, request == .createDumb {
                let dumb = argument!.assumingMemoryBound(to: drm_mode_create_dumb.self)
                #expect(dumb.pointee.width == 64 && dumb.pointee.height == 64 && dumb.pointee.bpp == 32)
                dumb.pointee.pitch = 256
                dumb.pointee.size = 16384
                dumb.pointee.handle = 1
                return .returns(0)
            }
            if case .ioctl(_, let request) = call, request == .destroyDumb {
                #expect(argument!.load(as: drm_mode_destroy_dumb.self).handle == 1)
                return .returns(0)
            }
            return .returns(60)
        }) { kernel in
            let node = try DRMNode(path: "/dev/dri/card0")
            let dumb = try node.createDumbBuffer(width: 64, height: 64, bitsPerPixel: 32)
            #expect(dumb == DumbBuffer(handle: GEMHandle(rawValue: 1), pitch: 256, size: 16384))
            try node.destroyDumbBuffer(dumb.handle)
            for (w, h, bpp) in [(0, 64, 32), (64, 0, 32), (64, 64, 0), (1 << 31, 1 << 31, 32)] {
                let error = dmaError { _ = try node.createDumbBuffer(width: w, height: h, bitsPerPixel: bpp) }
                #expect(error?.errno == .EINVAL && error?.code == .refusedBeforeCall)
            }
            #expect(kernel.ioctls == ["DRM_IOCTL_MODE_CREATE_DUMB", "DRM_IOCTL_MODE_DESTROY_DUMB"])
        }
    }

    @Test("PRIME export asks for CLOEXEC|RDWR and owns the fd; import into a driver that cannot is ENODEV, explained")
    func prime() throws {
        try withMockKernel({ call, argument in
            guard case .ioctl(let fd, let request) = call else { return call == .open(path: "/dev/dri/card1", flags: O_RDWR | O_CLOEXEC) ? .returns(61) : .returns(0) }
            switch request {
            case .primeHandleToFD:
                let prime = argument!.assumingMemoryBound(to: drm_prime_handle.self)
                #expect(prime.pointee.flags == UInt32(DRM_CLOEXEC) | UInt32(DRM_RDWR) && prime.pointee.handle == 1)
                prime.pointee.fd = 70
                return .returns(0)
            case .primeFDToHandle:
                #expect(fd == 61)
                return .fails(.ENODEV)
            case .gemClose:
                return .returns(0)
            default:
                return .fails(.ENOTTY)
            }
        }) { kernel in
            do {
                let node = try DRMNode(path: "/dev/dri/card1")
                let buffer = try node.exportDMABuf(GEMHandle(rawValue: 1))
                #expect(buffer.rawValue == 70)
                let error = dmaError { _ = try node.importDMABuf(buffer) }
                #expect(error?.errno == .ENODEV && error?.code == .systemCallFailed)
                #expect(error?.message.contains("cannot import a dma-buf exported by another driver") == true)
                try node.closeHandle(GEMHandle(rawValue: 1))
            }
            #expect(kernel.closed.sorted() == [61, 70], "the dma-buf and the node are each closed once")
        }
    }

    @Test("udmabuf: an absent node is nil, not an error; EACCES is thrown")
    func udmabufAbsent() {
        withMockKernel({ _, _ in .fails(.ENOENT) }) { _ in
            #expect(throws: Never.self) {
                let device = try UDMABufDevice.open()
                let absent = device == nil
                #expect(absent)
            }
        }
        withMockKernel({ _, _ in .fails(.EACCES) }) { _ in
            #expect(dmaError { _ = try UDMABufDevice.open() }?.errno == .EACCES)
        }
    }

    @Test("udmabuf: the seals and alignment the kernel checks are checked before UDMABUF_CREATE")
    func udmabufCreate() throws {
        let page = SystemCalls.pageSize
        let seals = Recorder<Int32>()
        try withMockKernel({ call, argument in
            switch call {
            case .open("/dev/udmabuf", _): return .returns(80)
            case .memfdCreate: return .returns(81)
            case .ftruncate: return .returns(0)
            case .fcntl(81, DMABUFKIT_F_ADD_SEALS, let value):
                seals.add(value)
                return .returns(0)
            case .fcntl(81, DMABUFKIT_F_GET_SEALS, _):
                return .returns(Int(seals.values.reduce(0, |)))
            case .ioctl(80, let request) where request == .udmabufCreate:
                let create = argument!.load(as: udmabuf_create.self)
                #expect(create.memfd == 81 && create.offset == 0 && create.size == UInt64(4 * page) && create.flags == UInt32(UDMABUF_FLAGS_CLOEXEC))
                return .returns(82)
            case .close: return .returns(0)
            default: return .fails(.ENOTTY)
            }
        }) { kernel in
            do {
                guard let device = try UDMABufDevice.open() else {
                    Issue.record("the mocked /dev/udmabuf was reported absent")
                    return
                }
                let memfd = try Memfd(name: "test", size: 4 * page)
                let unsealed = dmaError { _ = try device.createBuffer(memfd: memfd, size: 4 * page) }
                #expect(unsealed?.errno == .EINVAL && unsealed?.code == .refusedBeforeCall)
                try memfd.addSeals(.shrink)
                #expect(dmaError { _ = try device.createBuffer(memfd: memfd, size: 1000) }?.errno == .EINVAL)
                #expect(dmaError { _ = try device.createBuffer(memfd: memfd, offset: 100, size: page) }?.errno == .EINVAL)
                #expect(dmaError { _ = try device.createBuffer(memfd: memfd, size: 0) }?.errno == .EINVAL)
                let buffer = try device.createBuffer(memfd: memfd, size: 4 * page)
                #expect(buffer.rawValue == 82)
                try memfd.addSeals(.write)
                #expect(dmaError { _ = try device.createBuffer(memfd: memfd, size: 4 * page) }?.errno == .EINVAL)
            }
            #expect(kernel.ioctls == ["UDMABUF_CREATE"])
            #expect(kernel.closed.sorted() == [80, 81, 82])
        }
    }

    @Test("dma-heaps: absent folder and node are reported as absent; length 0 and bad flags are EINVAL")
    func heaps() throws {
        withMockKernel({ _, _ in .fails(.ENOENT) }) { _ in
            #expect(DMAHeap.available().isEmpty)
            #expect(throws: Never.self) {
                let heap = try DMAHeap.open(name: "system")
                let absent = heap == nil
                #expect(absent)
            }
        }
        try withMockKernel({ call, argument in
            switch call {
            case .listDirectory("/dev/dma_heap"): return .contents(Array("system\n".utf8))
            case .open("/dev/dma_heap/system", _): return .returns(90)
            case .ioctl(90, let request) where request == .dmaHeapAlloc:
                let data = argument!.assumingMemoryBound(to: dma_heap_allocation_data.self)
                #expect(data.pointee.len == 32768 && data.pointee.fd_flags == UInt32(O_RDWR | O_CLOEXEC) && data.pointee.heap_flags == 0)
                data.pointee.fd = 91
                return .returns(0)
            case .close: return .returns(0)
            default: return .fails(.ENOTTY)
            }
        }) { kernel in
            #expect(DMAHeap.available() == ["system"])
            do {
                guard let heap = try DMAHeap.open(name: "system") else {
                    Issue.record("the mocked system heap was reported absent")
                    return
                }
                #expect(dmaError { _ = try heap.allocate(length: 0) }?.errno == .EINVAL)
                let buffer = try heap.allocate(length: 32768)
                #expect(buffer.rawValue == 91)
            }
            #expect(DMAHeap.allocationRefusal(length: 1, fdFlags: O_RDWR | O_NONBLOCK, heapFlags: 0) == .EINVAL)
            #expect(DMAHeap.allocationRefusal(length: 1, fdFlags: O_RDWR, heapFlags: 1) == .EINVAL)
            #expect(DMAHeap.allocationRefusal(length: 1, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 0) == nil)
            #expect(kernel.ioctls == ["DMA_HEAP_IOCTL_ALLOC"])
            #expect(kernel.closed.sorted() == [90, 91])
        }
    }

    @Test("ENOTTY and ENOENT on /dev get a sentence; unknown errnos keep their number")
    func explanations() {
        #expect(explain(.ENOTTY, call: "ioctl(DMA_BUF_IOCTL_SYNC)") != nil)
        #expect(explain(.ENOENT, call: "open(/dev/udmabuf)")?.contains("absent") == true)
        #expect(explain(.ENOTSUPP, call: "ioctl(X)")?.contains("Unknown error 524") == true)
        #expect(Errno(rawValue: 524).name == "ENOTSUPP" && Errno(rawValue: 9999).name == "errno 9999")
    }
}
