import Foundation
import Glibc
import Testing
import FSPFAttestation
import FSPFCrypto
import FSPFCommandLine
import FSPFSystem
@_spi(Fuzzing) @testable import FSPFKeyBroker
@_spi(Fuzzing) @testable import FSPFProvisioning

/// A broker on a free loopback port with one volume, "demo", released to simulated evidence
/// of `code` (and `writerCode`) signed by `attesterKey`; with `writers`, evidence of `writerCode`
/// may also report versions it sealed.
final class Broker: @unchecked Sendable {
    let dir: String
    let store: BrokerStore
    let server: KeyBrokerServer
    let url: String
    let key = SecureBytes.random(count: 32)
    let tag = Sodium.randomBytes(16)
    let code = SHA256.hash(Array("the job".utf8))
    let writerCode = SHA256.hash(Array("the writing job".utf8))
    var attesterKey: String { dir + "/attester.key" }
    var certificate: String { store.certificatePath }

    init(writers: Bool = false, writerGrantLifetime: Int64 = 3600) throws {
        dir = NSTemporaryDirectory() + "fspf-broker-" + UUID().uuidString
        try BrokerStore.initialize(at: dir + "/store", names: ["localhost", "127.0.0.1"])
        store = try BrokerStore(root: dir + "/store")
        let seed = SimulatedEvidence.generateSeed()
        try FileSystem.writeAtomically(dir + "/attester.key", Array(seed.withBytes { Hex.encode($0) }.utf8), mode: 0o600, replacing: true)
        var policy = ReleasePolicy()
        policy.mrEnclave = [code]
        policy.simulated = true
        policy.simulatedAttesters = [SimulatedEvidence.publicKey(seed: seed)]
        var writersPolicy = policy
        writersPolicy.mrEnclave = [writerCode]
        policy.mrEnclave.append(writerCode)
        try store.register(volume: "demo", key: key, tag: tag, policy: policy, writers: writers ? writersPolicy : nil)
        var config = KeyBrokerServer.Configuration()
        config.writerGrantLifetime = writerGrantLifetime
        config.port = 0
        config.handshakeTimeout = 2
        config.requestTimeout = 2
        server = try KeyBrokerServer(store: store, configuration: config)
        url = "https://127.0.0.1:\(try server.bind())"
        let s = server
        Thread.detachNewThread { s.serve() }
    }

    deinit {
        server.stop()
        FileSystem.removeTree(dir)
    }

    func request(code: [UInt8]? = nil) -> BrokerRequest {
        BrokerRequest(url: url, volume: "demo", caFile: certificate, identity: store.identity, attester: .simulated(keyFile: attesterKey, mrEnclave: code ?? self.code))
    }

    func post(_ path: String, _ body: [UInt8]) throws -> HTTPClient.Response {
        try HTTPClient.request("POST", url + path, body: body, tls: try TLSContext(trusting: certificate), timeout: 5, limit: 1 << 16)
    }

    func nonce() throws -> [UInt8] {
        let r = try post("/v1/volumes/demo/nonce", Array("{}".utf8))
        #expect(r.status == 200)
        return Base64.decode(try JSONDecoder().decode(BrokerProtocol.NonceResponse.self, from: Data(r.body)).nonce)!
    }

    /// A well-formed release request for `nonce`, with evidence bound to `boundKey` (default: the sent key).
    func releaseBody(nonce: [UInt8], keyPair: EphemeralKeyPair, boundKey: [UInt8]? = nil, code: [UInt8]? = nil,
                     mutate: (inout [UInt8]) -> Void = { _ in }) throws -> [UInt8] {
        var evidence = try request(code: code).attester.evidence(nonce: nonce, publicKey: boundKey ?? keyPair.publicKey)
        if case .simulated(var bytes) = evidence { mutate(&bytes); evidence = .simulated(bytes) }
        let body = BrokerProtocol.ReleaseRequest(nonce: Base64.encode(nonce), public_key: Base64.encode(keyPair.publicKey),
                                                 evidence: .init(evidence))
        return [UInt8](try JSONEncoder().encode(body))
    }

