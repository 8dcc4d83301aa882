import DMACore
import Glibc
import PCI

/// What `dmabuf doctor` learned about confidential computing, without root: every marker it found
/// (each with the file it came from), whether the kernel log could be read, and, when nothing
/// settles it, that an AMD SEV or SEV-ES guest cannot be ruled out.
///
/// In a confidential guest the device cannot reach private (encrypted) memory, so every streaming
/// DMA of system memory bounces through shared swiotlb buffers (`force_dma_unencrypted`,
/// `arch/x86/mm/mem_encrypt.c`; `kernel/dma/swiotlb.c`). P2P memory is MMIO and is not bounced.
public struct DoctorConfidentialFacts: Sendable, Hashable, Codable {
    /// Every marker found, in the order the doctor checks them: s390, powerpc, Arm CCA, Intel TDX,
    /// AMD SEV-SNP, then the kernel log's lines (an `AMD SME` line is a host's, not a guest's).
    public var evidence: [DoctorFact]
    /// The kernel log: `readable, …` (from `/dev/kmsg`, or the `dmesg.txt` of a captured root),
    /// `not readable (ERRNO)` with `kernel.dmesg_restrict`, or `not captured`.
    public var kernelLog: DoctorFact
    /// Set on an AMD x86 guest (`hypervisor` flag) where no marker says yes and the kernel log
    /// could not be read: plain SEV and SEV-ES leave no trace an unprivileged process can read in
    /// any release, so the doctor cannot say whether DMA bounces.
    public var unknown: DoctorFact?

    /// Creates it.
    /// - Parameters:
    ///   - evidence: the markers found.
    ///   - kernelLog: whether the kernel log was read.
    ///   - unknown: the guest that cannot be ruled out, if any.
    public init(evidence: [DoctorFact], kernelLog: DoctorFact, unknown: DoctorFact? = nil) {
        self.evidence = evidence
        self.kernelLog = kernelLog
        self.unknown = unknown
    }
}

/// How the doctor recognises a confidential-computing guest from files an unprivileged process can
/// read, and the kernel log when it is readable. Facts carried over from the kernel (each checked
/// in its source; the release each appeared in is in docs/doctor.md):
/// - s390 Protected Virtualization: `/sys/firmware/uv/prot_virt_guest` reads `1`
///   (`arch/s390/kernel/uv.c`, mode 0444; the folder exists only with ultravisor facility 158).
/// - powerpc Secure VM: `/sys/devices/system/cpu/svm` reads `1` (`arch/powerpc/kernel/sysfs.c`,
///   `is_secure_guest()`, only with `CONFIG_PPC_SVM`).
/// - Arm CCA realm: the platform device `arm-cca-dev` (`arch/arm64/kernel/rsi.c`, registered when
///   `is_realm_world()`, 6.14), or the log line `RME: Using RSI version`.
/// - Intel TDX: the cpuinfo flag `tdx_guest` (`X86_FEATURE_TDX_GUEST`), or the misc device
///   `/dev/tdx_guest` (`drivers/virt/coco/tdx-guest`, 6.2).
/// - AMD SEV-SNP: the platform device `sev-guest` and `/sys/devices/system/cpu/sev/vmpl`, both
///   registered only when `cc_platform_has(CC_ATTR_GUEST_SEV_SNP)` (`arch/x86/coco/sev/core.c`),
///   or `/dev/sev-guest` (`drivers/virt/coco/sev-guest`).
/// - The kernel log: `Memory Encryption Features active: AMD SEV SEV-ES SEV-SNP` or `… Intel TDX`
///   (5.19+), `AMD Memory Encryption Features active: SEV SEV-ES` (5.10–5.18), `AMD Secure
///   Encrypted Virtualization (SEV) active` (before 5.10); a line naming only `SME` is a host
///   encrypting its own memory, not a guest (`print_mem_encrypt_feature_info`,
///   `arch/x86/mm/mem_encrypt.c`). `Memory encryption is active and system is using DMA bounce
///   buffers` is printed once, at the first bounce (`kernel/dma/swiotlb.c`).
enum DoctorConfidential {
    /// The machine files the doctor reads for it (copied by `--capture` when present).
    static let files = [
        "/sys/firmware/uv/prot_virt_guest", "/sys/devices/system/cpu/svm", "/sys/devices/system/cpu/sev/vmpl",
        "/proc/sys/kernel/dmesg_restrict",
    ]
    /// The folders whose presence is the fact.
    static let folders = ["/sys/devices/platform/arm-cca-dev", "/sys/devices/platform/sev-guest"]
    /// The device nodes whose presence is the fact (only stat-ed: they are root's, mode 0600).
    static let deviceNodes = ["/dev/tdx_guest", "/dev/sev-guest"]
    /// Where a captured root holds the kernel log's matching lines, and where it says why the log
    /// could not be read (the errno's name).
    static let logFile = "/dmesg.txt", unreadableLogFile = "/dmesg.unreadable"
    /// The live kernel log.
    static let kmsg = "/dev/kmsg"

