import CFSPFABI
import FSPFCore
import FSPFCrypto
import FSPFProvisioning
import FSPFSystem
import Glibc

// libfspf: the C ABI of include/fspf.h over VolumeReader. Each handle is a retained Swift
// object; a file or directory handle holds its volume, so the volume (and its key) lives until
// the last of them is closed. Nothing here is global: no registry, no last-error slot.

final class Volume {
    let reader: VolumeReader
    let root: Entry
    init(_ reader: VolumeReader) {
        self.reader = reader
        root = reader.metadata.rootEntry
    }

    /// Entry index for a C path (nil: the root).
    func index(_ path: UnsafePointer<CChar>?) throws -> Int? {
        guard let path else { throw APIError(FSPF_E_USAGE, "path is NULL") }
        let text = String(cString: path)
        do {
            return try reader.entryIndex(text)
        } catch FSPFError.noInput(let p, let why) {
            throw APIError(FSPF_E_NOT_FOUND, "\(p.isEmpty ? text : p): \(why)")
        }
    }

    func stat(_ index: Int?) -> fspf_stat {
        let e = index.map { reader.entries[$0] } ?? root
        var s = fspf_stat()
        s.mode = e.mode & 0o7777
        s.size = e.size
        s.mtime_sec = e.mtimeSeconds
        s.mtime_nsec = e.mtimeNanoseconds
        s.uid = e.uid
        s.gid = e.gid
        s.inode = index.map { UInt64((reader.entries[$0].linkOf ?? $0) + 2) } ?? 1  // as fspf-mount numbers them
        switch e.content {
        case .directory: s.type = FSPF_TYPE_DIRECTORY.rawValue
        case .symlink: s.type = FSPF_TYPE_SYMLINK.rawValue
        case .file(_, let region, _, _):
            s.type = FSPF_TYPE_FILE.rawValue
            switch region {
            case .encrypted: s.region = FSPF_REGION_ENCRYPTED.rawValue
            case .authenticated: s.region = FSPF_REGION_AUTHENTICATED.rawValue
            case .notProtected: s.region = FSPF_REGION_NOT_PROTECTED.rawValue
            }
        }
        return s
    }
}

final class File {
    let volume: Volume
    let entry: Int
    let size: UInt64
    init(_ volume: Volume, _ entry: Int) {
        self.volume = volume
        self.entry = entry
        size = volume.reader.entries[entry].size
    }
}

final class Directory {
    let volume: Volume
    let names: [UnsafeMutablePointer<CChar>]
    let stats: [fspf_stat]
    init(_ volume: Volume, _ children: [Int]) {
        self.volume = volume
        names = children.map { strdup(Paths.lastComponent(volume.reader.entries[$0].path))! }
        stats = children.map { volume.stat($0) }
    }
    deinit { names.forEach { free($0) } }
}

/// A failure with the status the header documents for it.
struct APIError: Error {
    let status: fspf_status
    let message: String
    init(_ status: fspf_status, _ message: String) {
        self.status = status
        self.message = message
    }

    init(_ error: FSPFError) {
        let status: fspf_status
        switch error {
        case .usage: status = FSPF_E_USAGE
        case .noInput: status = FSPF_E_NOT_FOUND
        case .badInput: status = FSPF_E_NOT_A_VOLUME
        case .io(_, _, let e): status = e == ENOENT ? FSPF_E_NOT_FOUND : FSPF_E_IO
        case .wrongKey: status = FSPF_E_WRONG_KEY
        case .integrity: status = FSPF_E_INTEGRITY
        case .keyUnavailable, .evidenceRefused: status = FSPF_E_KEY_SOURCE
        case .outputExists, .fileExists, .outputBusy, .interrupted, .notRecorded, .fuseUnavailable, .mountFailed: status = FSPF_E_INTERNAL
        }
        self.init(status, error.description)
    }
}

