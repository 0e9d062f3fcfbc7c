import FSPFProvisioning
import FSPFSystem
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// The server's connection handling without sockets or TLS, for fspf-fuzz's "broker" target:
/// bytes go through the same HTTP decoder limits and `HTTPHandler` as a real connection's, and
/// the work runs inline instead of on the workers.
@_spi(Fuzzing) public final class FuzzingEndpoint: Sendable {
    let service: BrokerService

    public init(store: BrokerStore, collateral: [UInt8]?, time: Int64) throws {
        var configuration = KeyBrokerServer.Configuration()
        configuration.collateral = collateral
        service = BrokerService(store: store, audit: try AuditLog(path: "/dev/null"), configuration: configuration, clock: { time })
    }

    /// One connection that sends `bytes` and closes; returns what the server wrote back.
    public func exchange(_ bytes: [UInt8]) -> [UInt8] {
        let environment = HandlerEnvironment(
            service: service, handshakeTimeout: .seconds(5), requestTimeout: .seconds(10), bodyLimit: BrokerProtocol.maxRequestBody,
            offload: { loop, work in loop.makeSucceededFuture(work()) })
        let channel = EmbeddedChannel()
        var out: [UInt8] = []
        do {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop,
                                                        limitConfiguration: KeyBrokerServer.decoderLimits)))
            try channel.pipeline.syncOperations.addHandler(HTTPResponseEncoder())
            try channel.pipeline.syncOperations.addHandler(
                HTTPHandler(peer: Peer(ipv4: [127, 0, 0, 1]), address: "fuzz", environment: environment, tls: false))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            _ = try? channel.writeInbound(channel.allocator.buffer(bytes: bytes))
            channel.embeddedEventLoop.run()
            while var buffer = try channel.readOutbound(as: ByteBuffer.self) { out += buffer.readBytes(length: buffer.readableBytes) ?? [] }
        } catch {}
        _ = try? channel.finish()
        return out
    }
}
