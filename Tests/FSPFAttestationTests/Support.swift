import Foundation
import FSPFCrypto
import FSPFSystem
@testable import FSPFAttestation

/// Path of the package root, for fixtures.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func fixture(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: packageRoot + "/fixtures/attestation/" + name)))
}

/// Inside the fixture collateral's validity (2025-06-19T10:56:11Z … 2025-07-19T10:01:18Z).
let collateralTime = UTCTime.parse("2025-07-01T00:00:00Z")!

/// Runs a shell command in `dir`; throws with its output when it fails.
@discardableResult
func sh(_ command: String, in dir: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard p.terminationStatus == 0 else { throw AttestationError("`\(command)` failed: \(text)") }
    return text
}

func temporaryDirectory() throws -> String {
    let dir = NSTemporaryDirectory() + "fspf-attest-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Reassembles a v3 quote with other certification data and QE report signature; the rest
/// is copied from `quote`.
func rebuild(_ quote: SGXQuote, qeReportSignature: [UInt8], certificationData: [UInt8]) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
    func le32(_ v: Int) -> [UInt8] { le16(v & 0xffff) + le16(v >> 16) }
    var signature = quote.reportSignature + quote.attestationKey + quote.qeReport.bytes + qeReportSignature
    signature += le16(quote.qeAuthData.count) + quote.qeAuthData
    signature += le16(5) + le32(certificationData.count) + certificationData
    return Array(quote.signedPart) + le32(signature.count) + signature
}

/// DER ECDSA-Sig-Value → r ‖ s.
func rawSignature(_ der: [UInt8]) throws -> [UInt8] {
    let seq = try DER.elements(der[...])[0]
    let ints = try DER.elements(seq.content)
    func pad(_ b: ArraySlice<UInt8>) -> [UInt8] {
        let trimmed = Array(b.drop { $0 == 0 })
        return [UInt8](repeating: 0, count: 32 - trimmed.count) + trimmed
    }
    return pad(ints[0].content) + pad(ints[1].content)
}