    /// The kernel log as read: its lines that say something about memory encryption, why it could
    /// not be read, or nothing (a root without a captured log).
    enum KernelLog: Hashable {
        /// Readable; the lines that matched.
        case lines([String])
        /// Not readable: the errno's name (`EPERM`).
        case unreadable(String)
        /// A root with no captured log.
        case notCaptured
    }

    /// What one log line says.
    struct LogFinding {
        /// The fact in words.
        let value: String
        /// Whether it proves a confidential guest (an SME line proves a host).
        let guest: Bool
        /// A bounce line: a guest only when no SME line was seen.
        var bounce = false
        /// An SME line.
        var sme = false
    }

    /// The facts of `root`, and the guest they prove (the first marker that proves one).
    /// - Parameters:
    ///   - root: the machine.
    ///   - cpuText: its `/proc/cpuinfo`.
    ///   - cpu: the CPU parsed from it.
    static func gather(root: DoctorRoot, cpuText: String, cpu: CPUInfo) -> (guest: DoctorFact?, facts: DoctorConfidentialFacts) {
        let flags = cpuText.split(separator: "\n").first { $0.hasPrefix("flags") }.map { $0.split(separator: " ").map(String.init) } ?? []
        var found: [(fact: DoctorFact, guest: Bool)] = []
        func marker(_ value: String, _ source: String) { found.append((DoctorFact(value, source: source), true)) }

        if root.text("/sys/firmware/uv/prot_virt_guest") == "1" {
            marker("s390 Protected Virtualization guest", "/sys/firmware/uv/prot_virt_guest = 1")
        }
        if root.text("/sys/devices/system/cpu/svm") == "1" { marker("powerpc Secure Virtual Machine", "/sys/devices/system/cpu/svm = 1") }
        if root.exists("/sys/devices/platform/arm-cca-dev") { marker("Arm CCA realm", "/sys/devices/platform/arm-cca-dev") }
        if flags.contains("tdx_guest") { marker("TDX guest", "/proc/cpuinfo (flag tdx_guest)") }
        if root.exists("/dev/tdx_guest") { marker("TDX guest", "/dev/tdx_guest") }
        if root.exists("/sys/devices/platform/sev-guest") { marker("AMD SEV-SNP guest", "/sys/devices/platform/sev-guest") }
        if let vmpl = root.text("/sys/devices/system/cpu/sev/vmpl") {
            marker("AMD SEV-SNP guest (VMPL \(vmpl))", "/sys/devices/system/cpu/sev/vmpl")
        }
        if root.exists("/dev/sev-guest") { marker("AMD SEV-SNP guest", "/dev/sev-guest") }

        let log = kernelLog(root)
        let logFact: DoctorFact
        switch log {
        case .lines(let lines):
            let findings = lines.compactMap { line in finding(line).map { (line, $0) } }
            let smeHost = findings.contains { $0.1.sme }
            for (line, finding) in findings {
                found.append((DoctorFact(finding.value, source: "kernel log (/dev/kmsg): \(line)"), finding.bounce ? !smeHost : finding.guest))
            }
            logFact = DoctorFact(
                lines.isEmpty ? "readable, no memory-encryption line" : "readable, \(lines.count) memory-encryption line(s)", source: kmsg)
        case .unreadable(let errno):
            let restrict = root.text("/proc/sys/kernel/dmesg_restrict").map {
                $0 == "1" ? ", kernel.dmesg_restrict = 1: only root or CAP_SYSLOG reads the kernel log" : ", kernel.dmesg_restrict = \($0)"
            } ?? ""
            logFact = DoctorFact("not readable (\(errno))", source: kmsg + restrict)
        case .notCaptured:
            logFact = DoctorFact("not captured", source: "this root holds no \(logFile.dropFirst()) (save the output of dmesg there, as root)")
        }

        let guest = found.first { $0.guest }?.fact
        var unknown: DoctorFact?
        if guest == nil, cpu.vendor == .amd, flags.contains("hypervisor"), !isReadable(log) {
            unknown = DoctorFact(
                "an AMD SEV or SEV-ES guest cannot be ruled out",
                source: "/proc/cpuinfo (AuthenticAMD, flag hypervisor); no SEV-SNP marker (/sys/devices/platform/sev-guest, /sys/devices/system/cpu/sev); kernel log \(logFact.value)")
        }
        return (guest, DoctorConfidentialFacts(evidence: found.map(\.fact), kernelLog: logFact, unknown: unknown))
    }

