import Benchmark
import CBaselines
import Foundation
import LinuxDMABuf

/// Row 8 (issue [M] item 6): the census of a busy machine, `dmabuf ls`'s read of `/proc`, on a
/// generated copy of 2,000 processes with 64 dma-buf fds each (make-proc.py, `DMABUF_BENCH_PROC`),
/// against a C loop that reads the same files (`cb_census`: readlink, fdinfo, maps line by line).
/// Goal: within 1.5x of the baseline, memory bounded (peak RSS reported).
func censusBenchmarks() {
    guard let root = ProcessInfo.processInfo.environment["DMABUF_BENCH_PROC"] else {
        print("DMABUF_BENCH_PROC is not set: the census rows are skipped (make bench sets it)")
        return
    }
    let slow = configuration([.wallClock, .mallocCountTotal, .peakMemoryResident], maxDuration: .seconds(20), maxIterations: 10)
    Benchmark("C census 2000x64", configuration: slow) { benchmark in
        for _ in benchmark.scaledIterations {
            var bytes: UInt64 = 0
            var mappings: UInt64 = 0
            blackHole(cb_census(root, &bytes, &mappings))
            blackHole(bytes &+ mappings)
        }
    }
    Benchmark("census 2000x64", configuration: slow) { benchmark in
        for _ in benchmark.scaledIterations {
            let census = DMABufCensus.take(procRoot: root)
            guard census.processesScanned >= 2000, !census.buffers.isEmpty else {
                fatalError("the census saw \(census.processesScanned) processes and \(census.buffers.count) buffers in \(root)")
            }
            blackHole(census)
        }
    }
}
