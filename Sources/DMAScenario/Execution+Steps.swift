import DMABuf
import DMACore
import DMADevices
import DMAMapping

/// The steps of a scenario, one `op` each, and the lookups they share.
extension Execution {
    func buffer(_ step: Scenario.Step) throws(DMAError) -> Exported {
        guard let name = step.buffer else { throw DMAError(.invalidArgument, .EINVAL, "\(step.op.rawValue) needs 'buffer:'") }
        guard let found = buffers[name] else {
            throw DMAError(.notFound, .ENOENT, "no buffer named '\(name)'; buffers: \(buffers.keys.sorted().joined(separator: ", "))")
        }
        return found
    }

    func importer(_ step: Scenario.Step) throws(DMAError) -> (String, Importing) {
        guard let name = step.importer else { throw DMAError(.invalidArgument, .EINVAL, "\(step.op.rawValue) needs 'importer:'") }
        guard let found = importers[name] else {
            throw DMAError(.notFound, .ENOENT, "no importer named '\(name)'; importers: \(importers.keys.sorted().joined(separator: ", "))")
        }
        return (name, found)
    }

    func names(_ attachments: [DMABufAttachment]) -> [String] {
        attachments.compactMap { attachment in
            importers.first { $0.value.device === attachment.device }?.key
        }.sorted()
    }

    func describe(_ mapping: DMABufMapping, _ result: inout StepResult) {
        result.peerToPeer = mapping.peerToPeer
        result.placement = mapping.placement
        result.mapType = mapping.mapType
        result.segments = mapping.table.segments.count
        result.bouncedBytes = mapping.bouncedBytes
        result.migratedBytes = mapping.migratedBytes
    }

    func length(_ step: Scenario.Step, _ buffer: DMABuffer) throws(DMAError) -> Int {
        let length = step.length ?? (buffer.size > step.offset ? buffer.size - step.offset : 0)
        guard length > 0, step.offset < buffer.size, length <= buffer.size - step.offset else {
            throw DMAError(.invalidArgument, .EINVAL, "\(length) bytes at offset \(step.offset) do not fit \(buffer.name) (\(buffer.size) bytes)")
        }
        return Int(length)
    }

