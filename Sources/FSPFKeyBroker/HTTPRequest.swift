/// An HTTP/1.1 request as the broker accepts it: a request line, headers of at most 16 KiB, a
/// body by Content-Length only, at most `BrokerProtocol.maxRequestBody` bytes (NIOHTTP1 parses;
/// `HTTPHandler` enforces the limits before the body arrives).
struct HTTPRequest: Sendable {
    var method: String
    var path: String
    var body: [UInt8]
    /// Who sent it: the quota key and the audited address.
    var peer: Peer
    var address: String

    struct Failure: Error, Sendable {
        var status: Int
        var reason: String
    }

    static let headLimit = 16 << 10
    static let pathLimit = 256

    static let reasons = [200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                          408: "Request Timeout", 409: "Conflict", 411: "Length Required", 413: "Content Too Large",
                          429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
                          503: "Service Unavailable"]
}

/// How many of something each peer holds (the quotas' tables); peers at zero are forgotten.
struct PeerCounts {
    private var counts: [Peer: Int] = [:]
    subscript(peer: Peer) -> Int { counts[peer] ?? 0 }
    mutating func add(_ peer: Peer) { counts[peer, default: 0] += 1 }
    mutating func remove(_ peer: Peer) {
        let n = self[peer] - 1
        counts[peer] = n > 0 ? n : nil
    }
}

/// A client as the quotas count it: an IPv4 address, or an IPv6 /64 (one host commonly holds a
/// whole /64, so counting single IPv6 addresses would give it unlimited shares).
struct Peer: Hashable, Sendable, CustomStringConvertible {
    let bytes: [UInt8]

    init(ipv4: [UInt8]) { bytes = ipv4 }

    init(ipv6: [UInt8]) {
        // IPv4-mapped (::ffff:a.b.c.d) is the IPv4 peer.
        if ipv6.count == 16, ipv6[0..<10].allSatisfy({ $0 == 0 }), ipv6[10] == 0xff, ipv6[11] == 0xff {
            bytes = Array(ipv6[12...])
        } else {
            bytes = Array(ipv6.prefix(8))
        }
    }

    var description: String {
        bytes.count == 4 ? bytes.map(String.init).joined(separator: ".")
                         : stride(from: 0, to: bytes.count, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                               .joined(separator: ":") + "::/64"
    }
}
