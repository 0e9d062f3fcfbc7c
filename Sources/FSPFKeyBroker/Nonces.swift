import FSPFCrypto
import FSPFSystem
import FSPFProvisioning

/// Release nonces that cost the server no table (docs/ATTESTATION.md, "Nonces"). A nonce is
///
///     issue time (u64 BE, ms) ‖ 8 random bytes ‖ HMAC-SHA256(K, label ‖ volume ‖ 0 ‖ client prefix ‖ first 16 bytes)[0..16]
///
/// under a key K drawn when the server starts: issuing one stores nothing, so no number of
/// clients can exhaust what others need (a shared table of outstanding nonces could be filled
/// from a few hundred addresses). A release redeems it: the MAC must hold for the volume and the
/// requester's prefix (an IPv4 address or IPv6 /64: a nonce is no good from elsewhere), the
/// issue time lie within the lifetime, and the nonce must not have been redeemed before.
///
/// Redeemed nonces are kept until they expire, at most `capacity` of them, oldest first out; a
/// nonce pushed out early raises a floor below which every nonce is refused, so a replay never
/// gets through however the record is flooded. An honest client loses a nonce to the floor only
/// if `capacity` releases arrive between its nonce and its release. Times are milliseconds of
/// the server's monotonic clock.
final class Nonces: Sendable {
    private static let label = Array("fspf-keyserver-nonce-v1".utf8) + [0]
    private let key = SecureBytes.random(count: 32)
    /// Milliseconds.
    let lifetime: Int64
    let capacity: Int
    private let redeemed = Locked(Record())

    private struct Record {
        /// MACs of redeemed nonces with their issue times, in the order they were redeemed.
        var order: [(mac: [UInt8], issued: Int64)] = []
        var head = 0
        var macs: Set<[UInt8]> = []
        /// Nonces issued at or before this time are refused (a redeemed one was pushed out).
        var floor: Int64 = .min
    }

    init(lifetime: Int64, capacity: Int) {
        self.lifetime = lifetime
        self.capacity = max(1, capacity)
    }

    private func mac(_ volume: String, _ peer: Peer, _ prefix: ArraySlice<UInt8>) -> [UInt8] {
        let message = Self.label + Array(volume.utf8) + [0] + [UInt8(peer.bytes.count)] + peer.bytes + Array(prefix)
        return Array(key.withBytes { KDF.hmac(key: $0, message) }.prefix(16))
    }

    func issue(volume: String, peer: Peer, now: Int64) -> [UInt8] {
        let head = withUnsafeBytes(of: UInt64(bitPattern: now).bigEndian) { Array($0) } + Sodium.randomBytes(8)
        return head + mac(volume, peer, head[...])
    }

    /// Whether `nonce` was issued here for `volume` to `peer`, is fresh and unused; it is used
    /// from now on, whatever the outcome of the release.
    func redeem(_ nonce: [UInt8], volume: String, peer: Peer, now: Int64) -> Bool {
        guard nonce.count == BrokerProtocol.nonceSize else { return false }
        let issued = Int64(bitPattern: nonce[0..<8].reduce(0) { $0 << 8 | UInt64($1) })
        let tag = Array(nonce[16...])
        guard Sodium.equal(tag, mac(volume, peer, nonce[0..<16])), issued <= now, now - issued <= lifetime else { return false }
        return redeemed.withLock { r in
            guard issued > r.floor, !r.macs.contains(tag) else { return false }
            // Expired ones first, then, if still full, the oldest redeemed raises the floor.
            while r.head < r.order.count, r.order[r.head].issued < now - lifetime || r.macs.count >= capacity {
                let out = r.order[r.head]
                if out.issued >= now - lifetime { r.floor = max(r.floor, out.issued) }
                r.macs.remove(out.mac)
                r.head += 1
            }
            if r.head > 4096 && r.head * 2 > r.order.count {
                r.order.removeFirst(r.head)
                r.head = 0
            }
            r.order.append((tag, issued))
            r.macs.insert(tag)
            return issued > r.floor
        }
    }

    /// Redeemed nonces held (for tests and the load figures).
    var held: Int { redeemed.withLock { $0.macs.count } }
}
