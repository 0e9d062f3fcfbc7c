import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import Foundation

/// The key broker's wire format (JSON over HTTPS), shared by server and client.
///
///     POST /v1/volumes/<name>/nonce    → 200 {"nonce": b64(32 bytes), "expires_in": seconds}
///     POST /v1/volumes/<name>/release  {"nonce", "public_key": b64(X25519), "evidence": {…}}
///                                      → 200 {"sealed": b64(crypto_box_seal({"volume","key","tag","signature"
///                                                [, "writer_token", "writer_secret"]}))}
///     POST /v1/volumes/<name>/report   {"token": b64, "from": hex tag, "to": hex tag, "mac": b64}
///                                      → 200 {"version": n, "signature": b64}
///     any refusal                      → 4xx {"error": "<one line: the failed check and why>"}
///
/// A release carries a writer grant (token and secret) when the evidence also satisfies the
/// volume's writers policy; the holder reports each version it seals, and the record's tag
/// moves from `from` to `to` only if it is still at `from` (docs/ATTESTATION.md).
public enum BrokerProtocol {
    public static let nonceSize = 32
    public static let maxRequestBody = 256 << 10
    public static let maxResponseBody = 64 << 10

    public struct NonceResponse: Codable, Sendable {
        public var nonce: String
        public var expires_in: Int
        public init(nonce: String, expires_in: Int) { self.nonce = nonce; self.expires_in = expires_in }
    }

    /// Evidence on the wire: {"type": "sgx", "quote": b64, "collateral": {…}?} |
    /// {"type": "maa", "token": "<JWT>"} | {"type": "simulated", "evidence": b64}.
    public struct WireEvidence: Codable, Sendable {
        public var type: String
        public var quote: String?
        public var collateral: JSONValue?
        public var token: String?
        public var evidence: String?

        public init(_ e: Evidence) {
            switch e {
            case .sgx(let quote, let collateral):
                type = "sgx"; self.quote = Base64.encode(quote)
                self.collateral = collateral.flatMap { try? JSONValue.parse($0) }
            case .maa(let token): type = "maa"; self.token = token
            case .simulated(let bytes): type = "simulated"; evidence = Base64.encode(bytes)
            }
        }

        public func decoded() throws -> Evidence {
            switch type {
            case "sgx":
                guard let q = quote.flatMap(Base64.decode) else { throw AttestationError("sgx evidence needs \"quote\" (base64)") }
                return .sgx(quote: q, collateral: collateral?.bytes)
            case "maa":
                guard let token else { throw AttestationError("maa evidence needs \"token\"") }
                return .maa(token: token)
            case "simulated":
                guard let e = evidence.flatMap(Base64.decode) else { throw AttestationError("simulated evidence needs \"evidence\" (base64)") }
                return .simulated(e)
            default:
                throw AttestationError("evidence type \"\(type)\" is not sgx, maa or simulated")
            }
        }
    }

    public struct ReleaseRequest: Codable, Sendable {
        public var nonce: String
        public var public_key: String
        public var evidence: WireEvidence
        public init(nonce: String, public_key: String, evidence: WireEvidence) {
            self.nonce = nonce; self.public_key = public_key; self.evidence = evidence
        }
    }

    public struct ReleaseResponse: Codable, Sendable {
        public var sealed: String
        public init(sealed: String) { self.sealed = sealed }
    }

    public struct ReportRequest: Codable, Sendable {
        public var token: String
        public var from: String
        public var to: String
        public var mac: String
        public init(token: String, from: String, to: String, mac: String) {
            self.token = token; self.from = from; self.to = to; self.mac = mac
        }
    }

    public struct ReportResponse: Codable, Sendable {
        public var version: UInt64
        public var signature: String
        public init(version: UInt64, signature: String) { self.version = version; self.signature = signature }
    }

    public struct ErrorResponse: Codable, Sendable {
        public var error: String
        public init(error: String) { self.error = error }
    }

