import Foundation
import FSPFCrypto
import FSPFSystem

/// An issuer's signing keys (the JSON Web Key Set from its `/certs`), keyed by `kid`. Azure
/// Attestation publishes each key as an X.509 certificate (`x5c`); the certificate's key is used.
public struct KeySet: Sendable {
    let keys: [String: Certificate]

    public init(json: [UInt8]) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
              let list = object["keys"] as? [[String: Any]] else {
            throw AttestationError("key set is not a JSON Web Key Set ({\"keys\": [...]})")
        }
        var keys: [String: Certificate] = [:]
        for key in list {
            guard let kid = key["kid"] as? String, let first = (key["x5c"] as? [String])?.first,
                  let der = Base64.decode(first) else { continue }
            keys[kid] = try Certificate(der: der)
        }
        guard !keys.isEmpty else { throw AttestationError("key set has no key with a kid and an x5c certificate") }
        self.keys = keys
    }
}

/// A verified Azure Attestation token: its claims, after the signature, the algorithm, the
/// issuer and the validity window were checked.
public struct MAAToken: Sendable {
    public let claims: [String: JSONValue]

    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    public static let leeway: Int64 = 60

    public static func verify(_ token: String, keys: KeySet, issuer: String, at time: Int64) throws -> MAAToken {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, token.utf8.count <= 64 << 10 else { throw AttestationError("token is not a compact JWS (header.payload.signature)") }
        guard let headerBytes = Base64.urlDecode(parts[0]), let payloadBytes = Base64.urlDecode(parts[1]),
              let signature = Base64.urlDecode(parts[2]),
              case .object(let header)? = try? JSONValue.parse(headerBytes),
              case .object(let claims)? = try? JSONValue.parse(payloadBytes) else {
            throw AttestationError("token header, payload or signature is not valid base64url JSON")
        }
        // Only RS256: "none", HMAC with a public key as secret and other confusions are refused.
        guard header["alg"] == .string("RS256") else { throw AttestationError("token algorithm \(header["alg"]?.text ?? "none") is not RS256") }
        guard case .string(let kid)? = header["kid"], let certificate = keys.keys[kid] else {
            throw AttestationError("token is signed by a key the issuer's key set does not have")
        }
        guard certificate.verify(signature: .rsaSHA256(signature), over: Array(parts[0].utf8) + [0x2e] + Array(parts[1].utf8)) else {
            throw AttestationError("token signature does not verify")
        }
        guard claims["iss"] == .string(issuer) else {
            throw AttestationError("token issuer \(claims["iss"]?.text ?? "none") is not \(issuer)")
        }
        guard case .number(let exp)? = claims["exp"] else { throw AttestationError("token has no expiry") }
        guard time <= Int64(exp) + leeway else { throw AttestationError("token expired at \(UTCTime.format(Int64(exp)))") }
        if case .number(let nbf)? = claims["nbf"], time + leeway < Int64(nbf) {
            throw AttestationError("token is not valid before \(UTCTime.format(Int64(nbf)))")
        }
        return MAAToken(claims: claims)
    }

    /// The SGX claims a release policy looks at.
    public func enclaveClaims() throws -> EnclaveClaims {
        func hex(_ key: String, _ count: Int) throws -> [UInt8] {
            guard case .string(let s)? = claims[key], let v = Hex.decode(s), v.count == count else {
                throw AttestationError("token claim \(key) is missing or not \(count) hex bytes")
            }
            return v
        }
        func int(_ key: String) throws -> UInt16 {
            guard case .number(let n)? = claims[key], n >= 0, n <= 65535, n == n.rounded() else {
                throw AttestationError("token claim \(key) is missing or not a 16-bit number")
            }
            return UInt16(n)
        }
        guard case .bool(let debug)? = claims["x-ms-sgx-is-debuggable"] else {
            throw AttestationError("token claim x-ms-sgx-is-debuggable is missing")
        }
        var held: [UInt8]?
        if case .string(let ehd)? = claims["x-ms-sgx-ehd"] { held = Base64.urlDecode(ehd) }
        return EnclaveClaims(kind: .maa, mrEnclave: try hex("x-ms-sgx-mrenclave", 32), mrSigner: try hex("x-ms-sgx-mrsigner", 32),
                             productID: try int("x-ms-sgx-product-id"), svn: try int("x-ms-sgx-svn"), debug: debug,
                             reportData: try hex("x-ms-sgx-report-data", 64), heldData: held)
    }
}