    func error(_ r: HTTPClient.Response) -> String {
        (try? JSONDecoder().decode(BrokerProtocol.ErrorResponse.self, from: Data(r.body)).error) ?? ""
    }

    func audit() throws -> [[String: String]] {
        let text = String(decoding: try FileSystem.readAll(store.auditPath), as: UTF8.self)
        return text.split(separator: "\n").map { line in
            let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
            return o.mapValues { "\($0)" }
        }
    }
}

@Suite(.serialized) struct KeyBrokerTests {
    @Test func releasesKeyAndTagSealedToTheClient() throws {
        let b = try Broker()
        let material = try b.request().release(timeout: 5)
        #expect(material.key.equals(b.key))
        #expect(material.tag == b.tag)
        let last = try #require(try b.audit().last)
        #expect(last["decision"] == "released" && last["mrenclave"] == Hex.encode(b.code))
        // The audit log never holds the key.
        #expect(!String(decoding: try FileSystem.readAll(b.store.auditPath), as: UTF8.self).contains(b.key.hex))
    }

    @Test func otherCodeIsRefusedWithTheReason() throws {
        let b = try Broker()
        do {
            _ = try b.request(code: SHA256.hash([1, 2, 3])).release(timeout: 5)
            Issue.record("released to other code")
        } catch let e as FSPFError {
            #expect(e.exitStatus == ExitStatus.keyUnavailable)
            #expect(e.description.contains("403") && e.description.contains("MRENCLAVE"), "\(e)")
        }
        #expect(try b.audit().last?["decision"] == "refused")
    }

    @Test func replayedNonceIsRefused() throws {
        let b = try Broker()
        let nonce = try b.nonce()
        let keyPair = EphemeralKeyPair()
        let body = try b.releaseBody(nonce: nonce, keyPair: keyPair)
        let first = try b.post("/v1/volumes/demo/release", body)
        #expect(first.status == 200)
        let sealed = try JSONDecoder().decode(BrokerProtocol.ReleaseResponse.self, from: Data(first.body)).sealed
        #expect(keyPair.open(Base64.decode(sealed)!) != nil)
        #expect(EphemeralKeyPair().open(Base64.decode(sealed)!) == nil)   // only the requester can open it
        let replay = try b.post("/v1/volumes/demo/release", body)
        #expect(replay.status == 409 && b.error(replay).contains("already used"))
        // A nonce never issued.
        let invented = try b.post("/v1/volumes/demo/release", try b.releaseBody(nonce: Sodium.randomBytes(32), keyPair: keyPair))
        #expect(invented.status == 409)
    }

