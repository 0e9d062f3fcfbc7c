import CSodium
import Glibc

/// libsodium: the only source of randomness, of locked key memory and of constant-time
/// comparison in FSPF.
public enum Sodium {
    private static let initialized: Bool = sodium_init() >= 0

    public static func ensureInitialized() {
        precondition(initialized, "libsodium failed to initialise")
    }

    public static func randomBytes(_ count: Int) -> [UInt8] {
        ensureInitialized()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
        return out
    }

    public static func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        ensureInitialized()
        randombytes_buf(buffer.baseAddress!, buffer.count)
    }

    /// Constant-time equality of two byte strings of equal length (false if lengths differ).
    public static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        if a.count == 0 { return true }
        return sodium_memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
    }

    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in equal(pa, pb) } }
    }

    /// Overwrites a buffer in a way the compiler cannot elide.
    public static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        guard buffer.count > 0 else { return }
        sodium_memzero(buffer.baseAddress!, buffer.count)
    }
}

/// Key material in guarded memory: `sodium_malloc` places it between guard pages and locks it
/// (no swap), `sodium_free` zeroes it. Immutable after creation, hence shareable.
public final class SecureBytes: @unchecked Sendable {
    public let count: Int
    private let pointer: UnsafeMutableRawPointer

    /// Allocates `count` bytes and lets `fill` write them.
    public init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        Sodium.ensureInitialized()
        guard let p = sodium_malloc(max(count, 1)) else { fatalError("sodium_malloc failed: out of locked memory") }
        self.count = count
        self.pointer = p
        do {
            try fill(UnsafeMutableRawBufferPointer(start: p, count: count))
        } catch {
            sodium_free(p)
            throw error
        }
    }

    /// Copies `bytes` into secure memory and zeroes the source.
    public convenience init(consuming bytes: inout [UInt8]) {
        let n = bytes.count
        self.init(count: n) { dst in
            bytes.withUnsafeMutableBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(src))
                Sodium.zero(src)
            }
        }
    }

    public static func random(count: Int) -> SecureBytes {
        SecureBytes(count: count) { Sodium.fillRandom($0) }
    }

    deinit { sodium_free(pointer) }

    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    public func equals(_ other: SecureBytes) -> Bool {
        withBytes { a in other.withBytes { b in Sodium.equal(a, b) } }
    }

    /// Lowercase hex, for printing the key where the user asked for it.
    public var hex: String { withBytes { Hex.encode($0) } }
}
