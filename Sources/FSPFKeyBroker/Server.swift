import CLinux
import FSPFAttestation
import FSPFCrypto
import FSPFProvisioning
import FSPFSystem
import Foundation
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The HTTPS key broker on SwiftNIO: connections are event-driven (an idle or slow client costs a
/// socket and a few kilobytes, not a thread), each has a handshake and a request deadline, each
/// peer a share of the connections, every request a bounded head and body; nonces cost no
/// table (`Nonces`). What a request asks for is worked out on a pool of worker threads (`BrokerService`),
/// so that signature checks and audit syncs never stall the event loops.
public final class KeyBrokerServer: @unchecked Sendable {
    /// The least stack a worker thread may have (checked at start); the fuzz harness runs its
    /// targets on a thread of exactly this size, so whatever fits there fits the server.
    public static let minimumStackSize = 1 << 20

    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port: UInt16 = 8443
        /// Collateral for SGX quotes; it takes precedence over collateral in a request.
        public var collateral: [UInt8]?
        public var nonceLifetime: Double = 120
        /// Redeemed nonces remembered until they expire (Nonces: issuing one stores nothing).
        public var maxRedeemedNonces = 100_000
        /// How long a writer grant (given with a release to a workload that may write) stays
        /// usable for reporting sealed versions: a job that runs longer mounts again.
        public var writerGrantLifetime: Int64 = 7 * 24 * 3600
        /// Open connections at once, in all (lowered to what the descriptor limit allows) and per peer.
        public var maxConnections = 4096
        public var maxConnectionsPerPeer = 64
        public var handshakeTimeout: Double = 5
        public var requestTimeout: Double = 10
        /// Requests waiting for a worker before new ones get 503 at once.
        public var maxPendingWork = 1024
        public var eventLoops = System.coreCount
        public var workers = max(2, System.coreCount)
        public init() {}
    }

    let configuration: Configuration
    let service: BrokerService
    private let group: MultiThreadedEventLoopGroup
    private let pool: NIOThreadPool
    private let tls: NIOSSLContext
    private let channel = Locked<(any Channel)?>(nil)
    private let connections: ConnectionQuota
    private let pending = Locked(0)
    private let stopped = Locked(false)

    public init(store: BrokerStore, configuration: Configuration, clock: @escaping @Sendable () -> Int64 = UTCTime.now) throws {
        self.configuration = configuration
        do {
            var c = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(store.certificatePath).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: store.privateKeyPath, format: .pem)))
            c.minimumTLSVersion = .tlsv12
            tls = try NIOSSLContext(configuration: c)
        } catch {
            throw FSPFError.badInput(path: store.root + "/tls", reason: "\(error)")
        }
        service = BrokerService(store: store, audit: try AuditLog(path: store.auditPath), configuration: configuration, clock: clock)
        connections = ConnectionQuota(total: min(configuration.maxConnections, FileSystem.raiseDescriptorLimit() - 64),
                                      perPeer: configuration.maxConnectionsPerPeer)
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoops))
        pool = NIOThreadPool(numberOfThreads: max(1, configuration.workers))
        pool.start()
    }

    deinit { shutDown() }

    /// Binds and listens; returns the port (useful with port 0).
    public func bind() throws -> UInt16 {
        try checkWorkerStack()
        let environment = HandlerEnvironment(
            service: service, handshakeTimeout: .nanoseconds(Int64(configuration.handshakeTimeout * 1e9)),
            requestTimeout: .nanoseconds(Int64(configuration.requestTimeout * 1e9)), bodyLimit: BrokerProtocol.maxRequestBody,
            offload: { [pool, pending, configuration] loop, work in
                let admitted = pending.withLock { n -> Bool in
                    guard n < configuration.maxPendingWork else { return false }
                    n += 1
                    return true
                }
                guard admitted else { return nil }
                let future = pool.runIfActive(eventLoop: loop, work)
                future.whenComplete { _ in pending.withLock { $0 -= 1 } }
                return future
            })
        let tls = self.tls, connections = self.connections, service = self.service, limits = Self.decoderLimits
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let (peer, address) = Self.peer(of: channel.remoteAddress)
                guard connections.admit(peer) else {
                    if let count = connections.refused(peer, now: Deadline.nowSeconds) {
                        _ = environment.offload(channel.eventLoop) {
                            service.dropped(address: address, reason: "over the connection quota (\(count) refused from \(peer) in 10 s)")
                            return nil
                        }
                    }
                    return channel.eventLoop.makeFailedFuture(ConnectionQuota.Exceeded())
                }
                channel.closeFuture.whenComplete { _ in connections.release(peer) }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: tls))
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes,
                                                                                informationalResponseStrategy: .drop,
                                                                                limitConfiguration: limits)))
                    try sync.addHandler(HTTPResponseEncoder())
                    try sync.addHandler(HTTPHandler(peer: peer, address: address, environment: environment))
                }
            }
        let server: any Channel
        do {
            server = try bootstrap.bind(host: configuration.host, port: Int(configuration.port)).wait()
        } catch let e as IOError {
            throw FSPFError.io(path: "\(configuration.host):\(configuration.port)", operation: "listening", errno: e.errnoCode)
        } catch {
            throw FSPFError.usage("\(configuration.host): not an IP address to listen on (\(error))")
        }
        channel.withLock { $0 = server }
        return UInt16(server.localAddress?.port ?? 0)
    }

    /// Heads of at most 16 KiB in at most 100 fields.
    static let decoderLimits = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = HTTPRequest.headLimit
        limits.maxHeaderFieldSize = HTTPRequest.headLimit
        limits.maxHeaderFieldCount = 100
        return limits
    }()

    /// Serves until `stop()`, then lets requests in progress answer (each is bounded by its deadlines).
    public func serve() {
        guard let server = channel.withLock({ $0 }) else { return }
        try? server.closeFuture.wait()
        for _ in 0..<Int(configuration.requestTimeout * 100) where connections.open > 0 { usleep(10_000) }
        shutDown()
    }

    /// Stops accepting; requests in progress finish.
    public func stop() {
        channel.withLock { $0 }?.close(promise: nil)
    }

    private func shutDown() {
        guard !stopped.withLock({ s in defer { s = true }; return s }) else { return }
        channel.withLock { $0 }?.close(promise: nil)
        try? group.syncShutdownGracefully()
        try? pool.syncShutdownGracefully()
    }

    /// The workers' stack, measured on one of them: at least `minimumStackSize` or no start.
    private func checkWorkerStack() throws {
        let size = try pool.runIfActive(eventLoop: group.next()) { fspf_thread_stack_size() }.wait()
        guard size >= Self.minimumStackSize else {
            throw FSPFError.usage("worker threads get a \(size >> 10) KiB stack (ulimit -s); the key server needs at least \(Self.minimumStackSize >> 10) KiB")
        }
    }

    /// The quota key and the audited address of a connection's remote end.
    static func peer(of address: SocketAddress?) -> (Peer, String) {
        switch address {
        case .v4(let a)?:
            let bytes = withUnsafeBytes(of: a.address.sin_addr.s_addr) { Array($0) }
            return (Peer(ipv4: bytes), "\(address!.ipAddress ?? "?"):\(address!.port ?? 0)")
        case .v6(let a)?:
            let bytes = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
            return (Peer(ipv6: bytes), "[\(address!.ipAddress ?? "?")]:\(address!.port ?? 0)")
        default:
            return (Peer(ipv4: [0, 0, 0, 0]), "unknown")
        }
    }
}

