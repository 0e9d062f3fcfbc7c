import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning
import Foundation
import Glibc

/// The HTTPS key broker: issues nonces, appraises evidence against each volume's policy, and
/// releases the key and tag sealed to the requester's ephemeral key. One thread per connection,
/// at most `maxConnections` at once; every connection has a deadline, every body a size limit.
public final class KeyBrokerServer: @unchecked Sendable {
    /// Each connection's thread's stack (the fuzz harness runs its targets on one this size).
    public static let connectionStackSize = 1 << 20

    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port: UInt16 = 8443
        /// Collateral used for SGX quotes that arrive without their own.
        public var collateral: [UInt8]?
        public var nonceLifetime: Double = 120
        public var maxOutstandingNonces = 10_000
        public var maxConnections = 64
        public var connectionTimeout: Double = 10
        public init() {}
    }

    let store: BrokerStore
    let tls: TLSContext
    let audit: AuditLog
    let configuration: Configuration
    let clock: @Sendable () -> Int64
    private var listener: Int32 = -1
    private let stopped = Locked(false)
    private let nonces = Locked<[String: (volume: String, expires: Double)]>([:])
    private let active = Locked<Int>(0)

    public init(store: BrokerStore, configuration: Configuration, clock: @escaping @Sendable () -> Int64 = UTCTime.now) throws {
        self.store = store
        self.configuration = configuration
        self.clock = clock
        do { tls = try TLSContext(certificate: store.certificatePath, privateKey: store.privateKeyPath) } catch {
            throw FSPFError.badInput(path: store.root + "/tls", reason: "\(error)")
        }
        audit = try AuditLog(path: store.auditPath)
    }

    deinit { if listener >= 0 { close(listener) } }

    /// Binds and listens; returns the port (useful with port 0).
    public func bind() throws -> UInt16 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(configuration.host, String(configuration.port), &hints, &list) == 0, let ai = list else {
            throw FSPFError.usage("\(configuration.host): not a numeric IP address to listen on")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FSPFError.io(path: "socket", operation: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0, listen(fd, 128) == 0 else {
            let e = errno
            close(fd)
            throw FSPFError.io(path: "\(configuration.host):\(configuration.port)", operation: "listening", errno: e)
        }
        listener = fd
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return withUnsafeBytes(of: &address) { raw in
            UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self)) // sin_port / sin6_port
        }
    }

    /// Accepts connections until `stop()`.
    public func serve() {
        while !stopped.withLock({ $0 }) {
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener, $0, &length) }
            }
            guard fd >= 0 else {
                // Out of descriptors or a reset peer: back off instead of spinning.
                if errno != EINTR { usleep(10_000) }
                continue
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let peer = Self.describe(&address)
            let admitted = active.withLock { n -> Bool in
                guard n < configuration.maxConnections else { return false }
                n += 1
                return true
            }
            guard admitted else { close(fd); continue }
            let thread = Thread { [self] in
                defer { active.withLock { $0 -= 1 } }
                handle(fd: fd, peer: peer)
            }
            thread.stackSize = KeyBrokerServer.connectionStackSize
            thread.start()
        }
        // Let requests in progress answer (each is bounded by its I/O timeouts).
        for _ in 0..<500 where active.withLock({ $0 }) > 0 { usleep(10_000) }
    }

    /// Stops accepting; requests in progress finish.
    public func stop() {
        stopped.withLock { $0 = true }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    static func describe(_ address: inout sockaddr_storage) -> String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST)), service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, socklen_t(MemoryLayout<sockaddr_storage>.size), &host, socklen_t(host.count), &service,
                            socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return "unknown" }
        func text(_ c: [CChar]) -> String { String(decoding: c.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return text(host) + ":" + text(service)
    }

    // MARK: - One connection

    struct Reply {
        var status: Int
        var body: [UInt8]
        var entry: AuditLog.Entry
    }

    private func handle(fd: Int32, peer: String) {
        let connection = Connection.adopt(fd: fd, deadline: Deadline(seconds: configuration.connectionTimeout))
        do {
            try connection.startTLS(tls)
        } catch {
            return // not TLS, or gave up: nothing to answer on
        }
        var entry = AuditLog.Entry(time: UTCTime.format(clock()), peer: peer, request: "?", decision: "rejected", status: 400, reason: "")
        let reply: Reply
        do {
            let request = try HTTPRequest.read(from: connection, bodyLimit: BrokerProtocol.maxRequestBody)
            entry.request = "\(request.method) \(request.path)"
            reply = route(request, entry)
        } catch let e as HTTPRequest.Failure {
            entry.status = e.status
            entry.reason = e.reason
            reply = Reply(status: e.status, body: Self.error(e.reason), entry: entry)
        } catch {
            return // connection failed while reading: no one to answer
        }
        audit.record(reply.entry)
        try? connection.send(HTTPRequest.response(status: reply.status, body: reply.body))
    }

    static func error(_ reason: String) -> [UInt8] {
        [UInt8]((try? JSONEncoder().encode(BrokerProtocol.ErrorResponse(error: reason))) ?? Data())
    }

    private func route(_ request: HTTPRequest, _ base: AuditLog.Entry) -> Reply {
        var entry = base
        func answer(_ status: Int, _ decision: String, _ reason: String, body: [UInt8]? = nil) -> Reply {
            entry.status = status
            entry.decision = decision
            entry.reason = reason
            return Reply(status: status, body: body ?? Self.error(reason), entry: entry)
        }
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false)
        if request.path == "/v1/health" {
            return request.method == "GET" ? answer(200, "served", "health", body: Array(#"{"status":"ok"}"#.utf8))
                                           : answer(405, "rejected", "use GET")
        }
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "v1", parts[2] == "volumes", parts[4] == "nonce" || parts[4] == "release" else {
            return answer(404, "rejected", "no such endpoint (POST /v1/volumes/<name>/nonce or /release)")
        }
        guard request.method == "POST" else { return answer(405, "rejected", "use POST") }
        let name = String(parts[2 + 1])
        entry.volume = String(name.prefix(80))
        let volume: BrokerStore.Volume
        do {
            guard let v = try store.volume(name) else { return answer(404, "refused", "unknown volume") }
            volume = v
        } catch {
            return answer(500, "refused", "volume record unusable: \(error)")
        }
        if parts[4] == "nonce" { return issueNonce(volume: volume.name, answer) }

        guard let release = try? JSONDecoder().decode(BrokerProtocol.ReleaseRequest.self, from: Data(request.body)) else {
            return answer(400, "rejected", "malformed release request")
        }
        entry.evidence = String(release.evidence.type.prefix(16))
        // Single use: the nonce is gone from here on, whatever the outcome.
        let issued = nonces.withLock { $0.removeValue(forKey: release.nonce) }
        guard let issued, issued.volume == volume.name, issued.expires >= Deadline.nowSeconds, let nonce = Base64.decode(release.nonce) else {
            return answer(409, "refused", "nonce unknown, expired, for another volume or already used")
        }
        guard let publicKey = Base64.decode(release.public_key), publicKey.count == 32 else {
            return answer(400, "rejected", "public_key must be a base64 X25519 public key")
        }
        let evidence: Evidence
        do { evidence = try release.evidence.decoded() } catch { return answer(400, "rejected", "\(error)") }
        let appraisal = Appraiser(time: clock(), collateral: configuration.collateral).appraise(
            evidence, policy: volume.policy, reportData: Binding.reportData(nonce: nonce, publicKey: publicKey),
            runtimeData: Binding.runtimeData(nonce: nonce, publicKey: publicKey))
        entry.mrenclave = appraisal.claims.map { Hex.encode($0.mrEnclave) }
        entry.mrsigner = appraisal.claims.map { Hex.encode($0.mrSigner) }
        guard appraisal.accepted else { return answer(403, "refused", appraisal.reason) }
        do {
            let sealed = try BrokerProtocol.seal(volume: volume.name, key: try store.key(of: volume), tag: volume.tag, to: publicKey)
            let body = try JSONEncoder().encode(BrokerProtocol.ReleaseResponse(sealed: Base64.encode(sealed)))
            return answer(200, "released", "all checks passed", body: [UInt8](body))
        } catch {
            return answer(500, "refused", "\(error)")
        }
    }

    private func issueNonce(volume: String, _ answer: (Int, String, String, [UInt8]?) -> Reply) -> Reply {
        let nonce = Base64.encode(Sodium.randomBytes(BrokerProtocol.nonceSize))
        let now = Deadline.nowSeconds
        let admitted = nonces.withLock { table -> Bool in
            if table.count >= configuration.maxOutstandingNonces { table = table.filter { $0.value.expires >= now } }
            guard table.count < configuration.maxOutstandingNonces else { return false }
            table[nonce] = (volume, now + configuration.nonceLifetime)
            return true
        }
        guard admitted else { return answer(503, "refused", "too many outstanding nonces; retry later", nil) }
        let body = try? JSONEncoder().encode(BrokerProtocol.NonceResponse(nonce: nonce, expires_in: Int(configuration.nonceLifetime)))
        return answer(200, "served", "nonce issued", body.map { [UInt8]($0) })
    }
}
