import FSPFCrypto
import FSPFSystem

/// Evidence as a client submits it.
public enum Evidence: Sendable {
    /// A DCAP quote, with collateral when the client fetched it (it is signed by Intel, so it
    /// need not come from a trusted party), used only where the verifier has none of its own.
    case sgx(quote: [UInt8], collateral: [UInt8]?)
    case maa(token: String)
    case simulated([UInt8])

    public var kind: EnclaveClaims.Kind {
        switch self { case .sgx: .sgx; case .maa: .maa; case .simulated: .simulated }
    }
}

/// The decision on one piece of evidence: every check that ran, and the claims when readable.
public struct Appraisal: Sendable {
    public let checks: [Check]
    public let claims: EnclaveClaims?
    public var accepted: Bool { claims != nil && checks.allPassed }
    public var reason: String {
        checks.firstFailure.map { "\($0.name): \($0.detail)" } ?? (claims == nil ? "no evidence" : "accepted")
    }
}

/// Evidence + policy + expected binding → appraisal. Pure: the time and the fallback collateral
/// are inputs, so a decision can be replayed exactly from the audit log's inputs.
public struct Appraiser: Sendable {
    public var time: Int64
    public var collateral: [UInt8]?
    public var intelRoot: Certificate

    public init(time: Int64, collateral: [UInt8]? = nil, intelRoot: Certificate = DCAPVerifier.intelRoot()) {
        self.time = time
        self.collateral = collateral
        self.intelRoot = intelRoot
    }

    public func appraise(_ evidence: Evidence, policy: ReleasePolicy, reportData expected: [UInt8],
                         runtimeData: [UInt8]? = nil) -> Appraisal {
        var checks: [Check] = []
        var claims: EnclaveClaims
        do {
            switch evidence {
            case .sgx(let bytes, let supplied):
                let quote = try SGXQuote(bytes)
                // The verifier's own collateral wins: a client's is genuine Intel data too, but it
                // may be from before a TCB recovery or a PCK revocation and still within its validity.
                guard let collateralBytes = collateral ?? supplied else {
                    throw AttestationError("no collateral for this quote (send it with the quote or configure the server's)")
                }
                checks.append(Check("collateral", true, collateral == nil ? "the request's (the verifier has none)"
                                    : supplied == nil ? "the verifier's own" : "the verifier's own (the request's ignored)"))
                let report = DCAPVerifier.verify(quote: quote, collateral: try Collateral(json: collateralBytes),
                                                 root: intelRoot, at: time)
                checks += report.checks
                claims = quote.claims(report)
            case .maa(let token):
                guard let issuer = policy.maaIssuer, let keys = policy.maaKeys else {
                    throw AttestationError("the policy accepts no Azure Attestation tokens")
                }
                let keySet = try KeySet(json: keys.bytes)
                claims = try MAAToken.verify(token, keys: keySet, issuer: issuer, at: time).enclaveClaims()
                checks.append(Check("token", true, "RS256 signature by \(issuer) verified, within its validity"))
                if let held = claims.heldData, let runtimeData {
                    checks.append(Check("enclave-held data", Sodium.equal(held, runtimeData),
                                        "x-ms-sgx-ehd must be the runtime data the report data hashes"))
                }
            case .simulated(let bytes):
                guard policy.simulated else { throw AttestationError("simulated evidence is not accepted by this policy") }
                claims = try SimulatedEvidence.verify(bytes, trusted: policy.simulatedAttesters)
                checks.append(Check("simulated evidence", true, "signed by trusted attester \(Base64.encode(claims.attester ?? []))"))
            }
        } catch {
            return Appraisal(checks: checks + [Check("evidence", false, "\(error)")], claims: nil)
        }
        checks.append(Check("binding", Sodium.equal(claims.reportData, expected),
                            "report data must be SHA-256(runtime data with this request's nonce and public key)"))
        checks += policy.evaluate(claims)
        return Appraisal(checks: checks, claims: claims)
    }
}
