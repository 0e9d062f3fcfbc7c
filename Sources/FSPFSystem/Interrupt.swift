/// Set by SIGINT/SIGTERM handlers; long-running work polls it and unwinds cleanly.
public enum Interrupt {
    private static let flag = AtomicFlag()
    public static var requested: Bool { flag.isSet }
    public static func request() { flag.set() }
    public static func reset() { flag.clear() }
}
