import FSPFCrypto
import FSPFSystem
import Glibc

/// Where a key comes from. The key itself is never accepted on a command line, where any
/// user could read it in /proc/<pid>/cmdline.
public enum KeySource: Sendable, Equatable {
    case file(String)
    case environment(String)
    case standardInput
    case descriptor(Int32)
    /// HTTP GET to a local attestation agent (e.g. the confidential-containers data hub at
    /// http://127.0.0.1:8006/cdh/resource/<repo>/<type>/<tag>).
    case url(KeyURL)
    /// An attested release from the key broker (https), with evidence from the runtime.
    case broker(BrokerRequest)

    /// The key and, when the source carries one (a JSON key resource), the expected tag.
    public struct Material: Sendable {
        public var key: SecureBytes
        public var tag: [UInt8]?
        /// From the key broker, when this workload may also write the volume.
        public var writer: BrokerWriter?
        public init(key: SecureBytes, tag: [UInt8]?) { self.key = key; self.tag = tag }
    }

    public var name: String {
        switch self {
        case .file(let p): return p
        case .environment(let n): return "$" + n
        case .standardInput: return "standard input"
        case .descriptor(let fd): return "descriptor \(fd)"
        case .url(let u): return u.url
        case .broker(let b): return "\(b.url) (volume \(b.volume))"
        }
    }

    public func load(timeout: Double = 10) throws -> SecureBytes { try loadMaterial(timeout: timeout).key }

    /// Loads and parses the key. An environment variable is removed once read; the raw
    /// bytes are wiped after parsing.
    public func loadMaterial(timeout: Double = 10) throws -> Material {
        var bytes: [UInt8]
        switch self {
        case .file(let path):
            guard FileSystem.exists(path) else { throw FSPFError.noInput(path: path, reason: "key file does not exist") }
            bytes = try FileSystem.readAll(path, limit: 64 << 10)
        case .environment(let name):
            guard let value = getenv(name) else {
                throw FSPFError.keyUnavailable(source: name, reason: "environment variable is not set")
            }
            bytes = Array(String(cString: value).utf8)
            KeySource.erase(name, value: value)
        case .standardInput:
            bytes = try KeySource.readAll(fd: 0, name: name)
        case .descriptor(let fd):
            bytes = try KeySource.readAll(fd: fd, name: name)
            close(fd)
        case .url(let u):
            let tls: TLSContext?
            do { tls = u.url.hasPrefix("https://") ? try TLSContext(trusting: u.ca) : nil } catch { throw FSPFError.usage("\(error)") }
            bytes = try HTTPClient.get(u.url, tls: tls, timeout: timeout, limit: 64 << 10)
        case .broker(let request):
            return try request.release(timeout: timeout)
        }
        defer { bytes.withUnsafeMutableBytes { Sodium.zero($0) } }
        do {
            return try KeyResource.parse(&bytes, source: name)
        } catch let e as FSPFError {
            // An agent that answers something other than a key is a key-source failure.
            if case .url = self, case .usage(let why) = e {
                throw FSPFError.keyUnavailable(source: name, reason: String(why.dropFirst(name.count + 2)))
            }
            throw e
        }
    }

    /// Removes NAME from the environment and wipes "NAME=value" where it lay, so neither the key
    /// nor the variable shows in /proc/<pid>/environ (which shows the original block).
    static func erase(_ name: String, value: UnsafeMutablePointer<CChar>) {
        let valueLength = strlen(value)
        let prefix = Array((name + "=").utf8)
        let start = UnsafeMutableRawPointer(value) - prefix.count
        let framed = prefix.withUnsafeBytes { memcmp(start, $0.baseAddress!, prefix.count) == 0 }
        unsetenv(name)
        if framed { memset(start, 0, prefix.count + valueLength) } else { memset(value, 0, valueLength) }
    }

    private static func readAll(fd: Int32, name: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 512)
        defer { buf.withUnsafeMutableBytes { Sodium.zero($0) } }
        while out.count <= 64 << 10 {
            let n = try syscall("read", path: name) { buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return out
    }
}

/// Parses what a key source delivers: 32 raw bytes, 64 hex digits, or a JSON object with the
/// key (and optionally the tag) in hex: {"key": "…", "tag": "…"} (also fspf_key/fspf_tag as in
/// SCONE policies, and SCONE_FSPF_KEY/SCONE_FSPF_TAG).
public enum KeyResource {
    static let keyNames = ["key", "fspf_key", "SCONE_FSPF_KEY"]
    static let tagNames = ["tag", "fspf_tag", "SCONE_FSPF_TAG"]

