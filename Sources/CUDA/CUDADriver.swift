import DMACore

#if canImport(Glibc)
    import Glibc
#endif

/// The CUDA driver API (`libcuda.so.1`), loaded with `dlopen` at run time, so that nothing about
/// CUDA is needed to build the package: a machine without an NVIDIA driver gets a clear message,
/// not a link error.
///
/// Only what exporting VRAM as a dma-buf needs is bound: init, the device and its PCI bus id,
/// the primary context, `cuMemAlloc`/`cuMemFree`, the `DMA_BUF_SUPPORTED` attribute and
/// `cuMemGetHandleForAddressRange(…, CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, 0)`.
public final class CUDADriver: @unchecked Sendable {
    // @unchecked: the handle and function pointers are written once in `init` and only read after;
    // the driver API itself is thread-safe.

    /// A CUDA call that failed: the call, its `CUresult`, and the driver's own words.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// What failed.
        public let call: String
        /// The `CUresult` (0 is `CUDA_SUCCESS`), or -1 when the library could not be loaded.
        public let result: Int32
        /// The driver's text, or why loading failed.
        public let message: String
        public var description: String { result < 0 ? message : "\(call) failed with CUresult \(result): \(message)" }

        /// Creates a failure.
        public init(call: String, result: Int32, message: String) {
            self.call = call
            self.result = result
            self.message = message
        }
    }

    /// `CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED`.
    public static let dmaBufSupportedAttribute: Int32 = 124
    /// `CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED`.
    public static let gpuDirectRDMASupportedAttribute: Int32 = 116
    /// `CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD`.
    public static let dmaBufFDHandleType: Int32 = 1

    typealias InitFn = @convention(c) (UInt32) -> Int32
    typealias CountFn = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    typealias DeviceGetFn = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    typealias StringFn = @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Int32
    typealias AttributeFn = @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Int32
    typealias RetainFn = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> Int32
    typealias ReleaseFn = @convention(c) (Int32) -> Int32
    typealias SetCurrentFn = @convention(c) (OpaquePointer?) -> Int32
    typealias AllocFn = @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> Int32
    typealias FreeFn = @convention(c) (UInt64) -> Int32
    typealias HandleFn = @convention(c) (UnsafeMutableRawPointer, UInt64, Int, Int32, UInt64) -> Int32
    typealias ErrorStringFn = @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Int32

    private let handle: UnsafeMutableRawPointer
    private let cuInit: InitFn
    private let cuDeviceGetCount: CountFn
    private let cuDeviceGet: DeviceGetFn
    private let cuDeviceGetName: StringFn
    private let cuDeviceGetPCIBusId: StringFn
    private let cuDeviceGetAttribute: AttributeFn
    private let cuDevicePrimaryCtxRetain: RetainFn
    private let cuDevicePrimaryCtxRelease: ReleaseFn
    private let cuCtxSetCurrent: SetCurrentFn
    private let cuMemAlloc: AllocFn
    private let cuMemFree: FreeFn
    private let cuMemGetHandleForAddressRange: HandleFn
    private let cuGetErrorString: ErrorStringFn?

    /// Loads the driver library and binds the calls.
    /// - Note: `path`: `libcuda.so.1` by default (found by the dynamic loader).
    /// - Throws: ``Failure`` with result -1 when the library or a symbol is missing.
    public init(path: String = "libcuda.so.1") throws(Failure) {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "not found"
            throw Failure(
                call: "dlopen", result: -1,
                message: "the CUDA driver (\(path)) is not installed on this machine (\(reason)): it needs an NVIDIA GPU with its driver; nothing was run")
        }
        func bind<T>(_ name: String, as type: T.Type) throws(Failure) -> T {
            guard let symbol = dlsym(handle, name) else {
                throw Failure(call: "dlsym", result: -1, message: "\(path) has no \(name): the driver is too old for dma-buf export (CUDA 11.7 or newer is needed)")
            }
            return unsafeBitCast(symbol, to: type)
        }
        do {
            cuInit = try bind("cuInit", as: InitFn.self)
            cuDeviceGetCount = try bind("cuDeviceGetCount", as: CountFn.self)
            cuDeviceGet = try bind("cuDeviceGet", as: DeviceGetFn.self)
            cuDeviceGetName = try bind("cuDeviceGetName", as: StringFn.self)
            cuDeviceGetPCIBusId = try bind("cuDeviceGetPCIBusId", as: StringFn.self)
            cuDeviceGetAttribute = try bind("cuDeviceGetAttribute", as: AttributeFn.self)
            cuDevicePrimaryCtxRetain = try bind("cuDevicePrimaryCtxRetain", as: RetainFn.self)
            cuDevicePrimaryCtxRelease = try bind("cuDevicePrimaryCtxRelease_v2", as: ReleaseFn.self)
            cuCtxSetCurrent = try bind("cuCtxSetCurrent", as: SetCurrentFn.self)
            cuMemAlloc = try bind("cuMemAlloc_v2", as: AllocFn.self)
            cuMemFree = try bind("cuMemFree_v2", as: FreeFn.self)
            cuMemGetHandleForAddressRange = try bind("cuMemGetHandleForAddressRange", as: HandleFn.self)
        } catch {
            dlclose(handle)
            throw error
        }
        cuGetErrorString = dlsym(handle, "cuGetErrorString").map { unsafeBitCast($0, to: ErrorStringFn.self) }
        self.handle = handle
    }

    deinit { dlclose(handle) }

    private func check(_ call: String, _ result: Int32) throws(Failure) {
        guard result != 0 else { return }
        var text: UnsafePointer<CChar>?
        let message = cuGetErrorString.flatMap { $0(result, &text) == 0 ? text.map { String(cString: $0) } : nil } ?? "unknown CUresult"
        throw Failure(call: call, result: result, message: message)
    }

    /// `cuInit(0)`.
    public func initialize() throws(Failure) { try check("cuInit", cuInit(0)) }

    /// `cuDeviceGetCount`.
    public func deviceCount() throws(Failure) -> Int {
        var count: Int32 = 0
        try check("cuDeviceGetCount", cuDeviceGetCount(&count))
        return Int(count)
    }

    /// A GPU: its ordinal, name, PCI bus id and whether it can export dma-bufs.
    public struct Device: Sendable {
        public let ordinal: Int
        public let handle: Int32
        public let name: String
        /// The PCI bus id as CUDA gives it (`0000:00:06.0`).
        public let pciBusID: String
        /// `CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED`.
        public let dmaBufSupported: Bool
        /// `CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED`.
        public let gpuDirectRDMASupported: Bool
    }

    /// `cuDeviceGet` and what the export needs to know of it.
    public func device(_ ordinal: Int) throws(Failure) -> Device {
        var device: Int32 = 0
        try check("cuDeviceGet", cuDeviceGet(&device, Int32(ordinal)))
        var name = [CChar](repeating: 0, count: 256)
        try check("cuDeviceGetName", cuDeviceGetName(&name, Int32(name.count), device))
        var bus = [CChar](repeating: 0, count: 64)
        try check("cuDeviceGetPCIBusId", cuDeviceGetPCIBusId(&bus, Int32(bus.count), device))
        var dmaBuf: Int32 = 0
        try check("cuDeviceGetAttribute(DMA_BUF_SUPPORTED)", cuDeviceGetAttribute(&dmaBuf, Self.dmaBufSupportedAttribute, device))
        var rdma: Int32 = 0
        try check("cuDeviceGetAttribute(GPU_DIRECT_RDMA_SUPPORTED)", cuDeviceGetAttribute(&rdma, Self.gpuDirectRDMASupportedAttribute, device))
        return Device(
            ordinal: ordinal, handle: device, name: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
            pciBusID: String(decoding: bus.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).lowercased(),
            dmaBufSupported: dmaBuf != 0, gpuDirectRDMASupported: rdma != 0)
    }

    /// Makes the device's primary context current (`cuDevicePrimaryCtxRetain`, `cuCtxSetCurrent`).
    public func useDevice(_ device: Device) throws(Failure) {
        var context: OpaquePointer?
        try check("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(&context, device.handle))
        try check("cuCtxSetCurrent", cuCtxSetCurrent(context))
    }

    /// Releases the primary context (`cuDevicePrimaryCtxRelease`).
    public func releaseDevice(_ device: Device) { _ = cuDevicePrimaryCtxRelease(device.handle) }

    /// `cuMemAlloc`: device memory (VRAM).
    public func allocate(_ size: Int) throws(Failure) -> UInt64 {
        var pointer: UInt64 = 0
        try check("cuMemAlloc", cuMemAlloc(&pointer, size))
        return pointer
    }

    /// `cuMemFree`.
    public func free(_ pointer: UInt64) { _ = cuMemFree(pointer) }

    /// `cuMemGetHandleForAddressRange(&fd, pointer, size, CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, 0)`:
    /// the VRAM range as a dma-buf fd, which the caller owns.
    public func exportDMABuf(_ pointer: UInt64, size: Int) throws(Failure) -> Int32 {
        var fd: Int32 = -1
        try check(
            "cuMemGetHandleForAddressRange(DMA_BUF_FD)",
            withUnsafeMutablePointer(to: &fd) { cuMemGetHandleForAddressRange(UnsafeMutableRawPointer($0), pointer, size, Self.dmaBufFDHandleType, 0) })
        return fd
    }
}
