import FSPFCrypto
import FSPFSystem

extension Paths {
    /// True when `raw` is what `normalize` returns for it, checked on the bytes (metadata
    /// decoding runs this for every entry): no NUL, no empty, "." or ".." component, so no
    /// leading, trailing or doubled "/".
    static func isNormalVolumePath(_ raw: [UInt8]) -> Bool {
        if raw.isEmpty { return true }
        let dot = UInt8(ascii: ".")
        var start = 0
        for i in 0...raw.count {
            if i < raw.count {
                if raw[i] == 0 { return false }
                if raw[i] != UInt8(ascii: "/") { continue }
            }
            let n = i - start
            if n == 0 || (n == 1 && raw[start] == dot) || (n == 2 && raw[start] == dot && raw[start + 1] == dot) { return false }
            start = i + 1
        }
        return true
    }

    /// Parent inside a volume ("a/b" -> "a", "a" -> "").
    public static func parentInVolume(_ path: String) -> String {
        // On the UTF-8 view: '/' is one byte, and Character search costs a grapheme walk.
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "" }
        return String(path.utf8[..<slash])!
    }
}
