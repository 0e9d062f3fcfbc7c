import FSPFCrypto
import FSPFProvisioning
import FSPFSystem
import Yams

/// A rendered SCONE CAS session (after envsubst), read for what SCONE's runtime would show
/// one of its services: the service's `fspf_path` volume with `fspf_key`/`fspf_tag`, each region
/// at its own path, and each volume of the service's image at its `path`, with the key and tag
/// of the session's `volumes:` entry of that name. An entry with `fspf_key` and no `fspf_tag` is
/// an output volume: created empty at its path and served read-write, as CAS creates a volume for
/// the service to write (CAS also makes the key; without CAS it comes from the session).
public struct SconeSession {
    public struct Mount: Sendable {
        /// The metadata file (`fspf_path`) or the volume directory (an image volume's `path`).
        public var volume: String
        /// nil: every region at its own path (`fspf_path`); else where the volume goes.
        public var mountpoint: String?
        public var material: KeySource.Material
        /// For messages: the session entry it came from.
        public var origin: String
        /// The session volume's name (image volumes only).
        public var name: String?
        /// An output volume: created empty, served read-write.
        public var create = false
    }

    public static func mounts(file: String, service name: String) throws -> [Mount] {
        let yaml = String(decoding: try FileSystem.readAll(file, limit: 16 << 20), as: UTF8.self)
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml), node.mapping != nil else {
                throw FSPFError.badInput(path: file, reason: "not a SCONE session (a YAML mapping with services:)")
            }
            root = node
        } catch let e as FSPFError { throw e } catch {
            throw FSPFError.badInput(path: file, reason: "not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        func bad(_ why: String) -> FSPFError { .badInput(path: file, reason: why) }
        // Scalars are read as written: a hex key must not become a number.
        func text(_ node: Node?, _ key: String) -> String? { node?[key]?.scalar?.string }
        let services = root["services"]?.sequence.map(Array.init) ?? []
        guard let service = services.first(where: { text($0, "name") == name }) else {
            throw bad("no service '\(name)' (services: \(services.compactMap { text($0, "name") }.joined(separator: ", ")))")
        }
        var mounts: [Mount] = []
        if let path = text(service, "fspf_path") {
            mounts.append(Mount(volume: path, mountpoint: nil,
                                material: try material(key: text(service, "fspf_key"), tag: text(service, "fspf_tag"), tagRequired: true,
                                                       origin: "service \(name)", file: file),
                                origin: "service \(name)"))
        }
        let imageName = text(service, "image_name")
        let image = (root["images"]?.sequence.map(Array.init) ?? []).first { imageName != nil && text($0, "name") == imageName }
        let definitions = root["volumes"]?.sequence.map(Array.init) ?? []
        for v in image?["volumes"]?.sequence.map(Array.init) ?? [] {
            guard let volumeName = text(v, "name"), let path = text(v, "path") else {
                throw bad("image \(imageName ?? "?"): a volume needs name and path")
            }
            guard let definition = definitions.first(where: { text($0, "name") == volumeName }) else {
                throw bad("image \(imageName ?? "?") names volume '\(volumeName)', which volumes: does not define")
            }
            guard text(definition, "fspf_key") != nil else {
                throw bad("volume '\(volumeName)' has no fspf_key: CAS would create the key of a new volume and keep it; without CAS "
                          + "give one (fspf keygen) to create an output volume, with fspf_tag to mount an existing one")
            }
            let output = text(definition, "fspf_tag") == nil
            var m = Mount(volume: path, mountpoint: path,
                          material: try material(key: text(definition, "fspf_key"), tag: text(definition, "fspf_tag"), tagRequired: !output,
                                                 origin: "volume \(volumeName)", file: file),
                          origin: "volume \(volumeName)")
            m.name = volumeName
            m.create = output
            mounts.append(m)
        }
        guard !mounts.isEmpty else {
            throw bad("service '\(name)' has no fspf_path and its image no volumes: nothing to mount")
        }
        return mounts
    }

    private static func material(key: String?, tag: String?, tagRequired: Bool, origin: String, file: String) throws -> KeySource.Material {
        func bad(_ why: String) -> FSPFError { .badInput(path: file, reason: "\(origin): \(why)") }
        guard let key else { throw bad("no fspf_key") }
        guard var raw = Hex.decode(key), raw.count == 32 else { throw bad("fspf_key is not 64 hex digits") }
        // The tag pins the volume version (rollback protection); only an output volume, created now, has none.
        guard let tag else {
            if tagRequired { throw bad("no fspf_tag") }
            return KeySource.Material(key: SecureBytes(consuming: &raw), tag: nil)
        }
        guard let t = Hex.decode(tag), t.count == 16 || t.count == 32 else { throw bad("fspf_tag is not 32 or 64 hex digits") }
        return KeySource.Material(key: SecureBytes(consuming: &raw), tag: t)
    }
}
