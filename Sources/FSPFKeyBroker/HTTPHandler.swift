import NIOCore
import NIOHTTP1
import NIOTLS

/// What a connection's handler needs from the server.
struct HandlerEnvironment: Sendable {
    var service: BrokerService
    var handshakeTimeout: TimeAmount
    var requestTimeout: TimeAmount
    var bodyLimit: Int
    /// Runs `work` off the event loop (it reads files, verifies signatures and syncs the audit
    /// log); the future completes on `loop`. nil when too much work is already waiting.
    var offload: @Sendable (_ loop: any EventLoop, _ work: @escaping @Sendable () -> BrokerService.Reply?) -> EventLoopFuture<BrokerService.Reply?>?
}

/// One connection, one request: the TLS handshake within its deadline, the request within its
/// own, checked against the limits as its head arrives (before any body is read), answered,
/// closed. Every outcome but a silent disconnect is audited.
final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State { case handshaking, receiving, answering }
    private var state: State
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var handshakeTimer: Scheduled<Void>?
    private var requestTimer: Scheduled<Void>?
    private let peer: Peer
    private let address: String
    private let environment: HandlerEnvironment

    init(peer: Peer, address: String, environment: HandlerEnvironment, tls: Bool = true) {
        self.peer = peer
        self.address = address
        self.environment = environment
        state = tls ? .handshaking : .receiving
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimers(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if handshakeTimer == nil && requestTimer == nil { startTimers(context) }
        context.fireChannelActive()
    }

    private func startTimers(_ context: ChannelHandlerContext) {
        let loop = context.eventLoop.assumeIsolated()
        let handshake = environment.handshakeTimeout, request = environment.requestTimeout
        if state == .handshaking {
            handshakeTimer = loop.scheduleTask(in: handshake) { [self] in
                if state == .handshaking { drop(context, "TLS handshake not complete within \(Self.seconds(handshake))") }
            }
        }
        requestTimer = loop.scheduleTask(in: request) { [self] in
            switch state {
            case .handshaking: drop(context, "TLS handshake not complete within \(Self.seconds(request))")
            case .receiving: refuse(context, .init(status: 408, reason: "request not complete within \(Self.seconds(request))"))
            case .answering: break  // the answer is being worked out or sent
            }
        }
    }

    static func seconds(_ t: TimeAmount) -> String {
        let s = Double(t.nanoseconds) / 1e9
        return s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        requestTimer?.cancel()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent, state == .handshaking {
            state = .receiving
            handshakeTimer?.cancel()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state == .receiving else { return }  // one request per connection; the rest is ignored
        switch unwrapInboundIn(data) {
        case .head(let h):
            if let failure = check(h) { refuse(context, failure, request: line(h)); return }
            head = h
        case .body(var buffer):
            // Content-Length was checked against the limit and NIOHTTP1 holds the body to it.
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            state = .answering
            let request = HTTPRequest(method: head.method.rawValue, path: head.uri, body: body, peer: peer, address: address)
            let service = environment.service
            submit(context) { service.handle(request) }
        }
    }

    private func line(_ h: HTTPRequestHead) -> String { "\(h.method.rawValue) \(h.uri.prefix(HTTPRequest.pathLimit))" }

    /// The head's faults, in the order a client can fix them.
    private func check(_ h: HTTPRequestHead) -> HTTPRequest.Failure? {
        guard h.version.major == 1, h.uri.hasPrefix("/"), h.uri.utf8.count <= HTTPRequest.pathLimit else {
            return .init(status: 400, reason: "malformed request line")
        }
        if h.headers.contains(name: "transfer-encoding") { return .init(status: 411, reason: "send the body with Content-Length") }
        if let text = h.headers.first(name: "content-length") {
            guard let n = Int(text), n >= 0 else { return .init(status: 400, reason: "malformed Content-Length") }
            guard n <= environment.bodyLimit else {
                return .init(status: 413, reason: "request body larger than \(environment.bodyLimit) bytes")
            }
        }
        return nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch state {
        case .handshaking:
            drop(context, "TLS handshake failed: \(error)")
        case .receiving:
            if let e = error as? HTTPParserError {
                refuse(context, e == .headerOverflow ? .init(status: 431, reason: "request head larger than 16 KiB")
                                                     : .init(status: 400, reason: "malformed request (\(e))"))
            } else {
                drop(context, "connection failed while receiving: \(error)")
            }
        case .answering:
            context.close(promise: nil)
        }
    }

    private func refuse(_ context: ChannelHandlerContext, _ failure: HTTPRequest.Failure, request: String? = nil) {
        state = .answering
        let service = environment.service, address = self.address
        let line = request ?? head.map(line) ?? "?"
        submit(context) { service.refuse(failure, address: address, request: line) }
    }

    private func drop(_ context: ChannelHandlerContext, _ reason: String) {
        state = .answering
        let service = environment.service, address = self.address
        _ = environment.offload(context.eventLoop) { service.dropped(address: address, reason: reason); return nil }
        context.close(promise: nil)
    }

    private func submit(_ context: ChannelHandlerContext, _ work: @escaping @Sendable () -> BrokerService.Reply?) {
        guard let future = environment.offload(context.eventLoop, work) else {
            // Too much waiting already: answered at once and not audited (auditing is work too).
            respond(context, .init(status: 503, body: BrokerService.error("server busy; retry later"),
                                   entry: environment.service.entry(peer: address, request: "?")))
            return
        }
        future.assumeIsolated().whenComplete { [self] result in
            if case .success(let reply?) = result { respond(context, reply) } else { context.close(promise: nil) }
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ reply: BrokerService.Reply) {
        guard context.channel.isActive else { return }
        let headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", String(reply.body.count)),
                                   ("Connection", "close"), ("Cache-Control", "no-store")])
        let status = HTTPResponseStatus(statusCode: reply.status, reasonPhrase: HTTPRequest.reasons[reply.status] ?? "Error")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: reply.body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
