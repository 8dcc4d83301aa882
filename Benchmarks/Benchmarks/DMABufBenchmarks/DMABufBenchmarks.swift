// The benchmarks of DMABufKit's hot paths, each next to the baseline it is compared with in the
// same run. `make bench` runs them and prints the ratios (scripts/report.py); BENCHMARKS.md keeps
// the numbers. Names are the keys report.py reads: change both together.

import Benchmark

/// Wall clock and allocations for every benchmark; each closure does one whole operation per
/// iteration (a 262,144-segment map and unmap, one bounce copy, a batch of lookups…).
func configuration(
    _ metrics: [BenchmarkMetric] = [.wallClock, .mallocCountTotal], maxDuration: Duration = .seconds(2),
    maxIterations: Int = 10_000
) -> Benchmark.Configuration {
    .init(
        metrics: metrics, timeUnits: .nanoseconds, warmupIterations: 3, maxDuration: maxDuration,
        maxIterations: maxIterations)
}

let benchmarks: @Sendable () -> Void = {
    mappingBenchmarks()
    swiotlbBenchmarks()
    providerLookupBenchmarks()
    sysfsBenchmarks()
    simulateBenchmarks()
    scaleBenchmarks()
    censusBenchmarks()
}
