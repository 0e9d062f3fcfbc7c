import FSPFCrypto
import FSPFSystem

/// What a release policy looks at, whichever evidence it came from.
public struct EnclaveClaims: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable { case sgx, maa, simulated }

    public let kind: Kind
    public let mrEnclave: [UInt8]
    public let mrSigner: [UInt8]
    public let productID: UInt16
    public let svn: UInt16
    public let debug: Bool
    public let reportData: [UInt8]
    /// Azure Attestation's enclave-held data (`x-ms-sgx-ehd`): the runtime data the report data hashes.
    public var heldData: [UInt8]? = nil
    /// SGX quotes only: Intel's TCB status and advisories.
    public var tcbStatus: String? = nil
    public var advisoryIDs: [String] = []
    /// SGX quotes only: the lower of the TCB info's and QE identity's evaluation data numbers,
    /// and the seconds between the older one's issue date and the verification time.
    public var tcbEvaluationDataNumber: Int? = nil
    public var collateralAge: Int64? = nil
    /// Simulated evidence only: the attester key that signed it.
    public var attester: [UInt8]? = nil
}

/// How a release request is tied to one nonce and one client key: the evidence's report data
/// must be SHA-256(runtime data) ‖ 32 zero bytes, where the runtime data names the protocol, the
/// server's nonce and the client's ephemeral X25519 public key. The same runtime data is what
/// an Azure Attestation client submits, so the token's report data has the same shape.
public enum Binding {
    public static let label = Array("fspf-key-release-v1".utf8) + [0]

    public static func runtimeData(nonce: [UInt8], publicKey: [UInt8]) -> [UInt8] { label + nonce + publicKey }

    public static func reportData(nonce: [UInt8], publicKey: [UInt8]) -> [UInt8] {
        SHA256.hash(runtimeData(nonce: nonce, publicKey: publicKey)) + [UInt8](repeating: 0, count: 32)
    }
}

extension SGXQuote {
    /// The application enclave's claims, with the TCB verdict of a DCAP verification.
    public func claims(_ report: DCAPReport? = nil) -> EnclaveClaims {
        var c = EnclaveClaims(kind: .sgx, mrEnclave: self.report.mrEnclave, mrSigner: self.report.mrSigner,
                              productID: self.report.isvProdID, svn: self.report.isvSVN, debug: self.report.isDebug,
                              reportData: self.report.reportData)
        c.tcbStatus = report?.tcbStatus
        c.advisoryIDs = report?.advisoryIDs ?? []
        c.tcbEvaluationDataNumber = report?.tcbEvaluationDataNumber
        c.collateralAge = report?.collateralAge
        return c
    }
}
