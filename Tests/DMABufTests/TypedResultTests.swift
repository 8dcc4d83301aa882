import DMABuf
import DMACore
import DMAScenario
import Foundation
import Testing

/// Issue [N] item 7: map types and placements are enums inside the package and become the old
/// strings only at the JSON edge (`dmabuf simulate --json`, `dmabuf demo --json`).
@Suite("Typed results: map types and placements as enums, the old strings in the JSON")
struct TypedResultTests {
    /// The strings the JSON carried before the enums, as `table.p2pMapType?.rawValue ?? "host"`
    /// made them.
    @Test("A map type is the old string: host for host memory, the P2P route's name otherwise", arguments: [
        (P2PMapType?.none, "host"), (.busAddress, "bus-address"), (.throughHostBridge, "through-host-bridge"),
        (.notSupported, "not-supported"),
    ])
    func mapTypeNames(p2p: P2PMapType?, name: String) throws {
        let type = DMABufMapType(p2p)
        #expect(type.rawValue == name && type.description == name)
        #expect(String(decoding: try JSONEncoder().encode([type]), as: UTF8.self) == "[\"\(name)\"]")
        #expect(try JSONDecoder().decode([DMABufMapType].self, from: Data("[\"\(name)\"]".utf8)) == [type])
    }

    @Test("A placement is the old string", arguments: [
        (DMABufPlacement.vram, "vram"), (.system, "system"), (.bar, "bar"), (.released, "released"),
    ])
    func placementNames(placement: DMABufPlacement, name: String) throws {
        #expect(String(decoding: try JSONEncoder().encode([placement]), as: UTF8.self) == "[\"\(name)\"]")
    }

    /// Story 1's registration: the step's JSON carries the strings, the step itself the enums.
    @Test("A step result holds enums and encodes the strings the scenario JSON always had")
    func stepJSON() throws {
        let result = try ScenarioRunner.run(try Story.all[0].scenario())
        let attach = try #require(result.steps.first { $0.op == "attach" })
        #expect(attach.mapType == .busAddress && attach.placement == .vram)
        let object = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(attach)) as? [String: Any])
        #expect(object["mapType"] as? String == "bus-address" && object["placement"] as? String == "vram")
    }
}
