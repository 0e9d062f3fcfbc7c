import Synchronization
import FSPFCrypto
import FSPFSystem

/// Counters shown by progress displays.
public final class Progress: Sendable {
    private let bytes = Atomic<UInt64>(0)
    private let files = Atomic<Int>(0)
    private let totalBytesValue = Atomic<UInt64>(0)
    private let totalFilesValue = Atomic<Int>(0)

    public init() {}

    /// Set by the writer once it knows the work.
    public var totalBytes: UInt64 { totalBytesValue.load(ordering: .relaxed) }
    public var totalFiles: Int { totalFilesValue.load(ordering: .relaxed) }
    func setTotals(bytes: UInt64, files: Int) {
        totalBytesValue.store(bytes, ordering: .relaxed)
        totalFilesValue.store(files, ordering: .relaxed)
    }

    public var bytesDone: UInt64 { bytes.load(ordering: .relaxed) }
    public var filesDone: Int { files.load(ordering: .relaxed) }
    func add(bytes n: UInt64) { bytes.add(n, ordering: .relaxed) }
    func addFile() { files.add(1, ordering: .relaxed) }
}