/// Open connections, in all and per peer; refusals counted per peer so that a flood is audited
/// as one line per peer every ten seconds, not one per connection.
final class ConnectionQuota: Sendable {
    struct Exceeded: Error {}
    private struct State {
        var open = PeerCounts()
        var total = 0
        var refusals: [Peer: (since: Double, count: Int)] = [:]
    }
    private let state = Locked(State())
    private let total: Int
    private let perPeer: Int

    init(total: Int, perPeer: Int) {
        self.total = max(1, total)
        self.perPeer = max(1, perPeer)
    }

    var open: Int { state.withLock { $0.total } }

    func admit(_ peer: Peer) -> Bool {
        state.withLock { s in
            guard s.total < total, s.open[peer] < perPeer else { return false }
            s.total += 1
            s.open.add(peer)
            return true
        }
    }

    func release(_ peer: Peer) {
        state.withLock { s in
            s.total -= 1
            s.open.remove(peer)
        }
    }

    /// Counts a refused connection; returns the count to audit when this peer's line is due.
    func refused(_ peer: Peer, now: Double) -> Int? {
        state.withLock { s in
            var r = s.refusals[peer] ?? (since: now, count: 0)
            r.count += 1
            if r.count == 1 || now - r.since >= 10 {
                s.refusals[peer] = (since: now, count: 0)
                if s.refusals.count > 10_000 { s.refusals = s.refusals.filter { now - $0.value.since < 10 } }
                return r.count
            }
            s.refusals[peer] = r
            return nil
        }
    }
}
