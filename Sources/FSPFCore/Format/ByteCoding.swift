import FSPFCrypto
import FSPFSystem

/// Little-endian encoder for the on-disk structures.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func put<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func put(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }

    /// u32 length ‖ bytes.
    mutating func putString(_ s: [UInt8]) {
        put(UInt32(s.count))
        bytes.append(contentsOf: s)
    }

    mutating func putString(_ s: String.UTF8View) {
        put(UInt32(s.count))
        bytes.append(contentsOf: s)
    }
}

/// Bounds-checked little-endian decoder: every read either succeeds or throws; a hostile
/// length can never make it read out of bounds or allocate more than the input holds.
struct ByteReader {
    let bytes: [UInt8]
    var offset = 0
    let context: String

    init(_ bytes: [UInt8], context: String) {
        self.bytes = bytes
        self.context = context
    }

    var remaining: Int { bytes.count - offset }

    private func malformed(_ what: String) -> FSPFError {
        FSPFError.badInput(path: context, reason: "malformed \(what) at byte \(offset)")
    }

    mutating func get<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        let n = MemoryLayout<T>.size
        guard remaining >= n else { throw malformed(what) }
        var v: T = 0
        for i in 0..<n { v |= T(bytes[offset + i]) << (8 * i) }
        offset += n
        return v
    }

    mutating func get(count: Int, _ what: String) throws -> [UInt8] {
        guard count >= 0, remaining >= count else { throw malformed(what) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func getString(_ what: String, max: Int = 1 << 20) throws -> [UInt8] {
        let n = Int(try get(UInt32.self, what))
        guard n <= max else { throw malformed(what) }
        return try get(count: n, what)
    }
}
