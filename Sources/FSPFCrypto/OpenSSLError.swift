import COpenSSL

/// OpenSSL's thread-local error queue, read in one place.
public enum OpenSSLError {
    /// The oldest queued error as text, then the queue cleared (so a later failure is not
    /// blamed on this one); `fallback` when the queue is empty.
    public static func take(or fallback: String = "unknown OpenSSL error") -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return fallback }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
