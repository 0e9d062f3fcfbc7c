import Testing
import FSPFCrypto

/// Known-answer tests: the wrappers compute the standard primitives, byte for byte.
@Suite struct CryptoTests {
    @Test func aes256GCMKnownAnswer() {
        // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16.
        let key = Hex.decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")!
        let iv = Hex.decode("cafebabefacedbaddecaf888")!
        let aad = Hex.decode("feedfacedeadbeeffeedfacedeadbeefabaddad2")!
        let plain = Hex.decode("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")!
        let cipher = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        let g = GCMContext()
        key.withUnsafeBytes { g.setKey($0) }
        var data = plain
        var tag = [UInt8](repeating: 0, count: 16)
        iv.withUnsafeBytes { n in aad.withUnsafeBytes { a in data.withUnsafeMutableBytes { d in tag.withUnsafeMutableBytes { t in
            g.seal(nonce: n, aad: a, data: d, tag: t) } } } }
        #expect(Hex.encode(data) == cipher)
        #expect(Hex.encode(tag) == "76fc6ece0f4e1768cddf8853bb2d551b")
        let opened = iv.withUnsafeBytes { n in aad.withUnsafeBytes { a in data.withUnsafeMutableBytes { d in tag.withUnsafeBytes { t in
            g.open(nonce: n, aad: a, data: d, tag: t) } } } }
        #expect(opened && data == plain)
        var bad = Hex.decode(cipher)!
        bad[5] ^= 1
        let rejected = iv.withUnsafeBytes { n in aad.withUnsafeBytes { a in bad.withUnsafeMutableBytes { d in tag.withUnsafeBytes { t in
            g.open(nonce: n, aad: a, data: d, tag: t) } } } }
        #expect(!rejected)
        #expect(bad.allSatisfy { $0 == 0 }, "unauthenticated plaintext must be scrubbed")
    }

    @Test func hkdfSHA256KnownAnswer() {
        // RFC 5869, test case 1.
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        var out = [UInt8](repeating: 0, count: 42)
        ikm.withUnsafeBytes { i in out.withUnsafeMutableBytes { o in
            KDF.hkdf(ikm: i, salt: Hex.decode("000102030405060708090a0b0c")!, info: Hex.decode("f0f1f2f3f4f5f6f7f8f9")!, into: o) } }
        #expect(Hex.encode(out) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }

    @Test func hmacSHA256KnownAnswer() {
        // RFC 4231, test case 2.
        let mac = Array("Jefe".utf8).withUnsafeBytes { KDF.hmac(key: $0, Array("what do ya want for nothing?".utf8)) }
        #expect(Hex.encode(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func sha256KnownAnswer() {
        #expect(Hex.encode(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func constantTimeCompareAndSecureBytes() {
        #expect(Sodium.equal([1, 2, 3], [1, 2, 3]))
        #expect(!Sodium.equal([1, 2, 3], [1, 2, 4]))
        #expect(!Sodium.equal([1, 2], [1, 2, 3]))
        var raw: [UInt8] = Array(repeating: 9, count: 32)
        let s = SecureBytes(consuming: &raw)
        #expect(raw.allSatisfy { $0 == 0 }, "the source copy of a key is wiped")
        #expect(s.hex == String(repeating: "09", count: 32))
        #expect(Sodium.randomBytes(32) != Sodium.randomBytes(32))
    }
}