/// Runs `body`, reporting its outcome through the optional error record.
func report(_ error: UnsafeMutablePointer<fspf_error>?, _ body: () throws -> Void) -> fspf_status {
    let failure: APIError
    do {
        try body()
        failure = APIError(FSPF_OK, "")
    } catch let e as APIError {
        failure = e
    } catch let e as FSPFError {
        failure = APIError(e)
    } catch {
        failure = APIError(FSPF_E_INTERNAL, "\(error)")
    }
    if let error {
        error.pointee.code = Int32(failure.status.rawValue)
        withUnsafeMutableBytes(of: &error.pointee.message) { out in
            let bytes = failure.message.utf8.prefix(out.count - 1)
            out.copyBytes(from: bytes)
            out[bytes.count] = 0
        }
    }
    return failure.status
}

/// `report` for the functions that make a handle: `out` is NULL on any failure, else the handle
/// of what `make` returns.
func produce(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ name: String, _ error: UnsafeMutablePointer<fspf_error>?,
             _ make: () throws -> AnyObject) -> fspf_status {
    report(error) {
        let slot = try output(out, name)
        slot.pointee = nil
        slot.pointee = handle(try make())
    }
}

func object<T: AnyObject>(_ handle: OpaquePointer?, _ what: String) throws -> T {
    guard let handle else { throw APIError(FSPF_E_USAGE, "\(what) handle is NULL") }
    return Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

func handle(_ object: AnyObject) -> OpaquePointer { OpaquePointer(Unmanaged.passRetained(object).toOpaque()) }

func release<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type) {
    if let handle { Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).release() }
}

func output<T>(_ pointer: UnsafeMutablePointer<T>?, _ name: String) throws -> UnsafeMutablePointer<T> {
    guard let pointer else { throw APIError(FSPF_E_USAGE, "\(name) is NULL") }
    return pointer
}

// MARK: The C functions

