import Glibc
import Testing
import FSPFCrypto
import FSPFSystem
@_spi(Fuzzing) @testable import FSPFProvisioning

@Suite struct ProvisioningTests {
    let keyHex = String(repeating: "ab", count: 32)
    let tagHex = String(repeating: "cd", count: 16)

    @Test func keyResourceBodies() throws {
        var raw = [UInt8](repeating: 0xab, count: 32)
        #expect(try KeyResource.parse(&raw, source: "t").key.hex == keyHex)
        var hex = Array((keyHex + "\n").utf8)
        #expect(try KeyResource.parse(&hex, source: "t").tag == nil)
        var json = Array(#" {"key": "\#(keyHex)", "tag": "\#(tagHex)", "version": 3, "note": null}"#.utf8)
        let m = try KeyResource.parse(&json, source: "t")
        #expect(m.key.hex == keyHex && m.tag.map { Hex.encode($0) } == tagHex)
        var scone = Array(#"{"SCONE_FSPF_KEY":"\#(keyHex)"}"#.utf8)
        #expect(try KeyResource.parse(&scone, source: "t").key.hex == keyHex)
        for bad in [#"{"tag": "\#(tagHex)"}"#, #"{"key": "\#(keyHex)""#, #"{"key": {"nested": 1}}"#, #"{"key": "zz"}"#, "{}", "{", "not a key"] {
            var b = Array(bad.utf8)
            #expect(throws: FSPFError.self) { _ = try KeyResource.parse(&b, source: "t") }
        }
    }

    @Test func keyParsing() throws {
        var hex = Array((String(repeating: "ab", count: 32) + "\n").utf8)
        #expect(try KeyText.parseKey(&hex, source: "t").hex == String(repeating: "ab", count: 32))
        var raw = [UInt8](repeating: 0xcd, count: 32)
        #expect(try KeyText.parseKey(&raw, source: "t").hex == String(repeating: "cd", count: 32))
        for bad in ["", "abc", String(repeating: "zz", count: 32), String(repeating: "ab", count: 31)] {
            var b = Array(bad.utf8)
            expectUsage { _ = try KeyText.parseKey(&b, source: "t") }
        }
        #expect(try parseTag(" 00112233445566778899aabbccddeeff\n", source: "t").count == 16)
        #expect(try parseTag(String(repeating: "0f", count: 32), source: "t").count == 32)
        for bad in ["0011", String(repeating: "0", count: 33), String(repeating: "0", count: 48), String(repeating: "g", count: 32)] {
            expectUsage { _ = try parseTag(bad, source: "t") }
        }
    }

    /// Chunk nonces: the same chunk under two file IDs, or at two indices, never encrypts alike.
    @Test func environmentKeyIsErased() throws {
        setenv("FSPF_TEST_KEY_ERASE", keyHex, 1)
        let key = try KeySource.environment("FSPF_TEST_KEY_ERASE").load()
        #expect(key.hex == keyHex)
        #expect(getenv("FSPF_TEST_KEY_ERASE") == nil)
        expectKeyUnavailable { _ = try KeySource.environment("FSPF_TEST_KEY_ERASE").load() }
    }

    @Test func httpURLParsing() throws {
        let t = try HTTPClient.parse("http://127.0.0.1:8006/cdh/resource/default/fspf/key")
        #expect(t.host == "127.0.0.1" && t.port == "8006" && t.path == "/cdh/resource/default/fspf/key")
        let v6 = try HTTPClient.parse("http://[::1]:9/x")
        #expect(v6.host == "::1" && v6.port == "9")
        #expect(try HTTPClient.parse("http://localhost").path == "/")
        for bad in ["https://127.0.0.1/x", "ftp://x", "http://:80/x", "http://h:99999/x", "http://h/a b"] {
            #expect(throws: FSPFError.self) { _ = try HTTPClient.parse(bad) }
        }
    }

    @Test func httpBodies() throws {
        func body(_ s: String) throws -> [UInt8] {
            let r = try HTTPClient.response(Array(s.utf8), limit: 1024, url: "u")
            guard r.status == 200 else { throw FSPFError.keyUnavailable(source: "u", reason: "\(r.status)") }
            return r.body
        }
        #expect(try HTTPClient.response(Array("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno".utf8), limit: 9, url: "u").status == 403)
        #expect(try body("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef") == Array("abc".utf8))
        #expect(try body("HTTP/1.0 200 OK\r\n\r\nuntil close") == Array("until close".utf8))
        #expect(try body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n") == Array("abcde".utf8))
        for bad in ["HTTP/1.1 404 Not Found\r\n\r\n", "garbage", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc"] {
            expectKeyUnavailable { _ = try body(bad) }
        }
        let big = "HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "x", count: 2000)
        expectKeyUnavailable { _ = try body(big) }
    }

    func expectKeyUnavailable(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
        expectFSPFError({ if case .keyUnavailable = $0 { true } else { false } }, body, sourceLocation)
    }

    func expectUsage(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
        expectFSPFError({ if case .usage = $0 { true } else { false } }, body, sourceLocation)
    }

    func expectFSPFError(_ kind: (FSPFError) -> Bool, _ body: () throws -> Void, _ sourceLocation: SourceLocation) {
        do {
            try body()
            Issue.record("expected an error", sourceLocation: sourceLocation)
        } catch let e as FSPFError {
            if !kind(e) { Issue.record("unexpected \(e)", sourceLocation: sourceLocation) }
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    /// --key-url sent the key request to any http:// host: only this machine now, unless allowed,
    /// and then https with a pinned CA.
    @Test func keyURLsStayOnThisMachine() throws {
        for local in ["http://127.0.0.1:8006/cdh/resource/default/fspf/data", "http://127.8.9.10/k", "http://localhost:1/k",
                      "http://[::1]:8006/k", "http://[::ffff:127.0.0.1]:8006/k", "https://127.0.0.1/k"] {
            #expect(try KeyURL(local).url == local)
        }
        for remote in ["http://10.0.0.5:8006/k", "http://192.0.2.1/k", "https://kms.example/k", "http://[fd00::2]/k",
                       "http://[::ffff:10.0.0.1]/k", "http://127.0.0.1.example/k", "http://localhost.example/k"] {
            expectUsage { _ = try KeyURL(remote) }
            expectUsage { _ = try KeyURL(remote, allowRemote: true) }
            if remote.hasPrefix("https://") { #expect(try KeyURL(remote, allowRemote: true, ca: "ca.pem").ca == "ca.pem") }
        }
        expectUsage { _ = try KeyURL("http://127.0.0.1/k", ca: "ca.pem") }
        var options = AccessOptions()
        try options.set("key-url", "http://10.1.2.3/k")
        expectUsage { _ = try options.keySource(volume: "v") }
        try options.set("allow-remote-key-url", "true")
        expectUsage { _ = try options.keySource(volume: "v") }
        try options.set("key-url", "https://10.1.2.3/k")
        try options.set("key-url-ca", "ca.pem")
        #expect(try options.keySource(volume: "v") == .url(try KeyURL("https://10.1.2.3/k", allowRemote: true, ca: "ca.pem")))
    }
}
