/// Where a volume's stored bytes come from: the one seam between a reader and its storage
/// (docs/FORMAT.md §2). A reader and the verifier fetch everything through it — the sealed
/// metadata, then the stored files the metadata names (objects, and the plaintext of
/// authenticated files) by their recorded locations — with positional reads only, so nothing
/// above it knows whether they are files. Storage is the adversary: implementations return
/// bytes as stored, and the reader verifies every one of them.
///
/// The reads are shaped for storage with a high latency per request (an object store): a
/// stored file is opened once and read by range, and `read(_:)` takes many ranges at once.
public protocol VolumeStorage: Sendable {
    /// The metadata file's name in messages (a path, or a URL).
    var metadataPath: String { get }
    /// What the recorded locations are relative to, in messages.
    var directory: String { get }

    /// The sealed metadata file, at most `limit` bytes.
    func metadata(limit: Int) throws -> [UInt8]
    /// The stored file at a location the metadata records.
    func open(_ location: String) throws -> any StoredFile
    /// Whether a stored file is there (for a not-protected file, whose bytes are not verified).
    func exists(_ location: String) -> Bool
    /// Stored files beside the volume that the metadata does not name (`objects` and
    /// `plaintext`: the recorded locations): `unsealed` ones a read-write mount or a seal left
    /// behind, and `stray` ones.
    func unreferenced(objects: [String], plaintext: [String]) -> (stray: [String], unsealed: [String])
}

/// One stored file, read by position.
public protocol StoredFile: Sendable {
    /// Reads up to `buffer.count` bytes at `offset`; fewer only where the file ends.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int
    /// Several ranges at once: what a storage with a latency per request fetches in parallel.
    /// Returns the bytes read into each buffer.
    func read(_ ranges: [(offset: UInt64, into: UnsafeMutableRawBufferPointer)]) throws -> [Int]
    /// The stored size in bytes.
    func size() throws -> UInt64
    /// The byte ranges below `size` that hold data (a sparse file's extents); all of it where
    /// the storage keeps no holes.
    func dataExtents(size: UInt64) throws -> [Range<UInt64>]
}

extension StoredFile {
    public func read(_ ranges: [(offset: UInt64, into: UnsafeMutableRawBufferPointer)]) throws -> [Int] {
        try ranges.map { try read(into: $0.into, at: $0.offset) }
    }

    public func dataExtents(size: UInt64) throws -> [Range<UInt64>] { [0..<size] }
}
