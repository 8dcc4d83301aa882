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
        let attach = try #require(result.steps.first { $0.op == .step(.attach) })
        #expect(attach.mapType == .busAddress && attach.placement == .vram)
        let object = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(attach)) as? [String: Any])
        #expect(object["mapType"] as? String == "bus-address" && object["placement"] as? String == "vram")
    }

    @Test("A step's op, errno and expectation are typed; the JSON keeps their old strings")
    func stepOpErrnoExpectation() throws {
        #expect(Scenario.Step.Op.allCases.map { StepResult.Op.step($0).name } == Scenario.Step.Op.allCases.map(\.rawValue))
        #expect(StepResult.Op.createBuffer.name == "create-buffer" && StepResult.Op.createImporter.name == "create-importer")
        #expect(StepResult.Op.createBuffer.isSetup && !StepResult.Op.step(.map).isSetup)
        #expect(StepResult.Expectation.met.text == "met" && StepResult.Expectation.unmet("expected ok true, got false").text == "expected ok true, got false")
        // Story 4: the HFI NIC handed a P2P list refuses it (EREMOTEIO), as its file expects.
        let result = try ScenarioRunner.run(try Story.all[3].scenario())
        let refused = try #require(result.steps.first { $0.op == .step(.rawMap) })
        #expect(refused.errno == .EREMOTEIO && !refused.ok)
        for step in result.steps {
            let object = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(step)) as? [String: Any])
            #expect(object["op"] as? String == step.op.name)
            #expect(object["errno"] as? String == step.errno?.name && (step.errno != nil || object["errno"] is NSNull))
            #expect(object["expectation"] as? String == step.expectation?.text)
        }
        let object = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(refused)) as? [String: Any])
        #expect(object["op"] as? String == "raw-map" && object["errno"] as? String == "EREMOTEIO")
    }
}
