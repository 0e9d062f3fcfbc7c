import FSPFCrypto
import FSPFSystem
import Glibc

/// A minimal blocking HTTP/1.1 client for key agents on the local machine (plain http, as the
/// confidential-containers data hub serves on 127.0.0.1) and for the key broker (https).
/// Bounded in time and size; errors name the URL and the cause and never include a response body.
public enum HTTPClient {
    struct Target { var tls: Bool; var host: String; var port: String; var path: String }

    public struct Response {
        public var status: Int
        public var reason: String
        public var body: [UInt8]
    }

    static func parse(_ url: String, allowTLS: Bool = false) throws -> Target {
        let tls = allowTLS && url.hasPrefix("https://")
        guard tls || url.hasPrefix("http://") else {
            throw FSPFError.usage(allowTLS ? "\(url): not an http:// or https:// URL" : "\(url): only http:// URLs of a local key agent are supported")
        }
        let rest = url.dropFirst(tls ? "https://".count : "http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var host = String(authority), port = tls ? "443" : "80"
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
            throw FSPFError.usage("\(url): not a valid URL")
        }
        return Target(tls: tls, host: host, port: port, path: path)
    }

    public static func get(_ url: String, tls: TLSContext? = nil, timeout: Double, limit: Int) throws -> [UInt8] {
        var response = try request("GET", url, tls: tls, timeout: timeout, limit: limit)
        guard response.status == 200 else {
            response.body.withUnsafeMutableBytes { Sodium.zero($0) }
            throw FSPFError.keyUnavailable(source: url, reason: "agent answered \(response.status)\(response.reason.isEmpty ? "" : " " + response.reason)")
        }
        return response.body
    }

    /// One request on a new connection (`Connection: close`). `tls` is required for https URLs.
    public static func request(_ method: String, _ url: String, body: [UInt8]? = nil, contentType: String = "application/json",
                               tls: TLSContext? = nil, timeout: Double, limit: Int) throws -> Response {
        let target = try parse(url, allowTLS: tls != nil)
        let deadline = Deadline(seconds: timeout)
        func unavailable(_ why: String) -> FSPFError { .keyUnavailable(source: url, reason: why) }
        do {
            let c = try Connection.connect(host: target.host, port: target.port, deadline: deadline)
            if target.tls, let tls { try c.startTLS(tls, host: target.host) }
            let hostHeader = target.host.contains(":") ? "[\(target.host)]:\(target.port)" : "\(target.host):\(target.port)"
            var head = "\(method) \(target.path) HTTP/1.1\r\nHost: \(hostHeader)\r\nAccept: */*\r\nConnection: close\r\nUser-Agent: fspf\r\n"
            if let body { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
            try c.send(Array((head + "\r\n").utf8) + (body ?? []))
            var raw: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            defer { buf.withUnsafeMutableBytes { Sodium.zero($0) }; raw.withUnsafeMutableBytes { Sodium.zero($0) } }
            while true {
                let n: Int
                do { n = try c.receive(into: &buf) } catch {
                    // A TLS peer that closes without close_notify (Python's http.server does) has
                    // still delivered a complete answer when its Content-Length is all there.
                    if Self.isComplete(raw) { break }
                    throw error
                }
                if n == 0 { break }
                raw += buf[0..<n]
                guard raw.count <= limit + 16 << 10 else { throw unavailable("answer larger than \(limit) bytes") }
            }
            return try response(raw, limit: limit, url: url)
        } catch let e as NetError {
            throw unavailable(e.description)
        }
    }

    /// The head of an answer: where it ends, its status line's fields and its headers (names
    /// lowercased); nil while "\r\n\r\n" has not arrived.
    static func head(_ raw: [UInt8]) -> (end: Range<Int>, status: [Substring], headers: [String: String])? {
        guard let end = raw.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
        let lines = String(decoding: raw[..<end.lowerBound], as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
        }
        return (end, lines.first?.split(separator: " ", maxSplits: 2) ?? [], headers)
    }

    /// Whether `raw` holds a whole head and the whole body its Content-Length announces.
    static func isComplete(_ raw: [UInt8]) -> Bool {
        guard let h = head(raw), let length = h.headers["content-length"].flatMap({ Int($0) }) else { return false }
        return raw.count - h.end.upperBound >= length
    }

    /// Status line, headers, then the body by Content-Length, chunked encoding or close.
    @_spi(Fuzzing) public static func response(_ response: [UInt8], limit: Int, url: String) throws -> Response {
        func bad(_ why: String) -> FSPFError { .keyUnavailable(source: url, reason: why) }
        guard let (end, status, headers) = head(response) else { throw bad("malformed HTTP answer") }
        guard status.count >= 2, status[0].hasPrefix("HTTP/1."), let code = Int(status[1]) else { throw bad("malformed HTTP answer") }
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
        return Response(status: code, reason: status.count > 2 ? String(status[2].prefix(80)) : "", body: body)
    }
}

extension Substring {
    public func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        guard let s = firstIndex(where: { !chars.contains($0) }), let e = lastIndex(where: { !chars.contains($0) }) else { return "" }
        return String(self[s...e])
    }
}
