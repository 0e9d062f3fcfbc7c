import FSPFCore
import FSPFCrypto
import FSPFSystem
import Foundation
import Glibc

// The tamper matrix (`make test-security`; `--quick` inside `make test`): every single-byte
// change of a small volume with all regions, a random sample on a multi-MiB volume, and the
// structural attacks of docs/FORMAT.md §8, each checked through the library (open with the
// expected tag, verify, read everything) and a share of them through a real fspf-mount.
// Prints tried / detected / undetected; exits 1 if anything went undetected or a wrong byte
// was ever served.

struct Matrix {
    var tried = 0, detected = 0, undetected = 0, wrongBytes = 0
    var notes: [String] = []
}

let arguments = CommandLine.arguments
let quick = arguments.contains("--quick")
let mountBinary: String? = arguments.firstIndex(of: "--mount").map { arguments[$0 + 1] }
let work = FileManager.default.temporaryDirectory.appendingPathComponent("fspf-tamper-\(getpid())").path
try FileSystem.makeDirectories(work)
defer { FileSystem.removeTree(work) }

@MainActor func write(_ path: String, _ bytes: [UInt8]) {
    try! FileSystem.makeDirectories(Paths.parent(path))
    let f = try! FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
    bytes.withUnsafeBytes { try! f.write($0, at: 0) }
}
@MainActor func read(_ path: String) -> [UInt8] { (try? FileSystem.readAll(path)) ?? [] }
@MainActor func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255) } }

/// All regular files under `dir`, relative paths.
@MainActor func files(_ dir: String) -> [String] {
    var out: [String] = []
    FileSystem.forEachFile(below: dir) { p, st in if st.st_mode & S_IFMT == S_IFREG { out.append(String(p.dropFirst(dir.count + 1))) } }
    return out.sorted()
}

struct Volume {
    let path: String
    let keys: VolumeKeys
    let tag: [UInt8]
    let original: [String: [UInt8]]
    let excluded: Set<String>   // not-protected plaintext: unverified by design
}

@MainActor func build(_ name: String, _ tree: [String: [UInt8]], chunk: UInt32, keys: VolumeKeys) throws -> Volume {
    let input = work + "/" + name + "-in", output = work + "/" + name
    FileSystem.removeTree(input); FileSystem.removeTree(output)
    for (p, b) in tree { write(input + "/" + p, b) }
    var o = WriterOptions()
    o.chunkSize = chunk
    o.regions = [Region(path: "auth", kind: .authenticated, chunkSize: chunk), Region(path: "logs", kind: .notProtected, chunkSize: chunk)]
    let r = try VolumeWriter.encrypt(input: input, output: output, keys: keys, options: o)
    return Volume(path: output, keys: keys, tag: r.tag.full, original: tree, excluded: Set(tree.keys.filter { $0.hasPrefix("logs/") }))
}

/// Detected: the volume does not open with its pinned tag, or verify reports a problem.
/// Separately, no read may ever return a byte the author did not write.
@MainActor func check(_ v: Volume, _ m: inout Matrix, _ what: @autoclosure () -> String) {
    m.tried += 1
    guard let reader = try? VolumeReader(path: v.path, keys: v.keys, expectedTag: v.tag) else { m.detected += 1; return }
    let found = !Verifier.verify(reader, threads: 1).ok
    if found { m.detected += 1 } else { m.undetected += 1; m.notes.append("undetected: \(what())") }
    for (p, b) in v.original where !v.excluded.contains(p) {
        if let got = try? reader.read(p), got != b { m.wrongBytes += 1; m.notes.append("WRONG BYTES served for \(p) after \(what())") }
    }
}

@MainActor func byteChanges(_ v: Volume, stride step: Int, _ m: inout Matrix) {
    for rel in files(v.path) where !rel.hasPrefix("logs/") {
        let path = v.path + "/" + rel
        let bytes = read(path)
        for offset in Swift.stride(from: offset(step), to: bytes.count, by: step) {
            var changed = bytes
            changed[offset] ^= 1 << UInt8(offset % 8)
            write(path, changed)
            check(v, &m, "bit flip at \(rel):\(offset)")
        }
        write(path, bytes)
    }
}
@MainActor func offset(_ step: Int) -> Int { step == 1 ? 0 : Int.random(in: 0..<step) }

