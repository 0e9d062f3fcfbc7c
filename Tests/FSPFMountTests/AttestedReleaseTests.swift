import Foundation
import Glibc
import Testing
import FSPFAttestation
import FSPFCore
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning
import FSPFTestSupport

/// The attested release end to end on loopback: `fspf keyserver serve` with a policy for the
/// volume, `fspf-mount --key-broker … --evidence simulated`, reads through the mount; then the
/// refusals: other code, a replayed nonce, altered evidence, a volume whose tag moved on.
@Suite(.serialized) struct AttestedReleaseTests {
    /// `fspf keyserver serve --store STORE` in the sandbox (output in .stdout-STORE), once it listens.
    static func serve(_ s: Sandbox, store: String, listen: String = "127.0.0.1:0") throws -> (pid: pid_t, url: String) {
        let pid = Tool.spawn([Tool.binary, "keyserver", "serve", "--store", store, "--listen", listen], cwd: s.path, name: "-" + store)
        var url = ""
        for _ in 0..<250 where url.isEmpty {
            usleep(20_000)
            let line = (try? String(contentsOfFile: s.path + "/.stdout-" + store, encoding: .utf8)) ?? ""
            if let r = line.range(of: "https://") { url = String(line[r.lowerBound...]).trimmingCharacters(in: .whitespacesAndNewlines) }
        }
        if url.isEmpty { kill(pid, SIGKILL); _ = Tool.wait(pid, cwd: s.path, name: "-" + store) }
        try #require(!url.isEmpty, "key server did not start: \((try? String(contentsOfFile: s.path + "/.stderr-" + store, encoding: .utf8)) ?? "")")
        return (pid, url)
    }

    @Test func releaseOnLoopbackAndEveryRefusal() throws {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let setup = s.sh("""
            set -e
            fspf keyserver init --store ks >/dev/null
            fspf attester init --out att.key > att.pub
            sha256sum '\(Tool.mountBinary)' | cut -d' ' -f1 > code
            printf '{"mrenclave": ["%s"], "simulated": true, "simulated_attesters": ["%s"]}' "$(cat code)" "$(cat att.pub)" > policy.json
            fspf encrypt in --out demo --register ks --policy policy.json --key-out key --format json
            """)
        #expect(setup.status == 0, "\(setup.err)")
        #expect(!setup.out.contains("\"key\""), "a registered key stays off standard output")
        let code = s.sh("cat code").out.trimmingCharacters(in: .whitespacesAndNewlines)

        let (server, url) = try Self.serve(s, store: "ks")
        var serverStopped = false
        defer { if !serverStopped { kill(server, SIGKILL); _ = Tool.wait(server, cwd: s.path, name: "-ks") } }
        let broker = "--key-broker \(url) --evidence simulated --attester-key att.key --broker-ca ks/tls/cert.pem --broker-identity ks/identity.pub"

        // Released: the mount serves the tree.
        let ok = MountTests.mount(s, "demo mnt \(broker)")
        #expect(ok.status == 0, "\(ok.err)")
        #expect(s.sh("diff -r in mnt && umount mnt").status == 0)

        // A policy for other code: this build's measurement is not the one claimed.
        let other = MountTests.mount(s, "demo mnt \(broker) --simulated-mrenclave \(String(repeating: "ab", count: 32))")
        #expect(other.status == 12 && other.err.contains("403") && other.err.contains("MRENCLAVE"), "\(other.err)")
        // The broker's certificate is not trusted without --broker-ca.
        let untrusted = MountTests.mount(s, "demo mnt --key-broker \(url) --evidence simulated --attester-key att.key --broker-identity ks/identity.pub")
        #expect(untrusted.status == 12 && untrusted.err.contains("not trusted"), "\(untrusted.err)")

        // A replayed nonce and altered evidence, sent as a client would.
        let tls = try TLSContext(trusting: s.path + "/ks/tls/cert.pem")
        func post(_ path: String, _ body: [UInt8]) throws -> HTTPClient.Response {
            try HTTPClient.request("POST", url + "/v1/volumes/demo" + path, body: body, tls: tls, timeout: 5, limit: 1 << 16)
        }
        func releaseBody(alter: Bool = false) throws -> [UInt8] {
            let nonceText = try JSONDecoder().decode(BrokerProtocol.NonceResponse.self, from: Data(try post("/nonce", Array("{}".utf8)).body)).nonce
            let pair = EphemeralKeyPair()
            let attester = Attester.simulated(keyFile: s.path + "/att.key", mrEnclave: Hex.decode(code))
            var evidence = try attester.evidence(nonce: Base64.decode(nonceText)!, publicKey: pair.publicKey)
            if alter, case .simulated(let bytes) = evidence {
                var o = try JSONSerialization.jsonObject(with: Data(bytes)) as! [String: String]
                var signature = Base64.decode(o["signature"]!)!
                signature[5] ^= 0x20
                o["signature"] = Base64.encode(signature)
                evidence = .simulated([UInt8](try JSONSerialization.data(withJSONObject: o)))
            }
            return [UInt8](try JSONEncoder().encode(BrokerProtocol.ReleaseRequest(
                nonce: nonceText, public_key: Base64.encode(pair.publicKey), evidence: .init(evidence))))
        }
        let body = try releaseBody()
        #expect(try post("/release", body).status == 200)
        let replay = try post("/release", body)
        #expect(replay.status == 409 && String(decoding: replay.body, as: UTF8.self).contains("already used"))
        let altered = try post("/release", try releaseBody(alter: true))
        #expect(altered.status == 403 && String(decoding: altered.body, as: UTF8.self).contains("signature"),
                "\(String(decoding: altered.body, as: UTF8.self))")

