import Glibc
import FSPFSystem

/// A volume on a local file system: the metadata file and, relative to its directory (or
/// absolute), the files it names. Every open goes through a directory descriptor taken when
/// the volume is opened and refuses links (openat2 RESOLVE_NO_SYMLINKS), so the volume stays
/// readable when a mount covers its path and nothing below it redirects a read.
public final class LocalStorage: VolumeStorage {
    public let metadataPath: String
    public let directory: String
    private let directoryFD: FileDescriptor
    /// Covered directories (absolute path, descriptor), deepest first, and the metadata's
    /// directory as an absolute path, taken at open (a daemon changes directory afterwards).
    private let anchors: [(String, FileDescriptor)]
    private let absoluteDirectory: String

    /// The volume at `path` (a volume directory or its metadata file). `covered`: directories
    /// a mount is about to cover; they are opened now, so objects and plaintext below them stay
    /// readable however the metadata names them (`/fspf.pb` naming `app/.fspf-objects/…`
    /// while `/app` is the mount point).
    public init(path: String, covered: [String] = []) throws {
        metadataPath = try SealedMetadata.locate(path)
        directory = Paths.parent(metadataPath)
        directoryFD = try FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY)
        anchors = try covered.map { (Paths.normalized($0), try FileDescriptor.open($0, O_RDONLY | O_DIRECTORY)) }
            .sorted { $0.0.utf8.count > $1.0.utf8.count }
        absoluteDirectory = Paths.normalized(directory)
    }

    public func metadata(limit: Int) throws -> [UInt8] {
        try directoryFD.openForReading(relative: Paths.lastComponent(metadataPath)).readAll(limit: limit)
    }

    /// Opens a location of the metadata: below a covered directory through its descriptor,
    /// otherwise relative to the metadata's directory.
    public func open(_ location: String) throws -> any StoredFile {
        if !anchors.isEmpty {
            let absolute = location.hasPrefix("/") ? location : Paths.join(absoluteDirectory, location)
            for (dir, fd) in anchors where Paths.isWithin(absolute, dir) && absolute != dir {
                return try fd.openForReading(relative: String(absolute.dropFirst(dir.utf8.count + 1)))
            }
        }
        return try directoryFD.openForReading(relative: location)
    }

    public func exists(_ location: String) -> Bool { (try? open(location)) != nil }

    /// A volume directory (metadata named volume.fspf) is scanned whole; a step-built volume
    /// elsewhere only in its object stores.
    public func unreferenced(objects: [String], plaintext: [String]) -> (stray: [String], unsealed: [String]) {
        let objectPaths = objects.map(path(of:))
        let expected = Set(objectPaths + plaintext.map(path(of:)) + [metadataPath])
        let roots = Paths.lastComponent(metadataPath) == SealedMetadata.fileName
            ? [directory] : Set(objectPaths.map { Paths.parent(Paths.parent($0)) }).sorted()
        let written = Paths.join(Paths.join(directory, ObjectStore.directoryName), ObjectStore.writtenName) + "/"
        var stray: [String] = []
        var unsealed: [String] = []
        for root in roots {
            FileSystem.forEachFile(below: root) { path, _ in
                if expected.contains(path) { return }
                // Objects a read-write mount had not sealed, and the metadata a seal was writing
                // (FileSystem.writeAtomically's temporary file) when it was stopped.
                if path.hasPrefix(written) || FileSystem.isAtomicWriteLeftover(path, of: metadataPath) {
                    unsealed.append(path)
                } else {
                    stray.append(path)
                }
            }
        }
        return (stray.sorted(), unsealed.sorted())
    }

    /// Where a recorded location lies.
    public func path(of location: String) -> String { location.hasPrefix("/") ? location : Paths.join(directory, location) }
}

extension FileDescriptor: StoredFile {
    public func size() throws -> UInt64 { UInt64(try status().st_size) }
}
