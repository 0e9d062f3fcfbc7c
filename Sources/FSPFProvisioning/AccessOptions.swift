import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import Glibc

/// How a process gets a volume's key and the tag to pin: the options fspf-mount takes on its
/// command line and libfspf takes as "name=value" strings, under the same names.
public struct AccessOptions: Sendable, Equatable {
    public enum Evidence: String, CaseIterable, Sendable { case sgx, maa, simulated }

    public var keyFile: String?
    public var keyEnv: String?
    public var keyFd: Int32?
    public var keyStdin = false
    public var keyUrl: String?
    public var allowRemoteKeyUrl = false
    public var keyUrlCa: String?
    public var keyTimeout: Double = 10
    public var keyBroker: String?
    public var evidence: Evidence?
    public var volumeName: String?
    public var brokerCa: String?
    public var brokerIdentity: String?
    public var attestationDir = "/dev/attestation"
    public var collateral: String?
    public var maaAttester: String?
    public var attesterKey: String?
    public var simulatedMrenclave: String?
    public var tag: String?
    public var tagEnv: String?
    public var noTagCheck = false
    public var acceptV1 = false

    public init() {}

    /// The names `set` accepts: fspf-mount's long options without the dashes.
    public static let names = [
        "key-file", "key-env", "key-fd", "key-url", "allow-remote-key-url", "key-url-ca", "key-timeout", "key-broker", "evidence", "volume-name", "broker-ca",
        "broker-identity",        "attestation-dir", "collateral", "maa-attester", "attester-key", "simulated-mrenclave", "tag", "tag-env",
        "no-tag-check", "accept-v1",
    ]

    /// Sets one option by its name ("key-file", "tag", …); flags take "true" or "false".
    public mutating func set(_ name: String, _ value: String) throws {
        func flag() throws -> Bool {
            switch value {
            case "true", "1", "yes", "": return true
            case "false", "0", "no": return false
            default: throw FSPFError.usage("option \(name): expected true or false, got '\(value)'")
            }
        }
        switch name {
        case "key-file": keyFile = value
        case "key-env": keyEnv = value
        case "key-fd":
            guard let fd = Int32(value), fd >= 0 else { throw FSPFError.usage("option key-fd: not a file descriptor: '\(value)'") }
            keyFd = fd
        case "key-url": keyUrl = value
        case "allow-remote-key-url": allowRemoteKeyUrl = try flag()
        case "key-url-ca": keyUrlCa = value
        case "key-timeout":
            guard let t = Double(value), t > 0, t <= 3600 else { throw FSPFError.usage("option key-timeout: seconds, 0 < t <= 3600") }
            keyTimeout = t
        case "key-broker": keyBroker = value
        case "evidence":
            guard let e = Evidence(rawValue: value) else { throw FSPFError.usage("option evidence: sgx, maa or simulated, not '\(value)'") }
            evidence = e
        case "volume-name": volumeName = value
        case "broker-ca": brokerCa = value
        case "broker-identity": brokerIdentity = value
        case "attestation-dir": attestationDir = value
        case "collateral": collateral = value
        case "maa-attester": maaAttester = value
        case "attester-key": attesterKey = value
        case "simulated-mrenclave": simulatedMrenclave = value
        case "tag": tag = value
        case "tag-env": tagEnv = value
        case "no-tag-check": noTagCheck = try flag()
        case "accept-v1": acceptV1 = try flag()
        default:
            throw FSPFError.usage("unknown option '\(name)' (known: \(AccessOptions.names.joined(separator: ", ")))")
        }
    }

    /// Exactly one key source, or a usage error naming the ones given.
    public func keySource(volume: String) throws -> KeySource {
        let chosen = try KeySource.choose([
            ("--key-file", keyFile.map(KeySource.file)), ("--key-env", keyEnv.map(KeySource.environment)),
            ("--key-fd", keyFd.map(KeySource.descriptor)), ("--key-stdin", keyStdin ? .standardInput : nil),
            ("--key-url", try keyURL().map(KeySource.url)), ("--key-broker", try brokerRequest(volume: volume).map(KeySource.broker))])
        guard let chosen else {
            throw FSPFError.usage("a key source is needed: --key-file, --key-env, --key-fd, --key-stdin, --key-url or --key-broker")
        }
        return chosen
    }

    func keyURL() throws -> KeyURL? {
        guard let keyUrl else {
            if allowRemoteKeyUrl || keyUrlCa != nil { throw FSPFError.usage("--allow-remote-key-url and --key-url-ca need --key-url") }
            return nil
        }
        return try KeyURL(keyUrl, allowRemote: allowRemoteKeyUrl, ca: keyUrlCa)
    }