        // The volume is rebuilt (same key, new content, so a new tag) but the policy still pins the
        // old tag: the broker releases the key, and fspf-mount refuses the volume.
        let rebuilt = s.sh("echo changed >> in/job.py && rm -rf demo && fspf encrypt in --out demo --key-file key >/dev/null")
        #expect(rebuilt.status == 0, "\(rebuilt.err)")
        let stale = MountTests.mount(s, "demo mnt \(broker)")
        #expect(stale.status == 10 && stale.err.contains("tag"), "\(stale.err)")
        #expect(Sandbox.mounts(below: s.path).isEmpty)

        // Every request is in the audit log with its decision.
        let audit = s.sh("cat ks/audit.log").out
        let releases = audit.split(separator: "\n").filter { $0.contains("/release") }
        #expect(releases.filter { $0.contains(#""decision":"released""#) }.count == 3, "\(audit)")
        #expect(releases.filter { $0.contains(#""decision":"refused""#) }.count == 3, "\(audit)")
        #expect(!audit.contains(s.sh("cat key").out.trimmingCharacters(in: .whitespacesAndNewlines)))

        // A fake broker: it holds the genuine TLS certificate and key (a TLS-terminating proxy, or
        // whoever controls the configuration that carries URL and CA) but not the signing identity,
        // and releases the key and tag of a volume of its own. Before signed releases the client
        // mounted it.
        let fake = s.sh("""
            set -e
            fspf keyserver init --store fake >/dev/null
            cp ks/tls/cert.pem ks/tls/key.pem fake/tls/
            mkdir evil-in && echo 'print("attacker")' > evil-in/job.py
            printf '{"mrenclave": ["%s"], "simulated": true, "simulated_attesters": ["%s"]}' "$(cat code)" "$(cat att.pub)" > any.json
            fspf encrypt evil-in --out evil --register fake --volume-name demo --policy any.json >/dev/null
            """)
        #expect(fake.status == 0, "\(fake.err)")
        let (fakeServer, fakeURL) = try Self.serve(s, store: "fake")
        defer { kill(fakeServer, SIGKILL); _ = Tool.wait(fakeServer, cwd: s.path, name: "-fake") }
        let forged = MountTests.mount(s, "evil mnt --volume-name demo " + broker.replacingOccurrences(of: url, with: fakeURL))
        #expect(forged.status == 12 && forged.err.contains("not signed by the pinned key server identity"), "\(forged.err)")
        #expect(Sandbox.mounts(below: s.path).isEmpty)

        // SIGTERM stops the server in order, exit status 0.
        kill(server, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<500 where !serverStopped {
            serverStopped = waitpid(server, &status, WNOHANG) == server
            if !serverStopped { usleep(10_000) }
        }
        #expect(serverStopped && status == 0, "key server did not stop on SIGTERM (status \(status))")
    }