@MainActor func randomSample(_ v: Volume, count: Int, _ m: inout Matrix) {
    let candidates = files(v.path).filter { !$0.hasPrefix("logs/") }
    for _ in 0..<count {
        let rel = candidates.randomElement()!
        let path = v.path + "/" + rel
        let bytes = read(path)
        let at = Int.random(in: 0..<bytes.count)
        var changed = bytes
        changed[at] = changed[at] &+ UInt8.random(in: 1...255)
        write(path, changed)
        check(v, &m, "byte change at \(rel):\(at)")
        write(path, bytes)
    }
}

@MainActor func objects(_ v: Volume) throws -> [String: String] {
    let r = try VolumeReader(path: v.path, keys: v.keys)
    var out: [String: String] = [:]
    for e in r.entries { if case .file(_, _, let p?, _) = e.content, p.inlineTree == nil { out[e.path] = v.path + "/" + p.object } }
    return out
}

/// Applies an attack to a fresh copy of the volume and checks it (and through a mount, if asked).
@MainActor func attack(_ v: Volume, _ name: String, _ m: inout Matrix, _ body: (Volume) throws -> Void) throws {
    let copy = work + "/attack"
    FileSystem.removeTree(copy)
    _ = system("cp -a '\(v.path)' '\(copy)'")
    let c = Volume(path: copy, keys: v.keys, tag: v.tag, original: v.original, excluded: v.excluded)
    try body(c)
    if name.hasPrefix("stray") {
        // Never served, reported by verify.
        m.tried += 1
        let r = try VolumeReader(path: c.path, keys: c.keys, expectedTag: c.tag)
        if Verifier.verify(r, threads: 1).problems.contains(where: { $0.message.contains("unexpected") }) { m.detected += 1 } else {
            m.undetected += 1; m.notes.append("undetected: \(name)")
        }
    } else {
        check(c, &m, name)
    }
    if mountBinary != nil { mountCheck(c, name) }
}

@MainActor func structural(_ v: Volume, older: Volume, other: Volume, _ m: inout Matrix) throws {
    let o = try objects(v)
    let big = o["a.bin"]!, second = o["b.bin"]!
    func swapRanges(_ path: String, _ a: Int, _ b: Int, _ n: Int) {
        var bytes = read(path)
        let x = Array(bytes[a..<(a + n)]), y = Array(bytes[b..<(b + n)])
        bytes.replaceSubrange(a..<(a + n), with: y); bytes.replaceSubrange(b..<(b + n), with: x)
        write(path, bytes)
    }
    func relocate(_ path: String, in copy: Volume) -> String { copy.path + String(path.dropFirst(v.path.count)) }
    let h = ObjectHeader.size
    try attack(v, "swap two chunks inside a file", &m) { c in swapRanges(relocate(big, in: c), h, h + 4096, 4096) }
    try attack(v, "swap chunks across files", &m) { c in
        let a = relocate(big, in: c), b = relocate(second, in: c)
        var x = read(a), y = read(b)
        let cx = Array(x[h..<(h + 4096)]); x.replaceSubrange(h..<(h + 4096), with: y[h..<(h + 4096)]); y.replaceSubrange(h..<(h + 4096), with: cx)
        write(a, x); write(b, y)
    }
    try attack(v, "swap two objects", &m) { c in
        let a = relocate(big, in: c), b = relocate(second, in: c), x = read(a)
        write(a, read(b)); write(b, x)
    }
    try attack(v, "rename an object", &m) { c in try FileSystem.rename(relocate(big, in: c), relocate(big, in: c) + "0") }
    for cut in [0, h, h + 4096, h + 4096 + 1, h + 2 * 4096 - 1] {
        try attack(v, "truncate object at \(cut)", &m) { c in let p = relocate(big, in: c); write(p, Array(read(p).prefix(cut))) }
    }
    try attack(v, "truncate the tag tree by 16 bytes", &m) { c in let p = relocate(big, in: c); write(p, Array(read(p).dropLast(16))) }
    try attack(v, "append a byte", &m) { c in let p = relocate(big, in: c); write(p, read(p) + [0]) }
    try attack(v, "append a chunk of zeros", &m) { c in let p = relocate(big, in: c); write(p, read(p) + [UInt8](repeating: 0, count: 4096)) }
    try attack(v, "delete an object", &m) { c in unlink(relocate(big, in: c)) }
    try attack(v, "delete an authenticated plaintext", &m) { c in unlink(c.path + "/auth/doc.md") }
    try attack(v, "delete the metadata", &m) { c in unlink(c.path + "/volume.fspf") }
    try attack(v, "truncate an authenticated plaintext", &m) { c in let p = c.path + "/auth/doc.md"; write(p, Array(read(p).dropLast(1))) }
    try attack(v, "stray object added", &m) { c in write(c.path + "/.fspf-objects/00/0000", random(5000)) }
    try attack(v, "stray plain file added", &m) { c in write(c.path + "/extra.txt", random(10)) }
    // Same key, earlier version and unrelated volume.
    let old = try objects(older), foreign = try objects(other)
    try attack(v, "roll one file back (its old object under the new name)", &m) { c in write(relocate(big, in: c), read(old["a.bin"]!)) }
    try attack(v, "roll one file back (old object under its own name)", &m) { c in
        unlink(relocate(big, in: c))
        let target = c.path + String(old["a.bin"]!.dropFirst(older.path.count))
        try FileSystem.makeDirectories(Paths.parent(target)); write(target, read(old["a.bin"]!))
    }
    try attack(v, "roll the metadata back", &m) { c in write(c.path + "/volume.fspf", read(older.path + "/volume.fspf")) }
    try attack(v, "replace the whole volume by the older one", &m) { c in
        FileSystem.removeTree(c.path); _ = system("cp -a '\(older.path)' '\(c.path)'")
    }
    try attack(v, "mix in an object of another volume", &m) { c in write(relocate(big, in: c), read(foreign["a.bin"]!)) }
    try attack(v, "metadata from another volume", &m) { c in write(c.path + "/volume.fspf", read(other.path + "/volume.fspf")) }
}

