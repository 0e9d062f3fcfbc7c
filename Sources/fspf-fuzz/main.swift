import Foundation
import Glibc
@_spi(Fuzzing) import FSPFAttestation
@_spi(Fuzzing) import FSPFCore
import FSPFCrypto
import FSPFSystem
@_spi(Fuzzing) import FSPFKeyBroker
@_spi(Fuzzing) import FSPFProvisioning

// libFuzzer targets (`make fuzz`): the parsers that see attacker-controlled bytes.
// Built with -sanitize=fuzzer,address this program's entry point hands control to libFuzzer
// (found with dlsym, so the ordinary build links too and just explains how to build it).
//   FSPF_FUZZ_TARGET=<target> fspf-fuzz [libFuzzer flags] CORPUS...
//   fspf-fuzz --seeds DIR      writes a seed corpus per target
// Targets: metadata, header, open, key, resource; quote, x509, collateral, token, broker (attestation
// evidence and the key broker's requests, with the real fixtures in fixtures/attestation as context);
// libfspf (the C ABI, LibraryFuzz.swift).

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
        // libfspf's C ABI driven by a program read from the input (LibraryFuzz).
        "libfspf": { data in LibraryFuzz.run(data) },
        // Metadata plaintext decoding (after authentication): must reject, never crash.
        "metadata": { data in _ = try? VolumeMetadata.decode(Array(data), context: "fuzz") },
        // The public header of volume.fspf: read without the key, by `fspf info`.
        "header": { data in _ = try? SealedMetadata.parseHeader(Array(data), path: "fuzz") },
        // Opening a volume with the right key whose sealed metadata carries arbitrary plaintext,
        // then listing and reading every entry (objects absent or garbage).
        "open": { data in
            let file = sealRaw(Array(data))
            let path = directory + "/volume.fspf"
            guard (try? FileSystem.writeAtomically(path, file, replacing: true)) != nil,
                  let reader = try? VolumeReader(path: directory, keys: keys, acceptVersion1: true) else { return }
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
            _ = try? KeyText.parseKey(&bytes, source: "fuzz")
            _ = try? parseTag(String(decoding: data, as: UTF8.self), source: "fuzz")
        },
        // What a key agent answers: the HTTP response and the key resource body.
        "resource": { data in
            _ = try? HTTPClient.response(Array(data), limit: 64 << 10, url: "fuzz")
            var bytes = Array(data)
            _ = try? KeyResource.parse(&bytes, source: "fuzz")
        },
        // An SGX quote: parsing, its certificate chain, and the full DCAP verification against the
        // real collateral.
        "quote": { data in
            guard let quote = try? SGXQuote(Array(data)) else { return }
            _ = quote.claims()
            _ = try? quote.pckChain().map { try PCKExtensions($0) }
            _ = DCAPVerifier.verify(quote: quote, collateral: Attestation.collateral, at: Attestation.collateralTime)
        },
        // DER certificates and CRLs (OpenSSL's parsers behind our wrappers, and our extension reader).
        "x509": { data in
            if let c = try? Certificate(der: Array(data)) { _ = c.subject; _ = try? PCKExtensions(c) }
            _ = try? RevocationList(der: Array(data))
        },
        // Collateral JSON, TCB info and QE identity, then a verification of the real quote with it.
        "collateral": { data in
            _ = try? TCBInfo(Array(data))
            _ = try? QEIdentity(Array(data))
            guard let collateral = try? Collateral(json: Array(data)) else { return }
            _ = DCAPVerifier.verify(quote: Attestation.quote, collateral: collateral, at: Attestation.collateralTime)
        },
        // Azure Attestation tokens against the recorded issuer's keys; key sets; release policies.
        "token": { data in
            let text = String(decoding: data, as: UTF8.self)
            if let token = try? MAAToken.verify(text, keys: Attestation.keySet, issuer: Attestation.issuer, at: Attestation.tokenTime) {
                _ = try? token.enclaveClaims()
            }
            _ = try? KeySet(json: Array(data))
            _ = try? ReleasePolicy(json: Array(data))
        },
        // What a client sends the key broker: the bytes of one connection through the server's
        // HTTP decoder and request handler (a store with volume "job" behind it), and the body as
        // a release request, its evidence appraised against a policy that accepts every type.
        "broker": { data in
            let bytes = Array(data)
            _ = Attestation.endpoint.exchange(bytes)
            let body = bytes.firstRange(of: [0x0d, 0x0a, 0x0d, 0x0a]).map { Array(bytes[$0.upperBound...]) }
            for body in [bytes, body].compactMap({ $0 }) {
                guard let release = try? JSONDecoder().decode(BrokerProtocol.ReleaseRequest.self, from: Data(body)),
                      let evidence = try? release.evidence.decoded() else { continue }
                let nonce = Base64.decode(release.nonce) ?? [], key = Base64.decode(release.public_key) ?? []
                _ = Appraiser(time: Attestation.tokenTime, collateral: Attestation.collateralBytes).appraise(
                    evidence, policy: Attestation.policy, reportData: Binding.reportData(nonce: nonce, publicKey: key),
                    runtimeData: Binding.runtimeData(nonce: nonce, publicKey: key))
            }
        },
    ]

    /// The real attestation fixtures, the context the attestation targets need (read from the
    /// package root, where `make fuzz` runs).
    enum Attestation {
        static func load(_ name: String) -> [UInt8] {
            guard let bytes = try? FileSystem.readAll("fixtures/attestation/" + name) else {
                fatalError("fixtures/attestation/\(name) is missing: run from the package root")
            }
            return bytes
        }
        static let quote = try! SGXQuote(load("sgx-quote-v3.bin"))
        static let collateralBytes = load("sgx-quote-v3.collateral.json")
        static let collateral = try! Collateral(json: collateralBytes)
        static let collateralTime = UTCTime.parse("2025-07-01T00:00:00Z")!
        /// The recorded exchange: the issuer's key set, then the token.
        static let exchange: (keys: [UInt8], token: String) = {
            let o = try! JSONSerialization.jsonObject(with: Data(load("maa-sgx-attest-recording.json"))) as! [String: Any]
            let entries = o["Entries"] as! [[String: Any]]
            return ([UInt8](try! JSONSerialization.data(withJSONObject: entries[0]["ResponseBody"]!)),
                    (entries[1]["ResponseBody"] as! [String: Any])["token"] as! String)
        }()
        static var keysJSON: [UInt8] { exchange.keys }
        static var token: String { exchange.token }
        static let keySet = try! KeySet(json: keysJSON)
        static let issuer = "https://sharedwus.wus.attest.azure.net"
        static let tokenTime: Int64 = 1668716909 + 600
        /// The server's request handling over a store in the fuzz directory, with one volume "job".
        static let endpoint: FuzzingEndpoint = {
            let root = Fuzz.directory + "/broker-store"
            if !FileSystem.isDirectory(root + "/volumes") { try! BrokerStore.initialize(at: root, names: ["localhost"]) }
            let store = try! BrokerStore(root: root)
            try! store.register(volume: "job", key: SecureBytes.random(count: 32), tag: [UInt8](repeating: 7, count: 16), policy: policy, replace: true)
            return try! FuzzingEndpoint(store: store, collateral: collateralBytes, time: tokenTime)
        }()
        static let attesterSeed = SecureBytes(count: 32) { b in for i in 0..<32 { b[i] = UInt8(i + 100) } }
        static let policy: ReleasePolicy = {
            var p = ReleasePolicy()
            p.mrEnclave = [quote.report.mrEnclave]
            p.tcbStatuses = ReleasePolicy.knownStatuses
            p.allowDebug = true
            p.maaIssuer = issuer
            p.maaKeys = try! JSONValue.parse(keysJSON)
            p.simulated = true
            p.simulatedAttesters = [SimulatedEvidence.publicKey(seed: attesterSeed)]
            return p
        }()
    }

    /// A volume.fspf whose sealed plaintext is exactly `plaintext`, in the format version the
    /// plaintext names (so both versions' decoders and readers are reached).
    static func sealRaw(_ plaintext: [UInt8]) -> [UInt8] {
        let version: FormatVersion = plaintext.count >= 10 && plaintext[8] == 1 && plaintext[9] == 0 ? .v1 : .v2
        var data = plaintext
        return SealedMetadata.seal(plaintext: &data, version: version, reproducible: false,
                                   nonce: [UInt8](repeating: 7, count: 12), keys: keys)
    }

    /// Seeds from real structures: the reference-like metadata, headers, keys, agent answers.
    static func writeSeeds(_ root: String) throws {
        let xattrs = [ExtendedAttribute(name: Array("security.capability".utf8), value: [1, 0, 0, 2]),
                      ExtendedAttribute(name: Array("user.x".utf8), value: Array("y".utf8))]
        var entries = [
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
        let regions = [Region(path: "", kind: .encrypted, chunkSize: 4096), Region(path: "d/a", kind: .authenticated, chunkSize: 4096)]
        let v1 = VolumeMetadata(version: .v1, reproducible: false, regions: regions, entries: entries)
        // Version 2: owners, extended attributes, a hard link, a file with holes.
        entries[1].uid = 185
        entries[1].gid = 185
        entries[1].xattrs = xattrs
        entries.insert(Entry(path: "d/big", mode: 0o600, mtimeSeconds: 5, mtimeNanoseconds: 6, content: .file(size: 40960, region: .encrypted,
            protection: ProtectedFile(kind: .encrypted, chunkSize: 4096, storedSize: 40960, fileID: Array(repeating: 5, count: 32),
                                      root: Array(repeating: 6, count: 32), object: ".fspf-objects/05/05",
                                      holes: [HoleSpan(first: 1, count: 2), HoleSpan(first: 5, count: 4)]), plain: nil)), at: 1)
        var link = entries[2]
        link.path = "d/g"
        link.linkOf = 2
        entries.insert(link, at: 3)
        let rootEntry = Entry(path: "", mode: 0o700, mtimeSeconds: 7, mtimeNanoseconds: 8, content: .directory, uid: 1000, gid: 1000, xattrs: xattrs)
        let metadata = VolumeMetadata(version: .v2, reproducible: false, regions: regions, root: rootEntry, entries: entries)
        let hex = String(repeating: "ab", count: 32), tag = String(repeating: "cd", count: 16)
        // The quote and the collateral seed themselves from fixtures/attestation (scripts/fuzz.sh).
        let seeds: [String: [[UInt8]]] = [
            "metadata": [metadata.encoded(), v1.encoded()],
            "header": [SealedMetadata.seal(metadata, keys: keys).file, SealedMetadata.seal(v1, keys: keys).file],
            "open": [metadata.encoded(), v1.encoded()],
            "key": [Array(hex.utf8), Array((hex + "\n").utf8), [UInt8](repeating: 0xab, count: 32), Array(tag.utf8)],
            "resource": [Array("HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n\(hex)".utf8),
                         Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n\(hex)\r\n0\r\n\r\n".utf8),
                         Array(#"{"key": "\#(hex)", "tag": "\#(tag)"}"#.utf8)],
            "token": [Array(Attestation.token.utf8), Attestation.policy.json()],
            "broker": try brokerSeeds(),
            "x509": [try Attestation.quote.pckChain()[0].der],
            "libfspf": LibraryFuzz.seeds,
        ]
        for (target, list) in seeds {
            try FileSystem.makeDirectories(root + "/" + target)
            for (n, bytes) in list.enumerated() { try FileSystem.writeAtomically(root + "/\(target)/seed-\(n)", bytes, replacing: true) }
        }
    }
}

extension Fuzz {
    /// Release requests as clients send them, one per evidence type, and one inside its HTTP request.
    static func brokerSeeds() throws -> [[UInt8]] {
        let nonce = [UInt8](repeating: 5, count: 32), key = [UInt8](repeating: 6, count: 32)
        let simulated = try SimulatedEvidence.sign(mrEnclave: Attestation.quote.report.mrEnclave, productID: 0, svn: 0, debug: false,
                                                   reportData: Binding.reportData(nonce: nonce, publicKey: key), seed: Attestation.attesterSeed)
        let requests = try [Evidence.simulated(simulated), .maa(token: Attestation.token),
                            .sgx(quote: Attestation.load("sgx-quote-v3.bin"), collateral: Attestation.collateralBytes)].map {
            [UInt8](try JSONEncoder().encode(BrokerProtocol.ReleaseRequest(nonce: Base64.encode(nonce), public_key: Base64.encode(key),
                                                                           evidence: .init($0))))
        }
        let http = Array("POST /v1/volumes/job/release HTTP/1.1\r\nHost: ks\r\nContent-Length: \(requests[0].count)\r\n\r\n".utf8) + requests[0]
        return requests + [http]
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
nonisolated(unsafe) var argc = CommandLine.argc
nonisolated(unsafe) var argv = CommandLine.unsafeArgv
nonisolated(unsafe) var status: CInt = 0
let driver = unsafeBitCast(symbol, to: Driver.self)
// Every input is run on a thread with the least stack a key-server worker may have, where requests
// are decoded: a recursion that fits the main thread's 8 MiB but not that stack crashes here too.
let finished = DispatchSemaphore(value: 0)
let worker = Thread {
    status = driver(&argc, &argv) { data, size in
        Fuzz.target(UnsafeBufferPointer(start: data, count: size))
        return 0
    }
    finished.signal()
}
worker.stackSize = KeyBrokerServer.minimumStackSize
worker.start()
finished.wait()
exit(status)

/// libFuzzer's own entry point, should its `main` be the one linked in.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzz.target(UnsafeBufferPointer(start: data, count: size))
    return 0
}