    /// An output volume at the key server: a read-write mount whose evidence satisfies the
    /// writers policy reports every version it seals and the next release pins it, so the
    /// version before, put back by whoever holds the disk, is refused. A report the key server
    /// missed (it was down) fails the seal with exit 14 and the next seal makes up for it. A
    /// workload the writers policy does not name cannot mount the volume read-write.
    @Test func readWriteMountReportsEachSealAndOlderVersionsAreRefused() throws {
        let s = Sandbox()
        let setup = s.sh("""
            set -e
            fspf keyserver init --store ks >/dev/null
            fspf attester init --out att.key > att.pub
            policy() { printf '{"mrenclave": ["%s"], "simulated": true, "simulated_attesters": ["%s"]}' "$1" "$(cat att.pub)"; }
            policy "$(sha256sum '\(Tool.mountBinary)' | cut -d' ' -f1)" > policy.json
            policy "$(printf 'ab%.0s' $(seq 32))" > others.json
            mkdir empty
            fspf encrypt empty --out results --register ks --policy policy.json --writers-policy policy.json >/dev/null
            fspf encrypt empty --out readonly --register ks --policy policy.json --writers-policy others.json >/dev/null
            cp -a results results-v1
            """)
        #expect(setup.status == 0, "\(setup.err)")
        var (server, url) = try Self.serve(s, store: "ks")
        defer { kill(server, SIGKILL); _ = Tool.wait(server, cwd: s.path, name: "-ks") }
        let broker = "--key-broker \(url) --evidence simulated --attester-key att.key --broker-ca ks/tls/cert.pem --broker-identity ks/identity.pub"
        func recorded(_ name: String) -> String {
            s.sh("fspf keyserver list --store ks | awk '$1 == \"\(name)\" {print $5}'").out.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        let m = MountTests.mount(s, "results mnt --read-write \(broker)")
        try #require(m.status == 0, "\(m.err)")
        let first = s.sh("echo 42 > mnt/answer && fspf seal mnt")
        #expect(first.status == 0 && recorded("results") == first.out.trimmingCharacters(in: .whitespacesAndNewlines), "\(first.err)")

        // The key server is down for the next seal: sealed on disk, not recorded, exit 14.
        kill(server, SIGTERM)
        _ = Tool.wait(server, cwd: s.path, name: "-ks")
        let missed = s.sh("echo 43 > mnt/answer && fspf seal mnt")
        #expect(missed.status == 14 && missed.err.contains("not recorded by the key server"), "\(missed.err)")
        #expect(recorded("results") == first.out.trimmingCharacters(in: .whitespacesAndNewlines))
        // seal --unmount while it is still down: exit 14, and it says that the mount stays, writable
        // again (it used to leave the mount and the daemon in place without a word).
        let kept = s.sh("fspf seal mnt --unmount")
        #expect(kept.status == 14 && kept.err.contains("not unmounted: the mount stays, writable") && kept.out.isEmpty, "\(kept.err)")
        #expect(!Sandbox.mounts(below: s.path + "/mnt").isEmpty)
        #expect(s.sh("echo 43 > mnt/answer").status == 0)
        // Back on the same address: the seal at unmount reports the version it seals.
        (server, url) = try Self.serve(s, store: "ks", listen: String(url.dropFirst("https://".count)))
        let last = s.sh("fspf seal mnt --unmount")
        let lastTag = last.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(last.status == 0 && lastTag != first.out.trimmingCharacters(in: .whitespacesAndNewlines) && recorded("results") == lastTag,
                "\(last.err)")

        // Readers get the new version; the one before, put back, is refused.
        #expect(MountTests.mount(s, "results mnt \(broker)").status == 0)
        #expect(s.sh("cat mnt/answer").out == "43\n")
        #expect(s.sh("umount mnt && rm -rf results && cp -a results-v1 results").status == 0)
        let replayed = MountTests.mount(s, "results mnt \(broker)")
        #expect(replayed.status == 10 && replayed.err.contains("tag"), "\(replayed.err)")
        let replayedRW = MountTests.mount(s, "results mnt --read-write \(broker)")
        #expect(replayedRW.status == 10, "\(replayedRW.err)")

        // Allowed to read, not to write.
        let readOnly = MountTests.mount(s, "readonly mnt --read-write \(broker)")
        #expect(readOnly.status == 12 && readOnly.err.contains("for reading only"), "\(readOnly.err)")
        #expect(MountTests.mount(s, "readonly mnt \(broker)").status == 0)
        #expect(s.sh("umount mnt").status == 0)
        #expect(Sandbox.mounts(below: s.path).isEmpty)

        let audit = s.sh("cat ks/audit.log").out.split(separator: "\n")
        #expect(audit.filter { $0.contains(#""decision":"recorded""#) }.count == 2, "\(audit)")
    }
}
