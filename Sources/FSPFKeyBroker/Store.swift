import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning
import Foundation
import Glibc

/// The broker's durable state, one directory:
///
///     master.key              32 random bytes (hex), owner-only: encrypts every secret below
///     master.key.versions     the high-water mark: each volume's latest record version, sealed
///                             (kept with the master key: beside it, wherever --master-key-file puts it)
///     identity.sealed         the Ed25519 seed that signs every release, sealed
///     identity.pub            its public key (base64): clients pin it (--broker-identity)
///     tls/key.pem, cert.pem   the HTTPS identity
///     volumes/<name>.json     {"volume", "version", "tag", "policy": "<exact policy JSON text>",
///                              "writers": "<writers policy text>" (optional), "key": b64(nonce ‖ sealed)}
///     audit.log               one JSON line per request
///
/// Secrets are sealed with XChaCha20-Poly1305 (libsodium, random 192-bit nonce) under the master
/// key. A volume key's associated data are the volume name, the record's version, its tag and
/// policy texts: editing the record's tag or loosening a policy without the master key makes
/// the key undecryptable, not releasable; restoring an older record (a policy since tightened,
/// a tag since moved on by a writer) fails against the high-water mark, which cannot be
/// lowered without the master key.
///
/// Writers (docs/ATTESTATION.md, "Written volumes"): a release to a workload that also
/// satisfies the record's writers policy carries a writer grant — an opaque token sealed under
/// the master key (volume, digest of the writers policy, expiry, measurements) and a secret
/// derived from it — with which that workload later moves the record's tag to a version it
/// sealed. Grants need no state here; changing the writers policy revokes them.
public final class BrokerStore: @unchecked Sendable {
    public let root: String
    /// The store's directory and its `volumes/`, held open: records are read and written
    /// through them, no link followed (a writer of `volumes/` cannot redirect a record).
    private let directory: Directory
    private let volumes: Directory
    private let masterKey: SecureBytes
    private let masterKeyPath: String
    private let identitySeed: SecureBytes
    /// The Ed25519 public key that verifies the server's releases.
    public let identity: [UInt8]

    public var certificatePath: String { root + "/tls/cert.pem" }
    public var privateKeyPath: String { root + "/tls/key.pem" }
    public var auditPath: String { root + "/audit.log" }
    public var identityPath: String { root + "/identity.pub" }
    var versionsPath: String { masterKeyPath + ".versions" }
    static let recordLabel = Array("fspf-keyserver-volume-v2".utf8) + [0]
    static let identityLabel = Array("fspf-keyserver-identity-v1".utf8) + [0]
    static let versionsLabel = Array("fspf-keyserver-versions-v1".utf8) + [0]
    static let writersRecordLabel = Array("fspf-keyserver-volume-v3".utf8) + [0]
    static let grantLabel = Array("fspf-keyserver-writer-grant-v1".utf8) + [0]
    /// HMAC key of the grants' secrets: HKDF of the master key, so it is never used for two purposes.
    private let grantKey: SecureBytes

    public struct Volume: Sendable {
        public let name: String
        public let version: UInt64
        public let tag: [UInt8]
        public let policyText: [UInt8]
        public let policy: ReleasePolicy
        /// Who may move the tag to a version they sealed; nil: nobody (read-only volume).
        public let writersText: [UInt8]?
        public let writers: ReleasePolicy?
        let sealedKey: [UInt8]
    }

    /// What a writer grant's token says once opened.
    struct Grant {
        var volume: String
        var writersDigest: [UInt8]
        var expires: Int64
        var mrEnclave: String?
        var mrSigner: String?
    }

    /// What a writer's report did to the record.
    enum Advance: Equatable {
        case recorded(version: UInt64)
        /// The record is not at the report's `from` tag: another writer's version came first.
        case stale(current: [UInt8])
        /// The writers policy changed (or was removed) since the grant was issued.
        case writersChanged
    }

