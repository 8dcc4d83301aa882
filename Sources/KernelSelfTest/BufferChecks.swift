import CLibDRM
import DMACore
import Glibc
import LinuxDMABuf

/// The checks every dma-buf gets, whatever exported it.
@MainActor
func commonChecks(_ tag: String, _ buffer: borrowing DMABufFD, size expectedSize: Int, exporter: String, name: String) throws(DMAError) {
    let size = try buffer.size()
    runner.check("\(tag).size-by-lseek", size == expectedSize, "lseek(SEEK_END) = \(size), expected \(expectedSize)")
    runner.expectFailure("\(tag).lseek-offset-refused", errno: .EINVAL, code: .refusedBeforeCall) {
        _ = try buffer.seek(offset: 4096, from: .start)
    }
    let kernelSeek = SystemCalls.lseek(buffer.rawValue, 0, SEEK_CUR)
    runner.check("\(tag).kernel-lseek-cur-einval", failure(kernelSeek) == .EINVAL && DMABufFD.seekRefusal(offset: 0, whence: SEEK_CUR) == .EINVAL,
                 "kernel: \(kernelSeek); model: \(String(describing: DMABufFD.seekRefusal(offset: 0, whence: SEEK_CUR)))")

    // Written through mmap inside SYNC, read back inside another SYNC.
    let mapping = try buffer.map()
    try buffer.withCPUAccess(.write) { () throws(DMAError) in
        mapping.withMutableBytes { bytes in
            let words = bytes.bindMemory(to: UInt32.self)
            for index in words.indices { words[index] = 0xC0DE_0000 &+ UInt32(truncatingIfNeeded: index) }
        }
    }
    let mismatches = try buffer.withCPUAccess(.read) { () throws(DMAError) -> Int in
        mapping.withBytes { bytes in
            let words = bytes.bindMemory(to: UInt32.self)
            return words.indices.filter { words[$0] != 0xC0DE_0000 &+ UInt32(truncatingIfNeeded: $0) }.count
        }
    }
    runner.check("\(tag).mmap-write-in-sync", mismatches == 0, "\(mapping.length) bytes written and read back inside DMA_BUF_IOCTL_SYNC, \(mismatches) words wrong")

    var badSync = dma_buf_sync(flags: 0)
    let kernelSync = withUnsafeMutablePointer(to: &badSync) { SystemCalls.ioctl(buffer.rawValue, .dmaBufSync, $0) }
    runner.check("\(tag).kernel-sync-no-access-einval", failure(kernelSync) == .EINVAL && DMABufFD.syncRefusal(flags: 0) == .EINVAL,
                 "kernel: \(kernelSync); model refuses flags 0 with \(String(describing: DMABufFD.syncRefusal(flags: 0)))")
    var badBits = dma_buf_sync(flags: UInt64(DMA_BUF_SYNC_READ) | 0x100)
    let kernelBits = withUnsafeMutablePointer(to: &badBits) { SystemCalls.ioctl(buffer.rawValue, .dmaBufSync, $0) }
    runner.check("\(tag).kernel-sync-bad-bits-einval", failure(kernelBits) == .EINVAL && DMABufFD.syncRefusal(flags: 0x101) == .EINVAL,
                 "kernel: \(kernelBits)")

    let longName = String(repeating: "n", count: DMABufFD.nameCapacity)
    let kernelLong = longName.withCString { SystemCalls.ioctl(buffer.rawValue, .dmaBufSetName, UnsafeMutableRawPointer(mutating: $0)) }
    runner.check("\(tag).kernel-name-32-bytes-einval", failure(kernelLong) == .EINVAL && DMABufFD.nameRefusal(longName) == .EINVAL,
                 "kernel: \(kernelLong) for 32 bytes; model: \(String(describing: DMABufFD.nameRefusal(longName)))")
    runner.expectFailure("\(tag).name-32-bytes-refused", errno: .EINVAL, code: .refusedBeforeCall) {
        try buffer.setName(longName)
    }
    let longest = String(repeating: "m", count: DMABufFD.nameCapacity - 1)
    try buffer.setName(longest)
    runner.check("\(tag).name-31-bytes-accepted", try buffer.fdinfo().name == longest, "31-byte name set and read back from fdinfo")
    try buffer.setName(name)

    let info = try buffer.fdinfo()
    runner.check("\(tag).fdinfo", info.exporter == exporter && info.size == expectedSize && info.name == name && info.inode != nil,
                 "exp_name \(info.exporter ?? "-"), size \(info.size ?? -1), name \(info.name ?? "-"), ino \(info.inode.map(String.init) ?? "-"), count \(info.count ?? -1), other \(info.otherFields.map(\.key))")

    let fence = try buffer.exportSyncFile(.readWrite)
    try buffer.importSyncFile(fence, .write)
    runner.check("\(tag).sync-file-export-import", fence.rawValue >= 0, "exported sync file fd \(fence.rawValue), imported it back for write")
    runner.expectFailure("\(tag).sync-file-no-access-refused", errno: .EINVAL, code: .refusedBeforeCall) {
        _ = try buffer.exportSyncFile([])
    }
}

/// A foreign buffer imported into vgem and re-exported is the same dma-buf (same inode); imported
/// into virtio_gpu it is refused with ENODEV on these kernels.
@MainActor
func importChecks(_ tag: String, _ buffer: borrowing DMABufFD, vgem: borrowing DRMNode, virtio: borrowing DRMNode, intoVirtio: Bool) throws(DMAError) {
    let inode = try buffer.fdinfo().inode
    let handle = try vgem.importDMABuf(buffer)
    let again = try vgem.exportDMABuf(handle)
    let inodeAgain = try again.fdinfo().inode
    runner.check("\(tag).vgem-import-reexport-same-inode", inode != nil && inode == inodeAgain,
                 "ino \(inode.map(String.init) ?? "-") exported, vgem \(handle) re-exported as ino \(inodeAgain.map(String.init) ?? "-")")
    try vgem.closeHandle(handle)
    if intoVirtio {
        runner.expectFailure("\(tag).virtio_gpu-import-enodev", errno: .ENODEV, code: .systemCallFailed) {
            _ = try virtio.importDMABuf(buffer)
        }
    }
}
