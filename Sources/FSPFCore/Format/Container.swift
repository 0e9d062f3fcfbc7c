import FSPFCrypto
import Glibc
import FSPFSystem

/// The sealed metadata file `volume.fspf` (docs/FORMAT.md §4):
///
///     0   8  magic "FSPFVOL\0"
///     8   2  format version (2; 1 is read)
///    10   2  flags (bit 0: reproducible)
///    12   4  zero
///    16  12  GCM nonce
///    28   4  zero
///    32  32  key commitment HMAC(commitment key, "commit" ‖ nonce)
///    64   8  ciphertext length n
///    72   n  metadata ciphertext
///  72+n  16  GCM tag
///
/// The 72 header bytes are the GCM additional data, so every byte of the file is authenticated
/// under the key; the volume tag (`VolumeTag`) is a SHA-256 over every byte of the file.
public enum SealedMetadata {
    public static let magic = Array("FSPFVOL\0".utf8)
    public static let headerSize = 72
    public static let fileName = "volume.fspf"

    /// The metadata file a user means by `path`: the path itself if it is not a directory;
    /// in a directory its `volume.fspf`, else the one sealed metadata file in it (SCONE's
    /// layouts name it freely: `fs.fspf`, `fspf.pb`).
    public static func locate(_ path: String) throws -> String {
        guard FileSystem.isDirectory(path) else {
            guard FileSystem.exists(path) else { throw FSPFError.noInput(path: path, reason: "no such volume") }
            return path
        }
        let standard = Paths.join(path, fileName)
        if FileSystem.exists(standard) { return standard }
        let sealed = ((try? FileSystem.list(path)) ?? []).map { Paths.join(path, String(decoding: $0, as: UTF8.self)) }.filter { p in
            guard let st = FileSystem.status(p), st.st_mode & S_IFMT == S_IFREG,
                  let fd = try? FileDescriptor.openForReading(p) else { return false }
            var head = [UInt8](repeating: 0, count: magic.count)
            let n = (try? head.withUnsafeMutableBytes { try fd.read(into: $0, at: 0) }) ?? 0
            return n == magic.count && head == magic
        }
        guard sealed.count == 1 else {
            throw FSPFError.badInput(path: path, reason: sealed.isEmpty ? "not a volume (no \(fileName) or other sealed metadata file)"
                                    : "several sealed metadata files (\(sealed.map(Paths.lastComponent).sorted().joined(separator: ", "))): name one")
        }
        return sealed[0]
    }

    static func header(version: FormatVersion, reproducible: Bool, nonce: [UInt8], commitment: [UInt8], length: Int) -> [UInt8] {
        var w = ByteWriter()
        w.put(magic)
        w.put(version.rawValue)
        w.put(UInt16(reproducible ? 1 : 0))
        w.put(UInt32(0))
        w.put(nonce)
        w.put(UInt32(0))
        w.put(commitment)
        w.put(UInt64(length))
        return w.bytes
    }

    /// Seals `metadata` (in its own format version); returns the file's bytes and the volume tag.
    @_spi(Fuzzing) public static func seal(_ metadata: VolumeMetadata, keys: VolumeKeys) -> (file: [UInt8], tag: VolumeTag) {
        var plaintext = metadata.encoded()
        // Reproducible: a synthetic nonce from the plaintext, so equal input gives equal output
        // and different plaintexts get different nonces (SIV-style, FORMAT.md §9).
        let nonce = metadata.reproducible
            ? Array(keys.identity("metadata nonce", SHA256.hash(plaintext)).prefix(12))
            : Sodium.randomBytes(12)
        let file = seal(plaintext: &plaintext, version: metadata.version, reproducible: metadata.reproducible, nonce: nonce, keys: keys)
        return (file, VolumeTag.of(file: file, version: metadata.version))
    }

    /// The file holding exactly `plaintext` sealed under `nonce`; `plaintext` is encrypted in
    /// place, so no copy of it is left behind (the fuzzers and the forgery tests seal plaintexts
    /// of their own).
    @_spi(Fuzzing) public static func seal(plaintext: inout [UInt8], version: FormatVersion, reproducible: Bool, nonce: [UInt8],
                                           keys: VolumeKeys) -> [UInt8] {
        let header = header(version: version, reproducible: reproducible, nonce: nonce,
                            commitment: keys.commitment(nonce: nonce), length: plaintext.count)
        let gcmTag = ChunkCipher.sealMetadata(keys, nonce: nonce, aad: header, data: &plaintext)
        return header + plaintext + gcmTag
    }

