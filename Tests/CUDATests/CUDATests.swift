import CUDA
import Foundation
import Testing

@Suite("The CUDA driver loaded at run time")
struct CUDADriverTests {
    @Test("Without the driver library the failure says so, and nothing else is attempted")
    func absent() {
        let error = #expect(throws: CUDADriver.Failure.self) { try CUDADriver(path: "/nonexistent/libcuda.so.1") }
        #expect(error?.result == -1)
        #expect(error?.description.contains("is not installed on this machine") == true)
        #expect(error?.description.contains("/nonexistent/libcuda.so.1") == true)
    }

    @Test("A library without the CUDA symbols is refused by name, not called")
    func wrongLibrary() {
        // libc is on every machine and has none of cuInit & co.
        let error = #expect(throws: CUDADriver.Failure.self) { try CUDADriver(path: "libc.so.6") }
        #expect(error?.call == "dlsym")
        #expect(error?.description.contains("cuInit") == true)
    }
}
