import FSPFCrypto
import FSPFSystem
import Glibc

/// Where objects lie (§2, §10): `.fspf-objects` below the directory of a volume or of a region
/// (`fspf addf`'s output), an object at `<2 hex>/<30 hex>` of its file ID, a read-write mount's
/// at `written/<2 hex>/<30 hex>`. Every change goes through descriptors (`Directory`): a store,
/// fan-out directory or object that is a symbolic link is refused, never followed, so nothing
/// outside the volume's directories is created, written or removed, whatever the storage holds.
public final class ObjectStore: Sendable {
    public static let directoryName = ".fspf-objects"
    /// The subdirectory of a read-write mount's objects: those there that no version names are
    /// what a mount left unsealed (`fspf verify` notes them).
    public static let writtenName = "written"

    /// The store's own directory.
    let directory: Directory
    /// Fan-out directories already open, by store-relative path (a build's: at most 256
    /// descriptors while it runs; a mount, which lives long, opens them each time).
    private let open: Locked<[String: Directory]>?

    private init(_ directory: Directory, caching: Bool) {
        self.directory = directory
        open = caching ? Locked([:]) : nil
    }

    /// The store below `base`: made there with `create`, else nil when there is none. A link
    /// or a file in its place is refused. `caching`: keep fan-out directories open.
    static func open(in base: Directory, create: Bool, caching: Bool = false) throws -> ObjectStore? {
        if !create, base.status(directoryName) == nil { return nil }
        return ObjectStore(try base.subdirectory(directoryName, create: create), caching: caching)
    }

    /// The object's path below the store, from its file ID.
    static func name(fileID: [UInt8], written: Bool = false) -> String {
        let hex = Hex.encode(fileID.prefix(16))
        return (written ? writtenName + "/" : "") + hex.prefix(2) + "/" + hex.dropFirst(2)
    }

    /// A location as the metadata records it, split at its store: the directory holding the
    /// store (relative to the metadata's directory, "" for the same, or absolute) and the
    /// object's path below the store. nil for a location outside any store.
    static func split(location: String) -> (base: String, inStore: String)? {
        let parts = location.split(separator: "/", omittingEmptySubsequences: false)
        guard let i = parts.lastIndex(where: { $0 == directoryName }), i + 1 < parts.count else { return nil }
        return (parts[..<i].joined(separator: "/") + (i == 1 && parts[0].isEmpty ? "/" : ""), parts[(i + 1)...].joined(separator: "/"))
    }

    /// The directory holding the object `relative` (below the store) and its name; the fan-out
    /// directories are made on the way with `create`.
    private func place(_ relative: String, create: Bool) throws -> (Directory, String) {
        let parent = Paths.parent(relative), name = Paths.lastComponent(relative)
        guard parent != "." else { return (directory, name) }
        if let d = open?.withLock({ $0[parent] }) { return (d, name) }
        // Mostly there already: one openat2 before the component-by-component way that makes it.
        let d = try (try? directory.subdirectory(parent)) ?? directory.subdirectory(parent, create: create)
        open?.withLock { $0[parent] = d }
        return (d, name)
    }

    /// A new object file (O_EXCL: never one that exists, a link included).
    func create(_ relative: String, flags: Int32 = O_RDWR) throws -> FileDescriptor {
        let (dir, name) = try place(relative, create: true)
        return try dir.openFile(name, flags | O_CREAT | O_EXCL, mode: 0o644)
    }

    /// An object this build or mount made, opened again.
    func reopen(_ relative: String, flags: Int32 = O_RDWR) throws -> FileDescriptor {
        let (dir, name) = try place(relative, create: false)
        return try dir.openFile(name, flags)
    }

    /// Removes the object `relative` if it is there (a link there goes as a link).
    func remove(_ relative: String) {
        guard let (dir, name) = try? place(relative, create: false) else { return }
        _ = try? dir.removeFile(name)
    }

    /// Removes every file below the store that is not in `keep` (store-relative paths), and the
    /// directories that leaves empty; nothing below is followed.
    func prune(keeping keep: Set<String>) {
        var found: [(Directory, String, String)] = []
        walk(directory, prefix: "") { dir, name, relative in found.append((dir, name, relative)) }
        for (dir, name, relative) in found where !keep.contains(relative) { _ = try? dir.removeFile(name) }
        directory.removeEmptyDirectories()
        open?.withLock { $0.removeAll() }
    }

    private func walk(_ dir: Directory, prefix: String, _ body: (Directory, String, String) -> Void) {
        for raw in (try? dir.list()) ?? [] {
            let name = String(decoding: raw, as: UTF8.self)
            guard Array(name.utf8) == raw, let st = dir.status(name) else { continue }
            let relative = prefix.isEmpty ? name : prefix + "/" + name
            if st.st_mode & S_IFMT == S_IFDIR, let below = try? dir.subdirectory(name) {
                walk(below, prefix: relative, body)
            } else {
                body(dir, name, relative)
            }
        }
    }

    /// Device and inode of the store's directory: two names of one store are one store.
    var identity: [UInt64] {
        guard let st = try? directory.descriptor.status() else { return [] }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }
}

/// The stores a volume's locations name, each opened once: relative ones below the metadata's
/// directory (nothing followed on the way), absolute ones as the author recorded them.
final class ObjectStores {
    private let metadataDirectory: Directory?
    private var stores: [String: ObjectStore] = [:]

    /// `metadataDirectory`: what relative locations are relative to (nil: absolute ones only).
    init(metadataDirectory: Directory?) { self.metadataDirectory = metadataDirectory }

    /// The store below `base` (relative to the metadata's directory, or absolute); nil when
    /// there is none.
    func store(in base: String) -> ObjectStore? {
        if let s = stores[base] { return s }
        // A store that is not there (yet: a mount makes its own at its first write) is looked for again next time.
        let s = base.hasPrefix("/") ? try? ObjectStore.open(in: Directory.open(base), create: false)
            : try? metadataDirectory.flatMap { try ObjectStore.open(in: $0.subdirectory(base), create: false) }
        if let s { stores[base] = s }
        return s
    }

    /// The store holding `location` and the object's path in it; nil when there is none.
    func store(of location: String) -> (ObjectStore, String)? {
        guard let (base, inStore) = ObjectStore.split(location: location), let s = store(in: base) else { return nil }
        return (s, inStore)
    }

    /// Removes the object at `location` (best effort: a store that is gone has nothing to remove).
    func remove(_ location: String) {
        guard let (s, name) = store(of: location) else { return }
        s.remove(name)
    }

    /// Of `locations`, the paths below `store` of those that lie in it (by its device and inode,
    /// whatever name reaches it): what a prune of `store` keeps.
    func names(in store: ObjectStore, of locations: [String]) -> Set<String> {
        let identity = store.identity
        var same: [ObjectIdentifier: Bool] = [:]
        var keep = Set<String>()
        for l in locations {
            guard let (s, name) = self.store(of: l) else { continue }
            let id = ObjectIdentifier(s)
            if same[id] == nil { same[id] = s === store || s.identity == identity }
            if same[id]! { keep.insert(name) }
        }
        return keep
    }
}