    /// Creates a store: directories, master key, signing identity, an empty high-water mark,
    /// TLS key and self-signed certificate for `names`.
    public static func initialize(at root: String, names: [String], masterKeyFile: String? = nil) throws {
        guard !FileSystem.exists(root + "/master.key") && !FileSystem.exists(root + "/volumes") else {
            throw FSPFError.outputExists(path: root)
        }
        try FileSystem.makeDirectories(root)
        chmod(root, 0o700)
        let directory = try Directory.open(root)
        for d in ["volumes", "tls"] { _ = try directory.subdirectory(d, create: true, mode: 0o700) }
        var hex = Array((SecureBytes.random(count: 32).withBytes { Hex.encode($0) } + "\n").utf8)
        defer { hex.withUnsafeMutableBytes { Sodium.zero($0) } }
        let keyFile = masterKeyFile ?? root + "/master.key"
        if masterKeyFile == nil {
            try directory.writeAtomically("master.key", hex, mode: 0o600, replacing: false)
        } else {
            try FileSystem.writeAtomically(keyFile, hex, mode: 0o600, replacing: false)
        }
        let masterKey = try KeySource.file(keyFile).load()
        let seed = Ed25519.generateSeed()
        let sealedSeed = seed.withBytes { XChaCha20Poly1305.seal($0, ad: identityLabel, key: masterKey) }
        try directory.writeAtomically("identity.sealed", Array((Base64.encode(sealedSeed) + "\n").utf8), mode: 0o600, replacing: false)
        try directory.writeAtomically("identity.pub", Array((Base64.encode(Ed25519.publicKey(seed: seed)) + "\n").utf8), mode: 0o644,
                                      replacing: false)
        try writeVersions([:], to: keyFile + ".versions", masterKey: masterKey)
        try SelfSigned.generate(names: names, days: 825, in: try directory.subdirectory("tls"), keyName: "key.pem", certificateName: "cert.pem")
    }

