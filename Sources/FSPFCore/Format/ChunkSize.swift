import FSPFCrypto
import FSPFSystem

public enum ChunkSize {
    /// 16 KiB: see docs/FORMAT.md §2 and docs/BENCHMARKS.md for the measurements behind it.
    public static let `default`: UInt32 = 16 * 1024
    public static let minimum: UInt32 = 4096
    public static let maximum: UInt32 = 16 * 1024 * 1024

    /// Powers of two from 4 KiB to 16 MiB.
    public static func isValid(_ size: UInt32) -> Bool {
        size >= minimum && size <= maximum && size & (size - 1) == 0
    }

    /// A chunk size as options give it: bytes, or with a K or M suffix.
    public static func parse(_ text: String, option: String) throws -> UInt32 {
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        switch text.last {
        case "k", "K": multiplier = 1024; digits = digits.dropLast()
        case "m", "M": multiplier = 1024 * 1024; digits = digits.dropLast()
        default: break
        }
        guard let n = UInt64(digits), n * multiplier <= UInt64(UInt32.max), isValid(UInt32(n * multiplier)) else {
            throw FSPFError.usage("\(option) \(text): must be a power of two from 4K to 16M")
        }
        return UInt32(n * multiplier)
    }
}