/// Through a real mount: refused, or EIO on the affected reads — never a wrong byte.
struct MountResult { var tried = 0, refused = 0, eio = 0, unaffected = 0, wrong = 0; var unaffectedBy: [String] = [] }
var mountResult = MountResult()
@MainActor func mountCheck(_ v: Volume, _ what: String) {
    guard let binary = mountBinary else { return }
    let mnt = work + "/mnt"
    try? FileSystem.makeDirectories(mnt)
    let keyFile = work + "/key"
    if !FileSystem.exists(keyFile) { write(keyFile, Array(v.keys.key.hex.utf8)) }
    mountResult.tried += 1
    let status = system("'\(binary)' '\(v.path)' '\(mnt)' --key-file '\(keyFile)' --tag \(Hex.encode(v.tag)) 2>/dev/null")
    guard status == 0 else { mountResult.refused += 1; return }
    defer { _ = system("umount '\(mnt)'") }
    var sawEIO = false
    for (p, b) in v.original where !v.excluded.contains(p) {
        let fd = open(mnt + "/" + p, O_RDONLY | O_CLOEXEC)
        if fd < 0 { if errno == EIO { sawEIO = true }; continue }
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { sawEIO = sawEIO || errno == EIO; break }
            if n == 0 { if got != b { mountResult.wrong += 1 }; break }
            got += buffer[0..<n]
        }
        close(fd)
    }
    if sawEIO { mountResult.eio += 1 } else { mountResult.unaffected += 1; mountResult.unaffectedBy.append(what) }
}

// The volumes.
let keys = VolumeKeys.generate()
let smallTree: [String: [UInt8]] = [
    "a.bin": random(3 * 4096 + 100), "b.bin": random(2 * 4096 + 7), "small.txt": Array("hi\n".utf8), "empty": [],
    "dir/sub/c.bin": random(5000), "auth/doc.md": random(2 * 4096 + 1), "logs/l.txt": Array("log\n".utf8),
]
let small = try build("small", smallTree, chunk: 4096, keys: keys)
var olderTree = smallTree
olderTree["a.bin"]![0] ^= 1
let older = try build("older", olderTree, chunk: 4096, keys: keys)
let small2 = try build("small2", smallTree, chunk: 4096, keys: keys)   // current version, built after the older one
let other = try build("other", ["a.bin": random(3 * 4096 + 100), "x": random(99)], chunk: 4096, keys: keys)
let large = try build("large", ["a.bin": random(5 << 20), "b.bin": random(2 << 20 + 3), "auth/c.bin": random(1 << 20), "logs/l": random(10)],
                      chunk: 65536, keys: keys)

