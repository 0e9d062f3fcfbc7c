import ArgumentParser
import FSPFAttestation
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import Foundation

/// `fspf quote show|verify`: what people debugging attestation reach for first.
struct Quote: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and verify Intel SGX DCAP quotes (version 3).",
        discussion: """
        Examples:
          fspf quote show quote.bin
          fspf quote verify quote.bin --collateral collateral.json --policy policy.json
        """,
        subcommands: [QuoteShow.self, QuoteVerify.self])
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

private func loadQuote(_ path: String) throws -> SGXQuote {
    guard FileSystem.exists(path) else { throw FSPFError.noInput(path: path, reason: "no such file") }
    do { return try SGXQuote(try FileSystem.readAll(path, limit: 1 << 20)) } catch let e as AttestationError {
        throw FSPFError.badInput(path: path, reason: e.description)
    }
}

private func emitJSON(_ value: JSONValue) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    Console.out(String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self))
}

struct QuoteShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Print a quote's fields.",
                                                    discussion: "Example: fspf quote show /dev/attestation/quote --format json")

    @Argument(help: "The quote (binary, as /dev/attestation/quote gives it).") var file: String
    @Option(name: .long, help: "text or json.") var format: OutputFormat = .text

    func run() throws {
        try reportingErrors {
            let q = try loadQuote(file)
            let r = q.report
            var fields: [(String, JSONValue)] = [
                ("version", .number(Double(q.version))),
                ("attestation_key_type", .string("ECDSA-256-with-P-256 (\(q.attestationKeyType))")),
                ("mrenclave", .string(Hex.encode(r.mrEnclave))),
                ("mrsigner", .string(Hex.encode(r.mrSigner))),
                ("attributes", .string(Hex.encode(r.attributes))),
                ("debug", .bool(r.isDebug)),
                ("product_id", .number(Double(r.isvProdID))),
                ("isv_svn", .number(Double(r.isvSVN))),
                ("cpu_svn", .string(Hex.encode(r.cpuSVN))),
                ("misc_select", .string(String(format: "%08x", r.miscSelect))),
                ("report_data", .string(Hex.encode(r.reportData))),
                ("qe_svn", .number(Double(q.qeSVN))),
                ("pce_svn", .number(Double(q.pceSVN))),
                ("qe_mrsigner", .string(Hex.encode(q.qeReport.mrSigner))),
            ]
            if let chain = try? q.pckChain() {
                if let ext = try? PCKExtensions(chain[0]) {
                    fields.append(("fmspc", .string(Hex.encode(ext.fmspc).uppercased())))
                    fields.append(("pce_id", .string(Hex.encode(ext.pceID).uppercased())))
                    fields.append(("tcb_components", .string(ext.cpuSVNComponents.map(String.init).joined(separator: " "))))
                }
                fields.append(("certificates", .array(chain.map { c in
                    .string("\(c.subject) (valid \(UTCTime.format(c.validity.notBefore)) … \(UTCTime.format(c.validity.notAfter)))")
                })))
            } else {
                fields.append(("certification_data_type", .number(Double(q.certificationDataType))))
            }
            switch format {
            case .json: emitJSON(.object(Dictionary(uniqueKeysWithValues: fields)))
            case .text:
                for (name, value) in fields {
                    if case .array(let items) = value {
                        for (i, item) in items.enumerated() { Console.out(pad(i == 0 ? name : "") + item.text) }
                    } else {
                        Console.out(pad(name) + value.text + (name == "attributes" ? (r.isDebug ? "  (DEBUG set)" : "  (DEBUG clear)") : ""))
                    }
                }
            }
        }
    }

    private func pad(_ s: String) -> String { s + String(repeating: " ", count: max(1, 22 - s.count)) }
}

struct QuoteVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a quote with its collateral; print each check and the verdict.",
        discussion: """
        Exit status 0 when every check passes, 13 when one fails.
        Example: fspf quote verify quote.bin --collateral collateral.json --policy policy.json
        """)

    @Argument(help: "The quote.") var file: String
    @Option(name: .long, help: "Collateral JSON (PCS/PCCS QuoteCollateralV3 fields: CRLs, TCB info, QE identity).") var collateral: String
    @Option(name: .long, help: "Verification time, RFC 3339 UTC (e.g. 2025-07-01T00:00:00Z); default now.") var at: String?
    @Option(name: .long, help: "Also evaluate this release policy (JSON).") var policy: String?
    @Option(name: .long, help: "text or json.") var format: OutputFormat = .text

    func run() throws {
        try reportingErrors {
            let q = try loadQuote(file)
            let time: Int64
            if let at {
                guard let t = UTCTime.parse(at) else { throw FSPFError.usage("--at \(at): expected YYYY-MM-DDTHH:MM:SSZ") }
                time = t
            } else {
                time = UTCTime.now()
            }
            let c: Collateral
            do { c = try Collateral(json: try FileSystem.readAll(collateral, limit: 1 << 20)) } catch let e as AttestationError {
                throw FSPFError.badInput(path: collateral, reason: e.description)
            }
            let report = DCAPVerifier.verify(quote: q, collateral: c, at: time)
            var checks = report.checks
            if let policy {
                let p: ReleasePolicy
                do { p = try ReleasePolicy(json: try FileSystem.readAll(policy, limit: 1 << 20)) } catch let e as AttestationError {
                    throw FSPFError.badInput(path: policy, reason: e.description)
                }
                checks += p.evaluate(q.claims(report)).map { Check("policy: " + $0.name, $0.passed, $0.detail) }
            }
            let verdict = checks.allPassed ? "verified" : "rejected"
            switch format {
            case .json:
                emitJSON(.object([
                    "verdict": .string(verdict), "time": .string(UTCTime.format(time)),
                    "tcb_status": report.tcbStatus.map(JSONValue.string) ?? .null,
                    "advisory_ids": .array(report.advisoryIDs.map(JSONValue.string)),
                    "checks": .array(checks.map { .object(["name": .string($0.name), "passed": .bool($0.passed), "detail": .string($0.detail)]) }),
                ]))
            case .text:
                for check in checks { Console.out("\(check.passed ? "ok  " : "FAIL") \(check.name): \(check.detail)") }
                Console.out("verdict: \(verdict) at \(UTCTime.format(time))" + (report.tcbStatus.map { ", TCB status \($0)" } ?? ""))
            }
            if let failure = checks.firstFailure {
                throw FSPFError.evidenceRefused(source: file, reason: "\(failure.name): \(failure.detail)")
            }
        }
    }
}

/// `fspf attester init`: the local simulated attester's key (development machines without a TEE).
struct AttesterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attester",
        abstract: "The simulated attester for machines without a TEE.",
        discussion: "Example: fspf attester init --out attester.key",
        subcommands: [AttesterInit.self])
}

struct AttesterInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create an attestation key; print its public key for a policy's simulated_attesters.",
        discussion: "Example: fspf attester init --out attester.key")

    @Option(name: .long, help: "New key file (mode 0600).") var out: String
    @Flag(name: .long, help: "Replace an existing --out file (by default it is left alone: exit 73).") var replace = false

    func run() throws {
        try reportingErrors {
            let seed = SimulatedEvidence.generateSeed()
            var text = Array(seed.withBytes { Hex.encode($0) }.utf8) + [0x0a]
            defer { text.withUnsafeMutableBytes { Sodium.zero($0) } }
            try FileSystem.writeForUser(out, text, mode: 0o600, replacing: replace, flag: "--replace")
            Console.out(Base64.encode(SimulatedEvidence.publicKey(seed: seed)))
        }
    }
}
