/// The chunk arithmetic of one read, as pure values (after gocryptfs's contentenc/offsets.go):
/// which chunks a read of `length` bytes at `offset` touches, which of them can be fetched
/// with one `pread` straight into the caller's buffer, and which go through scratch because
/// the read starts or ends inside them or the caller's buffer cannot hold them whole.
public struct ChunkRange: Equatable, Sendable {
    /// A chunk only partly wanted: it is read whole into scratch and bytes `from..<to` of it
    /// are copied to `bufferOffset`.
    public struct Partial: Equatable, Sendable {
        public var chunk: UInt64
        /// Bytes stored for this chunk (the chunk size, or less for the last chunk).
        public var storedLength: Int
        public var from: Int
        public var to: Int
        public var bufferOffset: Int
    }

    /// Whole chunks `first..<end`, stored contiguously, read into the buffer at `bufferOffset`.
    /// `storedLength` bytes are read (the padded end of the last chunk included when it fits);
    /// `resultLength` of them are file content.
    public struct Whole: Equatable, Sendable {
        public var first: UInt64
        public var end: UInt64
        public var bufferOffset: Int
        public var storedLength: Int
        public var resultLength: Int
    }

    public var head: Partial?
    public var whole: Whole?
    /// Never the same chunk as `head`.
    public var tail: Partial?
    /// Bytes of content the read returns.
    public var count: Int

    /// - Parameters:
    ///   - size: the file's size; nothing at or past it is returned.
    ///   - storedSize: bytes the chunks cover (size, or the padded size of an encrypted file).
    ///   - capacity: the caller's buffer; at most this many bytes are returned, and whole chunks
    ///     go straight into it only when their stored bytes fit.
    public init(offset: UInt64, capacity: Int, size: UInt64, storedSize: UInt64, chunkSize: UInt32) {
        precondition(storedSize >= size && chunkSize > 0)
        count = 0
        guard offset < size, capacity > 0 else { return }
        let cs = UInt64(chunkSize)
        let limit = offset + UInt64(capacity)
        let end = min(limit, size)
        count = Int(end - offset)
        let first = offset / cs
        let last = (end - 1) / cs
        func stored(_ c: UInt64) -> Int { Int(min(cs, storedSize - c * cs)) }
        func partial(_ c: UInt64) -> Partial {
            let start = c * cs
            return Partial(chunk: c, storedLength: stored(c), from: Int(max(offset, start) - start),
                           to: Int(min(end, start + UInt64(stored(c))) - start), bufferOffset: Int(max(offset, start) - offset))
        }
        // Whole chunks start inside the request, and their stored bytes (padding included) fit
        // below `limit`.
        let wholeFrom = offset % cs == 0 ? first : first + 1
        let wholeTo = min(last + 1, storedSize <= limit ? last + 1 : limit / cs)  // exclusive
        if wholeFrom < wholeTo {
            let startByte = wholeFrom * cs
            let storedEnd = min(wholeTo * cs, storedSize)
            whole = Whole(first: wholeFrom, end: wholeTo, bufferOffset: Int(startByte - offset),
                          storedLength: Int(storedEnd - startByte), resultLength: Int(min(storedEnd, end) - startByte))
            if wholeFrom > first { head = partial(first) }
            if wholeTo <= last { tail = partial(last) }
        } else {
            head = partial(first)
            if last > first { tail = partial(last) }
        }
    }
}
