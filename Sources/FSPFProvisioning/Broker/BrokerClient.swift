import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import Foundation

/// A key release from the broker: nonce → evidence bound to (nonce, ephemeral key) → sealed
/// key and tag, opened with the ephemeral key. Every failure is `keyUnavailable` naming the URL.
public struct BrokerRequest: Sendable, Equatable {
    public var url: String          // https://host:port
    public var volume: String
    public var caFile: String?      // trust anchor for the broker's certificate; nil = system store
    /// The key server's Ed25519 public key: every release must carry its signature.
    public var identity: [UInt8]
    public var attester: Attester

    public init(url: String, volume: String, caFile: String?, identity: [UInt8], attester: Attester) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.volume = volume
        // Absolute: a mount daemon reports sealed versions after it has changed to /.
        self.caFile = caFile.map(Paths.absolute)
        self.identity = identity
        self.attester = attester
    }

    fileprivate func fail(_ why: String) -> FSPFError { .keyUnavailable(source: url, reason: why) }

    /// POST to the volume's `endpoint`, decoding a 200 answer as `T`; any other answer is refused with its reason.
    fileprivate func post<T: Decodable>(_ endpoint: String, _ body: [UInt8], as: T.Type, timeout: Double) throws -> T {
        guard url.hasPrefix("https://") else { throw FSPFError.usage("\(url): the key broker is reached over https://") }
        guard BrokerProtocol.isValidVolumeName(volume) else { throw FSPFError.usage("\(volume): not a valid volume name") }
        let tls: TLSContext
        do { tls = try TLSContext(trusting: caFile) } catch { throw FSPFError.usage("\(error)") }
        let r = try HTTPClient.request("POST", "\(url)/v1/volumes/\(volume)/\(endpoint)", body: body, tls: tls, timeout: timeout,
                                       limit: BrokerProtocol.maxResponseBody)
        guard r.status == 200 else {
            let reason = (try? JSONDecoder().decode(BrokerProtocol.ErrorResponse.self, from: Data(r.body)))?.error
            throw fail("refused (\(r.status)): \(reason.map { String($0.prefix(300)) } ?? r.reason)")
        }
        guard let v = try? JSONDecoder().decode(T.self, from: Data(r.body)) else { throw fail("malformed answer") }
        return v
    }

    public func release(timeout: Double) throws -> KeySource.Material {
        func post<T: Decodable>(_ endpoint: String, _ body: [UInt8], as type: T.Type) throws -> T {
            try self.post(endpoint, body, as: type, timeout: timeout)
        }
        let nonceText = try post("nonce", Array("{}".utf8), as: BrokerProtocol.NonceResponse.self).nonce
        guard let nonce = Base64.decode(nonceText), nonce.count == BrokerProtocol.nonceSize else { throw fail("malformed nonce") }
        let keyPair = EphemeralKeyPair()
        let evidence: Evidence
        do { evidence = try attester.evidence(nonce: nonce, publicKey: keyPair.publicKey) } catch let e as FSPFError {
            throw e
        } catch {
            throw fail("cannot get evidence: \(error)")
        }
        let request = BrokerProtocol.ReleaseRequest(nonce: nonceText, public_key: Base64.encode(keyPair.publicKey),
                                                    evidence: .init(evidence))
        let answer = try post("release", [UInt8](try JSONEncoder().encode(request)), as: BrokerProtocol.ReleaseResponse.self)
        guard let sealed = Base64.decode(answer.sealed), var opened = keyPair.open(sealed) else {
            throw fail("the reply is not sealed to this request's key")
        }
        defer { opened.withUnsafeMutableBytes { Sodium.zero($0) } }
        // The reply names its volume: a broker answering for another volume is refused.
        guard case .object(let o)? = try? JSONValue.parse(opened), o["volume"] == .string(volume) else {
            throw fail("the reply is for another volume")
        }
        guard case .string(let text)? = o["signature"], let signature = Base64.decode(text) else {
            throw fail("the reply is not signed")
        }
        var material = try KeyResource.parse(&opened, source: url)
        guard let tag = material.tag else { throw fail("the reply has no tag") }
        var grant: BrokerProtocol.WriterGrant?
        if case .string(let token)? = o["writer_token"], case .string(let secret)? = o["writer_secret"] {
            guard let t = Base64.decode(token), let s = Hex.decode(secret), s.count == 32 else { throw fail("malformed writer grant") }
            grant = .init(token: t, secret: s)
        }
        // TLS may end at a proxy: only the pinned identity's signature says the key server sent this.
        var statement = BrokerProtocol.releaseStatement(volume: volume, nonce: nonce, clientKey: keyPair.publicKey, key: material.key, tag: tag,
                                                        writer: grant)
        defer { statement.withUnsafeMutableBytes { Sodium.zero($0) } }
        guard Ed25519.verify(signature, statement, publicKey: identity) else {
            throw fail("the reply is not signed by the pinned key server identity (--broker-identity)")
        }
        material.writer = grant.map { BrokerWriter(broker: self, grant: $0, tag: tag) }
        return material
    }
}

/// A writer grant from a release: the workload reports each version it seals, and the key
/// server's record (the tag the next release pins) follows. Reports are serialised and each one
/// names the version the record was last known at, so the record only ever moves forward.
public final class BrokerWriter: Sendable {
    public let broker: BrokerRequest
    private let grant: BrokerProtocol.WriterGrant
    /// The tag the key server's record is at, as far as this writer knows.
    private let recorded: Locked<[UInt8]>

    init(broker: BrokerRequest, grant: BrokerProtocol.WriterGrant, tag: [UInt8]) {
        self.broker = broker
        self.grant = grant
        recorded = Locked(tag)
    }

    /// Moves the record to `tag` (the full tag of a version this workload sealed) unless it is
    /// there already; the record's new version, or nil when nothing was to be done. Refused
    /// (keyUnavailable) when the record moved on without this writer, the grant expired or the
    /// writers policy changed.
    @discardableResult
    public func report(_ tag: [UInt8], timeout: Double) throws -> UInt64? {
        try recorded.withLock { from -> UInt64? in
            guard from != tag else { return nil }
            let statement = BrokerProtocol.reportStatement(volume: broker.volume, from: from, to: tag)
            let mac = grant.secret.withUnsafeBytes { KDF.hmac(key: $0, statement) }
            let body = BrokerProtocol.ReportRequest(token: Base64.encode(grant.token), from: Hex.encode(from), to: Hex.encode(tag),
                                                    mac: Base64.encode(mac))
            let answer = try broker.post("report", [UInt8](try JSONEncoder().encode(body)), as: BrokerProtocol.ReportResponse.self,
                                         timeout: timeout)
            let recorded = BrokerProtocol.recordedStatement(volume: broker.volume, version: answer.version, from: from, to: tag, mac: mac)
            guard let signature = Base64.decode(answer.signature), Ed25519.verify(signature, recorded, publicKey: broker.identity) else {
                throw FSPFError.keyUnavailable(source: broker.url, reason: "the report's answer is not signed by the pinned key server identity")
            }
            from = tag
            return answer.version
        }
    }
}
