import FSPFCore
import FSPFSystem

extension MountDaemon {
    /// SCONE's runtime shows each region at its own path: the outermost encrypted or
    /// authenticated regions that have files, each mounted at its absolute path (created if
    /// missing), and the ephemeral regions, each a throw-away writable mount at its path;
    /// not-protected regions are left alone.
    static func sconeMountpoints(_ reader: VolumeReader) throws -> (served: [String], ephemeral: [Region]) {
        let regions = reader.metadata.regions
        let protected = regions.filter { $0.kind != .notProtected && !$0.ephemeral }
        if protected.contains(where: { $0.path.isEmpty }) {
            throw FSPFError.usage("\(reader.metadataPath): region / is protected: SCONE's runtime would serve the whole file system; "
                                  + "mount it with fspf-mount VOLUME MOUNTPOINT")
        }
        let outermost = protected.filter { r in !protected.contains { $0.path != r.path && Paths.isWithin(r.path, $0.path) } }
        let paths = outermost.compactMap { r -> String? in
            guard let i = try? reader.entryIndex(r.path), reader.entries[i].isDirectory else { return nil }
            return "/" + r.path
        }.sorted()
        let ephemeral = regions.filter(\.ephemeral)
        // An ephemeral region inside a served one would need a directory the read-only mount does not have.
        for e in ephemeral {
            if let outer = paths.first(where: { Paths.isWithin("/" + e.path, $0) }) {
                throw FSPFError.badInput(path: reader.metadataPath, reason: "the ephemeral region /\(e.path) lies in \(outer), which is served "
                                         + "read-only: give it a path outside the encrypted and authenticated regions")
            }
        }
        guard !paths.isEmpty || !ephemeral.isEmpty else {
            throw FSPFError.badInput(path: reader.metadataPath, reason: "no encrypted or authenticated region has files to serve")
        }
        for p in paths + ephemeral.map({ "/" + $0.path }) where !FileSystem.exists(p) { try FileSystem.makeDirectories(p) }
        return (paths, ephemeral)
    }
}