/// A volume written through WritableVolume (what a read-write mount does): files written in
/// pieces, rewritten (chunk generations above 0), truncated, renamed and sealed twice; then a
/// session that wrote more and was never sealed, leaving its pieces in `.fspf-objects/written`.
@MainActor func buildWritten(_ name: String, keys: VolumeKeys) throws -> (sealed: Volume, previous: Volume, unsealed: [String]) {
    let path = work + "/" + name
    FileSystem.removeTree(path)
    let caller = WritableVolume.Caller(uid: 0, gid: 0)
    var model: [String: [UInt8]] = [:]
    func put(_ v: WritableVolume, _ ino: UInt64, _ at: Int, _ bytes: [UInt8], _ file: String) throws {
        try bytes.withUnsafeBytes { try v.write(ino, at: UInt64(at), $0) }
        var m = model[file] ?? []
        if m.count < at + bytes.count { m += [UInt8](repeating: 0, count: at + bytes.count - m.count) }
        m.replaceSubrange(at..<(at + bytes.count), with: bytes)
        model[file] = m
    }
    var v: WritableVolume! = try WritableVolume.create(directory: path, keys: keys, chunkSize: 4096)
    let root = WritableVolume.rootInode
    let dir = UInt64(try v.makeDirectory(root, Array("d".utf8), mode: 0o755, caller: caller).st_ino)
    let a = UInt64(try v.makeFile(dir, Array("a.bin".utf8), mode: 0o644, caller: caller).st_ino)
    try put(v, a, 0, random(3 * 4096 + 100), "d/a.bin")
    for _ in 0..<6 { try put(v, a, Int.random(in: 0..<12_000), random(Int.random(in: 1...3000)), "d/a.bin") }
    let b = UInt64(try v.makeFile(root, Array("b.bin".utf8), mode: 0o600, caller: caller).st_ino)
    try put(v, b, 0, random(9000), "b.bin")
    var cut = WritableVolume.AttributeChange()
    cut.size = 5000
    _ = try v.setAttributes(b, cut)
    model["b.bin"] = Array(model["b.bin"]!.prefix(5000))
    _ = try v.makeFile(root, Array("empty".utf8), mode: 0o644, caller: caller)
    model["empty"] = []
    try v.release(a)
    try v.release(b)
    let first = try v.seal()
    _ = system("cp -a '\(path)' '\(path)-v1'")
    let previous = Volume(path: path + "-v1", keys: keys, tag: first.full, original: model, excluded: [])
    // A second version: a sealed file rewritten in place, one renamed.
    try put(v, a, 4000, random(200), "d/a.bin")
    try v.rename(root, Array("b.bin".utf8), to: dir, Array("b2.bin".utf8), flags: 0)
    model["d/b2.bin"] = model.removeValue(forKey: "b.bin")
    let tag = try v.seal()
    precondition(tag != first)
    // A session that is never sealed.
    v = nil
    v = try WritableVolume(path: path, keys: keys, expectedTag: tag.full)
    let lost = UInt64(try v.makeFile(root, Array("lost".utf8), mode: 0o644, caller: caller).st_ino)
    try random(20_000).withUnsafeBytes { try v.write(lost, at: 0, $0) }
    let a2 = UInt64(try v.lookup(dir, Array("a.bin".utf8)).st_ino)
    try random(5000).withUnsafeBytes { try v.write(a2, at: 100, $0) }
    try v.release(lost)
    try v.release(a2)
    let unsealed = files(path).filter { $0.hasPrefix(".fspf-objects/\(ObjectStore.writtenName)/") }
        .filter { o in !(try! objects(Volume(path: path, keys: keys, tag: tag.full, original: [:], excluded: []))).values.contains(path + "/" + o) }
    precondition(!unsealed.isEmpty, "the unsealed session left nothing")
    return (Volume(path: path, keys: keys, tag: tag.full, original: model, excluded: []), previous, unsealed)
}

/// Pieces of an unsealed version are never read: changing them must change nothing a reader
/// sees, and the volume still opens and verifies under its tag.
@MainActor func unsealedChanges(_ v: Volume, _ pieces: [String], stride step: Int, _ m: inout Matrix) {
    for rel in pieces {
        let path = v.path + "/" + rel
        let bytes = read(path)
        for at in Swift.stride(from: offset(step), to: bytes.count, by: step) {
            var changed = bytes
            changed[at] ^= 0x40
            write(path, changed)
            m.tried += 1
            if let reader = try? VolumeReader(path: v.path, keys: v.keys, expectedTag: v.tag), Verifier.verify(reader, threads: 1).ok,
               v.original.allSatisfy({ (try? reader.read($0.key)) == $0.value }) {
                m.detected += 1  // here: "without effect", as required
            } else {
                m.undetected += 1
                m.notes.append("an unsealed piece changed what the volume serves: \(rel):\(at)")
            }
        }
        write(path, bytes)
    }
}

let (written, writtenV1, unsealedPieces) = try buildWritten("written", keys: keys)

