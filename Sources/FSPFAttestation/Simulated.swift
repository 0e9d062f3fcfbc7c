import Foundation
import FSPFCrypto
import FSPFSystem

/// Evidence for machines without a TEE: the claims an enclave report would carry, signed with a
/// local Ed25519 attestation key. It proves only that the holder of that key vouched for them,
/// so a policy accepts it only with `"simulated": true` and that key listed.
public enum SimulatedEvidence {
    public static let format = "fspf-simulated-evidence-v1"

    struct Statement: Codable {
        var mrenclave: String
        var mrsigner: String
        var product_id: UInt16
        var svn: UInt16
        var debug: Bool
        var report_data: String
    }

    struct Envelope: Codable {
        var format: String
        var attester: String
        var statement: String
        var signature: String
    }

    /// A new attestation key: a 32-byte Ed25519 seed.
    public static func generateSeed() -> SecureBytes { Ed25519.generateSeed() }

    public static func publicKey(seed: SecureBytes) -> [UInt8] { Ed25519.publicKey(seed: seed) }

    /// Signs claims; MRSIGNER of simulated evidence is SHA-256 of the attester's public key.
    public static func sign(mrEnclave: [UInt8], productID: UInt16, svn: UInt16, debug: Bool,
                            reportData: [UInt8], seed: SecureBytes) throws -> [UInt8] {
        precondition(mrEnclave.count == 32 && reportData.count == 64)
        let publicKey = Ed25519.publicKey(seed: seed)
        let statement = try JSONEncoder().encode(Statement(
            mrenclave: Hex.encode(mrEnclave), mrsigner: Hex.encode(SHA256.hash(publicKey)), product_id: productID,
            svn: svn, debug: debug, report_data: Hex.encode(reportData)))
        let bytes = [UInt8](statement)
        let envelope = Envelope(format: format, attester: Base64.encode(publicKey), statement: Base64.encode(bytes),
                                signature: Base64.encode(Ed25519.sign(bytes, seed: seed)))
        return [UInt8](try JSONEncoder().encode(envelope))
    }

    /// Checks the signature and that the attester is one of `trusted`; returns the claims.
    public static func verify(_ evidence: [UInt8], trusted: [[UInt8]]) throws -> EnclaveClaims {
        guard evidence.count <= 16 << 10, let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(evidence)),
              envelope.format == format, let attester = Base64.decode(envelope.attester), attester.count == 32,
              let statement = Base64.decode(envelope.statement), let signature = Base64.decode(envelope.signature),
              signature.count == Ed25519.signatureSize else {
            throw AttestationError("simulated evidence is malformed")
        }
        guard Ed25519.verify(signature, statement, publicKey: attester) else {
            throw AttestationError("simulated evidence signature does not verify")
        }
        guard trusted.contains(where: { Sodium.equal($0, attester) }) else {
            throw AttestationError("simulated evidence is signed by attester \(Base64.encode(attester)), which the policy does not trust")
        }
        guard let s = try? JSONDecoder().decode(Statement.self, from: Data(statement)),
              let mrEnclave = Hex.decode(s.mrenclave), mrEnclave.count == 32,
              let mrSigner = Hex.decode(s.mrsigner), mrSigner == SHA256.hash(attester),
              let reportData = Hex.decode(s.report_data), reportData.count == 64 else {
            throw AttestationError("simulated evidence statement is malformed")
        }
        return EnclaveClaims(kind: .simulated, mrEnclave: mrEnclave, mrSigner: mrSigner, productID: s.product_id,
                             svn: s.svn, debug: s.debug, reportData: reportData, attester: attester)
    }
}