    func brokerRequest(volume: String) throws -> BrokerRequest? {
        let given: [(String, Bool, Evidence?)] = [
            ("--collateral", collateral != nil, .sgx), ("--maa-attester", maaAttester != nil, .maa),
            ("--attester-key", attesterKey != nil, .simulated), ("--simulated-mrenclave", simulatedMrenclave != nil, .simulated),
            ("--evidence", evidence != nil, nil), ("--volume-name", volumeName != nil, nil), ("--broker-ca", brokerCa != nil, nil),
            ("--broker-identity", brokerIdentity != nil, nil)]
        guard let url = keyBroker else {
            if let stray = given.first(where: { $0.1 }) { throw FSPFError.usage("\(stray.0) needs --key-broker") }
            return nil
        }
        guard let evidence else { throw FSPFError.usage("--key-broker needs --evidence sgx, maa or simulated") }
        guard let brokerIdentity else {
            throw FSPFError.usage("--key-broker needs --broker-identity: the key server's public key (STORE/identity.pub), which signs every release")
        }
        let identity = try Self.identity(brokerIdentity)
        if let stray = given.first(where: { $0.1 && $0.2 != nil && $0.2 != evidence }) {
            throw FSPFError.usage("\(stray.0) does not apply to --evidence \(evidence.rawValue)")
        }
        let attester: Attester
        switch evidence {
        case .sgx: attester = .gramine(directory: attestationDir, collateral: collateral)
        case .maa:
            guard let maaAttester else { throw FSPFError.usage("--evidence maa needs --maa-attester COMMAND") }
            attester = .maa(command: maaAttester)
        case .simulated:
            guard let attesterKey else { throw FSPFError.usage("--evidence simulated needs --attester-key FILE") }
            var measurement: [UInt8]?
            if let hex = simulatedMrenclave {
                guard let m = Hex.decode(hex), m.count == 32 else { throw FSPFError.usage("--simulated-mrenclave: 64 hex digits") }
                measurement = m
            }
            attester = .simulated(keyFile: attesterKey, mrEnclave: measurement)
        }
        let parts = volume.split(separator: "/")
        let name = volumeName ?? String((parts.last?.hasSuffix(".fspf") == true ? parts.dropLast().last : parts.last) ?? "")
        return BrokerRequest(url: url, volume: name, caFile: brokerCa, identity: identity, attester: attester)
    }

    /// A key server identity: its Ed25519 public key in base64, or a file holding it.
    static func identity(_ text: String) throws -> [UInt8] {
        if let key = Base64.decode(text), key.count == 32 { return key }
        guard text.contains("/") || FileSystem.exists(text) else {
            throw FSPFError.usage("--broker-identity \(text): neither a base64 Ed25519 public key nor a file")
        }
        let content = String(decoding: try FileSystem.readAll(text, limit: 4096), as: UTF8.self).trimmingWhitespace
        guard let key = Base64.decode(content), key.count == 32 else {
            throw FSPFError.badInput(path: text, reason: "not a key server identity (a base64 Ed25519 public key, as in STORE/identity.pub)")
        }
        return key
    }

    /// The tag given by --tag or --tag-env, if any.
    public func givenTag() throws -> [UInt8]? { try expectedTag(hex: tag, environment: tagEnv) }

    /// The tag to pin once the key source delivered: the given one or, without one, the key
    /// resource's; the two must agree. Nil only with --no-tag-check.
    public static func pin(given: [UInt8]?, material: KeySource.Material, source: String, skipTagCheck: Bool) throws -> [UInt8]? {
        if let fromSource = material.tag, let given, !Sodium.equal(fromSource, given) {
            throw FSPFError.integrity(path: source, reason: "the tag from the key source differs from --tag")
        }
        guard let pinned = given ?? material.tag else {
            guard skipTagCheck else {
                throw FSPFError.usage("an expected tag is needed (--tag, --tag-env, or a key resource with a tag); "
                                      + "--no-tag-check opens without rollback protection")
            }
            return nil
        }
        return pinned
    }

    /// Loads the key for `volume` and decides the tag to pin.
    public func load(volume: String) throws -> (key: SecureBytes, tag: [UInt8]?) {
        let given = try givenTag()
        let source = try keySource(volume: volume)
        let material = try source.loadMaterial(timeout: keyTimeout)
        return (material.key, try AccessOptions.pin(given: given, material: material, source: source.name, skipTagCheck: noTagCheck))
    }
}