@_cdecl("fspf_strerror")
public func fspf_strerror(_ code: Int32) -> UnsafePointer<CChar> {
    let text: StaticString
    switch UInt32(bitPattern: code) {
    case FSPF_OK.rawValue: text = "success"
    case FSPF_E_USAGE.rawValue: text = "invalid argument"
    case FSPF_E_NOT_FOUND.rawValue: text = "no such volume, file or directory"
    case FSPF_E_NOT_A_VOLUME.rawValue: text = "not a usable FSPF volume"
    case FSPF_E_WRONG_KEY.rawValue: text = "wrong key"
    case FSPF_E_INTEGRITY.rawValue: text = "integrity check failed"
    case FSPF_E_IO.rawValue: text = "input/output error"
    case FSPF_E_KEY_SOURCE.rawValue: text = "key source failed"
    case FSPF_E_NOT_A_DIRECTORY.rawValue: text = "not a directory"
    case FSPF_E_NOT_A_FILE.rawValue: text = "not a regular file"
    case FSPF_E_INTERNAL.rawValue: text = "internal error"
    default: text = "unknown status"
    }
    return UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// FSPFVersion.number as a C string that lives as long as the library (allocated once, never freed).
nonisolated(unsafe) let versionCString: UnsafePointer<CChar> = UnsafePointer(strdup(FSPFVersion.number)!)

@_cdecl("fspf_version")
public func fspf_version() -> UnsafePointer<CChar> {
    versionCString
}

@_cdecl("fspf_volume_open")
public func fspf_volume_open(_ path: UnsafePointer<CChar>?, _ key: UnsafePointer<UInt8>?, _ keyLength: Int,
                             _ tag: UnsafePointer<CChar>?, _ flags: UInt32, _ volume: UnsafeMutablePointer<OpaquePointer?>?,
                             _ error: UnsafeMutablePointer<fspf_error>?) -> fspf_status {
    produce(volume, "volume", error) {
        guard let path else { throw APIError(FSPF_E_USAGE, "path is NULL") }
        guard let key, keyLength == VolumeKeys.keySize else {
            throw APIError(FSPF_E_USAGE, "a volume key is \(VolumeKeys.keySize) bytes, got \(key == nil ? "NULL" : "\(keyLength) bytes")")
        }
        guard flags & ~(FSPF_OPEN_NO_TAG_CHECK | FSPF_OPEN_ACCEPT_V1) == 0 else { throw APIError(FSPF_E_USAGE, "unknown flags \(flags)") }
        let expected = try tag.map { try parseTag(String(cString: $0), source: "tag") }
        guard expected != nil || flags & FSPF_OPEN_NO_TAG_CHECK != 0 else {
            throw APIError(FSPF_E_USAGE, "an expected tag is needed (or FSPF_OPEN_NO_TAG_CHECK: no rollback protection)")
        }
        let secret = SecureBytes(count: keyLength) { $0.copyMemory(from: UnsafeRawBufferPointer(start: key, count: keyLength)) }
        return Volume(try VolumeReader(path: String(cString: path), keys: try VolumeKeys(key: secret), expectedTag: expected,
                                       acceptVersion1: flags & FSPF_OPEN_ACCEPT_V1 != 0))
    }
}

@_cdecl("fspf_volume_open_options")
public func fspf_volume_open_options(_ path: UnsafePointer<CChar>?, _ options: UnsafePointer<UnsafePointer<CChar>?>?,
                                     _ volume: UnsafeMutablePointer<OpaquePointer?>?,
                                     _ error: UnsafeMutablePointer<fspf_error>?) -> fspf_status {
    produce(volume, "volume", error) {
        guard let path else { throw APIError(FSPF_E_USAGE, "path is NULL") }
        var access = AccessOptions()
        var at = options
        while let option = at?.pointee {
            let text = String(cString: option)
            guard let equals = text.firstIndex(of: "=") else { throw APIError(FSPF_E_USAGE, "option '\(text)' is not name=value") }
            try access.set(String(text[..<equals]), String(text[text.index(after: equals)...]))
            at = at! + 1
        }
        let location = String(cString: path)
        let (key, tag) = try access.load(volume: location)
        return Volume(try VolumeReader(path: location, keys: try VolumeKeys(key: key), expectedTag: tag, acceptVersion1: access.acceptV1))
    }
}

@_cdecl("fspf_volume_close")
public func fspf_volume_close(_ volume: OpaquePointer?) { release(volume, as: Volume.self) }

@_cdecl("fspf_volume_tag")
public func fspf_volume_tag(_ volume: OpaquePointer?, _ tag: UnsafeMutablePointer<CChar>?,
                            _ error: UnsafeMutablePointer<fspf_error>?) -> fspf_status {
    report(error) {
        let v: Volume = try object(volume, "volume")
        let out = try output(tag, "tag")
        let hex = Array(Hex.encode(v.reader.tag.full).utf8CString)
        hex.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: hex.count) }
    }
}

@_cdecl("fspf_volume_format")
public func fspf_volume_format(_ volume: OpaquePointer?) -> Int32 {
    guard let v: Volume = try? object(volume, "volume") else { return 0 }
    return Int32(v.reader.version.rawValue)
}

@_cdecl("fspf_stat_path")
public func fspf_stat_path(_ volume: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ stat: UnsafeMutablePointer<fspf_stat>?,
                           _ error: UnsafeMutablePointer<fspf_error>?) -> fspf_status {
    report(error) {
        let v: Volume = try object(volume, "volume")
        let out = try output(stat, "stat")
        out.pointee = v.stat(try v.index(path))
    }
}