    /// What can be read without the key.
    public struct PublicHeader: Sendable {
        public var version: FormatVersion
        public var reproducible: Bool
        public var ciphertextLength: UInt64
        public var tag: VolumeTag
    }

    public static func parseHeader(_ file: [UInt8], path: String) throws -> PublicHeader {
        var r = ByteReader(file, context: path)
        guard file.count >= headerSize + 16, try r.get(count: 8, "magic") == magic else {
            throw FSPFError.badInput(path: path, reason: "not an FSPF volume (bad magic)")
        }
        let raw = try r.get(UInt16.self, "version")
        guard let version = FormatVersion(rawValue: raw) else {
            throw FSPFError.badInput(path: path, reason: "unsupported format version \(raw) (this fspf reads versions 1 and 2)")
        }
        let flags = try r.get(UInt16.self, "flags")
        _ = try r.get(UInt32.self, "reserved")
        _ = try r.get(count: 12, "nonce")
        _ = try r.get(UInt32.self, "reserved")
        _ = try r.get(count: 32, "commitment")
        let length = try r.get(UInt64.self, "length")
        guard length == UInt64(file.count - headerSize - 16) else {
            throw FSPFError.integrity(path: path, reason: "metadata is \(file.count) bytes, its header announces \(length) bytes of ciphertext")
        }
        return PublicHeader(version: version, reproducible: flags & 1 != 0, ciphertextLength: length,
                            tag: VolumeTag.of(file: file, version: version))
    }

    /// Opens a sealed metadata file. Order: format, key commitment (wrong key), expected tag
    /// (rollback / substitution), then GCM authentication (tampering). A version-1 volume is
    /// refused under an expected tag unless `acceptVersion1`: anyone with the key can make a
    /// version-1 volume whose tag is any 16 bytes, a version-2 volume's short tag included.
    static func open(_ file: [UInt8], keys: VolumeKeys, expectedTag: [UInt8]?, acceptVersion1: Bool, path: String)
        throws -> (VolumeMetadata, tag: VolumeTag) {
        let header = try parseHeader(file, path: path)
        let reserved = Array(file[12..<16]) + Array(file[28..<32])
        guard reserved.allSatisfy({ $0 == 0 }), Array(file[10..<12]) == [header.reproducible ? 1 : 0, 0] else {
            throw FSPFError.integrity(path: path, reason: "metadata header altered")
        }
        let nonce = Array(file[16..<28])
        guard Sodium.equal(keys.commitment(nonce: nonce), Array(file[32..<64])) else {
            throw FSPFError.wrongKey(path: path)
        }
        if let expected = expectedTag {
            if header.version == .v1 && !acceptVersion1 {
                throw FSPFError.badInput(path: path, reason: "format version 1: its tag binds only against those without the key "
                                         + "(a key holder can make a version-1 volume with any tag); if every holder of the key is "
                                         + "trusted, accept it with --accept-v1 (and convert it with 'fspf upgrade --accept-v1')")
            }
            guard header.tag.matches(expected) else {
                throw FSPFError.integrity(path: path, reason:
                    "volume tag \(Hex.encode(expected.count == VolumeTag.fullSize ? header.tag.full : header.tag.short)) "
                    + "is not the expected \(Hex.encode(expected)) (an older, newer or different volume)")
            }
        }
        var data = Array(file[headerSize..<(file.count - 16)])
        guard ChunkCipher.openMetadata(keys, nonce: nonce, aad: Array(file[0..<headerSize]), data: &data, tag: Array(file.suffix(16))) else {
            throw FSPFError.integrity(path: path, reason: "metadata authentication failed")
        }
        defer { data.withUnsafeMutableBytes { Sodium.zero($0) } }
        let metadata = try VolumeMetadata.decode(data, context: path)
        guard metadata.reproducible == header.reproducible, metadata.version == header.version else {
            throw FSPFError.integrity(path: path, reason: "metadata flags or version disagree with the header")
        }
        return (metadata, header.tag)
    }
}

/// The 64-byte header of every object file (docs/FORMAT.md §5).
///
///     0  8  magic "FSPFOBJ\0"
///     8  2  format version
///    10  1  kind (1 encrypted, 2 authenticated)
///    11  5  zero
///    16 32  file ID
///    48 16  zero
public enum ObjectHeader {
    public static let size = 64
    static let magic = Array("FSPFOBJ\0".utf8)

    static func bytes(version: FormatVersion, kind: ChunkKind, fileID: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.put(magic)
        w.put(version.rawValue)
        w.put(kind.rawValue)
        w.put([UInt8](repeating: 0, count: 5))
        w.put(fileID)
        w.put([UInt8](repeating: 0, count: 16))
        return w.bytes
    }
}
