import Synchronization

/// A lock-free boolean that may be set from a signal handler.
public final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { value.load(ordering: .relaxed) }
    public func set() { value.store(true, ordering: .relaxed) }
    public func clear() { value.store(false, ordering: .relaxed) }
}

/// Set by SIGINT/SIGTERM handlers; long-running work polls it and unwinds cleanly.
public enum Interrupt {
    private static let flag = AtomicFlag()
    public static var requested: Bool { flag.isSet }
    public static func request() { flag.set() }
    public static func reset() { flag.clear() }
}