@_cdecl("fspf_readlink")
public func fspf_readlink(_ volume: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ target: UnsafeMutablePointer<CChar>?,
                          _ capacity: Int, _ length: UnsafeMutablePointer<Int>?,
                          _ error: UnsafeMutablePointer<fspf_error>?) -> fspf_status {
    report(error) {
        let v: Volume = try object(volume, "volume")
        let count = try output(length, "length")
        guard let i = try v.index(path), case .symlink(let bytes) = v.reader.entries[i].content else {
            throw APIError(FSPF_E_NOT_A_FILE, "\(String(cString: path!)): not a symbolic link")
        }
        count.pointee = bytes.count
        guard let target, capacity > bytes.count else {
            throw APIError(FSPF_E_USAGE, "the target needs \(bytes.count + 1) bytes, the buffer has \(capacity)")
        }
        bytes.withUnsafeBufferPointer { UnsafeMutableRawPointer(target).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        target[bytes.count] = 0
    }
}

@_cdecl("fspf_list")
public func fspf_list(_ volume: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ dir: UnsafeMutablePointer<OpaquePointer?>?,
                      _ error: UnsafeMutablePointer<fspf_error>?) -> fspf_status {
    produce(dir, "dir", error) {
        let v: Volume = try object(volume, "volume")
        let i = try v.index(path)
        if let i, !v.reader.entries[i].isDirectory {
            throw APIError(FSPF_E_NOT_A_DIRECTORY, "\(v.reader.entries[i].path): not a directory")
        }
        return Directory(v, v.reader.children(of: i))
    }
}

@_cdecl("fspf_dir_count")
public func fspf_dir_count(_ dir: OpaquePointer?) -> Int {
    (try? object(dir, "dir") as Directory)?.names.count ?? 0
}

@_cdecl("fspf_dir_name")
public func fspf_dir_name(_ dir: OpaquePointer?, _ i: Int) -> UnsafePointer<CChar>? {
    guard let d: Directory = try? object(dir, "dir"), i >= 0, i < d.names.count else { return nil }
    return UnsafePointer(d.names[i])
}

@_cdecl("fspf_dir_stat")
public func fspf_dir_stat(_ dir: OpaquePointer?, _ i: Int, _ stat: UnsafeMutablePointer<fspf_stat>?,
                          _ error: UnsafeMutablePointer<fspf_error>?) -> fspf_status {
    report(error) {
        let d: Directory = try object(dir, "dir")
        let out = try output(stat, "stat")
        guard i >= 0, i < d.stats.count else { throw APIError(FSPF_E_USAGE, "entry \(i) of a directory of \(d.stats.count)") }
        out.pointee = d.stats[i]
    }
}

@_cdecl("fspf_dir_close")
public func fspf_dir_close(_ dir: OpaquePointer?) { release(dir, as: Directory.self) }

@_cdecl("fspf_open")
public func fspf_open(_ volume: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ file: UnsafeMutablePointer<OpaquePointer?>?,
                      _ error: UnsafeMutablePointer<fspf_error>?) -> fspf_status {
    produce(file, "file", error) {
        let v: Volume = try object(volume, "volume")
        let index = try v.index(path)
        guard let i = index, v.reader.entries[i].isFile else {
            let e = index.map { v.reader.entries[$0] }
            throw APIError(FSPF_E_NOT_A_FILE, "\(e?.path ?? "/"): \(e?.isDirectory == false ? "a symbolic link" : "a directory"), not a regular file")
        }
        return File(v, i)
    }
}

@_cdecl("fspf_file_size")
public func fspf_file_size(_ file: OpaquePointer?) -> UInt64 {
    (try? object(file, "file") as File)?.size ?? 0
}

@_cdecl("fspf_pread")
public func fspf_pread(_ file: OpaquePointer?, _ buffer: UnsafeMutableRawPointer?, _ count: Int, _ offset: UInt64,
                       _ bytesRead: UnsafeMutablePointer<Int>?, _ error: UnsafeMutablePointer<fspf_error>?) -> fspf_status {
    if let bytesRead { bytesRead.pointee = 0 }
    let status = report(error) {
        let f: File = try object(file, "file")
        let got = try output(bytesRead, "bytes_read")
        guard count >= 0, buffer != nil || count == 0 else { throw APIError(FSPF_E_USAGE, "buffer is NULL") }
        guard count > 0 else { return }
        got.pointee = try f.volume.reader.read(entry: f.entry, offset: offset, into: UnsafeMutableRawBufferPointer(start: buffer, count: count))
    }
    if status != FSPF_OK, let buffer, count > 0 {
        Sodium.zero(UnsafeMutableRawBufferPointer(start: buffer, count: count))
        bytesRead?.pointee = 0
    }
    return status
}

@_cdecl("fspf_close")
public func fspf_close(_ file: OpaquePointer?) { release(file, as: File.self) }
