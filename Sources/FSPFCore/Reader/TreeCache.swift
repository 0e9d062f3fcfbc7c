import Synchronization
import FSPFCrypto
import FSPFSystem

/// Verified tag-tree blocks, shared by all threads of a reader. Only blocks whose hash chain
/// up to the sealed root has been checked are inserted, so a hit needs no re-verification
/// (fs-verity's model). Bounded by bytes; evicts oldest first.
final class TreeCache: Sendable {
    struct Key: Hashable { var entry: Int32; var level: Int8; var block: UInt64 }

    private struct State {
        var blocks: [Key: [UInt8]] = [:]
        var order: [Key] = []
        var head = 0
        var bytes = 0
    }

    private let state = Locked(State())
    let capacity: Int

    init(capacityBytes: Int) { capacity = capacityBytes }

    func get(_ key: Key) -> [UInt8]? {
        state.withLock { $0.blocks[key] }
    }

    func insert(_ key: Key, _ block: [UInt8]) {
        state.withLock { s in
            guard s.blocks.updateValue(block, forKey: key) == nil else { return }
            s.order.append(key)
            s.bytes += block.count
            while s.bytes > capacity, s.head < s.order.count {
                let old = s.order[s.head]
                s.head += 1
                if let b = s.blocks.removeValue(forKey: old) { s.bytes -= b.count }
            }
            if s.head > 4096 && s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
        }
    }

    var count: Int { state.withLock { $0.blocks.count } }
}
