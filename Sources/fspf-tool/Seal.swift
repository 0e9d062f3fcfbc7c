import ArgumentParser
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import Glibc

struct Seal: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seal a new version of a read-write mount now and print its tag.",
        discussion: """
        The daemon of 'fspf-mount --read-write' (or --create) writes the version atomically, as it does at unmount, logs \
        its tag and writes it to its --tag-out. If nothing changed since the last seal, the tag of the version on disk is \
        printed. Only root and the daemon's user may seal. What is written after the seal belongs to the next version.
        --unmount seals, makes the mount refuse every change (EROFS), unmounts and waits for the daemon to exit: the tag \
        printed is the one the daemon sealed and reported over the mount, the last version, never a file read back from \
        the disk (which a storage attacker could have put back). A plain umount or fusermount3 -u returns before the \
        daemon's last seal, so --tag-out is final only once the daemon has exited: use --unmount to get the tag to pin. \
        If it cannot unmount (the mount is busy for more than two seconds) or the key server did not record the version \
        (exit 14), it says so and leaves the mount in place, writable again.
        Examples:
          fspf seal /mnt/out                 the new version's full tag (64 hex)
          fspf seal /mnt/out --short         SCONE's 32-hex form
          TAG=$(fspf seal /mnt/out --unmount)   seal, unmount, and the tag to pin
        """)

    @Argument(help: "The mount point of a read-write fspf-mount.") var mountpoint: String
    @Flag(name: .long, help: "Print the short tag (32 hex digits) instead of the full one.") var short = false
    @Flag(name: .long, help: "Seal the last version, unmount, wait for the daemon to exit, and print that version's tag.") var unmount = false
    @Option(name: .long, help: "--unmount: seconds to wait for the daemon (default 600).") var timeout: Double?

    func validate() throws {
        guard let timeout else { return }
        guard unmount else { throw ValidationError("--timeout goes with --unmount") }
        guard timeout > 0 else { throw ValidationError("--timeout: a number of seconds above 0") }
    }

    func run() throws {
        try reportingErrors {
            let full = unmount ? try unmountAndWait() : String(decoding: try request(MountRequest.seal), as: UTF8.self)
            Console.out(short ? String(full.prefix(32)) : full)
        }
    }

    /// The daemon's answer to one of the mount root's request attributes.
    func request(_ name: String) throws -> [UInt8] {
        do { return try FileSystem.extendedAttribute(mountpoint, name, capacity: 128) } catch FSPFError.io(_, _, let code) {
            throw Self.explain(code, mountpoint, unmounting: unmount)
        }
    }

    /// The daemon's answer to the mount's root attributes, as one line for the user.
    static func explain(_ code: Int32, _ mountpoint: String, unmounting: Bool = false) -> FSPFError {
        switch code {
        case ENODATA, ENOTSUP, ENOTDIR:
            return .badInput(path: mountpoint, reason: "not the mount point of a read-write fspf-mount")
        case ENOENT:
            return .noInput(path: mountpoint, reason: "no such directory")
        case EACCES, EPERM:
            return .usage("\(mountpoint): only root and the mount daemon's user may seal")
        case EREMOTEIO:
            return .notRecorded(source: mountpoint, reason: "a version was sealed (--tag-out and the daemon's log have its tag; "
                                + "the log says why it was not recorded); readers that get their tag from the key server are refused "
                                + "until a later seal is recorded" + (unmounting ? "; not unmounted: the mount stays, writable, so that "
                                + "'fspf seal \(mountpoint)' can report the version once the key server answers" : ""))
        default:
            return .io(path: mountpoint, operation: "seal (the daemon's log has the cause; the previous version stays"
                       + (unmounting ? "; not unmounted" : "") + ")", errno: code)
        }
    }

    /// Seals the last version (the mount refuses changes from then on), unmounts, waits until
    /// the daemon has exited, and returns the tag the daemon sealed. If the unmount fails, the
    /// mount is made writable again and the error says so.
    func unmountAndWait() throws -> String {
        let text = String(decoding: try request(MountRequest.final), as: UTF8.self)
        let parts = text.split(separator: " ")
        guard parts.count == 2, parts[0].count == 64, Hex.decode(String(parts[0])) != nil, let pid = pid_t(parts[1]), pid > 0 else {
            throw FSPFError.badInput(path: mountpoint, reason: "the daemon's answer is not understood: \(text)")
        }
        let tag = String(parts[0])
        // EBUSY can pass: a process still exiting, or a program visiting every mount point (a
        // `sync`-style walker), holds the mount for a moment. A holder that stays (an open file,
        // a working directory inside) is still reported, after two seconds.
        var retries = 0
        while umount2(mountpoint, 0) != 0 {
            let code = errno
            if code == EBUSY, retries < 99 { retries += 1; usleep(20_000); continue }
            // Without the privilege to unmount, fusermount3 does it for the mount's owner.
            if code == EPERM, Self.fusermount(mountpoint) == 0 { break }
            _ = try? FileSystem.extendedAttribute(mountpoint, MountRequest.thaw, capacity: 128)
            throw FSPFError.io(path: mountpoint, operation: "unmount (not unmounted: the mount stays, writable again; version \(tag) "
                               + "is sealed and on disk)", errno: code)
        }
        let timeout = self.timeout ?? 600
        var waited = 0.0
        while kill(pid, 0) == 0 || errno == EPERM {
            waited += 0.02
            guard waited < timeout else {
                throw FSPFError.io(path: mountpoint, operation: "wait \(Int(timeout)) s for the daemon (pid \(pid)) to exit (unmounted; "
                                   + "version \(tag) is sealed)", errno: ETIMEDOUT)
            }
            usleep(20_000)
        }
        return tag
    }

    /// fusermount3 -u MOUNTPOINT; its exit status.
    static func fusermount(_ mountpoint: String) -> Int32 {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = ["fusermount3", "-u", "--", mountpoint].map { (s: String) in strdup(s) } + [nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawnp(&pid, "fusermount3", nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}
