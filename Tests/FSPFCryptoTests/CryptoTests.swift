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

/// The key server's AEAD at rest and its sealed replies.
@Suite struct SecretBoxTests {
    /// draft-irtf-cfrg-xchacha-03, appendix A.3.1.
    @Test func xchacha20Poly1305OpensThePublishedVector() throws {
        var key = Hex.decode("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")!
        let master = SecureBytes(consuming: &key)
        let nonce = Hex.decode("404142434445464748494a4b4c4d4e4f5051525354555657")!
        let ad = Hex.decode("50515253c0c1c2c3c4c5c6c7")!
        let sealed = nonce + Hex.decode("bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
            + "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e"
            + "3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e" + "c0875924c1c7987947deafd8780acf49")!
        let plain = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
        let opened = try #require(XChaCha20Poly1305.open(sealed, ad: ad, key: master))
        #expect(opened.withBytes { Array($0) } == Array(plain.utf8))
        var flipped = sealed
        flipped[40] ^= 1
        #expect(XChaCha20Poly1305.open(flipped, ad: ad, key: master) == nil)
        #expect(XChaCha20Poly1305.open(sealed, ad: ad + [0], key: master) == nil, "other associated data")
        // Sealing draws a fresh nonce each time, and opens back.
        let again = Array(plain.utf8).withUnsafeBytes { XChaCha20Poly1305.seal($0, ad: ad, key: master) }
        #expect(again.prefix(24) != sealed.prefix(24))
        #expect(XChaCha20Poly1305.open(again, ad: ad, key: master)?.withBytes { Array($0) } == Array(plain.utf8))
    }

    @Test func sealedBoxOpensOnlyForItsKeyAndUnaltered() throws {
        let pair = EphemeralKeyPair(), other = EphemeralKeyPair()
        let message = Array("key and tag".utf8)
        let sealed = try SealedBox.seal(message, to: pair.publicKey)
        #expect(pair.open(sealed) == message)
        #expect(other.open(sealed) == nil)
        var flipped = sealed
        flipped[flipped.count - 1] ^= 1
        #expect(pair.open(flipped) == nil)
        #expect(throws: SealedBoxError.self) { try SealedBox.seal(message, to: [1, 2, 3]) }
    }
}
