import FSPFCrypto
import FSPFSystem

/// Padmé padding (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
/// Communication with PURBs", PETS 2019): rounds a length up so that only O(log log L) bits
/// of it remain, with at most ~12% overhead. Lengths up to `minimum` all pad to `minimum`.
public enum Padding {
    public static let minimum: UInt64 = 4096

    /// Largest file size the format admits (1 EiB): padding, chunk and tree arithmetic
    /// stay far from overflow.
    public static let maximumSize: UInt64 = 1 << 60

    public static func padme(_ length: UInt64) -> UInt64 {
        precondition(length <= maximumSize, "file size beyond the format's limit")
        if length <= minimum { return minimum }
        let e = UInt64(63 - length.leadingZeroBitCount)          // floor(log2 L)
        let s = UInt64(64 - e.leadingZeroBitCount)               // floor(log2 e) + 1
        let lastBits = e - s
        let mask: UInt64 = (1 << lastBits) - 1
        return (length + mask) & ~mask
    }
}
