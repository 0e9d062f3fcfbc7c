import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning
import Foundation

/// What the broker decides, free of sockets: issues nonces, appraises evidence against each
/// volume's policy, releases the key and tag sealed to the requester's ephemeral key (with a
/// writer grant when the evidence satisfies the writers policy too) and records the versions
/// writers report. Runs on
/// the server's worker threads (it reads the store, verifies signatures, syncs the audit log).
final class BrokerService: Sendable {
    let store: BrokerStore
    let audit: AuditLog
    let configuration: KeyBrokerServer.Configuration
    let clock: @Sendable () -> Int64
    let nonces: Nonces

    init(store: BrokerStore, audit: AuditLog, configuration: KeyBrokerServer.Configuration, clock: @escaping @Sendable () -> Int64) {
        self.store = store
        self.audit = audit
        self.configuration = configuration
        self.clock = clock
        nonces = Nonces(lifetime: Int64(configuration.nonceLifetime * 1000), capacity: configuration.maxRedeemedNonces)
    }

    struct Reply: Sendable {
        var status: Int
        var body: [UInt8]
        var entry: AuditLog.Entry
    }

    func entry(peer: String, request: String) -> AuditLog.Entry {
        AuditLog.Entry(time: UTCTime.format(clock()), peer: peer, request: request, decision: "rejected", status: 400, reason: "")
    }

    /// A request refused before it was complete (framing, limits, deadline): audited, answered.
    func refuse(_ failure: HTTPRequest.Failure, address: String, request: String) -> Reply {
        var e = entry(peer: address, request: request)
        e.status = failure.status
        e.reason = failure.reason
        audit.record(e)
        return Reply(status: failure.status, body: Self.error(failure.reason), entry: e)
    }

    /// A connection dropped without an HTTP exchange (TLS failed or never finished): audited only.
    func dropped(address: String, reason: String) {
        var e = entry(peer: address, request: "-")
        e.decision = "dropped"
        e.status = 0
        e.reason = reason
        audit.record(e)
    }

    func handle(_ request: HTTPRequest) -> Reply {
        let reply = route(request, entry(peer: request.address, request: "\(request.method) \(request.path)"))
        audit.record(reply.entry)
        return reply
    }

    /// The reply with `entry` completed for the audit log.
    private static func reply(_ entry: AuditLog.Entry, _ status: Int, _ decision: String, _ reason: String, body: [UInt8]?) -> Reply {
        var e = entry
        e.status = status
        e.decision = decision
        e.reason = reason
        return Reply(status: status, body: body ?? error(reason), entry: e)
    }

    private static var milliseconds: Int64 { Int64(Deadline.nowSeconds * 1000) }

    static func error(_ reason: String) -> [UInt8] {
        [UInt8]((try? JSONEncoder().encode(BrokerProtocol.ErrorResponse(error: reason))) ?? Data())
    }

