import Foundation
import FSPFCrypto
import FSPFSystem

/// Which workloads may receive a volume's key. JSON, strict (unknown fields are errors, so a
/// typo cannot silently widen a policy); every present field must be satisfied:
///
///     {"mrenclave": ["<64 hex>", …], "mrsigner": ["<64 hex>", …], "product_id": 1, "min_svn": 2,
///      "allow_debug": false, "tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
///      "maa": {"issuer": "https://….attest.azure.net", "keys": {<the issuer's /certs JWKS>}},
///      "simulated": false, "simulated_attesters": ["<base64 Ed25519 public key>"]}
public struct ReleasePolicy: Sendable, Equatable {
    public var mrEnclave: [[UInt8]] = []
    public var mrSigner: [[UInt8]] = []
    public var productID: UInt16?
    public var minSVN: UInt16?
    public var allowDebug = false
    /// SGX quotes only; Azure Attestation applies its own TCB policy before issuing a token.
    public var tcbStatuses: [String] = ["UpToDate"]
    /// SGX: the collateral's TCB evaluation data number must be at least this (Intel raises it
    /// with each TCB recovery), and the collateral at most this many days old.
    public var minTCBEvaluationDataNumber: UInt16?
    public var maxCollateralAgeDays: UInt16?
    public var maaIssuer: String?
    public var maaKeys: JSONValue?
    public var simulated = false
    public var simulatedAttesters: [[UInt8]] = []

    static let fields: Set<String> = ["mrenclave", "mrsigner", "product_id", "min_svn", "allow_debug", "tcb_statuses",
                                      "min_tcb_evaluation_data_number", "max_collateral_age_days", "maa", "simulated", "simulated_attesters"]

    public init() {}

    public init(json: [UInt8]) throws {
        guard case .object(let o)? = try? JSONValue.parse(json) else { throw AttestationError("policy is not a JSON object") }
        if let unknown = Set(o.keys).subtracting(Self.fields).sorted().first {
            throw AttestationError("policy: unknown field \"\(unknown)\" (known: \(Self.fields.sorted().joined(separator: ", ")))")
        }
        func measurements(_ key: String) throws -> [[UInt8]] {
            guard let v = o[key] else { return [] }
            guard case .array(let list) = v else { throw AttestationError("policy: \(key) must be a list of 64-digit hex strings") }
            return try list.map {
                guard case .string(let s) = $0, let b = Hex.decode(s), b.count == 32 else {
                    throw AttestationError("policy: \(key) must be a list of 64-digit hex strings")
                }
                return b
            }
        }
        func u16(_ key: String) throws -> UInt16? {
            guard let v = o[key] else { return nil }
            guard case .number(let n) = v, n >= 0, n <= 65535, n == n.rounded() else {
                throw AttestationError("policy: \(key) must be an integer 0…65535")
            }
            return UInt16(n)
        }
        func bool(_ key: String) throws -> Bool {
            guard let v = o[key] else { return false }
            guard case .bool(let b) = v else { throw AttestationError("policy: \(key) must be true or false") }
            return b
        }
        mrEnclave = try measurements("mrenclave")
        mrSigner = try measurements("mrsigner")
        guard !mrEnclave.isEmpty || !mrSigner.isEmpty else {
            throw AttestationError("policy: name the code with mrenclave or mrsigner (or both)")
        }
        productID = try u16("product_id")
        minSVN = try u16("min_svn")
        allowDebug = try bool("allow_debug")
        minTCBEvaluationDataNumber = try u16("min_tcb_evaluation_data_number")
        maxCollateralAgeDays = try u16("max_collateral_age_days")
        if let v = o["tcb_statuses"] {
            guard case .array(let list) = v, !list.isEmpty else { throw AttestationError("policy: tcb_statuses must be a non-empty list") }
            tcbStatuses = try list.map {
                guard case .string(let s) = $0, Self.knownStatuses.contains(s) else {
                    throw AttestationError("policy: tcb_statuses: \($0.text) is not one of \(Self.knownStatuses.joined(separator: ", "))")
                }
                return s
            }
        }
        if let v = o["maa"] {
            guard case .object(let maa) = v, case .string(let issuer)? = maa["issuer"], issuer.hasPrefix("https://"),
                  let keys = maa["keys"], Set(maa.keys) == ["issuer", "keys"] else {
                throw AttestationError("policy: maa must be {\"issuer\": \"https://…\", \"keys\": <the issuer's JWKS>}")
            }
            _ = try KeySet(json: keys.bytes)
            maaIssuer = issuer
            maaKeys = keys
        }
        simulated = try bool("simulated")
        if let v = o["simulated_attesters"] {
            guard case .array(let list) = v else { throw AttestationError("policy: simulated_attesters must be a list") }
            simulatedAttesters = try list.map {
                guard case .string(let s) = $0, let k = Base64.decode(s), k.count == 32 else {
                    throw AttestationError("policy: simulated_attesters must be base64 Ed25519 public keys")
                }
                return k
            }
        }
        if simulated, simulatedAttesters.isEmpty {
            throw AttestationError("policy: simulated evidence needs the attester keys it trusts (simulated_attesters)")
        }
    }

