/// A minimal DER reader for the few structures OpenSSL does not decode for us: Intel's SGX
/// extension in PCK certificates. Every length is checked against the enclosing element.
struct DER {
    struct Element {
        let tag: UInt8
        let content: ArraySlice<UInt8>
    }

    static let sequence: UInt8 = 0x30, integer: UInt8 = 0x02, octetString: UInt8 = 0x04,
               oid: UInt8 = 0x06, enumerated: UInt8 = 0x0a, boolean: UInt8 = 0x01

    /// Splits `bytes` into consecutive elements; throws on any truncation or indefinite length.
    static func elements(_ bytes: ArraySlice<UInt8>) throws -> [Element] {
        var out: [Element] = []
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let tag = bytes[i]
            i += 1
            guard i < bytes.endIndex else { throw AttestationError("DER: truncated length") }
            var length = Int(bytes[i])
            i += 1
            if length & 0x80 != 0 {
                let count = length & 0x7f
                guard count >= 1, count <= 4, bytes.endIndex - i >= count else {
                    throw AttestationError("DER: unsupported length encoding")
                }
                length = 0
                for _ in 0..<count { length = length << 8 | Int(bytes[i]); i += 1 }
            }
            guard bytes.endIndex - i >= length else { throw AttestationError("DER: element runs past its container") }
            out.append(Element(tag: tag, content: bytes[i..<i + length]))
            i += length
        }
        return out
    }

    /// The dotted OID encoded as DER content bytes (no tag or length).
    static func oid(_ dotted: String) -> [UInt8] {
        let arcs = dotted.split(separator: ".").map { UInt64($0)! }
        var out: [UInt8] = [UInt8(arcs[0] * 40 + arcs[1])]
        for arc in arcs.dropFirst(2) {
            var chunk: [UInt8] = [UInt8(arc & 0x7f)]
            var rest = arc >> 7
            while rest > 0 { chunk.insert(UInt8(rest & 0x7f) | 0x80, at: 0); rest >>= 7 }
            out += chunk
        }
        return out
    }

    static func unsigned(_ content: ArraySlice<UInt8>) throws -> Int {
        guard !content.isEmpty, content.count <= 8, content.first! & 0x80 == 0 else {
            throw AttestationError("DER: integer out of range")
        }
        return content.reduce(0) { $0 << 8 | Int($1) }
    }
}
