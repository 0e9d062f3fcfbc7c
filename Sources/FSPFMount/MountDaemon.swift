import CFuse3
import CLinux
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Foundation
import FSPFProvisioning
import Glibc
import Logging

public struct MountConfiguration: Sendable {
    public var volume: String
    public var mountpoint: String
    public var key: KeySource
    /// Expected tag (else the key resource's); nil only with `skipTagCheck`.
    public var tag: [UInt8]?
    public var skipTagCheck = false
    /// Mount a format-1 volume under an expected tag (FORMAT.md §13).
    public var acceptVersion1 = false
    /// Refuse to mount unless the kernel is inside a TEE (a confidential VM or container).
    public var requireTEE = false
    /// Mount over a directory with entries of its own (hidden while mounted).
    public var allowNonEmpty = false
    public var foreground = false
    public var allowOther = false
    /// The kernel refuses to execute files of the mount (-o noexec).
    public var noExec = false
    /// Show every entry as owned by this user / group (-o uid=, gid=) instead of the stored owner.
    public var uid: uid_t?
    public var gid: gid_t?
    /// Run as this user (name or name:group) once mounted.
    public var user: String?
    public var threads: UInt32 = 8
    /// Kernel readahead for the mount in KiB (0: leave the kernel's 128 KiB).
    public var readaheadKiB = 4096
    public var cacheBytes = 32 << 20
    public var keyTimeout: Double = 10
    public var logLevel: Logger.Level = .info
    /// The volume directory to serve as the mount's root (default: `VolumeReader.servedDirectory`).
    public var subdirectory: String?
    /// SCONE's runtime view: every outermost encrypted or authenticated region mounted at its
    /// own absolute path (over its kernel directory), `mountpoint` unused.
    public var scone = false
    /// Where a backgrounded daemon logs once live (--log-file); --foreground keeps stderr.
    public var log: LogDestination = .syslog
    /// Key and tag already at hand (a SCONE session), used instead of `key`.
    public var material: KeySource.Material?
    /// Serve the volume read-write: a new version is sealed at unmount and on `fspf seal`.
    public var readWrite = false
    /// Start a new, empty volume in an empty or missing directory (read-write).
    public var create = false
    /// Chunk size of a created volume.
    public var chunkSize: UInt32 = ChunkSize.default
    /// Written atomically with the tag of the version on disk, at start (a new file unless
    /// `replaceTagOut`) and after each seal.
    public var tagOut: String?
    public var replaceTagOut = false
    /// Where the ciphertext of ephemeral regions goes (--scone), each in a directory of its own.
    public var ephemeralDirectory = "/var/tmp"

    public init(volume: String, mountpoint: String, key: KeySource) {
        self.volume = volume
        self.mountpoint = mountpoint
        self.key = key
    }
}

/// fspf-mount's life: harden, get the key, open and check the volume, mount, go to the
/// background (the parent exits 0 only once the kernel has initialised the mount), serve,
/// and unmount on SIGTERM/SIGINT.
public enum MountDaemon {
    /// Returns the process exit status. Errors before the mount is live are thrown, so the
    /// caller prints one line and exits with the error's status.
    public static func run(_ config: MountConfiguration, logger: Logger) throws -> Int32 {
        switch try start(config, logger: logger) {
        case .served(let status), .failed(let status): return status
        case .background: return 0
        }
    }

    /// Several mounts in the background, one daemon each (a SCONE session's volumes), each
    /// live before the next starts; if one fails, those already live are unmounted.
    public static func run(all configs: [MountConfiguration], logger: Logger) throws -> Int32 {
        var live: [String] = []
        func undo() { for m in live.reversed() { _ = umount2(m, 0) } }
        for config in configs {
            let outcome: Outcome
            do { outcome = try start(config, logger: logger) } catch { undo(); throw error }
            switch outcome {
            case .served(let status): return status  // a daemon whose mounts have ended
            case .failed(let status): undo(); return status
            case .background(let mountpoints): live += mountpoints
            }
        }
        return 0
    }

    enum Outcome {
        /// This process served the mounts (a daemon or --foreground) until they ended.
        case served(Int32)
        /// The mounts are live in a background daemon.
        case background([String])
        /// The background daemon died before the mounts went live.
        case failed(Int32)
    }

