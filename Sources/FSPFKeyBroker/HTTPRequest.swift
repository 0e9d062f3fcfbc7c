import FSPFProvisioning

/// An HTTP/1.1 request as the broker accepts it: a request line, headers of at most 16 KiB,
/// a body by Content-Length only, at most `bodyLimit` bytes. Anything else is refused with a
/// status and a reason, before the body is read.
@_spi(Fuzzing) public struct HTTPRequest {
    var method: String
    var path: String
    @_spi(Fuzzing) public var body: [UInt8]

    struct Failure: Error {
        var status: Int
        var reason: String
    }

    static let headLimit = 16 << 10

    static func read(from c: Connection, bodyLimit: Int) throws -> HTTPRequest {
        try read(bodyLimit: bodyLimit) { try c.receive(into: &$0) }
    }

    /// The parser alone: `receive` fills the buffer and returns the count, 0 at the end.
    @_spi(Fuzzing) public static func read(bodyLimit: Int, receive: (inout [UInt8]) throws -> Int) throws -> HTTPRequest {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var headEnd: Range<Int>?
        while headEnd == nil {
            let n = try receive(&buffer)
            guard n > 0 else { throw Failure(status: 400, reason: "connection closed before the request was complete") }
            data += buffer[0..<n]
            headEnd = data.firstRange(of: [0x0d, 0x0a, 0x0d, 0x0a])
            guard headEnd != nil || data.count <= headLimit else { throw Failure(status: 431, reason: "request head larger than 16 KiB") }
        }
        let head = String(decoding: data[..<headEnd!.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let start = lines[0].split(separator: " ")
        guard start.count == 3, start[2].hasPrefix("HTTP/1."), start[1].hasPrefix("/"), start[1].utf8.count <= 256 else {
            throw Failure(status: 400, reason: "malformed request line")
        }
        var length = 0
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw Failure(status: 400, reason: "malformed header") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
            if name == "transfer-encoding" { throw Failure(status: 411, reason: "send the body with Content-Length") }
            if name == "content-length" {
                guard let n = Int(value), n >= 0 else { throw Failure(status: 400, reason: "malformed Content-Length") }
                guard n <= bodyLimit else { throw Failure(status: 413, reason: "request body larger than \(bodyLimit) bytes") }
                length = n
            }
        }
        var body = Array(data[headEnd!.upperBound...])
        while body.count < length {
            let n = try receive(&buffer)
            guard n > 0 else { throw Failure(status: 400, reason: "request body shorter than its Content-Length") }
            body += buffer[0..<n]
        }
        guard body.count == length else { throw Failure(status: 400, reason: "more data than Content-Length announced") }
        return HTTPRequest(method: String(start[0]), path: String(start[1]), body: body)
    }

    static func response(status: Int, body: [UInt8]) -> [UInt8] {
        let reasons = [200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                       409: "Conflict", 411: "Length Required", 413: "Content Too Large", 431: "Request Header Fields Too Large",
                       500: "Internal Server Error", 503: "Service Unavailable"]
        let head = "HTTP/1.1 \(status) \(reasons[status] ?? "Error")\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
        return Array(head.utf8) + body
    }
}
