import DMACore

// What this process holds, read from its own procfs files, for the leak checks.

@MainActor
func openFDs() -> [String] {
    ((try? SystemCalls.listDirectory("/proc/self/fd").get()) ?? []).sorted()
}

@MainActor
func dmabufMapLines() -> [String] {
    // procfs files report size 0: read them to the end with the layer's own reader.
    let maps = String(decoding: (try? SystemCalls.readFile("/proc/self/maps").get()) ?? [], as: UTF8.self)
    return maps.split(separator: "\n").map(String.init).filter { $0.contains("/dmabuf:") || $0.contains("anon_inode:dmabuf") }
}