    /// Stateless nonces (issue 31, item 4): issuing stores nothing; a nonce redeems once, only
    /// for its volume, from its client's prefix and within its lifetime; and a replay is refused
    /// even after a flood of redemptions pushed the nonce out of the record of used ones.
    @Test func noncesCostNoTableAndNeverRedeemTwice() {
        let n = Nonces(lifetime: 120_000, capacity: 4)
        let a = Peer(ipv4: [10, 0, 0, 1]), b = Peer(ipv4: [10, 0, 0, 2])
        let now: Int64 = 1_000_000
        for _ in 0..<100_000 { _ = n.issue(volume: "demo", peer: a, now: now) }
        #expect(n.held == 0)
        let x = n.issue(volume: "demo", peer: a, now: now)
        #expect(!n.redeem(x, volume: "demo", peer: b, now: now))       // another client
        #expect(!n.redeem(x, volume: "other", peer: a, now: now))      // another volume
        #expect(!n.redeem(x, volume: "demo", peer: a, now: now + 120_001)) // expired
        #expect(!n.redeem(n.issue(volume: "demo", peer: a, now: now + 5), volume: "demo", peer: a, now: now)) // from the future
        var altered = x
        altered[3] ^= 1                                                 // an issue time of one's choosing
        #expect(!n.redeem(altered, volume: "demo", peer: a, now: now))
        #expect(n.redeem(x, volume: "demo", peer: a, now: now))
        #expect(!n.redeem(x, volume: "demo", peer: a, now: now))       // replay
        // Eight more redeemed push x out of the record of four: the floor keeps it out.
        for i in 1...8 { #expect(n.redeem(n.issue(volume: "demo", peer: b, now: now + Int64(i)), volume: "demo", peer: b, now: now + Int64(i))) }
        #expect(n.held == 4)
        #expect(!n.redeem(x, volume: "demo", peer: a, now: now + 9))
        // A nonce issued after the ones pushed out still redeems.
        #expect(n.redeem(n.issue(volume: "demo", peer: a, now: now + 10), volume: "demo", peer: a, now: now + 10))
    }

    @Test func evidenceBoundToAnotherKeyOrAlteredIsRefused() throws {
        let b = try Broker()
        // Evidence bound to someone else's public key (a relay of another client's evidence).
        let unbound = try b.post("/v1/volumes/demo/release",
                                 try b.releaseBody(nonce: try b.nonce(), keyPair: EphemeralKeyPair(), boundKey: EphemeralKeyPair().publicKey))
        #expect(unbound.status == 403 && b.error(unbound).hasPrefix("binding"), "\(b.error(unbound))")
        // Altered evidence: a changed byte inside the signed statement.
        let tampered = try b.post("/v1/volumes/demo/release", try b.releaseBody(nonce: try b.nonce(), keyPair: EphemeralKeyPair()) { bytes in
            let o = try! JSONSerialization.jsonObject(with: Data(bytes)) as! [String: String]
            var statement = Base64.decode(o["statement"]!)!
            statement[statement.count / 2] ^= 1
            var m = o
            m["statement"] = Base64.encode(statement)
            bytes = [UInt8](try! JSONSerialization.data(withJSONObject: m))
        })
        #expect(tampered.status == 403 && b.error(tampered).contains("evidence"), "\(b.error(tampered))")
        let releases = try b.audit().filter { $0["request"]?.hasSuffix("/release") == true }
        #expect(releases.count == 2 && releases.allSatisfy { $0["decision"] == "refused" && $0["status"] == "403" })
    }

    @Test func hostileRequestsGetClearRefusalsAndTheServerStaysUp() throws {
        let b = try Broker()
        let tls = try TLSContext(trusting: b.certificate)
        func raw(_ bytes: [UInt8], useTLS: Bool = true) throws -> HTTPClient.Response? {
            let c = try Connection.connect(host: "127.0.0.1", port: String(b.url.split(separator: ":").last!), deadline: Deadline(seconds: 5))
            if useTLS { try c.startTLS(tls, host: "127.0.0.1") }
            try c.send(bytes)
            var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 4096)
            while let n = try? c.receive(into: &buf), n > 0 { out += buf[0..<n] }
            return try? HTTPClient.response(out, limit: 1 << 16, url: "raw")
        }
        func status(_ text: String) throws -> Int? { try raw(Array(text.utf8))?.status }
        #expect(try status("POST /v1/volumes/demo/release HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n") == 413)
        #expect(try status("POST /v1/volumes/demo/release HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == 411)
        #expect(try status("POST /v1/volumes/demo/release HTTP/1.1\r\nContent-Length: 5\r\n\r\n{{{{{") == 400)
        #expect(try status("POST /v1/volumes/nope/nonce HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == 404)
        #expect(try status("POST /v1/volumes/../../etc/nonce HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == 404)
        #expect(try status("GET /v1/volumes/demo/nonce HTTP/1.1\r\n\r\n") == 405)
        #expect(try status("GET /admin HTTP/1.1\r\n\r\n") == 404)
        #expect(try status("BLAH\r\n\r\n") == 400)
        #expect(try status("POST / HTTP/1.1\r\n" + String(repeating: "X-Pad: 0123456789abcdef\r\n", count: 1200)) == 431)
        // Evidence of an unknown type, a bad public key.
        let nonce = Base64.encode(try b.nonce())
        let weird = #"{"nonce": "\#(nonce)", "public_key": "AAAA", "evidence": {"type": "tpm"}}"#
        #expect(try status("POST /v1/volumes/demo/release HTTP/1.1\r\nContent-Length: \(weird.utf8.count)\r\n\r\n\(weird)") == 400)
        // Collateral nested 350 objects or 480 arrays deep (about 2 KB): before the nesting limit,
        // decoding it overflowed the connection thread's stack and killed the server.
        for (open, close) in [(#"{"a":"#, "}"), ("[", "]")] {
            for depth in [350, 480, JSONValue.maximumDepth + 1] {
                let nested = String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
                let body = #"{"nonce": "\#(nonce)", "public_key": "AAAA", "evidence": {"type": "sgx", "quote": "", "collateral": \#(nested)}}"#
                #expect(try status("POST /v1/volumes/demo/release HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)") == 400,
                        "nested \(depth) deep")
            }
        }
        // Plain HTTP, random bytes, and a client that says nothing: dropped without an answer.
        #expect(try raw(Array("GET /v1/health HTTP/1.1\r\n\r\n".utf8), useTLS: false) == nil)
        #expect(try raw(Sodium.randomBytes(3000), useTLS: false) == nil)
        let silent = try Connection.connect(host: "127.0.0.1", port: String(b.url.split(separator: ":").last!), deadline: Deadline(seconds: 5))
        // Many at once, then the service still answers.
        let group = DispatchGroup()
        for _ in 0..<40 {
            DispatchQueue.global().async(group: group) { _ = try? b.nonce() }
        }
        group.wait()
        _ = silent
        let health = try HTTPClient.request("GET", b.url + "/v1/health", tls: tls, timeout: 5, limit: 1024)
        #expect(health.status == 200)
        #expect(try b.request().release(timeout: 5).tag == b.tag)
    }

