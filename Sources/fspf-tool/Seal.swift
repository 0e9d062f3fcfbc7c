import ArgumentParser
import FSPFCore
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
        --unmount then unmounts and waits for the daemon to finish its last seal (a plain umount returns before it): the \
        tag printed is the one of the version on disk when the daemon has exited.
        Examples:
          fspf seal /mnt/out                 the new version's full tag (64 hex)
          fspf seal /mnt/out --short         SCONE's 32-hex form
          TAG=$(fspf seal /mnt/out --unmount)   seal, unmount, and the tag to pin
        """)

    @Argument(help: "The mount point of a read-write fspf-mount.") var mountpoint: String
    @Flag(name: .long, help: "Print the short tag (32 hex digits) instead of the full one.") var short = false
    @Flag(name: .long, help: "Then unmount, wait for the daemon to exit, and print the tag of the version it left.") var unmount = false
    @Option(name: .long, help: "--unmount: seconds to wait for the daemon.") var timeout: Double = 600

    func run() throws {
        try reportingErrors {
            let tag: [UInt8]
            do {
                tag = try FileSystem.extendedAttribute(mountpoint, "user.fspf.seal", capacity: 128)
            } catch FSPFError.io(_, _, let code) {
                throw Self.explain(code, mountpoint)
            }
            var full = String(decoding: tag, as: UTF8.self)
            if unmount { full = Hex.encode(try unmountAndWait().full) }
            Console.out(short ? String(full.prefix(32)) : full)
        }
    }

    /// The daemon's answer to the mount's root attributes, as one line for the user.
    static func explain(_ code: Int32, _ mountpoint: String) -> FSPFError {
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
                                + "until a later seal is recorded")
        default:
            return .io(path: mountpoint, operation: "seal (the daemon's log has the cause; the previous version stays)", errno: code)
        }
    }

    /// Unmounts, waits until the daemon has exited (its last seal done), and returns the tag of
    /// the metadata it left on disk.
    func unmountAndWait() throws -> VolumeTag {
        let answer: [UInt8]
        do { answer = try FileSystem.extendedAttribute(mountpoint, "user.fspf.daemon", capacity: 8192) } catch FSPFError.io(_, _, let code) {
            throw Self.explain(code, mountpoint)
        }
        let text = String(decoding: answer, as: UTF8.self)
        guard let space = text.firstIndex(of: " "), let pid = pid_t(text[..<space]) else {
            throw FSPFError.badInput(path: mountpoint, reason: "the daemon's answer is not understood: \(text)")
        }
        let metadata = String(text[text.index(after: space)...])
        // EBUSY can pass: a process still exiting, or a program visiting every mount point (a
        // `sync`-style walker), holds the mount for a moment. A holder that stays (an open file,
        // a working directory inside) is still reported, after two seconds.
        var retries = 0
        while umount2(mountpoint, 0) != 0 {
            let code = errno
            if code == EBUSY, retries < 99 { retries += 1; usleep(20_000); continue }
            // Without the privilege to unmount, fusermount3 does it for the mount's owner.
            guard code == EPERM, Self.fusermount(mountpoint) == 0 else {
                throw FSPFError.io(path: mountpoint, operation: "unmount", errno: code)
            }
            break
        }
        var waited = 0.0
        while kill(pid, 0) == 0 || errno == EPERM {
            waited += 0.02
            guard waited < timeout else {
                throw FSPFError.io(path: mountpoint, operation: "wait \(Int(timeout)) s for the daemon (pid \(pid)) to seal and exit", errno: ETIMEDOUT)
            }
            usleep(20_000)
        }
        return try SealedMetadata.parseHeader(try FileSystem.readAll(metadata), path: metadata).tag
    }

    /// fusermount3 -u MOUNTPOINT; its exit status.
    static func fusermount(_ mountpoint: String) -> Int32 {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = ["fusermount3", "-u", mountpoint].map { (s: String) in strdup(s) } + [nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawnp(&pid, "fusermount3", nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}
