import Foundation
import Testing
import FSPFCrypto
import FSPFSystem
@testable import FSPFAttestation

/// The recorded Azure Attestation exchange: the issuer's key set and a real token.
struct Recording {
    let keys: [UInt8]
    let token: String
    static let issuer = "https://sharedwus.wus.attest.azure.net"
    static let issued: Int64 = 1668716909   // iat and nbf of the token
    static let expiry: Int64 = 1668745709

    init() throws {
        let o = try JSONSerialization.jsonObject(with: Data(try fixture("maa-sgx-attest-recording.json"))) as! [String: Any]
        let entries = o["Entries"] as! [[String: Any]]
        keys = [UInt8](try JSONSerialization.data(withJSONObject: entries[0]["ResponseBody"]!))
        token = (entries[1]["ResponseBody"] as! [String: Any])["token"] as! String
    }
}

@Suite struct MAATests {
    let r: Recording
    let keySet: KeySet
    init() throws { r = try Recording(); keySet = try KeySet(json: r.keys) }

    @Test func realTokenVerifiesAtItsTime() throws {
        let token = try MAAToken.verify(r.token, keys: keySet, issuer: Recording.issuer, at: Recording.issued + 600)
        let c = try token.enclaveClaims()
        #expect(Hex.encode(c.mrEnclave) == "292a1f4b519e46627eb2478a3d9851405653c5b4b0a6925de843834d9216850e")
        #expect(Hex.encode(c.mrSigner) == "4aea5f9a0ed04b11f889aadfe6a1d376213a29a95a85ce7337ae6f7fece6610c")
        #expect(c.debug && c.productID == 1 && c.svn == 1 && c.kind == .maa)
        // The documented relation: report data = SHA-256(enclave-held data) ‖ 32 zeros.
        let held = try #require(c.heldData)
        #expect(c.reportData == SHA256.hash(held) + [UInt8](repeating: 0, count: 32))
    }

