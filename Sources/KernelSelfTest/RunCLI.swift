import Glibc

/// Runs this binary as the dmabuf tool (`posix_spawn` of `/proc/self/exe --cli ARGS`, stdout
/// through a pipe, `waitpid`) and returns its exit status and output. Plain system calls, not
/// Foundation's Process, whose child monitoring hung on a second spawn in the one-CPU guest.
@MainActor
func runCLI(_ arguments: [String]) -> (status: Int32, stdout: String) {
    var pipeFDs: [Int32] = [-1, -1]
    guard pipe(&pipeFDs) == 0 else { return (-1, "pipe failed: errno \(errno)") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
    posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
    posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
    let argv = ["/proc/self/exe", "--cli"] + arguments
    var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for pointer in cArguments { free(pointer) } }
    var child: pid_t = 0
    let spawned = posix_spawn(&child, "/proc/self/exe", &actions, nil, &cArguments, environ)
    close(pipeFDs[1])
    defer { close(pipeFDs[0]) }
    guard spawned == 0 else { return (-1, "posix_spawn failed: errno \(spawned)") }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        output.append(contentsOf: chunk[0..<count])
    }
    var status: Int32 = 0
    while waitpid(child, &status, 0) < 0 && errno == EINTR {}
    let exited = (status & 0x7f) == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), String(decoding: output, as: UTF8.self))
}
