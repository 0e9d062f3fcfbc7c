import Synchronization

/// A lock-free boolean that may be set from a signal handler.
public final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { value.load(ordering: .relaxed) }
    public func set() { value.store(true, ordering: .relaxed) }
    public func clear() { value.store(false, ordering: .relaxed) }
}

/// Counters shown by progress displays.
public final class Progress: Sendable {
    public let totalBytes: UInt64
    public let totalFiles: Int
    private let bytes = Atomic<UInt64>(0)
    private let files = Atomic<Int>(0)

    public init(totalBytes: UInt64, totalFiles: Int) {
        self.totalBytes = totalBytes
        self.totalFiles = totalFiles
    }

    public var bytesDone: UInt64 { bytes.load(ordering: .relaxed) }
    public var filesDone: Int { files.load(ordering: .relaxed) }
    func add(bytes n: UInt64) { bytes.add(n, ordering: .relaxed) }
    func addFile() { files.add(1, ordering: .relaxed) }
}