    static func isReadable(_ log: KernelLog) -> Bool {
        if case .lines = log { return true }
        return false
    }

    /// The kernel log of `root`: `/dev/kmsg` on the live machine, the captured files elsewhere.
    static func kernelLog(_ root: DoctorRoot) -> KernelLog {
        if root.path == "/" {
            switch readKmsg() {
            case .success(let messages): return .lines(messages.map(normalised).filter { finding($0) != nil })
            case .failure(let errno): return .unreadable(errno.name)
            }
        }
        if let text = root.text(logFile, limit: 64 << 20) {
            return .lines(text.split(separator: "\n").map { normalised(String($0)) }.filter { finding($0) != nil })
        }
        if let errno = root.text(unreadableLogFile) { return .unreadable(errno) }
        return .notCaptured
    }

    /// Every message of `/dev/kmsg` from its oldest record, read without blocking
    /// (``KernelLogCursor``).
    /// - Returns: the messages, or the errno of the open or of a read.
    static func readKmsg() -> Result<[String], Errno> {
        do {
            var cursor = try KernelLogCursor(path: kmsg, fromStart: true)
            return cursor.readMessages()
        } catch {
            return .failure(error.errno)
        }
    }

    /// A log line without `dmesg`'s `[    0.123456] ` time stamp and without trailing blanks
    /// (`sev_show_status` ends its line with one), so that a line saved by `dmesg > dmesg.txt`
    /// reads as the same message `/dev/kmsg` gives.
    static func normalised(_ line: String) -> String {
        var text = Substring(line)
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") { text = text[text.index(after: close)...] }
        text = text.drop { $0 == " " || $0 == "\t" }
        while let last = text.last, last == " " || last == "\t" || last == "\r" { text = text.dropLast() }
        return String(text)
    }

    /// What one message says about memory encryption, or `nil` when nothing.
    static func finding(_ line: String) -> LogFinding? {
        let features = "Memory Encryption Features active:"
        if let range = line.range(of: features) {
            // 5.19+: "Memory Encryption Features active: AMD SEV SEV-ES SEV-SNP" / "… Intel TDX" / "… AMD SME";
            // 5.10-5.18: "AMD Memory Encryption Features active: SEV SEV-ES" / "… SME".
            let words = line[range.upperBound...].split(separator: " ").map(String.init)
            if words.contains("TDX") { return LogFinding(value: "Intel TDX guest", guest: true) }
            if words.contains("SEV-SNP") { return LogFinding(value: "AMD SEV-SNP guest", guest: true) }
            if words.contains("SEV-ES") { return LogFinding(value: "AMD SEV-ES guest", guest: true) }
            if words.contains("SEV") { return LogFinding(value: "AMD SEV guest", guest: true) }
            if words.contains("SME") {
                return LogFinding(value: "AMD SME: this host encrypts its own memory (not a guest)", guest: false, sme: true)
            }
            if words.contains("Unknown") { return LogFinding(value: "a memory-encrypted guest of an unknown vendor", guest: true) }
            return nil
        }
        // Before 5.10 (mem_encrypt_init): one line naming SEV or SME.
        if line.contains("AMD Secure Encrypted Virtualization (SEV) active") { return LogFinding(value: "AMD SEV guest", guest: true) }
        if line.contains("AMD Secure Memory Encryption (SME) active") {
            return LogFinding(value: "AMD SME: this host encrypts its own memory (not a guest)", guest: false, sme: true)
        }
        if line.contains("is active and system is using DMA bounce buffers") {
            // Before 5.10 the line named SME or SEV; from then on "Memory encryption", which an SME
            // host prints too (a device whose mask cannot reach the encryption bit bounces there).
            if line.contains("SME is active") {
                return LogFinding(value: "AMD SME host: DMA of a device whose mask cannot carry the encryption bit bounces", guest: false, sme: true)
            }
            return LogFinding(value: "memory encryption is active and DMA has bounced through swiotlb", guest: true, bounce: true)
        }
        if line.contains("tdx: Guest detected") { return LogFinding(value: "Intel TDX guest", guest: true) }
        if line.contains("RME: Using RSI version") { return LogFinding(value: "Arm CCA realm", guest: true) }
        if let range = line.range(of: "SEV: Status:") {
            let status = line[range.upperBound...].drop { $0 == " " }
            return LogFinding(value: "AMD SEV status: \(status)", guest: status.contains("SEV"))
        }
        if line.contains("Hyper-V: Isolation Config") {
            // An isolated Hyper-V partition (SNP or TDX behind a paravisor, or software VBS):
            // not proof by itself; the features line above says which.
            return LogFinding(value: "Hyper-V isolated partition", guest: false)
        }
        return nil
    }
}
