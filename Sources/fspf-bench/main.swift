import COpenSSL
import CSodium
import Dispatch
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Glibc

// Library-level measurements for `make bench`:
//   fspf-bench hashes          one core, in cache: the hash candidates for the tree leaves next
//                              to AES-256-GCM, per 16 and 64 KiB chunk (what a read hashes)
//   fspf-bench DIR [MiB]       per chunk size: volume write throughput, sequential and random
//                              4 KiB / 128 KiB reads through VolumeReader, warm page cache (the
//                              cost measured is the crypto and verification, not the disk)

let args = CommandLine.arguments
guard args.count >= 2 else {
    print("usage: fspf-bench hashes | fspf-bench DIR [MiB]")
    exit(64)
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

if args[1] == "hashes" {
    Hashes.run()
    exit(0)
}
let dir = args[1]
let mib = args.count > 2 ? Int(args[2]) ?? 256 : 256
let size = mib << 20

FileSystem.removeTree(dir + "/in")
try FileSystem.makeDirectories(dir + "/in")
do {
    let f = try FileDescriptor.open(dir + "/in/data", O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
    let block = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
    defer { block.deallocate() }
    for i in 0..<mib {
        Sodium.fillRandom(block)
        try f.write(UnsafeRawBufferPointer(block), at: UInt64(i) << 20)
    }
}

let keys = VolumeKeys.generate()
print("| chunk | write MB/s | sequential read MB/s | random 4 KiB reads/s | random 128 KiB MB/s | overhead on disk |")
print("|---:|---:|---:|---:|---:|---:|")
// The first volume written pays for fresh page-cache pages; warm up so every size sees the same.
for chunk in [0, 4096, 16384, 65536, 262_144, 1 << 20] as [UInt32] {
    let out = dir + "/vol-\(chunk)"
    FileSystem.removeTree(out)
    var options = WriterOptions()
    options.chunkSize = chunk == 0 ? 65536 : chunk
    let t0 = now()
    _ = try VolumeWriter.encrypt(input: dir + "/in", output: out, keys: keys, options: options)
    let write = Double(size) / (now() - t0) / 1e6
    if chunk == 0 {
        FileSystem.removeTree(out)
        continue
    }

    let reader = try VolumeReader(path: out, keys: keys)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
    defer { buffer.deallocate() }
    _ = try reader.read("data", offset: 0, into: buffer)  // open the object once
    var t = now()
    var offset: UInt64 = 0
    while offset < UInt64(size) { offset += UInt64(try reader.read("data", offset: offset, into: buffer)) }
    let sequential = Double(size) / (now() - t) / 1e6

    var rng = SystemRandomNumberGenerator()
    let small = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<4096])
    let n4 = 20_000
    t = now()
    for _ in 0..<n4 { _ = try reader.read("data", offset: UInt64.random(in: 0..<UInt64(size - 4096), using: &rng) & ~4095, into: small) }
    let random4 = Double(n4) / (now() - t)

    let mid = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<131_072])
    let n128 = 2000
    t = now()
    for _ in 0..<n128 { _ = try reader.read("data", offset: UInt64.random(in: 0..<UInt64(size - 131_072), using: &rng) & ~4095, into: mid) }
    let random128 = Double(n128) * 131_072 / (now() - t) / 1e6

    var onDisk: UInt64 = 0
    for e in reader.entries { if case .file(_, _, let p?, _) = e.content, p.inlineTree == nil { onDisk += p.objectSize } }
    let basisPoints = Int((Double(onDisk) / Double(size) - 1) * 10_000)
    let overhead = "\(basisPoints / 100).\(basisPoints % 100 < 10 ? "0" : "")\(basisPoints % 100)%"
    print("| \(chunk / 1024) KiB | \(Int(write)) | \(Int(sequential)) | \(Int(random4)) | \(Int(random128)) | \(overhead) |")
    FileSystem.removeTree(out)
}
FileSystem.removeTree(dir + "/in")

/// Throughput of each candidate on one core over one chunk-sized buffer that stays in cache, as
/// `openssl speed` measures: MB/s.
enum Hashes {
    static func rate(_ chunk: Int, _ body: (UnsafeMutableRawBufferPointer) -> Void) -> Double {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        Sodium.fillRandom(buffer)
        for _ in 0..<200 { body(buffer) }  // warm up
        var best = 0.0
        for _ in 0..<5 {
            var n = 0
            let t = now()
            while now() - t < 0.4 { for _ in 0..<64 { body(buffer) }; n += 64 }
            best = max(best, Double(n * chunk) / (now() - t) / 1e6)
        }
        return best
    }

    static func evp(_ name: String) -> (UnsafeMutableRawBufferPointer) -> Void {
        let md = EVP_get_digestbyname(name)!
        let ctx = EVP_MD_CTX_new()!
        var out = [UInt8](repeating: 0, count: 64)
        var n: UInt32 = 0
        return { b in
            EVP_DigestInit_ex(ctx, md, nil)
            EVP_DigestUpdate(ctx, b.baseAddress, b.count)
            EVP_DigestFinal_ex(ctx, &out, &n)
        }
    }

    static func run() {
        let gcm = GCMContext()
        [UInt8](repeating: 7, count: 32).withUnsafeBytes { gcm.setKey($0) }
        let nonce = [UInt8](repeating: 1, count: 12), aad = [UInt8](repeating: 2, count: 42)
        var tag = [UInt8](repeating: 0, count: 16)
        var out = [UInt8](repeating: 0, count: 32)
        let candidates: [(String, (UnsafeMutableRawBufferPointer) -> Void)] = [
            ("AES-256-GCM (OpenSSL), for comparison", { b in
                nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in tag.withUnsafeMutableBytes { gcm.seal(nonce: n, aad: a, data: b, tag: $0) } } }
            }),
            ("SHA-256 (OpenSSL)", evp("SHA256")),
            ("SHA-512/256 (OpenSSL)", evp("SHA512-256")),
            ("BLAKE2b-512 (OpenSSL)", evp("BLAKE2B512")),
            ("BLAKE2b-256 (libsodium crypto_generichash)", { b in
                _ = crypto_generichash(&out, 32, b.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(b.count), nil, 0)
            }),
            ("SHA-256 (libsodium crypto_hash_sha256)", { b in
                var o = [UInt8](repeating: 0, count: 32)
                _ = crypto_hash_sha256(&o, b.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(b.count))
            }),
        ]
        print("| one core, in cache | 16 KiB chunks, MB/s | 64 KiB chunks, MB/s |")
        print("|---|---:|---:|")
        for (name, body) in candidates {
            print("| \(name) | \(Int(rate(16 << 10, body))) | \(Int(rate(64 << 10, body))) |")
        }
    }
}
