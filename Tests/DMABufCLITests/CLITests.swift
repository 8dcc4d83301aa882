import DMABufCLI
import DMACore
import Foundation
import Testing

/// Runs the built `dmabuf` binary (it sits beside the test bundle in the build folder).
func runDMABuf(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let result = try runChild(builtProduct("dmabuf"), arguments)
    return (result.status, String(decoding: result.stdout, as: UTF8.self), String(decoding: result.stderr, as: UTF8.self))
}

@Suite("The dmabuf tool")
struct CLITests {
    @Test("The first demo: every ops moves the right bytes; only virt refuses the P2P list")
    func firstDemo() throws {
        let rows = try runFirstDemo()
        #expect(rows.map(\.ops) == ["direct", "direct", "iommu", "swiotlb", "virt"])
        for row in rows {
            #expect(row.debugReports.isEmpty, "\(row.ops): \(row.debugReports)")
            #expect(row.host.mapped && row.host.bytesVerified, "\(row.ops) host")
        }
        let direct64 = rows[0], direct32 = rows[1], iommu = rows[2], swiotlb = rows[3], virt = rows[4]
        #expect(direct64.host.bouncedBytes == 0)
        #expect(direct32.host.bouncedBytes == 16384)
        #expect(swiotlb.host.bouncedBytes == 16384)
        #expect(iommu.host.segments.count == 1 && iommu.host.iovaRanges == 1)
        for row in [direct64, direct32, iommu, swiotlb] {
            #expect(row.p2p.mapped && row.p2p.bytesVerified && row.p2p.mapType == "bus-address", "\(row.ops) p2p")
        }
        #expect(!virt.p2p.mapped)
        #expect(virt.p2p.errno == "EREMOTEIO")
    }

    @Test("dmabuf ops demo exits 0 and explains each ops in plain text")
    func demoBinary() throws {
        let result = try runDMABuf(["ops", "demo"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("bounced through swiotlb slots"))
        #expect(result.stdout.contains("refused with EREMOTEIO"))
        #expect(result.stdout.contains("Summary"))
    }

    @Test("dmabuf ops list --json lists the four built-in ops and their P2P support")
    func opsListJSON() throws {
        let result = try runDMABuf(["ops", "list", "--json"])
        #expect(result.status == 0)
        struct Row: Decodable {
            let name: String
            let p2pSupported: Bool
        }
        let rows = try JSONDecoder().decode([Row].self, from: Data(result.stdout.utf8))
        #expect(rows.map(\.name) == ["direct", "iommu", "swiotlb", "virt"])
        #expect(rows.map(\.p2pSupported) == [true, true, true, false])
    }

    @Test("An unknown subcommand is bad input: exit code 2 with a message")
    func badInput() throws {
        let result = try runDMABuf(["frobnicate"])
        #expect(result.status == 2)
        #expect(!result.stderr.isEmpty)
    }
}
