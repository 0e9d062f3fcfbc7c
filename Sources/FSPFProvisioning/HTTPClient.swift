import FSPFCore
import Glibc

/// A minimal blocking HTTP/1.1 GET for key agents on the local machine (plain http, as the
/// confidential-containers data hub serves on 127.0.0.1). Bounded in time and size; errors
/// name the URL and the cause and never include the response body.
public enum HTTPClient {
    struct Target { var host: String; var port: String; var path: String }

    static func parse(_ url: String) throws -> Target {
        guard url.hasPrefix("http://") else {
            throw FSPFError.usage("\(url): only http:// URLs of a local key agent are supported")
        }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var host = String(authority), port = "80"
        if authority.hasPrefix("[") {  // [::1]:8006
            guard let close = authority.firstIndex(of: "]") else { throw FSPFError.usage("\(url): bad host") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { port = String(after.dropFirst()) }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = String(authority[authority.index(after: colon)...])
        }
        guard !host.isEmpty, let p = UInt16(port), p > 0, !path.contains(" "), !path.contains("\r"), !path.contains("\n") else {
            throw FSPFError.usage("\(url): not a valid http URL")
        }
        return Target(host: host, port: port, path: path)
    }

    public static func get(_ url: String, timeout: Double, limit: Int) throws -> [UInt8] {
        let target = try parse(url)
        let deadline = now() + timeout
        func unavailable(_ why: String) -> FSPFError { .keyUnavailable(source: url, reason: why) }

        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(target.host, target.port, &hints, &list)
        guard rc == 0, let first = list else { throw unavailable("cannot resolve \(target.host)") }
        defer { freeaddrinfo(list) }

        var lastError: Int32 = ECONNREFUSED
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let ai = candidate {
            candidate = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = errno; continue }
            defer { close(fd) }
            guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen, deadline: deadline, error: &lastError) else { continue }
            let request = "GET \(target.path) HTTP/1.1\r\nHost: \(target.host):\(target.port)\r\nAccept: */*\r\nConnection: close\r\nUser-Agent: fspf\r\n\r\n"
            guard sendAll(fd, Array(request.utf8), deadline: deadline) else { throw unavailable("sending the request failed") }
            var response = try receive(fd, limit: limit + 16 << 10, deadline: deadline, url: url)
            defer { response.withUnsafeMutableBytes { Sodium.zero($0) } }
            return try body(of: response, limit: limit, url: url)
        }
        throw unavailable("cannot connect: \(String(cString: strerror(lastError)))")
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private static func remainingMilliseconds(_ deadline: Double) -> Int32 {
        Int32(max(0, min(Double(Int32.max), (deadline - now()) * 1000)))
    }

    private static func connect(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>?, _ len: socklen_t,
                                deadline: Double, error: inout Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        if Glibc.connect(fd, addr, len) != 0 {
            guard errno == EINPROGRESS else { error = errno; return false }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, remainingMilliseconds(deadline)) == 1 else { error = ETIMEDOUT; return false }
            var soError: Int32 = 0
            var l = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &l)
            guard soError == 0 else { error = soError; return false }
        }
        return true
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8], deadline: Double) -> Bool {
        var sent = 0
        while sent < bytes.count {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, remainingMilliseconds(deadline)) == 1 else { return false }
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; return false }
            sent += n
        }
        return true
    }

    private static func receive(_ fd: Int32, limit: Int, deadline: Double, url: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        defer { buf.withUnsafeMutableBytes { Sodium.zero($0) } }
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, remainingMilliseconds(deadline))
            if ready < 0 && errno == EINTR { continue }
            guard ready == 1 else { throw FSPFError.keyUnavailable(source: url, reason: "timed out waiting for the answer") }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; throw FSPFError.keyUnavailable(source: url, reason: "connection failed while reading") }
            if n == 0 { return out }
            out += buf[0..<n]
            guard out.count <= limit else { throw FSPFError.keyUnavailable(source: url, reason: "answer larger than \(limit) bytes") }
        }
    }

    /// Status line, headers, then the body by Content-Length, chunked encoding or close.
    static func body(of response: [UInt8], limit: Int, url: String) throws -> [UInt8] {
        func bad(_ why: String) -> FSPFError { .keyUnavailable(source: url, reason: why) }
        guard let end = response.firstRange(of: Array("\r\n\r\n".utf8)) else { throw bad("malformed HTTP answer") }
        let head = String(decoding: response[..<end.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let status = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard status.count >= 2, status[0].hasPrefix("HTTP/1."), let code = Int(status[1]) else { throw bad("malformed HTTP answer") }
        guard code == 200 else { throw bad("agent answered \(code)\(status.count > 2 ? " " + status[2] : "")") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
        }
        var body = Array(response[end.upperBound...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            var decoded: [UInt8] = []
            var i = 0
            while true {
                guard let lineEnd = body[i...].firstRange(of: [0x0d, 0x0a]) else { throw bad("malformed chunked body") }
                let sizeText = String(decoding: body[i..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: " "), radix: 16), size >= 0, size <= limit else { throw bad("malformed chunked body") }
                i = lineEnd.upperBound
                if size == 0 { break }
                guard i + size + 2 <= body.count else { throw bad("truncated chunked body") }
                decoded += body[i..<(i + size)]
                i += size + 2
            }
            body.withUnsafeMutableBytes { Sodium.zero($0) }
            body = decoded
        } else if let lengthText = headers["content-length"] {
            guard let length = Int(lengthText), length >= 0, length <= body.count else { throw bad("truncated body") }
            body = Array(body[0..<length])
        }
        guard body.count <= limit else { throw bad("answer larger than \(limit) bytes") }
        return body
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        guard let s = firstIndex(where: { !chars.contains($0) }), let e = lastIndex(where: { !chars.contains($0) }) else { return "" }
        return String(self[s...e])
    }
}