    public init(root: String, masterKeyFile: String? = nil) throws {
        self.root = root
        guard FileSystem.isDirectory(root + "/volumes") else {
            throw FSPFError.noInput(path: root, reason: "not a key server store (run fspf keyserver init)")
        }
        directory = try Directory.open(root)
        volumes = try directory.subdirectory("volumes")
        masterKeyPath = masterKeyFile ?? root + "/master.key"
        masterKey = try KeySource.file(masterKeyPath).load()
        let sealedPath = root + "/identity.sealed"
        guard directory.status("identity.sealed") != nil else {
            throw FSPFError.noInput(path: sealedPath, reason: "no signing identity (a store made before signed releases: make a new one with fspf keyserver init)")
        }
        let text = String(decoding: try directory.openFile("identity.sealed", O_RDONLY).readAll(limit: 4096), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard let sealed = Base64.decode(text), let seed = XChaCha20Poly1305.open(sealed, ad: Self.identityLabel, key: masterKey),
              seed.count == 32 else {
            throw FSPFError.integrity(path: sealedPath, reason: "the signing identity does not open with the master key")
        }
        identitySeed = seed
        identity = Ed25519.publicKey(seed: seed)
        let master = masterKey
        grantKey = SecureBytes(count: 32) { out in
            master.withBytes { KDF.hkdf(ikm: $0, salt: [], info: Array("fspf-keyserver-writer-secret-v1".utf8), into: out) }
        }
    }

    /// Signs with the server's identity.
    func sign(_ message: [UInt8]) -> [UInt8] { Ed25519.sign(message, seed: identitySeed) }

    private func path(_ name: String) -> String { root + "/volumes/" + name + ".json" }

    /// A record without writers keeps the associated data of records made before writers existed.
    private static func aad(_ name: String, _ version: UInt64, _ tag: [UInt8], _ policyText: [UInt8], _ writersText: [UInt8]?) -> [UInt8] {
        let common = Array(name.utf8) + [0] + withUnsafeBytes(of: version.bigEndian) { Array($0) } + tag + SHA256.hash(policyText)
        guard let writersText else { return recordLabel + common }
        return writersRecordLabel + common + SHA256.hash(writersText)
    }

    /// The high-water mark: each volume's latest record version.
    func versions() throws -> [String: UInt64] {
        guard let text = try? FileSystem.readAll(versionsPath, limit: 16 << 20) else {
            throw FSPFError.noInput(path: versionsPath, reason: "the store's record versions are missing (they are kept with the master key)")
        }
        guard let sealed = Base64.decode(String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
              let plain = XChaCha20Poly1305.open(sealed, ad: Self.versionsLabel, key: masterKey),
              let map = plain.withBytes({ try? JSONDecoder().decode([String: UInt64].self, from: Data($0)) }) else {
            throw FSPFError.integrity(path: versionsPath, reason: "the record versions do not open with the master key")
        }
        return map
    }

    private static func writeVersions(_ map: [String: UInt64], to path: String, masterKey: SecureBytes) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let plain = [UInt8](try encoder.encode(map))
        let sealed = plain.withUnsafeBytes { XChaCha20Poly1305.seal($0, ad: versionsLabel, key: masterKey) }
        try FileSystem.writeAtomically(path, Array((Base64.encode(sealed) + "\n").utf8), mode: 0o600, replacing: true)
    }

    /// Adds a volume (or replaces it with `replace`): its key, its tag, who may have them and
    /// who may move the tag to a version they sealed (`writers`; nil: nobody).
    /// Each registration gets the next version; the record is written before the high-water
    /// mark, so a crash in between leaves a record newer than the mark (accepted), never older.
    public func register(volume name: String, key volumeKey: SecureBytes, tag: [UInt8], policy: ReleasePolicy,
                         writers: ReleasePolicy? = nil, replace: Bool = false) throws {
        guard BrokerProtocol.isValidVolumeName(name) else {
            throw FSPFError.usage("\(name): volume names are 1–64 of A-Z a-z 0-9 . _ - (not starting with a dot)")
        }
        try exclusively {
            guard replace || volumes.status(name + ".json") == nil else {
                throw FSPFError.usage("\(name): already registered (use --replace to change its key, tag or policy)")
            }
            let version = max(try versions()[name] ?? 0, (try? volume(name))?.version ?? 0) + 1
            try write(name, version: version, key: volumeKey, tag: tag, policyText: policy.json(), writersText: writers?.json())
        }
    }

    /// A writer's report: moves the record from `from` to `to` (the next version, same key and
    /// policies) if it is still at `from` and its writers policy is the one the grant was issued
    /// under. Compare and swap under the store's lock: of two writers that started from the
    /// same version, the first to report wins and the other learns the current tag.
    func advance(volume name: String, writersDigest: [UInt8], from: [UInt8], to: [UInt8]) throws -> Advance {
        try exclusively {
            guard let v = try volume(name) else { throw FSPFError.noInput(path: path(name), reason: "the volume is no longer registered") }
            guard let writersText = v.writersText, Sodium.equal(SHA256.hash(writersText), writersDigest) else { return .writersChanged }
            // A record may pin the short (16-byte) form of the tag, which is the full tag's prefix.
            guard v.tag == from || (from.count > v.tag.count && Array(from.prefix(v.tag.count)) == v.tag) else { return .stale(current: v.tag) }
            try write(name, version: v.version + 1, key: try key(of: v), tag: to, policyText: v.policyText, writersText: writersText)
            return .recorded(version: v.version + 1)
        }
    }

    /// One registration or report at a time: the high-water mark is read, raised and written back.
    private func exclusively<R>(_ body: () throws -> R) throws -> R {
        // A descriptor of its own each time: flock excludes other open files, not threads sharing one.
        let lock = try directory.subdirectory("volumes").descriptor
        guard flock(lock.fd, LOCK_EX) == 0 else { throw FSPFError.io(path: root + "/volumes", operation: "flock", errno: errno) }
        return try withExtendedLifetime(lock) { try body() }
    }

    /// Writes a record, then raises the high-water mark to its version.
    private func write(_ name: String, version: UInt64, key volumeKey: SecureBytes, tag: [UInt8], policyText: [UInt8], writersText: [UInt8]?) throws {
        let sealed = volumeKey.withBytes { XChaCha20Poly1305.seal($0, ad: Self.aad(name, version, tag, policyText, writersText), key: masterKey) }
        var record: [String: String] = ["volume": name, "version": String(version), "tag": Hex.encode(tag),
                                        "policy": String(decoding: policyText, as: UTF8.self), "key": Base64.encode(sealed)]
        record["writers"] = writersText.map { String(decoding: $0, as: UTF8.self) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try volumes.writeAtomically(name + ".json", [UInt8](try encoder.encode(record)) + [0x0a], mode: 0o600, replacing: true)
        var versions = try versions()
        versions[name] = version
        try Self.writeVersions(versions, to: versionsPath, masterKey: masterKey)
    }

    /// A writer grant for `volume` (which has a writers policy): the token the workload presents
    /// with each report, and the secret that authenticates its reports (HMAC key), derived from
    /// the token so that nothing needs to be remembered here.
    func grant(_ volume: Volume, claims: EnclaveClaims?, expires: Int64) -> (token: [UInt8], secret: [UInt8]) {
        var o: [String: String] = ["volume": volume.name, "writers": Hex.encode(SHA256.hash(volume.writersText ?? [])), "expires": String(expires)]
        o["mrenclave"] = claims.map { Hex.encode($0.mrEnclave) }
        o["mrsigner"] = claims.map { Hex.encode($0.mrSigner) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let plain = [UInt8]((try? encoder.encode(o)) ?? Data())
        let token = plain.withUnsafeBytes { XChaCha20Poly1305.seal($0, ad: Self.grantLabel, key: masterKey) }
        return (token, grantSecret(token))
    }

    func grantSecret(_ token: [UInt8]) -> [UInt8] { grantKey.withBytes { KDF.hmac(key: $0, token) } }

    /// The grant a token stands for; nil when this store did not issue it or it was altered.
    func openGrant(_ token: [UInt8]) -> Grant? {
        guard token.count < 4096, let plain = XChaCha20Poly1305.open(token, ad: Self.grantLabel, key: masterKey),
              let o = plain.withBytes({ try? JSONDecoder().decode([String: String].self, from: Data($0)) }),
              let volume = o["volume"], let digest = o["writers"].flatMap(Hex.decode), let expires = o["expires"].flatMap({ Int64($0) }) else {
            return nil
        }
        return Grant(volume: volume, writersDigest: digest, expires: expires, mrEnclave: o["mrenclave"], mrSigner: o["mrsigner"])
    }

    public func names() -> [String] {
        ((try? volumes.list()) ?? []).map { String(decoding: $0, as: UTF8.self) }
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// The volume's record (not its key); nil when not registered. A record older than the
    /// high-water mark (restored from a copy) is refused.
    public func volume(_ name: String) throws -> Volume? {
        guard BrokerProtocol.isValidVolumeName(name), volumes.status(name + ".json") != nil else { return nil }
        // A regular file of volumes/ only: a link or a FIFO planted there is refused, not followed or waited on.
        let bytes = try volumes.openFile(name + ".json", O_RDONLY).readAll(limit: 1 << 20)
        func damaged(_ why: String) -> FSPFError { .badInput(path: path(name), reason: why) }
        guard let o = try? JSONDecoder().decode([String: String].self, from: Data(bytes)), o["volume"] == name,
              let tag = o["tag"].flatMap(Hex.decode), KeyText.tagSizes.contains(tag.count),
              let policyText = o["policy"].map({ Array($0.utf8) }), let sealed = o["key"].flatMap(Base64.decode) else {
            throw damaged("not a volume record")
        }
        guard let version = o["version"].flatMap({ UInt64($0) }), version > 0 else {
            throw damaged("the record has no version (made before versioned records: register the volume again)")
        }
        let mark = try versions()[name] ?? 0
        guard version >= mark else {
            throw FSPFError.integrity(path: path(name), reason: "record version \(version) is older than the store's high-water mark \(mark): an older copy was put back")
        }
        let policy: ReleasePolicy
        do { policy = try ReleasePolicy(json: policyText) } catch { throw damaged("\(error)") }
        let writersText = o["writers"].map { Array($0.utf8) }
        let writers: ReleasePolicy?
        do { writers = try writersText.map { try ReleasePolicy(json: $0) } } catch { throw damaged("writers: \(error)") }
        return Volume(name: name, version: version, tag: tag, policyText: policyText, policy: policy, writersText: writersText,
                      writers: writers, sealedKey: sealed)
    }

    /// Decrypts the volume key; fails when the record was altered or the master key differs.
    public func key(of v: Volume) throws -> SecureBytes {
        guard let key = XChaCha20Poly1305.open(v.sealedKey, ad: Self.aad(v.name, v.version, v.tag, v.policyText, v.writersText), key: masterKey), key.count == 32 else {
            throw FSPFError.integrity(path: path(v.name), reason: "the key record does not open with the master key (altered version, tag, policies or key, or another master key)")
        }
        return key
    }
}
