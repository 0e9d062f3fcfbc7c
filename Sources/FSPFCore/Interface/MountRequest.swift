/// Requests to a read-write mount's daemon, made by reading extended attributes of the mount's
/// root (`fspf seal` asks, FSPFMount's WritableMount answers; only root and the daemon's user).
public enum MountRequest {
    /// Seal a version now; the answer is its full tag (hex).
    public static let seal = "user.fspf.seal"
    /// The tag of the version on disk.
    public static let tag = "user.fspf.tag"
    /// Seal, then refuse every change (EROFS) until unmounted; the answer is "TAG PID": the tag
    /// this daemon sealed and its pid, to wait for (`fspf seal --unmount`).
    public static let final = "user.fspf.final"
    /// Accept changes again (the unmount after `final` failed); the answer is the tag on disk.
    public static let thaw = "user.fspf.thaw"
    public static let all = [seal, tag, final, thaw]
}