    static func start(_ config: MountConfiguration, logger: Logger) throws -> Outcome {
        Hardening.apply(logger: logger)
        // Where the plaintext goes: said before anything is fetched, and refused with --require-tee.
        let environment = TEEEnvironment.detect()
        if environment.kernelInsideTEE { logger.info("\(environment.summary)") } else { logger.warning("\(environment.summary)") }
        if config.requireTEE && !environment.kernelInsideTEE {
            throw FSPFError.mountFailed(path: config.mountpoint, reason: "--require-tee: the kernel that would receive the plaintext is not "
                                        + "inside a TEE (\(environment.enclave ?? "no confidential VM or container found"))")
        }

        // Before a key is fetched (a release is audited and spends a nonce).
        if !config.allowNonEmpty && !config.scone { try checkEmpty(config.mountpoint, volume: config.volume) }
        if let t = config.tagOut, !config.replaceTagOut, FileSystem.exists(t) { throw FSPFError.fileExists(path: t, hint: "--replace-tag-out") }
        let material = try config.material ?? config.key.loadMaterial(timeout: config.keyTimeout)
        let keys = try VolumeKeys(key: material.key)
        if config.readWrite || config.create, case .broker(let b) = config.key, config.material == nil, material.writer == nil {
            throw FSPFError.keyUnavailable(source: b.url, reason: "the key server released volume \(b.volume) for reading only: this workload "
                                           + "does not satisfy its writers policy, so the versions it sealed would not be recorded")
        }
        if config.create { return try startWritable(config, keys: keys, expected: nil, writer: material.writer, logger: logger) }
        let expected = try AccessOptions.pin(given: config.tag, material: material, source: config.key.name, skipTagCheck: config.skipTagCheck)
        if expected == nil {
            logger.warning("mounting without an expected tag: an older version of the volume would be accepted (--no-tag-check)")
        }
        if config.readWrite { return try startWritable(config, keys: keys, expected: expected, writer: material.writer, logger: logger) }
        func open(covering: [String]) throws -> VolumeReader {
            try VolumeReader(path: config.volume, keys: keys, expectedTag: expected, acceptVersion1: config.acceptVersion1,
                             cacheBytes: config.cacheBytes, covered: covering)
        }

        // Open the volume before mounting, with the directories the mounts cover: the volume's
        // own directory (mount-over) or the kernel directories of SCONE's regions.
        let reader: VolumeReader
        var targets: [(mountpoint: String, top: Int?)] = []
        var ephemeral: [Region] = []
        if config.scone {
            // The regions (and so the directories to cover) are known only once the metadata is
            // open: a first reader learns them, the one that serves covers them.
            let paths: [String]
            (paths, ephemeral) = try sconeMountpoints(try open(covering: []))
            reader = try open(covering: paths)
            for p in paths {
                targets.append((try checkMountpoint(p), try reader.entryIndex(p)))
            }
        } else {
            let mountpoint = try checkMountpoint(config.mountpoint)
            reader = try open(covering: [mountpoint])
            let top = try config.subdirectory.map { try reader.entryIndex($0) } ?? reader.servedDirectory
            if let top, !reader.entries[top].isDirectory {
                throw FSPFError.usage("--subdir \(config.subdirectory ?? ""): not a directory in the volume")
            }
            targets.append((mountpoint, top))
        }
        if reader.version == .v1 { logger.warning("\(FormatWarning.version1(reader.metadataPath).dropFirst("warning: ".count))") }
        guard access("/dev/fuse", R_OK | W_OK) == 0 else {
            throw FSPFError.fuseUnavailable(reason: Errno(errno).description)
        }

        let readiness = Readiness(mounts: targets.count + ephemeral.count)
        let readahead = config.readaheadKiB
        let served = targets.map { (mountpoint, top) -> Target in
            let volume = MountedVolume(reader: reader, logger: logger, trace: config.logLevel <= .trace, top: top,
                                       uid: config.uid, gid: config.gid) {
                readiness.probe(mountpoint, readahead: readahead, logger: logger)
            }
            return Target(mountpoint: mountpoint, access: "ro", ops: Operations.table(for: volume), userdata: Unmanaged.passRetained(volume).toOpaque(),
                          release: { Unmanaged<MountedVolume>.fromOpaque($0).release() },
                          description: ["volume": "\(reader.metadataPath)", "mountpoint": "\(mountpoint)",
                                        "served": "/\(top.map { reader.entries[$0].path } ?? "")",
                                        "tag": "\(Hex.encode(reader.tag.full))", "files": "\(reader.entries.count)"])
        }
        var throwaway: [Target] = []
        do {
            for region in ephemeral { throwaway.append(try ephemeralTarget(region, config: config, readiness: readiness, logger: logger)) }
        } catch {
            for t in served + throwaway {
                t.release(t.userdata)
                t.cleanup()
            }
            throw error
        }
        return try serve(served + throwaway, config: config, readiness: readiness, logger: logger)
    }