    func perform(_ step: Scenario.Step, _ result: inout StepResult) throws(DMAError) {
        switch step.op {
        case .attach:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            switch importing {
            case .device(let importer):
                let attachment = try importer.attach(exported.buffer)
                result.peerToPeer = attachment.peerToPeer
                result.message = "\(name) attached to \(exported.buffer.name) (\(attachment.isDynamic ? "dynamic" : "static")), peer2peer \(attachment.peerToPeer)"
            case .rdma(let nic, let pinned):
                let key = "\(name)/\(exported.buffer.name)"
                guard memoryRegions[key] == nil else { throw DMAError(.busy, .EBUSY, "\(name) already registered \(exported.buffer.name)") }
                let mr = try nic.registerMR(exported.buffer, pinned: pinned)
                memoryRegions[key] = mr
                if let mapping = mr.mapping { describe(mapping, &result) }
                result.message = "\(name) registered \(exported.buffer.name) as a \(pinned ? "pinned MR (pinned and mapped now)" : "dynamic MR (mapped now, as mlx5 does; mapped again on access after an invalidation)")"
            }
        case .map:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            guard case .device(let importer) = importing else {
                throw DMAError(.invalidArgument, .EINVAL, "\(name) is an RDMA NIC: its MRs map at registration (pinned) or on access (dynamic), not with map")
            }
            let mapping = try importer.map(exported.buffer, direction: step.direction)
            describe(mapping, &result)
            result.message = "\(name) mapped \(exported.buffer.name): \(mapping.table.segments.count) segment(s), \(mapping.mapType), \(mapping.placement)"
        case .unmap:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            guard case .device(let importer) = importing else {
                throw DMAError(.invalidArgument, .EINVAL, "\(name) is an RDMA NIC: detach deregisters its MR")
            }
            try importer.unmap(exported.buffer, direction: step.direction)
            result.message = "\(name) unmapped \(exported.buffer.name)"
        case .detach:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            switch importing {
            case .device(let importer): try importer.detach(exported.buffer)
            case .rdma:
                guard let mr = memoryRegions.removeValue(forKey: "\(name)/\(exported.buffer.name)") else {
                    throw DMAError(.noDevice, .ENODEV, "\(name) has no MR of \(exported.buffer.name)")
                }
                try mr.deregister()
            }
            result.message = "\(name) detached from \(exported.buffer.name)"
        case .deviceWrite, .deviceRead:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            let count = try length(step, exported.buffer)
            let write = step.op == .deviceWrite
            // Written as a pattern and read as a comparison, piece by piece: a 32 GiB transfer
            // holds at most a page of host memory.
            let pattern = (step.fill ?? .pattern(1)).pattern
            let expected = step.expectBytes?.pattern
            var mismatch: (index: Int, found: UInt8)?
            switch importing {
            case .device(let importer):
                if write {
                    try importer.deviceFill(pattern, to: exported.buffer, offset: step.offset, count: count)
                } else {
                    mismatch = try importer.deviceCompare(exported.buffer, offset: step.offset, count: count, with: expected)
                }
            case .rdma:
                guard let mr = memoryRegions["\(name)/\(exported.buffer.name)"] else {
                    throw DMAError(.noDevice, .ENODEV, "\(name) has not registered \(exported.buffer.name); attach first")
                }
                let faultsBefore = mr.faultIns
                if write {
                    try mr.fill(pattern, offset: step.offset, count: count)
                } else {
                    mismatch = try mr.compare(offset: step.offset, count: count, with: expected)
                }
                // A dynamic MR maps on its first access after registration or an invalidation.
                if mr.faultIns > faultsBefore, let mapping = mr.mapping {
                    describe(mapping, &result)
                    result.message += " (faulted the MR in: mapped now)"
                }
            }
            result.message = "\(name) \(write ? "wrote" : "read") \(count) bytes at offset \(step.offset) of \(exported.buffer.name)" + result.message
            if !write, let expected {
                try verify(mismatch, expected, step.offset, &result)
            }
        case .cpuWrite:
            let exported = try buffer(step)
            let count = try length(step, exported.buffer)
            try cpuFill(exported, offset: step.offset, count: count, (step.fill ?? .pattern(1)).pattern)
            result.placement = exported.buffer.exporter.placement
            result.message = "the CPU wrote \(count) bytes at offset \(step.offset) of \(exported.buffer.name) (\(exported.buffer.exporter.placement))"
        case .cpuRead:
            let exported = try buffer(step)
            let count = try length(step, exported.buffer)
            let expected = step.expectBytes?.pattern
            let mismatch = try cpuCompare(exported, offset: step.offset, count: count, with: expected)
            result.placement = exported.buffer.exporter.placement
            result.message = "the CPU read \(count) bytes at offset \(step.offset) of \(exported.buffer.name) (\(exported.buffer.exporter.placement))"
            if let expected {
                try verify(mismatch, expected, step.offset, &result)
            }
        case .sync:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            guard case .device(let importer) = importing else {
                throw DMAError(.invalidArgument, .EINVAL, "\(name) is an RDMA NIC: its MRs are coherent, there is nothing to sync")
            }
            try importer.sync(exported.buffer, forCPU: step.forCPU, direction: step.direction)
            result.message = "\(name) synced \(exported.buffer.name) for the \(step.forCPU ? "CPU" : "device") (\(step.direction))"
        case .evict:
            let exported = try buffer(step)
            guard case .gpu(let gpu) = exported else {
                throw DMAError(.invalidArgument, .EINVAL, "only GPU VRAM buffers are evicted; \(exported.buffer.name) is \(exported.buffer.exporter.exporterName)")
            }
            let before = gpu.migratedBytes
            let told = try exported.buffer.resv.withLock { (context) throws(DMAError) in try gpu.evict(in: context) }
            result.notified = names(told)
            result.placement = gpu.placement
            result.migratedBytes = gpu.migratedBytes - before
            result.message = "\(exported.buffer.name) evicted to system memory; told: \(result.notified!.joined(separator: ", "))"
        case .revoke:
            let exported = try buffer(step)
            guard case .vfio(let vfio) = exported else {
                throw DMAError(.invalidArgument, .EINVAL, "only VFIO BAR buffers are revoked; \(exported.buffer.name) is \(exported.buffer.exporter.exporterName)")
            }
            let told = try exported.buffer.resv.withLock { (context) throws(DMAError) in try vfio.revoke(step.reason, in: context) }
            result.notified = names(told)
            result.message = "\(exported.buffer.name) revoked (\(step.reason.rawValue)); told: \(result.notified!.joined(separator: ", "))"
        case .restore:
            let exported = try buffer(step)
            guard case .vfio(let vfio) = exported else {
                throw DMAError(.invalidArgument, .EINVAL, "only VFIO BAR buffers are restored; \(exported.buffer.name) is \(exported.buffer.exporter.exporterName)")
            }
            try vfio.restore()
            result.message = "\(exported.buffer.name): memory enabled again, maps work again"
        case .rawMap:
            let (name, importing) = try importer(step)
            let exported = try buffer(step)
            let ranges = try exported.buffer.exporter.cpuRanges()
            let list: ScatterList
            switch exported {
            case .gpu(let gpu) where gpu.placement == .vram: list = try ScatterList.peerToPeer(ranges, provider: gpu.heap.provider)
            case .vfio(let vfio): list = try ScatterList.peerToPeer(ranges, provider: vfio.provider)
            default: list = try ScatterList.host(ranges)
            }
            let device = importing.device
            let table = try device.mapScatterList(list, direction: step.direction)
            result.segments = table.segments.count
            result.mapType = DMABufMapType(table.p2pMapType)
            result.peerToPeer = list.isPeerToPeer
            try device.unmapScatterList(table, direction: step.direction)
            result.message = "\(name)'s \(device.ops.name) ops mapped the raw \(list.isPeerToPeer ? "P2P" : "host") list: \(table.segments.count) segment(s)"
        }
    }

    func verify(_ mismatch: (index: Int, found: UInt8)?, _ expected: BytePattern, _ offset: UInt64, _ result: inout StepResult)
        throws(DMAError)
    {
        if let mismatch {
            let at = UInt64(mismatch.index) + offset
            throw DMAError(
                .ioError, .EIO,
                "byte \(at) is \(hex(UInt64(mismatch.found))), expected \(hex(UInt64(expected.byte(at: at)))): the data did not arrive")
        }
        result.message += "; the bytes are as expected"
    }

    /// The CPU writes `count` bytes of `pattern` at `offset` (inside begin/end CPU access): kept
    /// as the pattern by the memory, so a 6 GiB buffer with a pattern costs no 6 GiB of host memory.
}