    public static func parse(_ bytes: inout [UInt8], source: String) throws -> KeySource.Material {
        let trimmed = bytes.drop { $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }
        if trimmed.first == UInt8(ascii: "{") {
            var fields = try JSONObject.parseStrings(Array(trimmed), source: source)
            defer { for k in fields.keys { fields[k] = nil } }
            guard let keyHex = keyNames.lazy.compactMap({ fields[$0] }).first else {
                throw FSPFError.keyUnavailable(source: source, reason: "JSON key resource has no \"key\" field")
            }
            var keyBytes = Array(keyHex.utf8)
            let key = try KeyText.parseKey(&keyBytes, source: source)
            let tag = try tagNames.lazy.compactMap({ fields[$0] }).first.map { try parseTag($0, source: source + " tag") }
            return KeySource.Material(key: key, tag: tag)
        }
        return KeySource.Material(key: try KeyText.parseKey(&bytes, source: source), tag: nil)
    }
}

/// A deliberately small JSON reader for flat objects of string values (key resources):
/// strict, bounded, and it never echoes input in errors.
enum JSONObject {
    static func parseStrings(_ bytes: [UInt8], source: String) throws -> [String: String] {
        var i = 0
        func bad() -> FSPFError { .keyUnavailable(source: source, reason: "malformed JSON key resource") }
        func skip() { while i < bytes.count, [0x20, 0x0a, 0x0d, 0x09].contains(bytes[i]) { i += 1 } }
        func expect(_ c: UInt8) throws { skip(); guard i < bytes.count, bytes[i] == c else { throw bad() }; i += 1 }
        func string() throws -> String {
            try expect(UInt8(ascii: "\""))
            var out: [UInt8] = []
            while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                if bytes[i] == UInt8(ascii: "\\") {
                    i += 1
                    guard i < bytes.count else { throw bad() }
                    switch bytes[i] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(bytes[i])
                    case UInt8(ascii: "n"): out.append(0x0a)
                    default: throw bad()
                    }
                } else {
                    guard bytes[i] >= 0x20 else { throw bad() }
                    out.append(bytes[i])
                }
                i += 1
            }
            guard i < bytes.count else { throw bad() }
            i += 1
            guard let s = String(validating: out, as: UTF8.self) else { throw bad() }
            return s
        }
        func skipValue() throws {
            skip()
            guard i < bytes.count else { throw bad() }
            if bytes[i] == UInt8(ascii: "\"") { _ = try string(); return }
            // Numbers, true/false/null: skip to the next delimiter. Nested values are refused.
            guard bytes[i] != UInt8(ascii: "{"), bytes[i] != UInt8(ascii: "[") else { throw bad() }
            while i < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}")].contains(bytes[i]) { i += 1 }
        }
        var result: [String: String] = [:]
        try expect(UInt8(ascii: "{"))
        skip()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1 } else {
            while true {
                let k = try string()
                try expect(UInt8(ascii: ":"))
                skip()
                if i < bytes.count, bytes[i] == UInt8(ascii: "\"") { result[k] = try string() } else { try skipValue() }
                skip()
                guard i < bytes.count else { throw bad() }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; break }
                throw bad()
            }
        }
        skip()
        guard i == bytes.count else { throw bad() }
        return result
    }
}

/// Writes a key to a file readable by its owner only: a new one, or with `replacing` over what
/// is at `path`; `flag` is the option that replaces (named when the file exists).
public func writeKeyFile(_ path: String, _ key: SecureBytes, replacing: Bool, flag: String) throws {
    var text = Array((key.hex + "\n").utf8)
    defer { text.withUnsafeMutableBytes { Sodium.zero($0) } }
    try FileSystem.writeForUser(path, text, mode: 0o600, replacing: replacing, flag: flag)
}

/// A key agent's URL. The key travels in its answer, so by default only an agent on this machine
/// (a loopback address, as the confidential-containers data hub's 127.0.0.1:8006) may be asked:
/// a typo or a misconfiguration must not send a key request, and get a key, over the network in
/// clear. A remote agent needs `allowRemote`, https:// and a pinned CA.
public struct KeyURL: Sendable, Equatable {
    public let url: String
    public let ca: String?

    public init(_ url: String, allowRemote: Bool = false, ca: String? = nil) throws {
        let target = try HTTPClient.parse(url, allowTLS: true)
        if !Self.isLoopback(target.host) {
            guard allowRemote else {
                throw FSPFError.usage("--key-url \(url): \(target.host) is not this machine (a loopback address); a remote key agent needs --allow-remote-key-url, https:// and --key-url-ca")
            }
            guard target.tls, ca != nil else {
                throw FSPFError.usage("--key-url \(url): a remote key agent is reached over https:// with its CA pinned (--key-url-ca)")
            }
        }
        guard target.tls || ca == nil else { throw FSPFError.usage("--key-url-ca applies to https:// URLs only") }
        self.url = url
        self.ca = ca
    }

    /// A literal loopback address (127.0.0.0/8, ::1, ::ffff:127.x) or "localhost"; names are not
    /// resolved here, so that no resolver can turn a local-looking URL into a remote one.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
        let b = withUnsafeBytes(of: v6) { Array($0) }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }
        return b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff && b[12] == 127
    }
}
