import Synchronization

/// A lock-free boolean that may be set from a signal handler.
public final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { value.load(ordering: .relaxed) }
    public func set() { value.store(true, ordering: .relaxed) }
    public func clear() { value.store(false, ordering: .relaxed) }
}
