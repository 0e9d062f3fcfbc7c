import Glibc

/// RFC 3339 UTC timestamps as Intel and our policies write them ("2025-06-19T10:56:11Z").
public enum UTCTime {
    public static func parse(_ text: String) -> Int64? {
        let u = Array(text.utf8)
        guard u.count == 20, u[4] == 0x2d, u[7] == 0x2d, u[10] == 0x54, u[13] == 0x3a, u[16] == 0x3a, u[19] == 0x5a else {
            return nil
        }
        func n(_ r: Range<Int>) -> Int32? {
            var v: Int32 = 0
            for c in u[r] { guard c >= 0x30, c <= 0x39 else { return nil }; v = v * 10 + Int32(c - 0x30) }
            return v
        }
        guard let y = n(0..<4), let mo = n(5..<7), let d = n(8..<10), let h = n(11..<13), let mi = n(14..<16),
              let s = n(17..<19), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        var t = tm()
        t.tm_year = y - 1900; t.tm_mon = mo - 1; t.tm_mday = d; t.tm_hour = h; t.tm_min = mi; t.tm_sec = s
        return Int64(timegm(&t))
    }

    public static func format(_ seconds: Int64) -> String {
        var t = tm()
        var value = time_t(seconds)
        gmtime_r(&value, &t)
        func p(_ v: Int32, _ w: Int) -> String { String(repeating: "0", count: max(0, w - String(v).count)) + String(v) }
        return "\(p(t.tm_year + 1900, 4))-\(p(t.tm_mon + 1, 2))-\(p(t.tm_mday, 2))T\(p(t.tm_hour, 2)):\(p(t.tm_min, 2)):\(p(t.tm_sec, 2))Z"
    }

    public static func now() -> Int64 { Int64(time(nil)) }
}
