import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import Foundation
import Glibc

/// Where a workload gets evidence whose report data is the broker's binding.
public enum Attester: Sendable, Equatable {
    /// Gramine's pseudo-files: write the 64-byte report data to `<dir>/user_report_data`, read
    /// the DCAP quote from `<dir>/quote` (Gramine and Occlum-style runtimes; /dev/attestation).
    case gramine(directory: String, collateral: String?)
    /// An Azure Attestation client program: it gets the runtime data (base64url) in
    /// FSPF_RUNTIME_DATA, attests with it, and prints the token on standard output.
    case maa(command: String)
    /// The local simulated attester: an Ed25519 seed file (from `fspf attester init`).
    case simulated(keyFile: String, mrEnclave: [UInt8]?)

    public var kind: EnclaveClaims.Kind {
        switch self { case .gramine: .sgx; case .maa: .maa; case .simulated: .simulated }
    }

    public func evidence(nonce: [UInt8], publicKey: [UInt8]) throws -> Evidence {
        let reportData = Binding.reportData(nonce: nonce, publicKey: publicKey)
        switch self {
        case .gramine(let dir, let collateralPath):
            try FileSystem.writeExisting(dir + "/user_report_data", reportData)
            let quote = try FileSystem.readAll(dir + "/quote", limit: 1 << 20)
            let collateral = try collateralPath.map { try FileSystem.readAll($0, limit: 1 << 20) }
            return .sgx(quote: quote, collateral: collateral)
        case .maa(let command):
            let runtime = Binding.runtimeData(nonce: nonce, publicKey: publicKey)
            let token = try Self.run(command, environment: ["FSPF_RUNTIME_DATA": Base64.urlEncode(runtime)])
            return .maa(token: token.trimmingCharacters(in: .whitespacesAndNewlines))
        case .simulated(let keyFile, let mrEnclave):
            let seed = try Self.loadSeed(keyFile)
            return .simulated(try SimulatedEvidence.sign(mrEnclave: mrEnclave ?? (try Self.ownMeasurement()), productID: 0, svn: 0,
                                                         debug: false, reportData: reportData, seed: seed))
        }
    }

    /// What the simulated attester measures by default: SHA-256 of the running executable,
    /// so a policy names the exact fspf-mount build, as MRENCLAVE names an enclave build.
    public static func ownMeasurement() throws -> [UInt8] {
        var digest = SHA256()
        let f = try FileDescriptor.open("/proc/self/exe", O_RDONLY)  // a symbolic link: follow it
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        while true {
            let n = try buffer.withUnsafeMutableBytes { try f.read(into: $0, at: offset) }
            if n == 0 { break }
            buffer.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += UInt64(n)
        }
        return digest.finish()
    }

    /// A seed file: 64 hex digits, owner-only.
    public static func loadSeed(_ path: String) throws -> SecureBytes {
        var text = try FileSystem.readAll(path, limit: 4096)
        defer { text.withUnsafeMutableBytes { Sodium.zero($0) } }
        guard var seed = Hex.decode(text.filter { $0 != 0x0a && $0 != 0x20 && $0 != 0x0d }), seed.count == 32 else {
            throw FSPFError.badInput(path: path, reason: "not an attester key (64 hex digits)")
        }
        return SecureBytes(consuming: &seed)
    }

    private static func run(_ command: String, environment: [String: String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw FSPFError.keyUnavailable(source: command, reason: "attester command exited with status \(p.terminationStatus)")
        }
        guard data.count <= 64 << 10 else { throw FSPFError.keyUnavailable(source: command, reason: "attester output too large") }
        return String(decoding: data, as: UTF8.self)
    }
}

extension FileSystem {
    /// Writes into an existing file (a pseudo-file such as Gramine's user_report_data).
    static func writeExisting(_ path: String, _ bytes: [UInt8]) throws {
        let f = try FileDescriptor.open(path, O_WRONLY)
        try bytes.withUnsafeBytes { try f.write($0, at: 0) }
    }
}
