import CFSPFABI
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Glibc

/// The "libfspf" target: libfspf's C ABI driven as a C caller might, by a little program read
/// from the input — opens with right, wrong and garbled keys, tags, flags and options; stat,
/// list, readlink, open and pread with arbitrary paths, offsets, lengths and indices; NULLs —
/// over the reference volume, optionally with one byte of one of its files altered first.
/// Nothing may crash, leak or touch memory outside the buffers it was given. The calls go through
/// include/fspf.h's declarations (CFSPFABI), bound at link time to libfspf's exports, as a C caller's.
enum LibraryFuzz {
    /// A pristine copy of fixtures/reference/volume-v2 and its files' bytes, to restore after
    /// each input's alteration.
    static let volume: (path: String, files: [(path: String, bytes: [UInt8])]) = {
        let path = Fuzz.directory + "/library-volume"
        let source = "fixtures/reference/volume-v2"
        guard FileSystem.isDirectory(source) else { fatalError("\(source) is missing: run from the package root") }
        var files: [(String, [UInt8])] = []
        func copy(_ relative: String) {
            let from = relative.isEmpty ? source : source + "/" + relative
            let to = relative.isEmpty ? path : path + "/" + relative
            if FileSystem.isDirectory(from) {
                try! FileSystem.makeDirectories(to)
                for raw in (try? FileSystem.list(from)) ?? [] {
                    let name = String(decoding: raw, as: UTF8.self)
                    copy(relative.isEmpty ? name : relative + "/" + name)
                }
            } else {
                let bytes = try! FileSystem.readAll(from)
                try! FileSystem.writeAtomically(to, bytes, replacing: true)
                files.append((to, bytes))
            }
        }
        copy("")
        try! FileSystem.writeAtomically(path + "/key.hex", Array(Hex.encode((0..<32).map { UInt8($0) }).utf8), replacing: true)
        return (path, files.sorted { $0.0 < $1.0 })
    }()
    static let tag = "aeeeb7d3835293ccae928fa8aefedce13401545411b06fbe4e0a5f73b47e3ad7"
    static let paths = ["", "/", "hello.txt", "data", "data/multi.bin", "data/ünïcødé name.txt", "docs/README.md", "logs/run.log",
                        "link", "empty.txt", "docs", "logs", "missing", "../x", "data/", "//data//multi.bin"]
    static let options = ["tag=" + tag, "tag=" + String(tag.prefix(32)), "no-tag-check=true", "accept-v1=true", "key-timeout=1",
                          "volume-name=x", "evidence=simulated", "attester-key=/nonexistent", "tag-env=FSPF_FUZZ_UNSET"]

