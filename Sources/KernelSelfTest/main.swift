// dmabuf-kernel-selftest: story 7 of docs/DESIGN.md on a real kernel, as the kernel tier runs it
// inside a QEMU guest (scripts/kernel-tier). Swift Testing cannot be linked into a static binary,
// so this is a runner of its own with the same strictness: every check prints one line,
// `KTEST PASS name :: evidence` or `KTEST FAIL name :: evidence`, an unexpected error fails the
// section it happened in, and the last line is `KTEST-SUMMARY: N passed, M failed`. The host
// parses these lines and also requires every check named in scripts/kernel-tier/expected-checks.txt.
//
// `dmabuf-kernel-selftest --vfio BDF` runs the VFIO dma-buf table instead (VFIOChecks.swift).
// `dmabuf-kernel-selftest --cli ARGS` runs the dmabuf tool itself (`dmabuf ls`, `dmabuf probe`),
// so that the census is taken by another process, as a user would take it.
//
// This file runs the sections in order; each lives in a file named for it: the check lines
// (Runner.swift), the kernel's config facts (ConfigChecks.swift), story 7 (Story.swift) with the
// checks every buffer gets (BufferChecks.swift), `dmabuf ls --kernel` (KernelViewChecks.swift),
// and the leak checks' and child process's plumbing (ProcSelf.swift, RunCLI.swift).

import DMABufCLI
import DMACore
import Foundation
import Glibc
import CLibDRM
import LinuxDMABuf

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "--cli" {
    exit(dmabufMain(Array(CommandLine.arguments.dropFirst(2))))
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "--vfio" {
    exit(vfioMain(Array(CommandLine.arguments.dropFirst(2))))
}

let runner = Runner()
let pid = getpid()

let fdsBefore = openFDs()
var mapsDuringStory = -1
runner.check("kernel.release", true, KernelConfig.release() ?? "?")
configFacts()

story()

let fdsAfter = openFDs()
runner.check("leak.fds", fdsBefore == fdsAfter, "/proc/self/fd before \(fdsBefore), after \(fdsAfter)")
let leftMaps = dmabufMapLines()
runner.check("leak.mappings", leftMaps.isEmpty && mapsDuringStory == 1, "dma-buf lines in /proc/self/maps: \(mapsDuringStory) while the udmabuf mapping was held, \(leftMaps.count) after")
kernelViewChecks()

print("KTEST-SUMMARY: \(runner.passed) passed, \(runner.failed) failed")
exit(runner.failed == 0 && runner.passed > 0 ? 0 : 1)
