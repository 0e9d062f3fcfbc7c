import Glibc
import FSPFCore
import FSPFProvisioning
import Logging

public struct MountConfiguration: Sendable {
    public var volume: String
    public var mountpoint: String
    public var key: KeySource
    /// Expected tag (else the key resource's); nil only with `skipTagCheck`.
    public var tag: [UInt8]?
    public var skipTagCheck = false
    /// Mount a format-1 volume under an expected tag (FORMAT.md §13).
    public var acceptVersion1 = false
    /// Refuse to mount unless the kernel is inside a TEE (a confidential VM or container).
    public var requireTEE = false
    /// Mount over a directory with entries of its own (hidden while mounted).
    public var allowNonEmpty = false
    public var foreground = false
    public var allowOther = false
    /// The kernel refuses to execute files of the mount (-o noexec).
    public var noExec = false
    /// Show every entry as owned by this user / group (-o uid=, gid=) instead of the stored owner.
    public var uid: uid_t?
    public var gid: gid_t?
    /// Run as this user (name or name:group) once mounted.
    public var user: String?
    public var threads: UInt32 = 8
    /// Kernel readahead for the mount in KiB (0: leave the kernel's 128 KiB).
    public var readaheadKiB = 4096
    public var cacheBytes = 32 << 20
    public var keyTimeout: Double = 10
    public var logLevel: Logger.Level = .info
    /// The volume directory to serve as the mount's root (default: `VolumeReader.servedDirectory`).
    public var subdirectory: String?
    /// SCONE's runtime view: every outermost encrypted or authenticated region mounted at its
    /// own absolute path (over its kernel directory), `mountpoint` unused.
    public var scone = false
    /// Where a backgrounded daemon logs once live (--log-file); --foreground keeps stderr.
    public var log: LogDestination = .syslog
    /// Key and tag already at hand (a SCONE session), used instead of `key`.
    public var material: KeySource.Material?
    /// Serve the volume read-write: a new version is sealed at unmount and on `fspf seal`.
    public var readWrite = false
    /// Start a new, empty volume in an empty or missing directory (read-write).
    public var create = false
    /// Chunk size of a created volume.
    public var chunkSize: UInt32 = ChunkSize.default
    /// Written atomically with the tag of the version on disk, at start (a new file unless
    /// `replaceTagOut`) and after each seal.
    public var tagOut: String?
    public var replaceTagOut = false
    /// Where the ciphertext of ephemeral regions goes (--scone), each in a directory of its own.
    public var ephemeralDirectory = "/var/tmp"

    public init(volume: String, mountpoint: String, key: KeySource) {
        self.volume = volume
        self.mountpoint = mountpoint
        self.key = key
    }
}