    @Test func expiredWrongIssuerAndEarlyAreRefused() throws {
        #expect(throws: AttestationError.self) {
            _ = try MAAToken.verify(r.token, keys: keySet, issuer: Recording.issuer, at: Recording.expiry + MAAToken.leeway + 1)
        }
        #expect(throws: AttestationError.self) {
            _ = try MAAToken.verify(r.token, keys: keySet, issuer: "https://evil.attest.azure.net", at: Recording.issued)
        }
        #expect(throws: AttestationError.self) {
            _ = try MAAToken.verify(r.token, keys: keySet, issuer: Recording.issuer, at: Recording.issued - 3600)
        }
    }

    @Test func everyChangedCharacterIsRefused() throws {
        let chars = Array(r.token.utf8)
        var accepted: [Int] = []
        for i in chars.indices {
            var m = chars
            // Another character of the base64url alphabet, or a dot where one was.
            m[i] = m[i] == UInt8(ascii: "A") ? UInt8(ascii: "B") : m[i] == UInt8(ascii: ".") ? UInt8(ascii: "x") : UInt8(ascii: "A")
            if (try? MAAToken.verify(String(decoding: m, as: UTF8.self), keys: keySet, issuer: Recording.issuer,
                                     at: Recording.issued + 600)) != nil { accepted.append(i) }
        }
        // Including a segment's last character, whose unused low bits only canonical decoding checks.
        #expect(accepted.isEmpty, "accepted after changing characters \(accepted)")
    }

    @Test func algorithmAndKeyConfusionsAreRefused() throws {
        let parts = r.token.split(separator: ".").map(String.init)
        for header in [#"{"alg":"none","kid":"XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=","typ":"JWT"}"#,
                       #"{"alg":"HS256","kid":"XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=","typ":"JWT"}"#,
                       #"{"alg":"RS256","kid":"not-a-known-key","typ":"JWT"}"#] {
            let forged = Base64.urlEncode(Array(header.utf8)) + "." + parts[1] + "." + parts[2]
            #expect(throws: AttestationError.self) {
                _ = try MAAToken.verify(forged, keys: keySet, issuer: Recording.issuer, at: Recording.issued)
            }
        }
        #expect(throws: AttestationError.self) {
            _ = try MAAToken.verify(parts[0] + "." + parts[1] + ".", keys: keySet, issuer: Recording.issuer, at: Recording.issued)
        }
    }

    @Test func tokenGoesThroughThePolicy() throws {
        let c = try MAAToken.verify(r.token, keys: keySet, issuer: Recording.issuer, at: Recording.issued).enclaveClaims()
        let keysJSON = String(decoding: r.keys, as: UTF8.self)
        func appraise(_ policy: String) throws -> Appraisal {
            Appraiser(time: Recording.issued + 60).appraise(.maa(token: r.token), policy: try ReleasePolicy(json: Array(policy.utf8)),
                                                           reportData: c.reportData, runtimeData: c.heldData)
        }
        let allowed = #"{"mrenclave": ["292a1f4b519e46627eb2478a3d9851405653c5b4b0a6925de843834d9216850e"], "product_id": 1, "min_svn": 1, "allow_debug": true, "maa": {"issuer": "\#(Recording.issuer)", "keys": \#(keysJSON)}}"#
        let ok = try appraise(allowed)
        #expect(ok.accepted, "\(ok.reason)")
        // The same token without allow_debug: this enclave is debuggable.
        let noDebug = try appraise(allowed.replacingOccurrences(of: #""allow_debug": true"#, with: #""allow_debug": false"#))
        #expect(!noDebug.accepted && noDebug.reason.hasPrefix("debug"))
        let newer = try appraise(allowed.replacingOccurrences(of: #""min_svn": 1"#, with: #""min_svn": 2"#))
        #expect(!newer.accepted && newer.reason.hasPrefix("SVN"))
        let noMAA = Appraiser(time: Recording.issued).appraise(
            .maa(token: r.token), policy: try ReleasePolicy(json: Array(#"{"mrsigner": ["\#(Hex.encode(c.mrSigner))"]}"#.utf8)),
            reportData: c.reportData)
        #expect(!noMAA.accepted && noMAA.reason.contains("accepts no Azure Attestation"))
    }
}

@Suite struct SimulatedAndPolicyTests {
    let seed = SimulatedEvidence.generateSeed()
    let code = SHA256.hash(Array("the job".utf8))
    let binding = Binding.reportData(nonce: [UInt8](repeating: 7, count: 32), publicKey: [UInt8](repeating: 9, count: 32))

    func policy(simulated: Bool = true, code: [UInt8]? = nil, extra: String = "") throws -> ReleasePolicy {
        let attester = Base64.encode(SimulatedEvidence.publicKey(seed: seed))
        return try ReleasePolicy(json: Array(#"{"mrenclave": ["\#(Hex.encode(code ?? self.code))"], "simulated": \#(simulated), "simulated_attesters": ["\#(attester)"]\#(extra)}"#.utf8))
    }

    func evidence(debug: Bool = false, reportData: [UInt8]? = nil, seed: SecureBytes? = nil) throws -> [UInt8] {
        try SimulatedEvidence.sign(mrEnclave: code, productID: 0, svn: 3, debug: debug, reportData: reportData ?? binding,
                                   seed: seed ?? self.seed)
    }

    @Test func simulatedEvidenceIsAcceptedOnlyWhereThePolicySaysSo() throws {
        let a = Appraiser(time: UTCTime.now())
        let good = a.appraise(.simulated(try evidence()), policy: try policy(), reportData: binding)
        #expect(good.accepted, "\(good.reason)")
        #expect(good.claims?.mrSigner == SHA256.hash(SimulatedEvidence.publicKey(seed: seed)))
        // simulated: false, and a policy without the field at all: refused.
        #expect(!a.appraise(.simulated(try evidence()), policy: try policy(simulated: false), reportData: binding).accepted)
        var plain = ReleasePolicy()
        plain.mrEnclave = [code]
        let refused = a.appraise(.simulated(try evidence()), policy: plain, reportData: binding)
        #expect(!refused.accepted && refused.reason.contains("not accepted by this policy"))
    }

    @Test func simulatedRefusals() throws {
        let a = Appraiser(time: UTCTime.now())
        let p = try policy()
        // Another attester's key.
        let stranger = a.appraise(.simulated(try evidence(seed: SimulatedEvidence.generateSeed())), policy: p, reportData: binding)
        #expect(!stranger.accepted && stranger.reason.contains("does not trust"))
        // Other code.
        let other = a.appraise(.simulated(try evidence()), policy: try policy(code: SHA256.hash([1])), reportData: binding)
        #expect(!other.accepted && other.reason.hasPrefix("MRENCLAVE"))
        // Wrong binding (another nonce).
        let unbound = a.appraise(.simulated(try evidence(reportData: [UInt8](repeating: 0, count: 64))), policy: p, reportData: binding)
        #expect(!unbound.accepted && unbound.reason.hasPrefix("binding"))
        // Debug refused unless allowed.
        #expect(!a.appraise(.simulated(try evidence(debug: true)), policy: p, reportData: binding).accepted)
        #expect(a.appraise(.simulated(try evidence(debug: true)), policy: try policy(extra: #", "allow_debug": true"#), reportData: binding).accepted)
        // Any changed byte of the evidence.
        let bytes = try evidence()
        for i in bytes.indices {
            var m = bytes
            m[i] ^= 0x01
            #expect(!a.appraise(.simulated(m), policy: p, reportData: binding).accepted, "byte \(i)")
        }
    }

    @Test func sgxQuoteGoesThroughThePolicy() throws {
        let quote = try fixture("sgx-quote-v3.bin")
        let collateral = try fixture("sgx-quote-v3.collateral.json")
        let q = try SGXQuote(quote)
        var p = ReleasePolicy()
        p.mrEnclave = [q.report.mrEnclave]
        let a = Appraiser(time: collateralTime, collateral: collateral)
        let strict = a.appraise(.sgx(quote: quote, collateral: nil), policy: p, reportData: q.report.reportData)
        #expect(!strict.accepted && strict.reason.hasPrefix("TCB status: ConfigurationAndSWHardeningNeeded"))
        p.tcbStatuses = ["UpToDate", "ConfigurationAndSWHardeningNeeded"]
        let ok = a.appraise(.sgx(quote: quote, collateral: nil), policy: p, reportData: q.report.reportData)
        #expect(ok.accepted, "\(ok.reason)")
        // The quote's report data is "Hello, world!", not a binding to a nonce: refused.
        let fresh = a.appraise(.sgx(quote: quote, collateral: nil), policy: p, reportData: binding)
        #expect(!fresh.accepted && fresh.reason.hasPrefix("binding"))
        // The verifier's own collateral wins over what the request carries (here: nothing usable;
        // in an attack, genuine but older collateral from before a TCB recovery or a revocation).
        let supplied = a.appraise(.sgx(quote: quote, collateral: Array("{}".utf8)), policy: p, reportData: q.report.reportData)
        #expect(supplied.accepted, "\(supplied.reason)")
        #expect(supplied.checks.contains { $0.name == "collateral" && $0.detail == "the verifier's own (the request's ignored)" })
        let only = Appraiser(time: collateralTime).appraise(.sgx(quote: quote, collateral: collateral), policy: p, reportData: q.report.reportData)
        #expect(only.accepted && only.checks.contains { $0.detail == "the request's (the verifier has none)" }, "\(only.reason)")
        // The collateral's TCB evaluation data number (17 in both TCB info and QE identity) and its
        // age (TCB info issued 2025-06-19T10:56:11Z, QE identity 10:01:18Z; verified on 2025-07-01).
        var recent = p
        recent.minTCBEvaluationDataNumber = 17
        recent.maxCollateralAgeDays = 12
        let fresh17 = a.appraise(.sgx(quote: quote, collateral: nil), policy: recent, reportData: q.report.reportData)
        #expect(fresh17.accepted, "\(fresh17.reason)")
        #expect(fresh17.checks.contains { $0.name == "TCB evaluation data number" && $0.passed && $0.detail.hasPrefix("17 ") })
        #expect(fresh17.checks.contains { $0.name == "collateral age" && $0.passed && $0.detail.hasPrefix("11.6 days") }, "\(fresh17.checks)")
        recent.minTCBEvaluationDataNumber = 18
        let before = a.appraise(.sgx(quote: quote, collateral: nil), policy: recent, reportData: q.report.reportData)
        #expect(!before.accepted && before.reason == "TCB evaluation data number: 17 (policy: at least 18)", "\(before.reason)")
        recent.minTCBEvaluationDataNumber = nil
        recent.maxCollateralAgeDays = 11
        let stale = a.appraise(.sgx(quote: quote, collateral: nil), policy: recent, reportData: q.report.reportData)
        #expect(!stale.accepted && stale.reason == "collateral age: 11.6 days (policy: at most 11 days)", "\(stale.reason)")
        // No collateral anywhere.
        let none = Appraiser(time: collateralTime).appraise(.sgx(quote: quote, collateral: nil), policy: p, reportData: binding)
        #expect(!none.accepted && none.reason.contains("no collateral"))
    }

    @Test func policiesAreStrict() throws {
        let good = Hex.encode(code)
        for bad in [#"{}"#, #"{"mrenclave": []}"#, #"{"mrenclave": ["abcd"]}"#, #"{"mrenclave": ["\#(good)"], "allow_debg": true}"#,
                    #"{"mrenclave": ["\#(good)"], "min_svn": -1}"#, #"{"mrenclave": ["\#(good)"], "simulated": true}"#,
                    #"{"mrenclave": ["\#(good)"], "tcb_statuses": ["Fine"]}"#, #"{"mrenclave": ["\#(good)"], "maa": {"issuer": "http://x"}}"#,
                    #"{"mrenclave": ["\#(good)"], "allow_debug": "yes"}"#, #"{"mrenclave": ["\#(good)"], "max_collateral_age_days": 1.5}"#,
                    #"{"mrenclave": ["\#(good)"], "min_tcb_evaluation_data_number": "17"}"#, "[]", "not json"] {
            #expect(throws: AttestationError.self, "\(bad)") { _ = try ReleasePolicy(json: Array(bad.utf8)) }
        }
        let p = try policy(extra: #", "product_id": 4, "min_svn": 2, "tcb_statuses": ["UpToDate", "SWHardeningNeeded"], "#
                           + #""min_tcb_evaluation_data_number": 17, "max_collateral_age_days": 30"#)
        #expect(p.minTCBEvaluationDataNumber == 17 && p.maxCollateralAgeDays == 30)
        #expect(try ReleasePolicy(json: p.json()) == p)
    }
}

@Suite struct Base64Tests {
    /// Foundation decodes "AR==" to [1] like "AQ==" (the low bits of the last character are
    /// unused); a changed signature character must not decode to the same signature.
    @Test func onlyTheCanonicalEncodingDecodes() {
        #expect(Data(base64Encoded: "AR==") == Data([1]), "the lenient behaviour this guards against")
        #expect(Base64.decode("AQ==") == [1])
        #expect(Base64.decode("AR==") == nil)
        #expect(Base64.decode("AQ") == nil)
        #expect(Base64.decode(" AQ==") == nil)
        #expect(Base64.urlDecode("AQ") == [1])
        #expect(Base64.urlDecode("AR") == nil)
        #expect(Base64.urlDecode("AQ==") == nil)
        let bytes = (0..<64).map { UInt8($0 * 7 & 0xff) }
        #expect(Base64.decode(Base64.encode(bytes)) == bytes && Base64.urlDecode(Base64.urlEncode(bytes)) == bytes)
    }
}
