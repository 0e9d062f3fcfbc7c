import Foundation
import Glibc
import Testing
@testable import FSPFCore
import FSPFCrypto
import FSPFSystem

/// A temporary directory removed when the value dies.
final class TempDir {
    let path: String
    init(_ label: String = "fspf-test") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
    deinit { FileSystem.removeTree(path) }
    func sub(_ name: String) -> String { path + "/" + name }
}

/// Deterministic generator so a failing random case can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomBytes(_ n: Int, _ rng: inout SplitMix64) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: n)
    var i = 0
    while i < n {
        var v = rng.next()
        for _ in 0..<8 where i < n { out[i] = UInt8(truncatingIfNeeded: v); v >>= 8; i += 1 }
    }
    return out
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    try! FileSystem.makeDirectories(Paths.parent(path))
    let f = try! FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
    bytes.withUnsafeBytes { try! f.write($0, at: 0) }
}

func readFile(_ path: String) -> [UInt8] { try! FileSystem.readAll(path) }

/// Every regular file below `dir`, relative path -> bytes.
func treeContents(_ dir: String) -> [String: [UInt8]] {
    var out: [String: [UInt8]] = [:]
    func walk(_ d: String, _ rel: String) {
        for raw in (try? FileSystem.list(d)) ?? [] {
            let name = String(decoding: raw, as: UTF8.self)
            let p = d + "/" + name, r = rel.isEmpty ? name : rel + "/" + name
            let st = try! FileSystem.lstatus(p)
            if st.st_mode & S_IFMT == S_IFDIR { walk(p, r) } else if st.st_mode & S_IFMT == S_IFREG { out[r] = readFile(p) }
        }
    }
    walk(dir, "")
    return out
}

func testKeys(_ seed: UInt8 = 7) -> VolumeKeys {
    var raw = (0..<32).map { UInt8($0) &+ seed }
    return try! VolumeKeys(key: SecureBytes(consuming: &raw))
}

func options(chunk: UInt32 = ChunkSize.default, reproducible: Bool = false, regions: [Region] = []) -> WriterOptions {
    var o = WriterOptions()
    o.chunkSize = chunk
    o.reproducible = reproducible
    o.regions = regions
    return o
}

@discardableResult
func encrypt(_ input: String, _ output: String, _ keys: VolumeKeys, _ o: WriterOptions = options()) throws -> WriteResult {
    try VolumeWriter.encrypt(input: input, output: output, keys: keys, options: o)
}

/// Reads every file of the volume through a fresh reader.
func readAll(_ volume: String, _ keys: VolumeKeys, tag: [UInt8]? = nil, acceptVersion1: Bool = false) throws -> [String: [UInt8]] {
    let r = try VolumeReader(path: volume, keys: keys, expectedTag: tag, acceptVersion1: acceptVersion1)
    var out: [String: [UInt8]] = [:]
    for e in r.entries { if case .file = e.content { out[e.path] = try r.read(e.path) } }
    return out
}

/// The property every tamper test checks: opening fails, or verify reports a problem, and
/// no read of a protected file ever returns bytes other than the original's.
func expectDetected(_ volume: String, _ keys: VolumeKeys, original: [String: [UInt8]], tag: [UInt8]? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    let reader: VolumeReader
    do { reader = try VolumeReader(path: volume, keys: keys, expectedTag: tag) } catch {
        #expect(error is FSPFError, sourceLocation: sourceLocation)
        return
    }
    let report = Verifier.verify(reader)
    #expect(!report.ok, "tampering not reported by verify", sourceLocation: sourceLocation)
    expectNoWrongBytes(reader, original: original, sourceLocation: sourceLocation)
}

func expectNoWrongBytes(_ reader: VolumeReader, original: [String: [UInt8]], sourceLocation: SourceLocation = #_sourceLocation) {
    for e in reader.entries {
        guard case .file(_, let region, _, _) = e.content, region != .notProtected else { continue }
        if let got = try? reader.read(e.path) {
            #expect(got == original[e.path], "wrong bytes served for \(e.path)", sourceLocation: sourceLocation)
        }
    }
}

func expectError(_ kind: (FSPFError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
    } catch let e as FSPFError {
        #expect(kind(e), "unexpected error \(e)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error type \(error)", sourceLocation: sourceLocation)
    }
}

extension FSPFError {
    var isIntegrity: Bool { if case .integrity = self { return true } else { return false } }
    var isWrongKey: Bool { if case .wrongKey = self { return true } else { return false } }
}

/// Objects of a volume: volume path -> on-disk object path.
func objectPaths(_ volume: String, _ keys: VolumeKeys) throws -> [String: String] {
    let r = try VolumeReader(path: volume, keys: keys)
    var out: [String: String] = [:]
    for e in r.entries { if case .file(_, _, let p?, _) = e.content { out[e.path] = r.location(p.object) } }
    return out
}

/// Path of the package root, for fixtures.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

extension VolumeReader {
    /// Where a recorded location lies on disk (the tests' volumes are local).
    func location(_ l: String) -> String { (storage as! LocalStorage).path(of: l) }
}
