import CSodium

/// Bytes in libsodium's guarded memory (locked, guard pages around them, zeroed when freed)
/// that their one owner rewrites in place: a thread's current file key. Keys that never change
/// are `SecureBytes`.
public final class GuardedBuffer {
    public let bytes: UnsafeMutableRawBufferPointer

    public init(count: Int) {
        Sodium.ensureInitialized()
        guard let p = sodium_malloc(max(count, 1)) else { fatalError("sodium_malloc failed: out of locked memory") }
        bytes = UnsafeMutableRawBufferPointer(start: p, count: count)
    }

    deinit { sodium_free(bytes.baseAddress) }
}