    /// Volume names: 1–64 of [A-Za-z0-9._-], not starting with a dot (they are file names in the store).
    public static func isValidVolumeName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        return (1...64).contains(u.count) && u[0] != UInt8(ascii: ".") && u.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d
        }
    }

    static let releaseLabel = Array("fspf-keyserver-release-v2".utf8) + [0]
    static let reportLabel = Array("fspf-keyserver-report-v1".utf8) + [0]
    static let recordedLabel = Array("fspf-keyserver-recorded-v1".utf8) + [0]

    /// A writer grant as the release carries it: the token to present, the secret that
    /// authenticates reports (HMAC-SHA256 key).
    public struct WriterGrant: Sendable {
        public var token: [UInt8]
        public var secret: [UInt8]
        public init(token: [UInt8], secret: [UInt8]) { self.token = token; self.secret = secret }
    }

    private static func framed(_ bytes: [UInt8]) -> [UInt8] {
        precondition(bytes.count < 256)
        return [UInt8(bytes.count)] + bytes
    }

    /// What the key server signs with its identity for every release, and the client verifies
    /// with the identity it pinned: label ‖ len(volume) ‖ volume ‖ nonce ‖ client public key ‖
    /// key ‖ len(tag) ‖ tag ‖ u16 len(token) ‖ token ‖ len(secret) ‖ secret (lengths one byte
    /// each unless said; token and secret empty without a writer grant). It binds the reply to
    /// this request (nonce, the client's one-time key) and to the server (not to whoever
    /// terminates TLS). Zero it after use.
    public static func releaseStatement(volume: String, nonce: [UInt8], clientKey: [UInt8], key: SecureBytes, tag: [UInt8],
                                        writer: WriterGrant?) -> [UInt8] {
        let token = writer?.token ?? []
        precondition(token.count < 65536)
        return releaseLabel + framed(Array(volume.utf8)) + nonce + clientKey + key.withBytes { Array($0) } + framed(tag)
            + [UInt8(token.count >> 8), UInt8(token.count & 0xff)] + token + framed(writer?.secret ?? [])
    }

    /// What a writer's report MAC covers: label ‖ len(volume) ‖ volume ‖ len(from) ‖ from ‖ len(to) ‖ to.
    public static func reportStatement(volume: String, from: [UInt8], to: [UInt8]) -> [UInt8] {
        reportLabel + framed(Array(volume.utf8)) + framed(from) + framed(to)
    }

    /// What the key server signs when it recorded a report: label ‖ len(volume) ‖ volume ‖
    /// u64 version ‖ len(from) ‖ from ‖ len(to) ‖ to ‖ the report's MAC (this report, not a replay).
    public static func recordedStatement(volume: String, version: UInt64, from: [UInt8], to: [UInt8], mac: [UInt8]) -> [UInt8] {
        recordedLabel + framed(Array(volume.utf8)) + withUnsafeBytes(of: version.bigEndian) { Array($0) } + framed(from) + framed(to) + mac
    }

    /// Seals the key, tag and the server's signature to the client's ephemeral X25519 key
    /// (libsodium sealed box: an ephemeral sender key, X25519 + XSalsa20-Poly1305), so only that
    /// client can open it, whatever happens to TLS.
    public static func seal(volume: String, key: SecureBytes, tag: [UInt8], writer: WriterGrant?, signature: [UInt8],
                            to publicKey: [UInt8]) throws -> [UInt8] {
        let grant = writer.map { #","writer_token":"\#(Base64.encode($0.token))","writer_secret":"\#(Hex.encode($0.secret))""# } ?? ""
        var message = Array(#"{"volume":\#(JSON.string(volume)),"key":"\#(key.hex)","tag":"\#(Hex.encode(tag))"\#(grant),"signature":"\#(Base64.encode(signature))"}"#.utf8)
        defer { message.withUnsafeMutableBytes { Sodium.zero($0) } }
        do { return try SealedBox.seal(message, to: publicKey) } catch { throw AttestationError("sealing the key failed: \(error)") }
    }
}