var small1 = Matrix(), large1 = Matrix(), struct1 = Matrix(), written1 = Matrix(), unsealed1 = Matrix()
byteChanges(small2, stride: quick ? 29 : 1, &small1)
randomSample(large, count: quick ? 200 : 5000, &large1)
try structural(small2, older: older, other: other, &struct1)
// The written volume: every sealed byte (the unsealed pieces aside), then the pieces themselves,
// then an unsealed piece or the previous version's object put in place of a sealed object.
let sealedFiles = files(written.path).filter { !unsealedPieces.contains($0) }
for rel in sealedFiles {
    let path = written.path + "/" + rel
    let bytes = read(path)
    for at in Swift.stride(from: offset(quick ? 29 : 1), to: bytes.count, by: quick ? 29 : 1) {
        var changed = bytes
        changed[at] ^= 1 << UInt8(at % 8)
        write(path, changed)
        check(written, &written1, "written volume: bit flip at \(rel):\(at)")
    }
    write(path, bytes)
}
unsealedChanges(written, unsealedPieces, stride: quick ? 97 : 7, &unsealed1)
for (file, object) in try objects(written) {
    for piece in unsealedPieces {
        try attack(written, "written volume: unsealed piece \(piece) in place of \(file)'s object", &written1) { c in
            _ = system("cp '\(c.path)/\(piece)' '\(c.path + String(object.dropFirst(written.path.count)))'")
        }
    }
}
let v1Objects = try objects(writtenV1)
for (file, object) in try objects(written) {
    // Files the second seal rewrote (an unchanged file keeps its object: nothing to replay).
    if let old = v1Objects[file], old.dropFirst(writtenV1.path.count) != object.dropFirst(written.path.count) {
        try attack(written, "written volume: the previous version's object of \(file) replayed", &written1) { c in
            _ = system("cp '\(old)' '\(c.path + String(object.dropFirst(written.path.count)))'")
        }
    }
}
try attack(written, "written volume: the previous version's metadata replayed", &written1) { c in
    _ = system("cp '\(writtenV1.path)/volume.fspf' '\(c.path)/volume.fspf'")
}
// A sample of byte changes through the mount as well.
if mountBinary != nil {
    let candidates = files(small2.path).filter { !$0.hasPrefix("logs/") }
    for _ in 0..<(quick ? 10 : 200) {
        let rel = candidates.randomElement()!
        let path = small2.path + "/" + rel
        let bytes = read(path)
        var changed = bytes
        let at = Int.random(in: 0..<bytes.count)
        changed[at] ^= 0x80
        write(path, changed)
        mountCheck(small2, "bit flip at \(rel):\(at)")
        write(path, bytes)
    }
}

@MainActor func line(_ label: String, _ m: Matrix) -> String {
    "\(label): tried \(m.tried), detected \(m.detected), undetected \(m.undetected), wrong bytes served \(m.wrongBytes)"
}
print("tamper matrix (\(quick ? "quick" : "full"))")
print("  " + line("every byte of a small volume\(quick ? " (every 29th)" : "")", small1))
print("  " + line("random byte changes, 8 MiB volume", large1))
print("  " + line("structural attacks", struct1))
print("  " + line("written volume (rewritten chunks, two seals)\(quick ? " (every 29th byte)" : "")", written1))
print("  pieces an unsealed version left: changed \(unsealed1.tried), without effect \(unsealed1.detected), with effect \(unsealed1.undetected)")
if mountBinary != nil {
    print("  through fspf-mount: tried \(mountResult.tried), refused \(mountResult.refused), EIO \(mountResult.eio), "
          + "unaffected \(mountResult.unaffected) (stray pieces), wrong bytes served \(mountResult.wrong)")
}
let all = [small1, large1, struct1, written1, unsealed1]
let tried = all.reduce(0) { $0 + $1.tried }, detected = all.reduce(0) { $0 + $1.detected }
let undetected = all.reduce(0) { $0 + $1.undetected }, wrong = all.reduce(0) { $0 + $1.wrongBytes } + mountResult.wrong
for n in all.flatMap(\.notes).prefix(20) { print("  " + n) }
print("mutations tried / detected / undetected: \(tried) / \(detected) / \(undetected)")
print("wrong bytes served: \(wrong)")
// Only stray pieces may leave a mount unaffected: nothing references them.
let mountMissed = mountResult.unaffectedBy.filter { !$0.hasPrefix("stray") }
if !mountMissed.isEmpty { print("fspf-mount served a tampered volume without error after: \(mountMissed)") }
FileSystem.removeTree(work)  // exit() below skips the defer
exit(undetected == 0 && wrong == 0 && mountMissed.isEmpty ? 0 : 1)
