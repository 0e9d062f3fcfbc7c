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
        self.caFile = caFile
        self.identity = identity
        self.attester = attester
    }

    public func release(timeout: Double) throws -> KeySource.Material {
        func fail(_ why: String) -> FSPFError { .keyUnavailable(source: url, reason: why) }
        guard url.hasPrefix("https://") else { throw FSPFError.usage("\(url): the key broker is reached over https://") }
        guard BrokerProtocol.isValidVolumeName(volume) else { throw FSPFError.usage("\(volume): not a valid volume name") }
        let tls: TLSContext
        do { tls = try TLSContext(trusting: caFile) } catch { throw FSPFError.usage("\(error)") }
        let base = "\(url)/v1/volumes/\(volume)"

        func post<T: Decodable>(_ path: String, _ body: [UInt8], as: T.Type) throws -> T {
            let r = try HTTPClient.request("POST", base + path, body: body, tls: tls, timeout: timeout,
                                           limit: BrokerProtocol.maxResponseBody)
            guard r.status == 200 else {
                let reason = (try? JSONDecoder().decode(BrokerProtocol.ErrorResponse.self, from: Data(r.body)))?.error
                throw fail("refused (\(r.status)): \(reason.map { String($0.prefix(300)) } ?? r.reason)")
            }
            guard let v = try? JSONDecoder().decode(T.self, from: Data(r.body)) else { throw fail("malformed answer") }
            return v
        }

        let nonceText = try post("/nonce", Array("{}".utf8), as: BrokerProtocol.NonceResponse.self).nonce
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
        let answer = try post("/release", [UInt8](try JSONEncoder().encode(request)), as: BrokerProtocol.ReleaseResponse.self)
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
        let material = try KeyResource.parse(&opened, source: url)
        guard let tag = material.tag else { throw fail("the reply has no tag") }
        // TLS may end at a proxy: only the pinned identity's signature says the key server sent this.
        var statement = BrokerProtocol.releaseStatement(volume: volume, nonce: nonce, clientKey: keyPair.publicKey, key: material.key, tag: tag)
        defer { statement.withUnsafeMutableBytes { Sodium.zero($0) } }
        guard Ed25519.verify(signature, statement, publicKey: identity) else {
            throw fail("the reply is not signed by the pinned key server identity (--broker-identity)")
        }
        return material
    }
}
