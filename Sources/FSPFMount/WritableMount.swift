import CFuse3
import CLinux
import FSPFCore
import FSPFCrypto
import FSPFProvisioning
import FSPFSystem
import Glibc
import Logging

/// What the callbacks of a read-write mount see: the volume being written, the directory
/// listings being read, and what to do after each seal (log the tag, write --tag-out, report it
/// to the key server when the key came with a writer grant).
final class WritableMount: @unchecked Sendable {
    let volume: WritableVolume
    let logger: Logger
    let onReady: @Sendable () -> Void
    /// Called with each new tag, under no lock of the volume.
    let onSeal: @Sendable (VolumeTag) -> Void
    let writer: BrokerWriter?
    let reportTimeout: Double
    /// Held open for the mount's life: the volume's paths go through /proc/self/fd/N of it.
    private let anchor: FileDescriptor
    /// Attributes and names may change only through this mount, whose kernel caches stay
    /// coherent; a short lifetime still bounds what another view could see stale.
    let timeout: Double = 1
    private let listings = Locked<(next: UInt64, open: [UInt64: [(name: [UInt8], ino: UInt64)]])>((1, [:]))

    /// The extended attributes of the mount's root that are requests to the daemon (MountRequest),
    /// never stored. The tag `fspf seal --unmount` prints comes from `final`: the one this daemon
    /// sealed, never a file read back from the disk, which is the attacker's.
    static let sealAttribute = Array(MountRequest.seal.utf8)
    static let finalAttribute = Array(MountRequest.final.utf8)
    static let thawAttribute = Array(MountRequest.thaw.utf8)
    static let requests = MountRequest.all.map { Array($0.utf8) }

    init(volume: WritableVolume, anchor: FileDescriptor, logger: Logger, writer: BrokerWriter?, reportTimeout: Double,
         onReady: @escaping @Sendable () -> Void, onSeal: @escaping @Sendable (VolumeTag) -> Void) {
        self.volume = volume
        self.anchor = anchor
        self.logger = logger
        self.writer = writer
        self.reportTimeout = reportTimeout
        self.onReady = onReady
        self.onSeal = onSeal
    }

    /// A version sealed on disk that the key server did not record (the seal itself succeeded).
    struct Unrecorded: Error, CustomStringConvertible {
        let tag: VolumeTag
        let cause: any Error
        var description: String {
            "sealed \(Hex.encode(tag.full)), but the key server did not record it (\(cause)); readers that get their tag "
                + "from the key server are refused until a later seal is recorded"
        }
    }

    /// Seals and reports; the tag of the version on disk afterwards. The key server is told of
    /// the version on disk at every seal until it has recorded it, so a report that failed is
    /// retried by the next seal. `final`: the volume refuses changes from the seal on, unless
    /// the report fails (the mount then stays to report again, and writable).
    @discardableResult
    func seal(reason: String, final: Bool = false) throws -> VolumeTag {
        let before = volume.tag
        let tag = try volume.seal(freezing: final)
        if tag != before {
            logger.info("sealed", metadata: ["tag": "\(Hex.encode(tag.full))", "short_tag": "\(Hex.encode(tag.short))", "on": "\(reason)"])
            onSeal(tag)
        }
        if let writer {
            do {
                if let version = try writer.report(tag.full, timeout: reportTimeout) {
                    logger.info("recorded by the key server", metadata: ["tag": "\(Hex.encode(tag.full))", "record_version": "\(version)"])
                }
            } catch {
                if final { volume.thaw() }
                let failure = Unrecorded(tag: tag, cause: error)
                logger.critical("\(failure)")
                throw failure
            }
        }
        return tag
    }

    func openListing(_ entries: [(name: [UInt8], ino: UInt64)]) -> UInt64 {
        listings.withLock { l in
            let id = l.next
            l.next += 1
            l.open[id] = entries
            return id
        }
    }

    func listing(_ id: UInt64) -> [(name: [UInt8], ino: UInt64)]? { listings.withLock { $0.open[id] } }
    func closeListing(_ id: UInt64) { listings.withLock { _ = $0.open.removeValue(forKey: id) } }
}
