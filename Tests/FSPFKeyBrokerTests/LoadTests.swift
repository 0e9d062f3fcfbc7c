import Foundation
import Glibc
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import FSPFTestSupport
@_spi(Fuzzing) @testable import FSPFProvisioning

/// `fspf keyserver serve`, in its own process, under attack on loopback while an honest client
/// keeps asking for its key: 1,000 connections that stay idle or send their request a byte a
/// second (each reopened as soon as the server drops it), one peer opening 300 at once, a flood
/// of malformed, oversized and deeply nested requests and of nonce requests from other peers.
/// Every honest release must succeed; the figures are printed as one "load:" line (SECURITY.md).
@Suite(.serialized) struct LoadTests {
    /// FSPF_LOAD_RELEASES makes the attack last longer (a longer run for the figures).
    static let honestReleases = Int(ProcessInfo.processInfo.environment["FSPF_LOAD_RELEASES"] ?? "") ?? 100
    static let attackers = 1_000

    static let code = Hex.encode(SHA256.hash(Array("the load test's job".utf8)))

    /// A store with the volume "demo" released to the simulated attester's evidence of `code`,
    /// and `fspf keyserver serve` on it; its pid and port.
    static func startServer(_ s: Sandbox) throws -> (pid_t, Int) {
        let setup = s.sh("""
            set -e
            fspf keyserver init --store ks >/dev/null
            fspf attester init --out att.key > att.pub
            mkdir in && echo data > in/file
            printf '{"mrenclave": ["%s"], "simulated": true, "simulated_attesters": ["%s"]}' \(code) "$(cat att.pub)" > policy.json
            fspf encrypt in --out demo --register ks --policy policy.json --key-out key >/dev/null
            """)
        try #require(setup.status == 0, "\(setup.err)")
        let server = Tool.spawn([Tool.binary, "keyserver", "serve", "--store", "ks", "--listen", "127.0.0.1:0"], cwd: s.path, name: "-ks")
        var port = 0
        for _ in 0..<250 where port == 0 {
            usleep(20_000)
            let line = (try? String(contentsOfFile: s.path + "/.stdout-ks", encoding: .utf8)) ?? ""
            port = Int(line.split(separator: ":").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        }
        if port == 0 { kill(server, SIGKILL); _ = Tool.wait(server, cwd: s.path, name: "-ks") }
        try #require(port > 0, "key server did not start: \((try? String(contentsOfFile: s.path + "/.stderr-ks", encoding: .utf8)) ?? "")")
        return (server, port)
    }

    /// The real client code, releasing "demo" from 127.0.0.1.
    static func honestRequest(_ s: Sandbox, port: Int) throws -> BrokerRequest {
        BrokerRequest(url: "https://127.0.0.1:\(port)", volume: "demo", caFile: s.path + "/ks/tls/cert.pem",
                      identity: try AccessOptions.identity(s.path + "/ks/identity.pub"),
                      attester: .simulated(keyFile: s.path + "/att.key", mrEnclave: Hex.decode(code)))
    }

    @Test func honestClientIsServedUnderAttack() throws {
        let s = Sandbox()
        let (server, port) = try Self.startServer(s)
        var serverResult: Tool.Result?
        defer { if serverResult == nil { kill(server, SIGKILL); _ = Tool.wait(server, cwd: s.path, name: "-ks") } }

        let attack = Attack(port: port)
        defer { attack.stop() }
        // Half idle (no TLS handshake), half slowloris (handshake, then a byte a second), from 40
        // addresses, so that the per-peer quota admits them all: the server must hold them.
        attack.keepOpen(Self.attackers / 2, from: 2...21, slow: false)
        attack.keepOpen(Self.attackers / 2, from: 22...41, slow: true)
        let deadline = Date().addingTimeInterval(20)
        while attack.open.withLock({ $0 }) < Self.attackers && Date() < deadline { usleep(50_000) }
        #expect(attack.open.withLock { $0 } >= Self.attackers, "the server holds only \(attack.open.withLock { $0 }) attack connections")
        attack.burst(300, from: 42)
        attack.flood(from: 43...50)  // and 51

        // The server's resident memory while the attack lasts: VmRSS sampled, and the kernel's
        // high-water mark (VmHWM) read once the attack is over, before the server is stopped.
        // (Not wait4's ru_maxrss: Linux carries the spawning process's peak over into the child at
        // exec, so under `make test` it reported the test runner's 870 MiB.)
        @Sendable func status(_ field: String) -> Int? {
            guard let text = try? String(contentsOfFile: "/proc/\(server)/status", encoding: .utf8),
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
            return Int(line.split(separator: " ").dropFirst().first ?? "")
        }
        let rssTimeline = Locked<[Int]>([])
        let sampling = Locked(true)
        Thread.detachNewThread {
            while sampling.withLock({ $0 }) {
                if let kib = status("VmRSS") { rssTimeline.withLock { $0.append(kib) } }
                usleep(250_000)
            }
        }

        // The honest client: the real client code, from 127.0.0.1, one release after another.
        let request = try Self.honestRequest(s, port: port)
        var latencies: [Double] = []
        var failures: [String] = []
        for _ in 0..<Self.honestReleases {
            let start = Deadline.nowSeconds
            do {
                _ = try request.release(timeout: 10)
                latencies.append(Deadline.nowSeconds - start)
            } catch {
                failures.append("\(error)")
            }
        }
        let openDuringHonest = attack.open.withLock { $0 }
        attack.stop()
        sampling.withLock { $0 = false }
        let highWater = status("VmHWM") ?? 0

        // Still alive and answering, then an orderly stop.
        let tls = try TLSContext(trusting: s.path + "/ks/tls/cert.pem")
        let health = try HTTPClient.request("GET", "https://127.0.0.1:\(port)/v1/health", tls: tls, timeout: 5, limit: 1024)
        #expect(health.status == 200)
        kill(server, SIGTERM)
        let result = Tool.wait(server, cwd: s.path, name: "-ks")
        serverResult = result
        #expect(result.status == 0, "\(result.err)")

        // Each honest release had 10 s (its timeout); the latencies are reported, not bounded tighter,
        // because they measure the machine as much as the server.
        #expect(failures.isEmpty, "\(failures.count) honest releases failed: \(failures.prefix(3))")
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        let timeline = rssTimeline.withLock { $0 }
        let rss = max(timeline.max() ?? 0, highWater)

        // Every decision is in the audit log: each honest release, the flood's refusals, the
        // dropped connections and the quota's summary lines.
        let audit = String(decoding: try FileSystem.readAll(s.path + "/ks/audit.log", limit: 1 << 30), as: UTF8.self)
            .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        func count(_ decision: String, _ status: Int? = nil) -> Int {
            audit.filter { $0["decision"] as? String == decision && (status == nil || $0["status"] as? Int == status) }.count
        }
        let flood = attack.flood.withLock { $0 }
        #expect(count("released") == Self.honestReleases)
        #expect(count("dropped") > 0 && audit.contains { ($0["reason"] as? String)?.contains("connection quota") == true })
        #expect(count("rejected", 408) > 0, "slowloris connections are cut at the request deadline")
        #expect(audit.count >= Self.honestReleases * 2 + flood.answered, "audit lines: \(audit.count)")
        // The flood was answered with refusals, and nothing it sent was released; its nonce
        // requests were answered (a nonce costs the server nothing: nonceFlood… above).
        #expect(flood.statuses.keys.allSatisfy { $0 >= 400 }, "\(flood.statuses)")
        #expect(flood.answered > 100, "\(flood)")
        let burst = attack.burstRefused.withLock { $0 }
        #expect(burst >= 300 - 64, "one peer's connections beyond its quota are refused: \(burst)")

        print(String(format: "load: honest releases %d/%d, p50 %.0f ms, p99 %.0f ms, max %.0f ms; attack connections held open %d; "
                     + "one peer's 300-connection burst: %d refused; flood: %d requests answered (%@; nonce requests %@); "
                     + "server peak RSS %d MiB (%@ MiB every 5 s); audit: %d lines (%d released, %d refused, %d rejected, %d dropped)",
                     latencies.count, Self.honestReleases, percentile(0.5) * 1000, percentile(0.99) * 1000, (sorted.last ?? .nan) * 1000,
                     openDuringHonest, burst, flood.answered, flood.statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "),
                     flood.nonceStatuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "), rss >> 10,
                     stride(from: 0, to: timeline.count, by: 20).map { String(timeline[$0] >> 10) }.joined(separator: " "), audit.count, count("released"), count("refused"), count("rejected"), count("dropped")))
        // Bounded: 1,000 held connections and the flood cost the server tens of MiB, not a thread
        // stack each. An AddressSanitizer build keeps up to 256 MiB of freed memory in quarantine
        // by design, so the bound is for real builds.
        if ProcessInfo.processInfo.environment["FSPF_SANITIZED"] == nil { #expect(rss < 256 << 10, "server RSS \(rss >> 10) MiB") }
    }

    /// Nonces cost the server no table (issue 31, item 4): 200 addresses ask for nonces as fast
    /// as they can and never use them, more than the 10,000 outstanding ones the shared table of
    /// the previous server held (filled from 160 addresses in 18 s, after which every honest
    /// client got 503), while an honest client releases its key again and again.
    @Test func nonceFloodFromTwoHundredAddressesCostsHonestClientsNothing() throws {
        let s = Sandbox()
        let (server, port) = try Self.startServer(s)
        defer { kill(server, SIGKILL); _ = Tool.wait(server, cwd: s.path, name: "-ks") }
        let attack = Attack(port: port)
        defer { attack.stop() }
        attack.nonceFlood(from: 2...201)
        let deadline = Date().addingTimeInterval(120)
        func issued() -> Int { attack.flood.withLock { $0.nonceStatuses[200] ?? 0 } }
        func refused() -> Int { attack.flood.withLock { $0.nonceStatuses.filter { $0.key != 200 }.values.reduce(0, +) } }
        // Until the flood has more than the old table held, or is refused (the old table full).
        // A sanitized server hands out a tenth as many in the time: there the flood's size is
        // not the point, the server's memory and threads under it are.
        let target = ProcessInfo.processInfo.environment["FSPF_SANITIZED"] == nil ? 12_000 : 2_000
        while issued() < target && refused() == 0 && Date() < deadline { usleep(100_000) }
        let before = attack.flood.withLock { $0 }
        #expect(issued() >= target, "the flood got only \(before)")
        let request = try Self.honestRequest(s, port: port)
        var failures: [String] = []
        for _ in 0..<20 {
            do { _ = try request.release(timeout: 10) } catch { failures.append("\(error)") }
        }
        let flood = attack.flood.withLock { $0 }
        attack.stop()
        print("nonce flood: 200 addresses, \(flood.nonceStatuses[200] ?? 0) nonces issued, refused \(flood.nonceStatuses.filter { $0.key != 200 }); "
              + "honest releases during it: \(20 - failures.count) of 20")
        #expect(failures.isEmpty, "\(failures.count) honest releases failed: \(failures.prefix(3))")
        #expect(flood.nonceStatuses.keys.allSatisfy { $0 == 200 }, "\(flood)")
    }
}

/// The attackers, event-driven on two threads of their own.
final class Attack: Sendable {
    let port: Int
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let running = Locked(true)
    let open = Locked(0)
    let burstRefused = Locked(0)
    struct Flood: CustomStringConvertible {
        var answered = 0
        var statuses: [Int: Int] = [:]
        var nonceStatuses: [Int: Int] = [:]
        var description: String { "\(answered) answered \(statuses), nonce requests \(nonceStatuses)" }
    }
    let flood = Locked(Flood())
    let tls: NIOSSLContext

    init(port: Int) {
        self.port = port
        var c = TLSConfiguration.makeClientConfiguration()
        c.certificateVerification = .none
        tls = try! NIOSSLContext(configuration: c)
    }

    func stop() {
        guard running.withLock({ r in defer { r = false }; return r }) else { return }
        try? group.syncShutdownGracefully()
    }

    /// Runs `body` after `seconds`, off the event loops: a task scheduled on one while stop()
    /// shuts the group down can be dropped unrun, which NIO's debug builds trap as a leaked
    /// promise (it killed two make test runs).
    private func later(_ seconds: Double, _ body: @escaping @Sendable () -> Void) {
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: body)
    }

    private func connect(from host: Int, tls: Bool, _ setUp: @escaping @Sendable (Channel) throws -> Void = { _ in }) -> EventLoopFuture<Channel> {
        let context = self.tls
        return ClientBootstrap(group: group)
            .bind(to: try! SocketAddress(ipAddress: "127.0.0.\(host)", port: 0))
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil)) }
                    try setUp(channel)
                }
            }
            .connect(host: "127.0.0.1", port: port)
    }

    /// `count` connections from the addresses `hosts`, each reopened when the server closes it:
    /// idle ones never start TLS; slow ones send a request head a byte a second.
    func keepOpen(_ count: Int, from hosts: ClosedRange<Int>, slow: Bool) {
        for i in 0..<count { hold(host: hosts.lowerBound + i % hosts.count, slow: slow) }
    }

    private func hold(host: Int, slow: Bool) {
        guard running.withLock({ $0 }) else { return }
        connect(from: host, tls: slow).whenComplete { [self] result in
            guard case .success(let channel) = result else {
                later(0.2) { self.hold(host: host, slow: slow) }
                return
            }
            open.withLock { $0 += 1 }
            if slow {
                let head = Array("POST /v1/volumes/demo/release HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 10_000)
                let at = Locked(0)
                channel.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .seconds(1)) { task in
                    let i = at.withLock { i in defer { i += 1 }; return i }
                    guard channel.isActive, i < head.count else { task.cancel(); return }
                    channel.writeAndFlush(channel.allocator.buffer(bytes: [head[i]]), promise: nil)
                }
            }
            channel.closeFuture.whenComplete { _ in
                self.open.withLock { $0 -= 1 }
                self.hold(host: host, slow: slow)
            }
        }
    }

    /// `count` connections from one address at once; counts those the server closes unanswered
    /// within a second of opening (refused by the per-peer quota).
    func burst(_ count: Int, from host: Int) {
        let done = DispatchGroup()
        for _ in 0..<count {
            done.enter()
            connect(from: host, tls: false).whenComplete { [self] result in
                guard case .success(let channel) = result else { burstRefused.withLock { $0 += 1 }; done.leave(); return }
                // Closed by the server within 3 s counts as refused: a loaded machine (the
                // sanitizer runs, other suites beside) may take seconds to reach the accept. Less
                // than the server's 5 s handshake deadline, which closes every idle connection:
                // a quota that refused nothing must still fail here.
                @Sendable func check(_ left: Int) {
                    later(0.1) {
                        if !channel.isActive {
                            self.burstRefused.withLock { $0 += 1 }
                        } else if left > 0 {
                            return check(left - 1)
                        }
                        channel.close(promise: nil)
                        done.leave()
                    }
                }
                check(30)
            }
        }
        done.wait()
    }

    /// Malformed, oversized and deeply nested requests and nonce requests, one after another
    /// from each of `hosts`, until stopped; counts the answers by status.
    func flood(from hosts: ClosedRange<Int>) {
        let nested = { (open: String, close: String, depth: Int) -> String in
            let value = String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
            let body = #"{"nonce": "AAAA", "public_key": "AAAA", "evidence": {"type": "sgx", "quote": "", "collateral": \#(value)}}"#
            return "POST /v1/volumes/demo/release HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        }
        let requests: [[UInt8]] = [
            nested(#"{"a":"#, "}", 350), nested("[", "]", 480), nested("[", "]", 20_000),
            "POST /v1/volumes/demo/release HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
            "POST /v1/volumes/demo/release HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /v1/volumes/demo/release HTTP/1.1\r\nContent-Length: 5\r\n\r\n{{{{{",
            "BLAH\r\n\r\n",
            "POST / HTTP/1.1\r\n" + String(repeating: "X-Pad: 0123456789abcdef\r\n", count: 1200),
            "GET /admin HTTP/1.1\r\n\r\n",
        ].map { Array($0.utf8) } + [Sodium.randomBytes(3000), Attack.nonceRequest]
        for host in hosts { exchange(host: host, requests: requests, next: host) }
        // One more peer asks for nothing but nonces, and never uses them.
        exchange(host: hosts.upperBound + 1, requests: [Attack.nonceRequest], next: 0)
    }

    static let nonceRequest = Array("POST /v1/volumes/demo/nonce HTTP/1.1\r\nContent-Length: 0\r\n\r\n".utf8)

    /// Nonce requests and nothing else, one after another from each of `hosts`, until stopped.
    func nonceFlood(from hosts: ClosedRange<Int>) {
        for host in hosts { exchange(host: host, requests: [Attack.nonceRequest], next: 0) }
    }

    private func exchange(host: Int, requests: [[UInt8]], next: Int) {
        guard running.withLock({ $0 }) else { return }
        let bytes = requests[next % requests.count]
        let response = Locked<[UInt8]>([])
        connect(from: host, tls: true) { channel in
            try channel.pipeline.syncOperations.addHandler(Collector(into: response))
        }.whenComplete { [self] result in
            guard case .success(let channel) = result else {
                later(0.1) { self.exchange(host: host, requests: requests, next: next + 1) }
                return
            }
            channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
            channel.closeFuture.whenComplete { _ in
                let text = String(decoding: response.withLock { $0 }.prefix(12), as: UTF8.self)
                if text.hasPrefix("HTTP/1.1 "), let status = Int(text.dropFirst(9).prefix(3)) {
                    self.flood.withLock { f in
                        f.answered += 1
                        if bytes == Attack.nonceRequest { f.nonceStatuses[status, default: 0] += 1 } else { f.statuses[status, default: 0] += 1 }
                    }
                }
                self.exchange(host: host, requests: requests, next: next + 1)
            }
        }
    }
}

/// Keeps what the server sends on a flood connection.
final class Collector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let bytes: Locked<[UInt8]>
    init(into bytes: Locked<[UInt8]>) { self.bytes = bytes }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let read = buffer.readBytes(length: buffer.readableBytes) ?? []
        bytes.withLock { $0 += read }
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
