/// Why evidence could not even be read. Evidence that reads fine but fails a check is not an
/// error: it yields a report whose failed checks carry the reasons.
public struct AttestationError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One step of a verification, as `fspf quote verify` prints it and the key broker logs it.
public struct Check: Sendable, Equatable, Codable {
    public let name: String
    public let passed: Bool
    public let detail: String

    public init(_ name: String, _ passed: Bool, _ detail: String) {
        self.name = name
        self.passed = passed
        self.detail = detail
    }
}

extension Array where Element == Check {
    /// The first failed check, which is the reason given for a refusal.
    public var firstFailure: Check? { first { !$0.passed } }
    public var allPassed: Bool { allSatisfy(\.passed) }
}