    @Test func storeKeepsKeysEncryptedAndDetectsEdits() throws {
        let b = try Broker()
        let record = b.dir + "/store/volumes/demo.json"
        let text = String(decoding: try FileSystem.readAll(record), as: UTF8.self)
        #expect(!text.contains(b.key.hex))
        // A changed tag (or a loosened policy) makes the key record unopenable: never released.
        let other = Hex.encode(Sodium.randomBytes(16))
        try FileSystem.writeAtomically(record, Array(text.replacingOccurrences(of: Hex.encode(b.tag), with: other).utf8), replacing: true)
        let v = try #require(try b.store.volume("demo"))
        #expect(throws: FSPFError.self) { _ = try b.store.key(of: v) }
        #expect(throws: FSPFError.self) { _ = try b.request().release(timeout: 5) }
        let loosened = text.replacingOccurrences(of: #"\"allow_debug\" : false"#, with: #"\"allow_debug\" : true"#)
        #expect(loosened != text)
        try FileSystem.writeAtomically(record, Array(loosened.utf8), replacing: true)
        #expect(throws: FSPFError.self) { _ = try b.store.key(of: try #require(try b.store.volume("demo"))) }
        // The original record opens again; with another master key it does not.
        try FileSystem.writeAtomically(record, Array(text.utf8), replacing: true)
        #expect(try b.store.key(of: try #require(try b.store.volume("demo"))).equals(b.key))
        try FileSystem.writeAtomically(b.dir + "/other.key", Array(Hex.encode(Sodium.randomBytes(32)).utf8), mode: 0o600, replacing: true)
        #expect(throws: FSPFError.self) { _ = try BrokerStore(root: b.dir + "/store", masterKeyFile: b.dir + "/other.key") }
        // A record claiming another version does not open either.
        try FileSystem.writeAtomically(record, Array(text.replacingOccurrences(of: #""version" : "1""#, with: #""version" : "7""#).utf8), replacing: true)
        #expect(throws: FSPFError.self) { _ = try b.store.key(of: try #require(try b.store.volume("demo"))) }
        try FileSystem.writeAtomically(record, Array(text.utf8), replacing: true)
        // Registering twice needs --replace; bad names are refused.
        #expect(throws: FSPFError.self) { try b.store.register(volume: "demo", key: b.key, tag: b.tag, policy: v.policy) }
        for bad in ["", ".hidden", "a/b", "../x", String(repeating: "a", count: 65)] {
            #expect(throws: FSPFError.self) { try b.store.register(volume: bad, key: b.key, tag: b.tag, policy: v.policy) }
        }
    }

    /// Rollback: the volume's policy is tightened (a new registration), then someone with write
    /// access to volumes/ but not the master key puts the older record back. It still opens with
    /// the master key, so before versioned records the enclave the new policy removed got the key
    /// again, audited as "released". Now the high-water mark refuses it, and says why.
    @Test func restoredOlderRecordIsRefused() throws {
        let b = try Broker()
        #expect(try b.request().release(timeout: 5).tag == b.tag)
        let record = b.dir + "/store/volumes/demo.json"
        let old = try FileSystem.readAll(record)
        var tightened = try #require(try b.store.volume("demo")).policy
        tightened.mrEnclave = [SHA256.hash(Array("the new job".utf8))]
        try b.store.register(volume: "demo", key: b.key, tag: b.tag, policy: tightened, replace: true)
        #expect(try #require(try b.store.volume("demo")).version == 2)
        #expect(throws: FSPFError.self) { _ = try b.request().release(timeout: 5) }  // the old code no longer
        try FileSystem.writeAtomically(record, old, replacing: true)
        do {
            _ = try b.request().release(timeout: 5)
            Issue.record("the restored record released the key")
        } catch let e as FSPFError {
            #expect(e.description.contains("500") && e.description.contains("older than the store's high-water mark"), "\(e)")
        }
        let last = try #require(try b.audit().last)
        #expect(last["decision"] == "refused" && last["reason"]?.contains("record version 1 is older than the store's high-water mark 2") == true,
                "\(last)")
        // The mark itself cannot be lowered without the master key: an edited or foreign one is refused.
        let versions = b.dir + "/store/master.key.versions"
        var sealed = try FileSystem.readAll(versions)
        sealed[10] = sealed[10] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        try FileSystem.writeAtomically(versions, sealed, replacing: true)
        #expect(throws: FSPFError.self) { _ = try b.store.volume("demo") }
    }

    /// A writer's reports move the record forward one version at a time, the next release pins
    /// the new tag, and of two writers that started from the same version only the first is
    /// recorded; a reader gets no grant; forged, foreign and expired grants and a changed
    /// writers policy are refused; every report is audited with the writer's measurement.
    @Test func writersReportSealedVersionsAndOnlyTheFirstOfTwoWins() throws {
        let b = try Broker(writers: true)
        let reader = try b.request().release(timeout: 5)
        #expect(reader.tag == b.tag && reader.writer == nil)
        let readerReason = try b.audit().last?["reason"] ?? ""
        #expect(readerReason.contains("read only (writers policy: MRENCLAVE"), "\(readerReason)")
        let first = try #require(try b.request(code: b.writerCode).release(timeout: 5).writer)
        let second = try #require(try b.request(code: b.writerCode).release(timeout: 5).writer)
        #expect(try b.audit().last?["reason"] == "all checks passed; may write")

        let v2 = Sodium.randomBytes(32), v3 = Sodium.randomBytes(32)
        #expect(try first.report(v2, timeout: 5) == 2)
        #expect(try first.report(v2, timeout: 5) == nil)   // already recorded: nothing sent
        #expect(try first.report(v3, timeout: 5) == 3)
        #expect(try b.store.volume("demo")?.tag == v3)
        #expect(try b.request().release(timeout: 5).tag == v3)
        let recorded = try b.audit().filter { $0["decision"] == "recorded" }
        #expect(recorded.count == 2 && recorded.allSatisfy { $0["mrenclave"] == Hex.encode(b.writerCode) && $0["status"] == "200" })
        #expect(recorded.last?["reason"]?.hasSuffix("version 3") == true)

        // The second writer started from the first version: its report is stale, the record stays.
        expectReportRefused(second, "409", "another writer's version was recorded first")
        #expect(try b.store.volume("demo")?.tag == v3)

        // Raw reports: a token this server never issued, a grant's token with a MAC not made
        // with its secret, a malformed body, an older tag than the record's.
        let pair = EphemeralKeyPair()
        let answer = try b.post("/v1/volumes/demo/release", try b.releaseBody(nonce: try b.nonce(), keyPair: pair, code: b.writerCode))
        let sealed = try JSONDecoder().decode(BrokerProtocol.ReleaseResponse.self, from: Data(answer.body)).sealed
        let opened = try JSONSerialization.jsonObject(with: Data(try #require(pair.open(Base64.decode(sealed)!)))) as! [String: String]
        let token = try #require(opened["writer_token"]), secret = try #require(opened["writer_secret"].flatMap(Hex.decode))
        func report(token: String, from: [UInt8], to: [UInt8], secret: [UInt8]) throws -> HTTPClient.Response {
            let mac = secret.withUnsafeBytes { KDF.hmac(key: $0, BrokerProtocol.reportStatement(volume: "demo", from: from, to: to)) }
            let body = BrokerProtocol.ReportRequest(token: token, from: Hex.encode(from), to: Hex.encode(to), mac: Base64.encode(mac))
            return try b.post("/v1/volumes/demo/report", [UInt8](try JSONEncoder().encode(body)))
        }
        let foreign = try report(token: Base64.encode(Sodium.randomBytes(80)), from: v3, to: v2, secret: secret)
        #expect(foreign.status == 403 && b.error(foreign).contains("not a writer grant"), "\(b.error(foreign))")
        let forged = try report(token: token, from: v3, to: v2, secret: Sodium.randomBytes(32))
        #expect(forged.status == 403 && b.error(forged).contains("mac"), "\(b.error(forged))")
        let malformed = try b.post("/v1/volumes/demo/report", Array(#"{"token": "x"}"#.utf8))
        #expect(malformed.status == 400)
        let back = try report(token: token, from: v2, to: Sodium.randomBytes(32), secret: secret)
        #expect(back.status == 409)
        let ok = try report(token: token, from: v3, to: Array(v2.reversed()), secret: secret)
        #expect(ok.status == 200, "\(b.error(ok))")

        // A new writers policy revokes every grant issued under the old one.
        var policy = try #require(try b.store.volume("demo")).policy
        var writers = policy
        writers.mrEnclave = [SHA256.hash(Array("another writer".utf8))]
        policy.mrEnclave.append(writers.mrEnclave[0])
        try b.store.register(volume: "demo", key: b.key, tag: v3, policy: policy, writers: writers, replace: true)
        expectReportRefused(first, "403", "writers policy changed")
        #expect(try b.store.volume("demo")?.tag == v3)
        // The writers policy is in the key's associated data: widened on disk, the key no longer opens.
        let record = b.dir + "/store/volumes/demo.json"
        let original = try FileSystem.readAll(record)
        var fields = try JSONDecoder().decode([String: String].self, from: Data(original))
        let widened = fields["writers"]!.replacingOccurrences(of: Hex.encode(writers.mrEnclave[0]), with: Hex.encode(b.code))
        #expect(widened != fields["writers"])
        fields["writers"] = widened
        try FileSystem.writeAtomically(record, [UInt8](try JSONEncoder().encode(fields)), replacing: true)
        #expect(throws: FSPFError.self) { _ = try b.store.key(of: try #require(try b.store.volume("demo"))) }
        try FileSystem.writeAtomically(record, original, replacing: true)
        // A volume without writers gives no grants.
        try b.store.register(volume: "demo", key: b.key, tag: v3, policy: policy, replace: true)
        #expect(try b.request(code: b.writerCode).release(timeout: 5).writer == nil)
    }

    @Test func expiredWriterGrantsAreRefused() throws {
        let b = try Broker(writers: true, writerGrantLifetime: -1)
        let writer = try #require(try b.request(code: b.writerCode).release(timeout: 5).writer)
        expectReportRefused(writer, "403", "expired")
        #expect(try b.store.volume("demo")?.tag == b.tag)
    }
}

/// A report of a new version by `writer` is refused with `status` and a reason containing `reason`.
func expectReportRefused(_ writer: BrokerWriter, _ status: String, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try writer.report(Sodium.randomBytes(32), timeout: 5)
        Issue.record("the report was recorded", sourceLocation: sourceLocation)
    } catch let e as FSPFError {
        #expect(e.description.contains(status) && e.description.contains(reason), "\(e)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(error)", sourceLocation: sourceLocation)
    }
}
