import Foundation

/// A JSON value with its type kept (a token's `true` is not its `1`).
public enum JSONValue: Codable, Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    /// Deepest nesting accepted, counted from the document's root. Decoding (and re-encoding) is
    /// recursive and each level takes several stack frames: without a bound, a request of about
    /// 2 KB nesting 350 objects overflowed a key-server connection thread's 1 MiB stack. Real
    /// collateral, tokens and policies nest fewer than 10 levels.
    public static let maximumDepth = 32

    public init(from decoder: Decoder) throws {
        guard decoder.codingPath.count <= JSONValue.maximumDepth else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription:
                "JSON nested deeper than \(JSONValue.maximumDepth) levels"))
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null } else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    /// Compact JSON text.
    public var bytes: [UInt8] { [UInt8]((try? JSONEncoder().encode(self)) ?? Data()) }

    /// Short text for messages.
    public var text: String {
        switch self {
        case .null: "null"
        case .bool(let b): String(b)
        case .number(let n): n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .string(let s): s
        case .array: "[…]"
        case .object: "{…}"
        }
    }
}
