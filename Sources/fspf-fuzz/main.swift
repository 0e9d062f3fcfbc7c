import Foundation
import Glibc
@testable import FSPFCore
@testable import FSPFProvisioning

// libFuzzer targets (`make fuzz`): the parsers that see attacker-controlled bytes.
// Built with -sanitize=fuzzer,address this program's entry point hands control to libFuzzer
// (found with dlsym, so the ordinary build links too and just explains how to build it).
//   FSPF_FUZZ_TARGET=<target> fspf-fuzz [libFuzzer flags] CORPUS...
//   fspf-fuzz --seeds DIR      writes a seed corpus per target
// Targets: metadata, header, open, key, resource.

typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
typealias Driver = @convention(c) (UnsafeMutablePointer<CInt>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>, Callback) -> CInt

enum Fuzz {
    nonisolated(unsafe) static var target: (UnsafeBufferPointer<UInt8>) -> Void = { _ in }
    static let keys = try! VolumeKeys(key: SecureBytes(count: 32) { b in for i in 0..<32 { b[i] = UInt8(i) } })
    static let directory: String = {
        let d = "/tmp/fspf-fuzz-\(getpid())"
        try? FileSystem.makeDirectories(d)
        return d
    }()

    static let targets: [String: @Sendable (UnsafeBufferPointer<UInt8>) -> Void] = [
        // Metadata plaintext decoding (after authentication): must reject, never crash.
        "metadata": { data in _ = try? VolumeMetadata.decode(Array(data), context: "fuzz") },
        // The public header of volume.fspf: read without the key, by `fspf info`.
        "header": { data in _ = try? SealedMetadata.parseHeader(Array(data), path: "fuzz") },
        // Opening a volume with the right key whose sealed metadata carries arbitrary plaintext,
        // then listing and reading every entry (objects absent or garbage).
        "open": { data in
            let file = sealRaw(Array(data))
            let path = directory + "/volume.fspf"
            guard (try? FileSystem.writeAtomically(path, file)) != nil,
                  let reader = try? VolumeReader(path: directory, keys: keys) else { return }
            var buffer = [UInt8](repeating: 0, count: 256)
            for (i, e) in reader.entries.enumerated() {
                _ = try? reader.list(e.path)
                _ = try? buffer.withUnsafeMutableBytes { try reader.read(entry: i, offset: 0, into: $0) }
            }
            _ = Verifier.verify(reader, threads: 1)
        },
        // Keys and tags as given on files, environment variables and key resources.
        "key": { data in
            var bytes = Array(data)
            _ = try? VolumeKeys.parse(&bytes, source: "fuzz")
            _ = try? parseTag(String(decoding: data, as: UTF8.self), source: "fuzz")
        },
        // What a key agent answers: the HTTP response and the key resource body.
        "resource": { data in
            _ = try? HTTPClient.response(Array(data), limit: 64 << 10, url: "fuzz")
            var bytes = Array(data)
            _ = try? KeyResource.parse(&bytes, source: "fuzz")
        },
    ]

    /// A volume.fspf whose sealed plaintext is exactly `plaintext`.
    static func sealRaw(_ plaintext: [UInt8]) -> [UInt8] {
        let nonce = [UInt8](repeating: 7, count: 12)
        let header = SealedMetadata.header(reproducible: false, nonce: nonce, commitment: keys.commitment(nonce: nonce), length: plaintext.count)
        var data = plaintext
        let tag = ChunkCipher.sealMetadata(keys, nonce: nonce, aad: header, data: &data)
        return header + data + tag
    }

    /// Seeds from real structures: the reference-like metadata, headers, keys, agent answers.
    static func writeSeeds(_ root: String) throws {
        let entries = [
            Entry(path: "d", mode: 0o755, mtimeSeconds: 1, mtimeNanoseconds: 2, content: .directory),
            Entry(path: "d/f", mode: 0o644, mtimeSeconds: 3, mtimeNanoseconds: 4, content: .file(size: 5, region: .encrypted,
                protection: ProtectedFile(kind: .encrypted, chunkSize: 4096, storedSize: 4096, fileID: Array(repeating: 1, count: 32),
                                          root: Array(repeating: 2, count: 32), object: ".fspf-objects/01/01"), plain: nil)),
            Entry(path: "d/a", mode: 0o644, mtimeSeconds: 3, mtimeNanoseconds: 4, content: .file(size: 9, region: .authenticated,
                protection: ProtectedFile(kind: .authenticated, chunkSize: 4096, storedSize: 9, fileID: Array(repeating: 3, count: 32),
                                          root: Array(repeating: 4, count: 32), object: ".fspf-objects/03/03"), plain: "d/a")),
            Entry(path: "l", mode: 0o777, mtimeSeconds: 0, mtimeNanoseconds: 0, content: .symlink(target: Array("d/f".utf8))),
            Entry(path: "n", mode: 0o644, mtimeSeconds: 0, mtimeNanoseconds: 0, content: .file(size: 3, region: .notProtected, protection: nil, plain: "n")),
        ]
        let metadata = VolumeMetadata(reproducible: false, regions: [Region(path: "", kind: .encrypted, chunkSize: 4096),
                                                                     Region(path: "d/a", kind: .authenticated, chunkSize: 4096)], entries: entries)
        let hex = String(repeating: "ab", count: 32), tag = String(repeating: "cd", count: 16)
        let seeds: [String: [[UInt8]]] = [
            "metadata": [metadata.encoded()],
            "header": [SealedMetadata.seal(metadata, keys: keys).file],
            "open": [metadata.encoded()],
            "key": [Array(hex.utf8), Array((hex + "\n").utf8), [UInt8](repeating: 0xab, count: 32), Array(tag.utf8)],
            "resource": [Array("HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n\(hex)".utf8),
                         Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n\(hex)\r\n0\r\n\r\n".utf8),
                         Array(#"{"key": "\#(hex)", "tag": "\#(tag)"}"#.utf8)],
        ]
        for (target, list) in seeds {
            try FileSystem.makeDirectories(root + "/" + target)
            for (n, bytes) in list.enumerated() { try FileSystem.writeAtomically(root + "/\(target)/seed-\(n)", bytes) }
        }
    }
}

let args = CommandLine.arguments
if args.count == 3 && args[1] == "--seeds" {
    try Fuzz.writeSeeds(args[2])
    exit(0)
}
guard let name = ProcessInfo.processInfo.environment["FSPF_FUZZ_TARGET"], let chosen = Fuzz.targets[name] else {
    print("set FSPF_FUZZ_TARGET to one of: \(Fuzz.targets.keys.sorted().joined(separator: ", "))")
    exit(64)
}
guard let symbol = dlsym(nil, "LLVMFuzzerRunDriver") else {  // nil: RTLD_DEFAULT
    print("fspf-fuzz was built without libFuzzer: use `make fuzz`")
    exit(64)
}
Fuzz.target = chosen
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
let driver = unsafeBitCast(symbol, to: Driver.self)
exit(driver(&argc, &argv) { data, size in
    Fuzz.target(UnsafeBufferPointer(start: data, count: size))
    return 0
})

/// libFuzzer's own entry point, should its `main` be the one linked in.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzz.target(UnsafeBufferPointer(start: data, count: size))
    return 0
}
