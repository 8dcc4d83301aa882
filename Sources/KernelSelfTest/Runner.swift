import DMACore
import Glibc

/// Counts and prints the checks.
@MainActor
final class Runner {
    var passed = 0
    var failed = 0

    func check(_ name: String, _ condition: Bool, _ evidence: @autoclosure () -> String) {
        if condition { passed += 1 } else { failed += 1 }
        print("KTEST \(condition ? "PASS" : "FAIL") \(name) :: \(evidence())")
        fflush(nil)
    }

    /// A documented failure: `body` must fail with `errno` (and `code` when given).
    func expectFailure(_ name: String, errno: Errno, code: DMAError.Code? = nil, _ body: () throws -> Void) {
        do {
            try body()
            check(name, false, "succeeded; expected \(errno.name)")
        } catch let error as DMAError {
            let codeOK = code.map { $0 == error.code } ?? true
            check(name, error.errno == errno && codeOK, "\(error.code): \(error.description)")
        } catch {
            check(name, false, "not a DMAError: \(error)")
        }
    }

    /// Runs a section; an error it did not expect fails it.
    func section(_ name: String, _ body: () throws(DMAError) -> Void) {
        do throws(DMAError) {
            try body()
        } catch {
            check("\(name).unexpected-error", false, error.description)
        }
    }
}

/// The errno of a failed call, `nil` when it succeeded.
func failure<T>(_ result: Result<T, Errno>) -> Errno? {
    if case .failure(let errno) = result { return errno }
    return nil
}
