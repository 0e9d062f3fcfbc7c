import CSodium
import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning
import Foundation
import Glibc

/// The broker's durable state, one directory:
///
///     master.key              32 random bytes (hex), owner-only: encrypts every volume key
///     tls/key.pem, cert.pem   the HTTPS identity
///     volumes/<name>.json     {"volume", "tag", "policy": "<exact policy JSON text>", "key": b64(nonce ‖ sealed)}
///     audit.log               one JSON line per request
///
/// A volume key is encrypted with XChaCha20-Poly1305 (libsodium, random 192-bit nonce) under the
/// master key, with the volume name, tag and policy text as associated data: editing the file's
/// tag or loosening its policy without the master key makes the key undecryptable, not releasable.
public final class BrokerStore: @unchecked Sendable {
    public let root: String
    private let masterKey: SecureBytes

    public var certificatePath: String { root + "/tls/cert.pem" }
    public var privateKeyPath: String { root + "/tls/key.pem" }
    public var auditPath: String { root + "/audit.log" }
    static let aadLabel = Array("fspf-keyserver-volume-v1".utf8) + [0]

    public struct Volume: Sendable {
        public let name: String
        public let tag: [UInt8]
        public let policyText: [UInt8]
        public let policy: ReleasePolicy
        let sealedKey: [UInt8]
    }

    /// Creates a store: directories, master key, TLS key and self-signed certificate for `names`.
    public static func initialize(at root: String, names: [String], masterKeyFile: String? = nil) throws {
        guard !FileSystem.exists(root + "/master.key") && !FileSystem.exists(root + "/volumes") else {
            throw FSPFError.outputExists(path: root)
        }
        try FileSystem.makeDirectories(root)
        chmod(root, 0o700)
        for d in ["/volumes", "/tls"] where !FileSystem.isDirectory(root + d) { try FileSystem.makeDirectory(root + d, mode: 0o700) }
        var hex = Array((SecureBytes.random(count: 32).withBytes { Hex.encode($0) } + "\n").utf8)
        defer { hex.withUnsafeMutableBytes { Sodium.zero($0) } }
        let keyFile = masterKeyFile ?? root + "/master.key"
        guard !FileSystem.exists(keyFile) else { throw FSPFError.outputExists(path: keyFile) }
        try FileSystem.writeAtomically(keyFile, hex, mode: 0o600)
        try SelfSigned.generate(names: names, days: 825, keyPath: root + "/tls/key.pem", certificatePath: root + "/tls/cert.pem")
    }

    public init(root: String, masterKeyFile: String? = nil) throws {
        self.root = root
        guard FileSystem.isDirectory(root + "/volumes") else {
            throw FSPFError.noInput(path: root, reason: "not a key server store (run fspf keyserver init)")
        }
        masterKey = try KeySource.file(masterKeyFile ?? root + "/master.key").load()
    }

    private func path(_ name: String) -> String { root + "/volumes/" + name + ".json" }

    private func aad(_ name: String, _ tag: [UInt8], _ policyText: [UInt8]) -> [UInt8] {
        Self.aadLabel + Array(name.utf8) + [0] + tag + SHA256.hash(policyText)
    }

    /// Adds a volume (or replaces it with `replace`): its key, its tag and who may have them.
    public func register(volume name: String, key volumeKey: SecureBytes, tag: [UInt8], policy: ReleasePolicy, replace: Bool = false) throws {
        guard BrokerProtocol.isValidVolumeName(name) else {
            throw FSPFError.usage("\(name): volume names are 1–64 of A-Z a-z 0-9 . _ - (not starting with a dot)")
        }
        guard replace || !FileSystem.exists(path(name)) else {
            throw FSPFError.usage("\(name): already registered (use --replace to change its key, tag or policy)")
        }
        let policyText = policy.json()
        let nonce = Sodium.randomBytes(Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES))
        let ad = aad(name, tag, policyText)
        var sealed = [UInt8](repeating: 0, count: 32 + Int(crypto_aead_xchacha20poly1305_ietf_ABYTES))
        var sealedLength: UInt64 = 0
        volumeKey.withBytes { k in
            masterKey.withBytes { m in
                _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                    &sealed, &sealedLength, k.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(k.count),
                    ad, UInt64(ad.count), nil, nonce, m.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        let record: [String: String] = ["volume": name, "tag": Hex.encode(tag), "policy": String(decoding: policyText, as: UTF8.self),
                                        "key": Base64.encode(nonce + sealed)]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try FileSystem.writeAtomically(path(name), [UInt8](try encoder.encode(record)) + [0x0a], mode: 0o600)
    }

    public func names() -> [String] {
        ((try? FileSystem.list(root + "/volumes")) ?? []).map { String(decoding: $0, as: UTF8.self) }
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// The volume's record (not its key); nil when not registered.
    public func volume(_ name: String) throws -> Volume? {
        guard BrokerProtocol.isValidVolumeName(name), FileSystem.exists(path(name)) else { return nil }
        let bytes = try FileSystem.readAll(path(name), limit: 1 << 20)
        func damaged(_ why: String) -> FSPFError { .badInput(path: path(name), reason: why) }
        guard let o = try? JSONDecoder().decode([String: String].self, from: Data(bytes)), o["volume"] == name,
              let tag = o["tag"].flatMap(Hex.decode), KeyText.tagSizes.contains(tag.count),
              let policyText = o["policy"].map({ Array($0.utf8) }), let sealed = o["key"].flatMap(Base64.decode) else {
            throw damaged("not a volume record")
        }
        let policy: ReleasePolicy
        do { policy = try ReleasePolicy(json: policyText) } catch { throw damaged("\(error)") }
        return Volume(name: name, tag: tag, policyText: policyText, policy: policy, sealedKey: sealed)
    }

    /// Decrypts the volume key; fails when the record was altered or the master key differs.
    public func key(of v: Volume) throws -> SecureBytes {
        let n = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
        guard v.sealedKey.count == n + 32 + Int(crypto_aead_xchacha20poly1305_ietf_ABYTES) else {
            throw FSPFError.badInput(path: path(v.name), reason: "damaged key record")
        }
        let ad = aad(v.name, v.tag, v.policyText)
        let nonce = Array(v.sealedKey[0..<n]), sealed = Array(v.sealedKey[n...])
        var ok = false
        let key = SecureBytes(count: 32) { out in
            masterKey.withBytes { m in
                var length: UInt64 = 0
                ok = crypto_aead_xchacha20poly1305_ietf_decrypt(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self), &length, nil, sealed, UInt64(sealed.count),
                    ad, UInt64(ad.count), nonce, m.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
            }
        }
        guard ok else {
            throw FSPFError.integrity(path: path(v.name), reason: "the key record does not open with the master key (altered tag, policy or key, or another master key)")
        }
        return key
    }
}
