import COpenSSL
import FSPFCrypto
import FSPFSystem
import Glibc

/// Why a connection failed, as one line (the caller adds the URL or the peer).
public struct NetError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A monotonic deadline for a whole exchange: a slow or silent peer cannot hold a thread.
public struct Deadline: Sendable {
    let at: Double
    public init(seconds: Double) { at = Deadline.now() + seconds }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    public static var nowSeconds: Double { now() }

    var remainingMilliseconds: Int32 { Int32(max(0, min(Double(Int32.max), (at - Deadline.now()) * 1000))) }

    /// Waits until `fd` is ready for `events`; false on timeout.
    func wait(_ fd: Int32, _ events: Int32) -> Bool {
        while true {
            var p = pollfd(fd: fd, events: Int16(events), revents: 0)
            let ready = poll(&p, 1, remainingMilliseconds)
            if ready < 0 && errno == EINTR { continue }
            return ready == 1
        }
    }
}

/// One non-blocking stream socket, plain or TLS, with every operation bounded by a deadline.
/// Owns the descriptor and the SSL object.
public final class Connection {
    let fd: Int32
    private var ssl: OpaquePointer?
    let deadline: Deadline

    init(fd: Int32, deadline: Deadline) {
        self.fd = fd
        self.deadline = deadline
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        if let ssl {
            SSL_shutdown(ssl)
            SSL_free(ssl)
        }
        close(fd)
    }

    /// Connects to host:port (every address getaddrinfo gives, in order).
    static func connect(host: String, port: String, deadline: Deadline) throws -> Connection {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, port, &hints, &list) == 0, let first = list else { throw NetError("cannot resolve \(host)") }
        defer { freeaddrinfo(list) }
        var lastError: Int32 = ECONNREFUSED
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let ai = candidate {
            candidate = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = errno; continue }
            let c = Connection(fd: fd, deadline: deadline)
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return c }
            guard errno == EINPROGRESS else { lastError = errno; continue }
            guard deadline.wait(fd, POLLOUT) else { lastError = ETIMEDOUT; continue }
            var soError: Int32 = 0
            var l = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &l)
            if soError == 0 { return c }
            lastError = soError
        }
        throw NetError("cannot connect to \(host):\(port): \(Errno(lastError).description)")
    }

    /// Runs the TLS handshake as client, verifying the server's certificate for `host`.
    public func startTLS(_ context: TLSContext, host: String) throws {
        guard let s = SSL_new(context.raw) else { throw NetError("TLS: \(OpenSSLError.take())") }
        ssl = s
        SSL_set_fd(s, fd)
        let param = SSL_get0_param(s)
        if isIPAddress(host) {
            X509_VERIFY_PARAM_set1_ip_asc(param, host)
        } else {
            X509_VERIFY_PARAM_set1_host(param, host, 0)
            _ = fspf_ssl_set_sni(s, host)
        }
        SSL_set_connect_state(s)
        try retry { SSL_do_handshake(s) }
        if SSL_get_verify_result(s) != X509_V_OK {
            let reason = String(cString: X509_verify_cert_error_string(SSL_get_verify_result(s)))
            throw NetError("TLS: the server's certificate is not trusted: \(reason)")
        }
    }

    /// Calls an SSL operation until it completes, waiting for the socket as OpenSSL asks.
    @discardableResult
    private func retry(_ op: () -> Int32) throws -> Int32 {
        guard let ssl else { fatalError("retry without TLS") }
        while true {
            let rc = op()
            if rc > 0 { return rc }
            switch SSL_get_error(ssl, rc) {
            case SSL_ERROR_WANT_READ: guard deadline.wait(fd, POLLIN) else { throw NetError("timed out") }
            case SSL_ERROR_WANT_WRITE: guard deadline.wait(fd, POLLOUT) else { throw NetError("timed out") }
            case SSL_ERROR_ZERO_RETURN: return 0
            case SSL_ERROR_SYSCALL where ERR_peek_error() == 0: return 0 // peer closed without close_notify
            default:
                var reason = OpenSSLError.take(or: "handshake failed")
                if SSL_get_verify_result(ssl) != X509_V_OK {
                    reason = "the server's certificate is not trusted: " + String(cString: X509_verify_cert_error_string(SSL_get_verify_result(ssl)))
                }
                throw NetError("TLS: \(reason)")
            }
        }
    }

    public func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            if let ssl {
                let n = try bytes.withUnsafeBytes { b in try retry { SSL_write(ssl, b.baseAddress! + sent, Int32(b.count - sent)) } }
                guard n > 0 else { throw NetError("connection closed while sending") }
                sent += Int(n)
            } else {
                guard deadline.wait(fd, POLLOUT) else { throw NetError("timed out sending") }
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
                if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; throw NetError("sending failed: \(Errno(errno).description)") }
                sent += n
            }
        }
    }

    /// Reads what is available (at least one byte); 0 at end of stream.
    public func receive(into buffer: inout [UInt8]) throws -> Int {
        if let ssl {
            return Int(try buffer.withUnsafeMutableBytes { b in try retry { SSL_read(ssl, b.baseAddress, Int32(b.count)) } })
        }
        while true {
            guard deadline.wait(fd, POLLIN) else { throw NetError("timed out waiting for data") }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; throw NetError("receiving failed: \(Errno(errno).description)") }
            return n
        }
    }
}

/// True for an IPv4 or IPv6 literal (TLS then matches IP SANs instead of host names).
public func isIPAddress(_ host: String) -> Bool {
    var v4 = in_addr(), v6 = in6_addr()
    return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
}

/// An OpenSSL TLS client context: TLS 1.2 or newer, OpenSSL's default cipher list. (The key
/// server's side is swift-nio-ssl.)
public final class TLSContext: @unchecked Sendable {
    let raw: OpaquePointer

    /// Client: trusts the certificates in `caFile` (PEM; the key server's own certificate works),
    /// or the system's store when nil, and checks the host name or IP address.
    public init(trusting caFile: String?) throws {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw NetError("TLS: \(OpenSSLError.take())") }
        raw = ctx
        _ = fspf_ssl_ctx_min_tls12(ctx)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        if let caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                throw NetError("\(caFile): not a PEM certificate file (\(OpenSSLError.take()))")
            }
        } else {
            SSL_CTX_set_default_verify_paths(ctx)
        }
    }

    deinit { SSL_CTX_free(raw) }
}