    public static let knownStatuses = ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
                                       "OutOfDate", "OutOfDateConfigurationNeeded"]

    public func json() -> [UInt8] {
        var o: [String: JSONValue] = [:]
        if !mrEnclave.isEmpty { o["mrenclave"] = .array(mrEnclave.map { .string(Hex.encode($0)) }) }
        if !mrSigner.isEmpty { o["mrsigner"] = .array(mrSigner.map { .string(Hex.encode($0)) }) }
        if let productID { o["product_id"] = .number(Double(productID)) }
        if let minSVN { o["min_svn"] = .number(Double(minSVN)) }
        o["allow_debug"] = .bool(allowDebug)
        o["tcb_statuses"] = .array(tcbStatuses.map { .string($0) })
        if let minTCBEvaluationDataNumber { o["min_tcb_evaluation_data_number"] = .number(Double(minTCBEvaluationDataNumber)) }
        if let maxCollateralAgeDays { o["max_collateral_age_days"] = .number(Double(maxCollateralAgeDays)) }
        if let maaIssuer, let maaKeys { o["maa"] = .object(["issuer": .string(maaIssuer), "keys": maaKeys]) }
        if simulated { o["simulated"] = .bool(true) }
        if !simulatedAttesters.isEmpty { o["simulated_attesters"] = .array(simulatedAttesters.map { .string(Base64.encode($0)) }) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return [UInt8]((try? encoder.encode(JSONValue.object(o))) ?? Data())
    }

    /// Every rule as a check on `claims`, in a fixed order.
    public func evaluate(_ claims: EnclaveClaims) -> [Check] {
        var checks: [Check] = []
        switch claims.kind {
        case .sgx: checks.append(Check("evidence type", true, "SGX DCAP quote"))
        case .maa: checks.append(Check("evidence type", maaIssuer != nil,
                                       maaIssuer.map { "token from \($0)" } ?? "the policy accepts no Azure Attestation tokens"))
        case .simulated: checks.append(Check("evidence type", simulated,
                                             simulated ? "simulated (allowed by the policy)" : "simulated evidence is not accepted by this policy"))
        }
        if !mrEnclave.isEmpty {
            let ok = mrEnclave.contains(claims.mrEnclave)
            checks.append(Check("MRENCLAVE", ok, Hex.encode(claims.mrEnclave) + (ok ? " is allowed" : " is not in the policy")))
        }
        if !mrSigner.isEmpty {
            let ok = mrSigner.contains(claims.mrSigner)
            checks.append(Check("MRSIGNER", ok, Hex.encode(claims.mrSigner) + (ok ? " is allowed" : " is not in the policy")))
        }
        if let productID {
            checks.append(Check("product id", claims.productID == productID, "\(claims.productID) (policy: \(productID))"))
        }
        if let minSVN {
            checks.append(Check("SVN", claims.svn >= minSVN, "\(claims.svn) (policy: at least \(minSVN))"))
        }
        checks.append(Check("debug", !claims.debug || allowDebug,
                            claims.debug ? (allowDebug ? "debug enclave, allowed by the policy" : "debug enclaves are refused") : "production enclave"))
        if claims.kind == .sgx {
            let status = claims.tcbStatus ?? "unknown"
            checks.append(Check("TCB status", tcbStatuses.contains(status),
                                "\(status) (policy: \(tcbStatuses.joined(separator: ", ")))"))
            if let minTCBEvaluationDataNumber {
                let n = claims.tcbEvaluationDataNumber
                checks.append(Check("TCB evaluation data number", (n ?? -1) >= Int(minTCBEvaluationDataNumber),
                                    "\(n.map(String.init) ?? "unknown") (policy: at least \(minTCBEvaluationDataNumber))"))
            }
            if let maxCollateralAgeDays {
                let age = claims.collateralAge
                checks.append(Check("collateral age", age.map { $0 <= Int64(maxCollateralAgeDays) * 86_400 } ?? false,
                                    "\(age.map { String(format: "%.1f days", Double($0) / 86_400) } ?? "unknown") (policy: at most \(maxCollateralAgeDays) days)"))
            }
        }
        return checks
    }
}