    private func route(_ request: HTTPRequest, _ base: AuditLog.Entry) -> Reply {
        var entry = base
        func answer(_ status: Int, _ decision: String, _ reason: String, body: [UInt8]? = nil) -> Reply {
            Self.reply(entry, status, decision, reason, body: body)
        }
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false)
        if request.path == "/v1/health" {
            return request.method == "GET" ? answer(200, "served", "health", body: Array(#"{"status":"ok"}"#.utf8))
                                           : answer(405, "rejected", "use GET")
        }
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "v1", parts[2] == "volumes", ["nonce", "release", "report"].contains(parts[4]) else {
            return answer(404, "rejected", "no such endpoint (POST /v1/volumes/<name>/nonce, /release or /report)")
        }
        guard request.method == "POST" else { return answer(405, "rejected", "use POST") }
        let name = String(parts[3])
        entry.volume = String(name.prefix(80))
        let volume: BrokerStore.Volume
        do {
            guard let v = try store.volume(name) else { return answer(404, "refused", "unknown volume") }
            volume = v
        } catch {
            return answer(500, "refused", "volume record unusable: \(error)")
        }
        if parts[4] == "nonce" {
            let nonce = nonces.issue(volume: volume.name, peer: request.peer, now: Self.milliseconds)
            let body = try? JSONEncoder().encode(BrokerProtocol.NonceResponse(nonce: Base64.encode(nonce), expires_in: Int(configuration.nonceLifetime)))
            return answer(200, "served", "nonce issued", body: body.map { [UInt8]($0) })
        }
        if parts[4] == "report" { return report(request, volume: volume, entry: entry) }

        guard let release = try? JSONDecoder().decode(BrokerProtocol.ReleaseRequest.self, from: Data(request.body)) else {
            return answer(400, "rejected", "malformed release request")
        }
        entry.evidence = String(release.evidence.type.prefix(16))
        // Single use: the nonce is spent from here on, whatever the outcome.
        guard let nonce = Base64.decode(release.nonce),
              nonces.redeem(nonce, volume: volume.name, peer: request.peer, now: Self.milliseconds) else {
            return answer(409, "refused", "nonce unknown, expired, for another volume or client, or already used")
        }
        guard let publicKey = Base64.decode(release.public_key), publicKey.count == 32 else {
            return answer(400, "rejected", "public_key must be a base64 X25519 public key")
        }
        let evidence: Evidence
        do { evidence = try release.evidence.decoded() } catch { return answer(400, "rejected", "\(error)") }
        let appraisal = Appraiser(time: clock(), collateral: configuration.collateral).appraise(
            evidence, policy: volume.policy, reportData: Binding.reportData(nonce: nonce, publicKey: publicKey),
            runtimeData: Binding.runtimeData(nonce: nonce, publicKey: publicKey))
        entry.mrenclave = appraisal.claims.map { Hex.encode($0.mrEnclave) }
        entry.mrsigner = appraisal.claims.map { Hex.encode($0.mrSigner) }
        guard appraisal.accepted else { return answer(403, "refused", appraisal.reason) }
        // The same evidence against the writers policy: a grant, or the reason there is none.
        var writer: BrokerProtocol.WriterGrant?
        var access = "read only (no writers policy)"
        if let writers = volume.writers {
            let w = Appraiser(time: clock(), collateral: configuration.collateral).appraise(
                evidence, policy: writers, reportData: Binding.reportData(nonce: nonce, publicKey: publicKey),
                runtimeData: Binding.runtimeData(nonce: nonce, publicKey: publicKey))
            if w.accepted {
                let g = store.grant(volume, claims: appraisal.claims, expires: clock() + configuration.writerGrantLifetime)
                writer = .init(token: g.token, secret: g.secret)
                access = "may write"
            } else {
                access = "read only (writers policy: \(w.reason))"
            }
        }
        do {
            let key = try store.key(of: volume)
            var statement = BrokerProtocol.releaseStatement(volume: volume.name, nonce: nonce, clientKey: publicKey, key: key, tag: volume.tag,
                                                            writer: writer)
            defer { statement.withUnsafeMutableBytes { Sodium.zero($0) } }
            let sealed = try BrokerProtocol.seal(volume: volume.name, key: key, tag: volume.tag, writer: writer,
                                                 signature: store.sign(statement), to: publicKey)
            let body = try JSONEncoder().encode(BrokerProtocol.ReleaseResponse(sealed: Base64.encode(sealed)))
            return answer(200, "released", "all checks passed; \(access)", body: [UInt8](body))
        } catch {
            return answer(500, "refused", "\(error)")
        }
    }

    /// A writer's report of a version it sealed: the grant is this store's, for this volume,
    /// unexpired, under the writers policy the record still has; the MAC is the grant's secret's;
    /// the record is still at `from`. Then the record moves to `to`, and the signed answer says so.
    private func report(_ request: HTTPRequest, volume: BrokerStore.Volume, entry base: AuditLog.Entry) -> Reply {
        var entry = base
        func answer(_ status: Int, _ decision: String, _ reason: String, _ body: [UInt8]? = nil) -> Reply {
            Self.reply(entry, status, decision, reason, body: body)
        }
        guard let r = try? JSONDecoder().decode(BrokerProtocol.ReportRequest.self, from: Data(request.body)),
              let token = Base64.decode(r.token), let from = Hex.decode(r.from), let to = Hex.decode(r.to), let mac = Base64.decode(r.mac),
              KeyText.tagSizes.contains(from.count), to.count == KeyText.tagSizes.max() else {
            return answer(400, "rejected", "malformed report (token, mac: base64; from: a tag in hex; to: a full tag, 64 hex digits)")
        }
        guard let grant = store.openGrant(token), grant.volume == volume.name else {
            return answer(403, "refused", "the token is not a writer grant of this key server for this volume")
        }
        entry.mrenclave = grant.mrEnclave
        entry.mrsigner = grant.mrSigner
        guard grant.expires >= clock() else {
            return answer(403, "refused", "the writer grant expired at \(UTCTime.format(grant.expires)); mount again for a new one")
        }
        let expected = store.grantSecret(token).withUnsafeBytes { KDF.hmac(key: $0, BrokerProtocol.reportStatement(volume: volume.name, from: from, to: to)) }
        guard Sodium.equal(expected, mac) else { return answer(403, "refused", "the report's mac is not made with the grant's secret") }
        guard from != to else { return answer(400, "rejected", "from and to are the same tag") }
        let change = "tag \(Hex.encode(from.prefix(8)))… → \(Hex.encode(to.prefix(8)))…"
        do {
            switch try store.advance(volume: volume.name, writersDigest: grant.writersDigest, from: from, to: to) {
            case .recorded(let version):
                let signature = store.sign(BrokerProtocol.recordedStatement(volume: volume.name, version: version, from: from, to: to, mac: mac))
                let body = try JSONEncoder().encode(BrokerProtocol.ReportResponse(version: version, signature: Base64.encode(signature)))
                return answer(200, "recorded", "\(change), version \(version)", [UInt8](body))
            case .stale(let current):
                return answer(409, "refused", "the record is at tag \(Hex.encode(current)), not \(Hex.encode(from)): another writer's version "
                              + "was recorded first, or this report is stale")
            case .writersChanged:
                return answer(403, "refused", "the volume's writers policy changed since this grant was issued; mount again")
            }
        } catch {
            return answer(500, "refused", "\(error)")
        }
    }
}
