import CFuse3
import CLinux
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import Foundation
import FSPFProvisioning
import Glibc
import Logging

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


}