    /// Passes a C string, or NULL, to `body`.
    static func with<R>(_ text: [CChar]?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
        guard let text else { return body(nil) }
        return text.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// Reads the input front to back; past the end every read gives 0.
    struct Reader {
        let data: UnsafeBufferPointer<UInt8>
        var at = 0
        var atEnd: Bool { at >= data.count }
        mutating func byte() -> UInt8 {
            defer { at += 1 }
            return at < data.count ? data[at] : 0
        }
        mutating func u64() -> UInt64 { (0..<8).reduce(0) { v, _ in v << 8 | UInt64(byte()) } }
        /// A string: a known path or option (even length byte), raw bytes (odd), NULL (255).
        mutating func text(_ known: [String]) -> [CChar]? {
            let n = byte()
            if n == 255 { return nil }
            if n % 2 == 0 { return Array(known[Int(n / 2) % known.count].utf8CString) }
            let count = min(Int(n / 2), data.count - min(at, data.count))
            defer { at += count }
            return (0..<count).map { CChar(bitPattern: data[at + $0]) } + [0]
        }
    }

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        var input = Reader(data: data)
        let (path, files) = volume
        // Optionally alter one byte of one file (metadata, object or plain file) for this input.
        var altered: Int? = nil
        if input.byte() & 1 == 1, !files.isEmpty {
            let f = Int(input.byte()) % files.count
            var bytes = files[f].bytes
            if !bytes.isEmpty {
                bytes[Int(input.u64() % UInt64(bytes.count))] ^= max(1, input.byte())
                _ = try? FileSystem.writeAtomically(files[f].path, bytes, replacing: true)
                altered = f
            }
        }
        defer { if let f = altered { _ = try? FileSystem.writeAtomically(files[f].path, files[f].bytes, replacing: true) } }

        var error = fspf_error()
        var v: OpaquePointer? = nil
        var file: OpaquePointer? = nil
        var dir: OpaquePointer? = nil
        var key = (0..<32).map { UInt8($0) }
        _ = fspf_volume_open(path, key, 32, tag, 0, &v, &error)
        var steps = 0
        while !input.atEnd && steps < 64 {
            steps += 1
            switch input.byte() % 9 {
            case 0:  // reopen: key bytes, key length, tag, flags from the input
                fspf_volume_close(v)
                v = nil
                if input.byte() & 1 == 1 { key[Int(input.byte()) % 32] ^= input.byte() }
                let length = Int(input.byte() % 40)
                let t = input.text([tag, String(tag.prefix(32)), "00", "zz" + tag.dropFirst(2)])
                let flags = UInt32(input.byte() % 5)
                key.withUnsafeBufferPointer { k in
                    with(t) { _ = fspf_volume_open(path, length <= 32 ? k.baseAddress : nil, length, $0, flags, &v, &error) }
                }
            case 1:  // reopen with options
                fspf_volume_close(v)
                v = nil
                var chosen = [Array("key-file=\(path)/key.hex".utf8CString)]
                for _ in 0..<Int(input.byte() % 4) { if let o = input.text(options) { chosen.append(o) } }
                let pointers = chosen.map { strdup($0) } + [nil]
                defer { pointers.forEach { free($0) } }
                pointers.map { UnsafePointer($0) }.withUnsafeBufferPointer { p in
                    _ = fspf_volume_open_options(path, p.baseAddress, &v, &error)
                }
            case 2:
                var s = fspf_stat()
                let p = input.text(paths)
                if input.byte() == 0 {
                    with(p) { _ = fspf_stat_path(v, $0, nil, &error) }
                } else {
                    with(p) { _ = fspf_stat_path(v, $0, &s, &error) }
                }
            case 3:
                fspf_dir_close(dir)
                dir = nil
                with(input.text(paths)) { _ = fspf_list(v, $0, &dir, &error) }
                var s = fspf_stat()
                let i = Int(input.byte()) - 2
                _ = fspf_dir_name(dir, i)
                if input.byte() & 1 == 0 { _ = fspf_dir_stat(dir, i, &s, &error) } else { _ = fspf_dir_stat(dir, i, &s, nil) }
                _ = fspf_dir_count(dir)
            case 4:
                fspf_close(file)
                file = nil
                with(input.text(paths)) { _ = fspf_open(v, $0, &file, &error) }
                _ = fspf_file_size(file)
            case 5:  // pread into an exactly sized buffer (ASan sees any overrun)
                let count = Int(input.byte()) << 8 | Int(input.byte())
                let offset = input.byte() & 1 == 0 ? UInt64(input.byte()) << 10 : input.u64()
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 1)
                var got = 0
                _ = fspf_pread(file, count == 0 && input.byte() & 1 == 1 ? nil : buffer, count, offset, &got, &error)
                buffer.deallocate()
            case 6:
                let capacity = Int(input.byte() % 16)
                let target = UnsafeMutablePointer<CChar>.allocate(capacity: max(capacity, 1))
                var length = 0
                with(input.text(paths)) { _ = fspf_readlink(v, $0, capacity == 0 ? nil : target, capacity, &length, &error) }
                target.deallocate()
            case 7:
                var tag = [CChar](repeating: 0, count: 65)
                _ = fspf_volume_tag(v, &tag, &error)
                _ = fspf_volume_format(v)
                _ = fspf_strerror(Int32(Int8(bitPattern: input.byte())))
            default:  // the volume goes first; its files and listings keep it alive
                fspf_volume_close(v)
                v = nil
            }
        }
        fspf_close(file)
        fspf_dir_close(dir)
        fspf_volume_close(v)
    }

    /// Seed programs: read every file, list every directory, reopen with options, alter then read.
    static var seeds: [[UInt8]] {
        [
            [0, 4, 8, 5, 0x40, 0, 0, 0, 4, 10, 5, 0xff, 0xff, 0, 0, 3, 20, 3, 6, 16, 5],
            [0, 1, 3, 0, 2, 0, 6, 2, 4, 10, 5, 0, 100, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 8],
            [1, 3, 0, 0, 0, 0, 0, 0, 0, 0x40, 1, 4, 6, 5, 0x80, 0, 0, 0],
            [0, 0, 1, 5, 7, 32, 0, 3, 4, 12, 5, 0x10, 0, 0, 3, 3, 22, 2, 7, 0],
        ]
    }
}