    /// A read-write mount (docs/FORMAT.md §10, "Written volumes"): the version `expected`
    /// names, or a new empty volume with --create; a version sealed at unmount (and SIGTERM)
    /// and on `fspf seal`, each tag logged, written to --tag-out and, with a key server's writer
    /// grant, reported to the key server. The mount point may be the volume's own directory.
    static func startWritable(_ config: MountConfiguration, keys: VolumeKeys, expected: [UInt8]?, writer: BrokerWriter?,
                              logger: Logger) throws -> Outcome {
        FileSystem.raiseDescriptorLimit()  // every file open for writing holds its object's
        let given = Paths.absolute(config.volume)
        let isDirectory = config.create || FileSystem.isDirectory(given)
        let directory = isDirectory ? given : Paths.parent(given)
        if config.create && mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw FSPFError.io(path: directory, operation: "mkdir", errno: errno)
        }
        let anchor = try Anchored(directory)
        let volume = try anchor.naming {
            config.create
                ? try WritableVolume.create(directory: $0, keys: keys, chunkSize: config.chunkSize,
                                            uid: config.uid ?? getuid(), gid: config.gid ?? getgid(), cacheBytes: config.cacheBytes)
                : try WritableVolume(path: isDirectory ? $0 : $0 + "/" + Paths.lastComponent(given), keys: keys, expectedTag: expected,
                                     cacheBytes: config.cacheBytes)
        }
        let tagOut = config.tagOut.map(Paths.absolute)
        @Sendable func line(_ tag: VolumeTag) -> [UInt8] { Array((Hex.encode(tag.full) + "\n").utf8) }
        // The file is new (or replaced on request) at start; each seal then replaces the daemon's own.
        if let tagOut {
            try FileSystem.writeForUser(tagOut, line(volume.tag), mode: 0o644, replacing: config.replaceTagOut, flag: "--replace-tag-out")
        }
        @Sendable func report(_ tag: VolumeTag) {
            guard let tagOut else { return }
            do { try FileSystem.writeAtomically(tagOut, line(tag), replacing: true) } catch {
                logger.critical("\(tagOut): writing the new tag failed: \(error)")
            }
        }
        guard access("/dev/fuse", R_OK | W_OK) == 0 else {
            throw FSPFError.fuseUnavailable(reason: Errno(errno).description)
        }
        let readiness = Readiness(mounts: 1)
        let (target, mount) = try writableTarget(volume, anchor: anchor, mountpoint: try checkMountpoint(config.mountpoint), writer: writer,
                                                 config: config, readiness: readiness, logger: logger, onSeal: report)
        return try serve([target], config: config, readiness: readiness, logger: logger) {
            do {
                try mount.seal(reason: "unmount")
                return 0
            } catch is WritableMount.Unrecorded {
                return ExitStatus.notRecorded
            } catch {
                logger.critical("sealing at unmount failed; the volume stays at \(Hex.encode(volume.tag.full)): \(error)")
                return (error as? FSPFError)?.exitStatus ?? ExitStatus.ioError
            }
        }
    }

    /// The read-write mount of `volume` at `mountpoint`, reported live through `readiness`.
    static func writableTarget(_ volume: WritableVolume, anchor: Anchored, mountpoint: String, writer: BrokerWriter?, config: MountConfiguration,
                               readiness: Readiness, logger: Logger, onSeal: @escaping @Sendable (VolumeTag) -> Void) throws -> (Target, WritableMount) {
        let shown = anchor.shown(volume.metadataPath)
        let readahead = config.readaheadKiB
        let mount = WritableMount(volume: volume, anchor: anchor.descriptor, logger: logger, writer: writer,
                                  reportTimeout: config.keyTimeout, onReady: {
            readiness.probe(mountpoint, readahead: readahead, logger: logger)
        }, onSeal: onSeal)
        let target = Target(mountpoint: mountpoint, access: "rw", ops: WritableOperations.table(), userdata: Unmanaged.passRetained(mount).toOpaque(),
                            release: { Unmanaged<WritableMount>.fromOpaque($0).release() },
                            description: ["volume": "\(shown)", "mountpoint": "\(mountpoint)", "access": "read-write",
                                          "tag": "\(Hex.encode(volume.tag.full))", "files": "\(volume.sealedFiles)"])
        return (target, mount)
    }

    /// An ephemeral region (SCONE's `addr --ephemeral`): a new, empty volume under a random key
    /// that never leaves the daemon, in a directory of its own below `config.ephemeralDirectory`,
    /// removed when the mount ends; its root looks like the directory it covers. What is written
    /// there is never sealed, and is unreadable once the daemon is gone.
    static func ephemeralTarget(_ region: Region, config: MountConfiguration, readiness: Readiness, logger: Logger) throws -> Target {
        let mountpoint = try checkMountpoint("/" + region.path)
        let base = Paths.absolute(config.ephemeralDirectory)
        var template = Array((base + "/fspf-ephemeral-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FSPFError.io(path: base, operation: "making a directory for the ephemeral region /\(region.path)", errno: errno)
        }
        let directory = String(cString: made)
        do {
            let anchor = try Anchored(directory)
            let covered = FileSystem.status(mountpoint)
            let volume = try anchor.naming {
                try WritableVolume.create(directory: $0, keys: try VolumeKeys(key: SecureBytes.random(count: 32)), chunkSize: region.chunkSize,
                                          mode: covered.map { UInt32($0.st_mode) & 0o7777 } ?? 0o755,
                                          uid: config.uid ?? covered?.st_uid ?? getuid(), gid: config.gid ?? covered?.st_gid ?? getgid(),
                                          cacheBytes: config.cacheBytes)
            }
            var (target, _) = try writableTarget(volume, anchor: anchor, mountpoint: mountpoint, writer: nil, config: config, readiness: readiness,
                                                 logger: logger, onSeal: { _ in })
            target.cleanup = { FileSystem.removeTree(directory) }
            target.description["access"] = "ephemeral"
            target.description["tag"] = nil
            return target
        } catch {
            FileSystem.removeTree(directory)
            throw error
        }
    }

    /// A directory the daemon reaches through a descriptor opened before mounting
    /// (/proc/self/fd/N): a mount over it, or over a directory holding it, then cannot route
    /// the daemon's own reads and writes into the mount. SCONE shows volumes at their own path,
    /// and an ephemeral region may cover the directory its ciphertext is in.
    struct Anchored: Sendable {
        let descriptor: FileDescriptor
        /// As the user named it.
        let directory: String
        var path: String { "/proc/self/fd/\(descriptor.fd)" }

        init(_ directory: String) throws {
            self.directory = directory
            descriptor = try FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }

        /// `p` below the descriptor's path, named below the user's directory.
        func shown(_ p: String) -> String { p == path ? directory : p.hasPrefix(path + "/") ? directory + p.dropFirst(path.count) : p }

        /// Runs `body` with the descriptor's path; its errors name the user's directory.
        func naming<T>(_ body: (String) throws -> T) throws -> T {
            do { return try body(path) } catch let e as FSPFError { throw e.replacingPath(path, with: directory) }
        }
    }

    /// A mount about to be made: its callbacks, their user data (released after the session)
    /// and what the log says of it.
    struct Target {
        var mountpoint: String
        /// "ro" or "rw".
        var access: String
        var ops: fuse_lowlevel_ops
        var userdata: UnsafeMutableRawPointer
        var release: (UnsafeMutableRawPointer) -> Void
        var description: Logger.Metadata
        /// Run once by the process that served the mount (never by a parent that went on to
        /// exit while its daemon serves), or when mounting failed.
        var cleanup: () -> Void = {}
    }

    /// Mounts the targets and serves them: in the background unless --foreground (the parent
    /// returns once all are live), as `--user` once mounted, until SIGTERM/SIGINT/SIGHUP or
    /// the first one's unmount ends all. `finally` runs once the loops have ended, before the
    /// sessions are destroyed (a read-write mount seals there).
    static func serve(_ targets: [Target], config: MountConfiguration, readiness: Readiness, logger: Logger,
                      finally: () -> Int32 = { 0 }) throws -> Outcome {
        var logFD: Int32? = nil
        if case .file(let path) = config.log, !config.foreground {
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw FSPFError.io(path: path, operation: "open log file", errno: errno) }
            logFD = fd
        }
        if !config.foreground {
            let destination = config.log, fd = logFD
            readiness.onLive = { LogSink.detach(to: destination, fd: fd) }
        }
        var options = "default_permissions,fsname=fspf,subtype=fspf"
        if config.allowOther { options += ",allow_other" }
        if config.noExec { options += ",noexec" }
        var sessions: [(session: OpaquePointer, target: Target)] = []
        var pending = targets[...]
        func unmountAll() {
            for s in sessions { fuse_session_unmount(s.session) }
        }
        var serving = true
        defer {
            for s in sessions {
                fuse_session_destroy(s.session)
                s.target.release(s.target.userdata)
            }
            for t in pending { t.release(t.userdata) }
            if serving { for t in targets { t.cleanup() } }
        }
        while let target = pending.first {
            var argv: [UnsafeMutablePointer<CChar>?] = ["fspf-mount", "-o", target.access + "," + options].map { (s: String) in strdup(s) }
            defer { argv.forEach { free($0) } }
            var args = fuse_args(argc: Int32(argv.count), argv: nil, allocated: 0)
            var ops = target.ops
            let session: OpaquePointer? = argv.withUnsafeMutableBufferPointer { buf in
                args.argv = buf.baseAddress
                return fspf_fuse_session_new(&args, &ops, target.userdata)
            }
            fuse_opt_free_args(&args)
            guard let session else {
                unmountAll()
                throw FSPFError.mountFailed(path: target.mountpoint, reason: "could not create the FUSE session")
            }
            guard fuse_session_mount(session, target.mountpoint) == 0 else {
                fuse_session_destroy(session)
                unmountAll()
                throw FSPFError.mountFailed(path: target.mountpoint, reason: "the kernel refused the mount (see the line above)")
            }
            pending = pending.dropFirst()
            sessions.append((session, target))
            logger.info("mounted", metadata: target.description)
        }
        let session = sessions[0].session
        let mountpoint = sessions[0].target.mountpoint

        if !config.foreground {
            // Parent: wait until the child reports the mount initialised, then exit 0.
            if let parentStatus = readiness.forkAndWait() {
                serving = false
                return parentStatus == 0 ? .background(sessions.map(\.target.mountpoint)) : .failed(parentStatus)
            }
            setsid()
        }
        _ = chdir("/")
        if let user = config.user {
            do { try Hardening.dropPrivileges(to: user) } catch {
                unmountAll()
                throw error
            }
            logger.info("running as \(user)")
        }
        Hardening.lockMemory(logger: logger)

        guard fuse_set_signal_handlers(session) == 0 else {
            unmountAll()
            throw FSPFError.mountFailed(path: mountpoint, reason: "cannot install signal handlers")
        }
        // Further mounts (--scone with several regions) loop on threads of their own and end
        // when the first one does (SIGTERM/SIGINT/SIGHUP or its unmount) unmounts them.
        let others = DispatchGroup()
        for s in sessions.dropFirst() {
            let loop = UncheckedSession(s.session)
            others.enter()
            Thread.detachNewThread {
                _ = fspf_fuse_session_loop_mt(loop.session, config.threads)
                others.leave()
            }
        }
        // The loop returns 0 on unmount, the signal number on SIGTERM/SIGINT/SIGHUP, < 0 on error.
        let status = fspf_fuse_session_loop_mt(session, config.threads)
        unmountAll()
        others.wait()
        fuse_remove_signal_handlers(session)
        let final = finally()
        if status < 0 {
            logger.error("FUSE loop failed: \(Errno(-status).description)")
            return .served(ExitStatus.mountFailed)
        }
        for s in sessions { logger.info("unmounted", metadata: ["mountpoint": "\(s.target.mountpoint)"]) }
        return .served(final)
    }

    /// SCONE's runtime shows each region at its own path: the outermost encrypted or
    /// authenticated regions that have files, each mounted at its absolute path (created if
    /// missing), and the ephemeral regions, each a throw-away writable mount at its path;
    /// not-protected regions are left alone.
    static func sconeMountpoints(_ reader: VolumeReader) throws -> (served: [String], ephemeral: [Region]) {
        let regions = reader.metadata.regions
        let protected = regions.filter { $0.kind != .notProtected && !$0.ephemeral }
        if protected.contains(where: { $0.path.isEmpty }) {
            throw FSPFError.usage("\(reader.metadataPath): region / is protected: SCONE's runtime would serve the whole file system; "
                                  + "mount it with fspf-mount VOLUME MOUNTPOINT")
        }
        let outermost = protected.filter { r in !protected.contains { $0.path != r.path && Paths.isWithin(r.path, $0.path) } }
        let paths = outermost.compactMap { r -> String? in
            guard let i = try? reader.entryIndex(r.path), reader.entries[i].isDirectory else { return nil }
            return "/" + r.path
        }.sorted()
        let ephemeral = regions.filter(\.ephemeral)
        // An ephemeral region inside a served one would need a directory the read-only mount does not have.
        for e in ephemeral {
            if let outer = paths.first(where: { Paths.isWithin("/" + e.path, $0) }) {
                throw FSPFError.badInput(path: reader.metadataPath, reason: "the ephemeral region /\(e.path) lies in \(outer), which is served "
                                         + "read-only: give it a path outside the encrypted and authenticated regions")
            }
        }
        guard !paths.isEmpty || !ephemeral.isEmpty else {
            throw FSPFError.badInput(path: reader.metadataPath, reason: "no encrypted or authenticated region has files to serve")
        }
        for p in paths + ephemeral.map({ "/" + $0.path }) where !FileSystem.exists(p) { try FileSystem.makeDirectories(p) }
        return (paths, ephemeral)
    }

    /// Absolute path of an existing directory that is not already an FSPF mount.
    static func checkMountpoint(_ path: String) throws -> String {
        guard let resolved = realpath(path, nil) else {
            throw FSPFError.mountFailed(path: path, reason: "mount point does not exist")
        }
        defer { free(resolved) }
        let absolute = String(cString: resolved)
        guard FileSystem.isDirectory(absolute) else { throw FSPFError.mountFailed(path: path, reason: "mount point is not a directory") }
        if isFUSEMount(absolute) { throw busy(path) }
        return absolute
    }

    static func busy(_ path: String) -> FSPFError {
        .mountFailed(path: path, reason: "mount point busy: a FUSE file system is already mounted there")
    }

    static func isFUSEMount(_ absolute: String) -> Bool {
        guard let mounts = try? FileSystem.readAll("/proc/self/mountinfo") else { return false }
        return String(decoding: mounts, as: UTF8.self).split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            guard fields.count > 8, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return false }
            return unescapeMountPath(fields[4]) == absolute && fields[dash + 1].hasPrefix("fuse")
        }
    }

    /// A mount point with entries of its own would hide them silently (gocryptfs refuses too),
    /// unless it is the volume's own directory: mounting over the ciphertext is the point there.
    static func checkEmpty(_ path: String, volume: String) throws {
        let directory = FileSystem.isDirectory(volume) ? volume : Paths.parent(volume)
        func resolved(_ p: String) -> String? {
            guard let r = realpath(p, nil) else { return nil }
            defer { free(r) }
            return String(cString: r)
        }
        guard let target = resolved(path) else { return }  // checkMountpoint names the problem
        if isFUSEMount(target) { throw busy(path) }
        guard target != resolved(directory), let entries = try? FileSystem.list(target), !entries.isEmpty else { return }
        throw FSPFError.mountFailed(path: path, reason: "mount point is not empty: its \(entries.count) entries would be hidden while mounted "
                                    + "(--nonempty to mount over them anyway)")
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescapeMountPath(_ s: Substring) -> String {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let c = bytes.popFirst() {
            if c == UInt8(ascii: "\\"), bytes.count >= 3, let v = UInt8(String(decoding: bytes.prefix(3), as: UTF8.self), radix: 8) {
                out.append(v)
                bytes = bytes.dropFirst(3)
            } else {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

enum Tuning {
    /// Raises the mount's readahead window through its backing-device entry in sysfs. The
    /// FUSE handshake caps readahead at the kernel's default (128 KiB), which starves large
    /// sequential reads; root can raise it once the mount is initialised.
    static func setReadahead(mountpoint: String, kib: Int, logger: Logger) {
        guard let info = try? FileSystem.readAll("/proc/self/mountinfo") else { return }
        var device: Substring?
        for line in String(decoding: info, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count > 4, MountDaemon.unescapeMountPath(f[4]) == mountpoint { device = f[2] }  // the last (topmost) mount
        }
        guard let device else { return }
        let path = "/sys/class/bdi/\(device)/read_ahead_kb"
        do {
            let f = try FileDescriptor.open(path, O_WRONLY | O_TRUNC)
            try Array("\(kib)\n".utf8).withUnsafeBytes { try f.write($0, at: 0) }
            logger.debug("readahead set", metadata: ["KiB": "\(kib)"])
        } catch {
            logger.debug("readahead left at the kernel default: \(error)")
        }
    }
}

/// A FUSE session handed to the thread that runs its loop.
private struct UncheckedSession: @unchecked Sendable {
    let session: OpaquePointer
    init(_ session: OpaquePointer) { self.session = session }
}

/// Tells whoever waits that the mounts are live: the parent of a backgrounded daemon (over a
/// pipe) and a service manager (sd_notify protocol, when NOTIFY_SOCKET is set).
final class Readiness: @unchecked Sendable {
    private var pipeWrite: Int32 = -1
    private let pending: Locked<Int>
    /// Run once the mounts are live and the parent told (a daemon's log redirection).
    var onLive: (@Sendable () -> Void)?

    init(mounts: Int) { pending = Locked(mounts) }

    /// Forks. In the parent, waits for the child's report and returns the exit status to use;
    /// in the child, returns nil.
    func forkAndWait() -> Int32? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        let pid = fork()
        if pid < 0 { return ExitStatus.mountFailed }
        if pid == 0 {
            close(fds[0])
            pipeWrite = fds[1]
            _ = fcntl(pipeWrite, F_SETFD, FD_CLOEXEC)
            return nil
        }
        close(fds[1])
        var byte: UInt8 = 1
        let n = read(fds[0], &byte, 1)
        close(fds[0])
        if n == 1 && byte == 0 { return 0 }
        // The child died before the mount went live; its stderr has the reason.
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let code = (status >> 8) & 0xff
        return status & 0x7f == 0 && code != 0 ? code : ExitStatus.mountFailed
    }

    /// Called from a mount's INIT callback, which libfuse answers only once it returns: from
    /// another thread, waits until the mount serves a request (asked by a child process, never by
    /// the daemon itself: fspf_probe_in_child), tunes its readahead, and counts it live.
    func probe(_ mountpoint: String, readahead: Int, logger: Logger) {
        Thread.detachNewThread {
            _ = fspf_probe_in_child(mountpoint)
            if readahead > 0 { Tuning.setReadahead(mountpoint: mountpoint, kib: readahead, logger: logger) }
            self.signal()
        }
    }

    func signal() {
        guard pending.withLock({ $0 -= 1; return $0 }) == 0 else { return }
        if pipeWrite >= 0 {
            var zero: UInt8 = 0
            _ = write(pipeWrite, &zero, 1)
            close(pipeWrite)
            pipeWrite = -1
            onLive?()
        }
        notifyServiceManager("READY=1\nMAINPID=\(getpid())")
    }

    private func notifyServiceManager(_ message: String) {
        guard let raw = getenv("NOTIFY_SOCKET") else { return }
        var path = Array(String(cString: raw).utf8)
        guard !path.isEmpty, path.count < 108 else { return }
        if path[0] == UInt8(ascii: "@") { path[0] = 0 }  // abstract socket
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in path.withUnsafeBytes { dst.copyMemory(from: $0) } }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withCString { sendto(fd, $0, strlen($0), Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
    }
}
