import FSPFSystem
import Foundation
import Glibc

/// Where fspf-mount runs, as far as plaintext is concerned (docs/SECURITY.md "Where plaintext
/// goes"). A FUSE mount hands every byte it serves to the kernel (requests, page cache): that is
/// protected only where the kernel itself is inside the TEE, in a confidential VM or a
/// confidential container's VM. In an SGX enclave the host kernel is the adversary.
public struct TEEEnvironment: Sendable, Equatable {
    /// What was found, each with the path that showed it, e.g. "AMD SEV-SNP guest (/dev/sev-guest)".
    public var confidentialVM: [String] = []
    /// An SGX enclave runtime (the kernel outside the TEE), if one was found.
    public var enclave: String?

    public init(confidentialVM: [String] = [], enclave: String? = nil) {
        self.confidentialVM = confidentialVM
        self.enclave = enclave
    }

    /// True when the kernel that receives the plaintext is inside a TEE.
    public var kernelInsideTEE: Bool { !confidentialVM.isEmpty && enclave == nil }

    /// Looks for the documented guest interfaces below `root` (tests give a fake root), and for
    /// the confidential-containers API server at `cocoAddress`.
    public static func detect(root: String = "", cocoAddress: (host: String, port: UInt16)? = ("127.0.0.1", 8006)) -> TEEEnvironment {
        var env = TEEEnvironment()
        func exists(_ path: String) -> Bool { FileSystem.status(root + path) != nil }
        // Linux's guest drivers: sev-guest (6.0+), tdx-guest (6.2+; tdx-guest in early trees),
        // and the vendor-neutral configfs-tsm report interface (6.7+).
        if exists("/dev/sev-guest") { env.confidentialVM.append("AMD SEV-SNP guest (/dev/sev-guest)") }
        if exists("/dev/tdx_guest") { env.confidentialVM.append("Intel TDX guest (/dev/tdx_guest)") }
        if exists("/dev/tdx-guest") { env.confidentialVM.append("Intel TDX guest (/dev/tdx-guest)") }
        if let cpuinfo = try? FileSystem.readAll(root + "/proc/cpuinfo", limit: 1 << 22),
           String(decoding: cpuinfo, as: UTF8.self).split(separator: "\n").contains(where: {
               $0.hasPrefix("flags") && $0.split(separator: " ").contains("tdx_guest") }) {
            env.confidentialVM.append("Intel TDX guest (tdx_guest in /proc/cpuinfo)")
        }
        if exists("/sys/kernel/config/tsm/report") { env.confidentialVM.append("confidential VM (/sys/kernel/config/tsm/report)") }
        // Confidential containers (Kata/CoCo): the guest's attestation agent, or the pod's
        // confidential data hub API server.
        if exists("/run/confidential-containers") {
            env.confidentialVM.append("confidential containers guest (/run/confidential-containers)")
        } else if let (host, port) = cocoAddress, accepts(host: host, port: port) {
            env.confidentialVM.append("confidential containers data hub (\(host):\(port))")
        }
        // Gramine's pseudo-files inside an SGX enclave.
        if let type = try? FileSystem.readAll(root + "/dev/attestation/attestation_type", limit: 64) {
            let kind = String(decoding: type, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if kind != "none" { env.enclave = "SGX enclave, Gramine (/dev/attestation, \(kind))" }
        }
        return env
    }

    /// Whether something listens at host:port (a connect on loopback answers at once).
    private static func accepts(host: String, port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// One line for the log at start.
    public var summary: String {
        if let enclave {
            return "\(enclave): the key stays in the enclave, but every byte this mount serves goes through the host kernel, "
                + "which SGX does not protect against; read volumes in-process there"
        }
        if confidentialVM.isEmpty {
            return "no confidential-computing environment found (no /dev/sev-guest, /dev/tdx_guest, configfs-tsm report or "
                + "confidential-containers agent): whoever controls this kernel or host sees what the mount serves"
        }
        return "confidential-computing environment: " + confidentialVM.joined(separator: ", ")
    }
}
