import ArgumentParser
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import FSPFMount
import FSPFProvisioning
import Foundation
import Glibc
import Logging

@main
struct FSPFMountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fspf-mount",
        abstract: "Mount a protected volume (read-only, or read-write with --read-write); every byte served is verified.",
        discussion: """
        The key never comes from the command line: use --key-file, --key-env, --key-fd, --key-stdin, --key-url,
        or --key-broker with --evidence (attested release, docs/ATTESTATION.md).
        The expected tag (--tag, --tag-env, or the key resource's) pins the exact volume version.
        Without MOUNTPOINT the volume directory itself is the mount point (mount-over); another directory must be
        empty unless --nonempty.
        A volume built with SCONE's steps and a not-protected root ('addr / --not-protected --kernel /') is served from the
        directory holding its encrypted and authenticated regions (--subdir / serves its whole tree).
        --scone does what SCONE's runtime does: every encrypted or authenticated region appears at its own absolute path,
        mounted over its kernel directory, wherever the metadata file lies; volume, key and tag default to SCONE_FSPF,
        SCONE_FSPF_KEY and SCONE_FSPF_TAG. Each ephemeral region ('addr --ephemeral') appears empty and writable at its
        path, under a key that never leaves the daemon (ciphertext below --ephemeral-dir, removed at unmount).
        --scone-session SESSION.yaml --service NAME does what SCONE's runtime does for that service of a rendered CAS
        session (after envsubst): its fspf_path as with --scone, and each volume of its image at its path, with the
        fspf_key and fspf_tag the session gives; a volume with fspf_key and no fspf_tag is an output volume, created
        there and served read-write (its tags in --tag-out DIR/NAME.tag).
        --read-write serves the version the tag names for writing; --create starts a new empty volume in an empty or missing
        directory. Each seal (at unmount or SIGTERM, and on 'fspf seal MOUNTPOINT') writes a new version atomically, logs its
        tag and writes it to --tag-out: pin that tag next time. Killed or out of space, the volume stays at the last sealed
        version. Encrypted regions only; hard links and special files are refused (EPERM). See docs/FORMAT.md §10.
        Examples: fspf-mount encrypted-files /fspf/code --key-file code.key --tag "$TAG"
                  fspf-mount results /mnt/out --create --key-file out.key --tag-out results.tag
                  SCONE_FSPF=/fspf/fspf.pb SCONE_FSPF_KEY=… SCONE_FSPF_TAG=… fspf-mount --scone
        Unmount with: umount MOUNTPOINT (root) or fusermount3 -u MOUNTPOINT, or SIGTERM to the daemon.
        A FUSE mount hands what it serves to the kernel: it protects data only where the kernel is inside the TEE
        (confidential VMs and containers), not in SGX enclaves. It logs what it finds at start; --require-tee refuses elsewhere.

        """ + ExitStatus.help([0, 10, 11, 12, 14, 20, 21, 64, 65, 66, 73, 74], saying: [
            0: "mounted (or, in the foreground, cleanly unmounted and sealed)",
            10: "tag mismatch or integrity failure",
            12: "key source failed (or a key server released for reading only to --read-write)",
            14: "the last seal was not recorded by the key server",
            66: "volume missing",
            73: "volume in use by another writer, or --create into a non-empty directory",
            74: "the seal at unmount failed (the previous version stays)",
        ]),
        version: FSPFVersion.describe("fspf-mount"))

    @Argument(help: "Volume directory (or its metadata file).") var volume: String?
    @Argument(help: "Where to mount it (default: over the volume directory itself).") var mountpoint: String?
    @Flag(name: .long, help: "Serve each encrypted or authenticated region at its own absolute path, as SCONE's runtime does.") var scone = false
    @Option(name: .long, help: "--scone: the metadata file (default: $SCONE_FSPF).") var fspf: String?
    @Option(name: .long, help: "Directory of the volume to serve as the mount's root ('/' for the whole tree).") var subdir: String?
    @Option(name: .long, help: "A rendered SCONE CAS session: mount what SCONE's runtime would show --service (its fspf_path, its image's volumes).")
    var sconeSession: String?
    @Option(name: .long, help: "--scone-session: the service.") var service: String?

    @Flag(name: .long, help: "Serve the volume for writing; a new version is sealed at unmount and on 'fspf seal MOUNTPOINT'.") var readWrite = false
    @Flag(name: .long, help: "Create a new, empty volume in VOLUME (an empty or missing directory) and serve it for writing.") var create = false
    @Option(name: .long, help: "--create: chunk size (4K to 16M, power of two).") var chunkSize: String?
    @Option(name: .long, help: "Write the tag of the version on disk to this new file (its first line), at start and after every seal (--scone-session: a directory, NAME.tag per output volume).")
    var tagOut: String?
    @Flag(name: .long, help: "Replace an existing --tag-out file (by default it is left alone: exit 73).") var replaceTagOut = false
    @Option(name: .long, help: "--scone: where ephemeral regions keep their ciphertext, a directory each (default /var/tmp).") var ephemeralDir: String?

    @Option(name: .long, help: "Key file: 32 raw bytes or 64 hex digits (e.g. /dev/attestation/keys/<name>).") var keyFile: String?
    @Option(name: .long, help: "Environment variable holding the key; removed once read (e.g. SCONE_FSPF_KEY).") var keyEnv: String?
    @Option(name: .long, help: "Read the key from this open file descriptor.") var keyFd: Int32?
    @Flag(name: .long, help: "Read the key from standard input.") var keyStdin = false
    @Option(name: .long, help: "GET the key from a local attestation agent (raw, hex, or JSON with key and tag); loopback addresses only unless --allow-remote-key-url.")
    var keyUrl: String?
    @Flag(name: .long, help: "Allow a --key-url on another machine: https:// with --key-url-ca only.") var allowRemoteKeyUrl = false
    @Option(name: .long, help: "PEM certificate(s) to trust for an https:// --key-url.") var keyUrlCa: String?
    @Option(name: .long, help: "Seconds to wait for --key-url or --key-broker.") var keyTimeout: Double = 10

    @Option(name: .long, help: "Get key and tag from this key broker (https://HOST:PORT) after attestation.") var keyBroker: String?
    @Option(name: .long, help: "Evidence for --key-broker: sgx (Gramine's /dev/attestation), maa (Azure Attestation token), simulated.")
    var evidence: AccessOptions.Evidence?
    @Option(name: .long, help: "Volume name at the key broker (default: the volume directory's name).") var volumeName: String?
    @Option(name: .long, help: "PEM certificate(s) to trust for the key broker (default: the system store).") var brokerCa: String?
    @Option(name: .long, help: "The key broker's identity, which signs every release: its base64 Ed25519 public key or a file with it (STORE/identity.pub).")
    var brokerIdentity: String?
    @Option(name: .long, help: "sgx: the runtime's attestation directory.") var attestationDir = "/dev/attestation"
    @Option(name: .long, help: "sgx: collateral JSON to send with the quote (used only by a broker that has none of its own).") var collateral: String?
    @Option(name: .long, help: "maa: command that attests with $FSPF_RUNTIME_DATA and prints the token.") var maaAttester: String?
    @Option(name: .long, help: "simulated: the attester key file (fspf attester init).") var attesterKey: String?
    @Option(name: .long, help: "simulated: claim this MRENCLAVE (64 hex) instead of fspf-mount's own SHA-256.") var simulatedMrenclave: String?

    @Option(name: .long, help: "Expected volume tag: the full tag (64 hex digits) or SCONE's short one (32).") var tag: String?
    @Option(name: .long, help: "Environment variable holding the expected tag (e.g. SCONE_FSPF_TAG).") var tagEnv: String?
    @Flag(name: .long, help: "Mount without an expected tag (no rollback protection; logs a warning).") var noTagCheck = false
    @Flag(name: .customLong("accept-v1"), help: "Mount a format-1 volume under an expected tag (its tag does not bind against key holders).")
    var acceptV1 = false

    @Flag(name: .long, help: "Refuse to mount unless the kernel is inside a TEE (SEV-SNP or TDX guest, confidential containers); see docs/SECURITY.md.")
    var requireTee = false
    @Flag(name: .long, help: "Stay in the foreground, logging to stderr.") var foreground = false
    @Option(name: .long, help: "Once mounted in the background, log to this file (appended), 'syslog' (the default) or 'none'; the caller's stdout and stderr are released.")
    var logFile: String?
    @Flag(name: .long, help: "Mount over a directory that has entries (hidden while mounted); the volume's own directory needs no flag.")
    var nonempty = false
    @Option(name: .customShort("o"), help: "Mount options: allow_other; nonempty (as --nonempty); noexec; nosuid and nodev (always in effect); uid=N and gid=N show every entry as owned by N instead of its stored owner (with --create: the new volume's root owner).")
    var mountOptions: [String] = []
    @Option(name: .long, help: "After mounting, run as this user (user or user:group).") var user: String?
    @Option(name: .long, help: "FUSE worker threads.") var threads: UInt32 = 8
    @Option(name: .long, help: "Kernel readahead for the mount, KiB (0: kernel default).") var readaheadKb = 4096
    @Flag(name: .long, help: "Log every request.") var verbose = false

    func run() throws {
        let level: Logger.Level = verbose ? .trace : .info
        LoggingSystem.bootstrap { LineLogHandler(label: $0, level: level) }
        let logger = Logger(label: "fspf-mount")
        do {
            if let sconeSession {
                throw ExitCode(try mountSession(sconeSession, logger: logger))
            }
            var access = self.access
            let volume: String
            if scone {
                guard let v = fspf ?? self.volume ?? ProcessInfo.processInfo.environment["SCONE_FSPF"] else {
                    throw FSPFError.usage("--scone needs the metadata file: --fspf F or SCONE_FSPF")
                }
                volume = v
                if [keyFile, keyEnv, keyUrl, keyBroker].allSatisfy({ $0 == nil }) && keyFd == nil && !keyStdin { access.keyEnv = "SCONE_FSPF_KEY" }
                if tag == nil && tagEnv == nil && !noTagCheck && keyBroker == nil && keyUrl == nil { access.tagEnv = "SCONE_FSPF_TAG" }
            } else {
                volume = self.volume!  // validate()
            }
            var config = MountConfiguration(volume: volume, mountpoint: mountpoint ?? volume, key: try access.keySource(volume: volume))
            config.scone = scone
            config.subdirectory = subdir
            if readWrite || create {
                config.readWrite = true
                config.create = create
                config.tagOut = tagOut
                config.replaceTagOut = replaceTagOut
                if let chunkSize { config.chunkSize = try ChunkSize.parse(chunkSize, option: "--chunk-size") }
            }
            try configure(&config)
            config.tag = try access.givenTag()
            if config.readWrite && !config.create && (config.uid != nil || config.gid != nil) {
                throw FSPFError.usage("-o uid=, gid=: with --create the new volume's root owner; a read-write mount stores real owners otherwise")
            }
            throw ExitCode(try MountDaemon.run(config, logger: logger))
        } catch let e as FSPFError {
            throw Self.report(e)
        }
    }

    /// Option combinations, before anything is read or mounted.
    func validate() throws {
        func refuse(_ message: String) -> ExitCode { Self.report(.usage(message)) }
        if sconeSession != nil {
            guard service != nil else { throw refuse("--scone-session needs --service NAME") }
            guard !readWrite, !create, chunkSize == nil else {
                throw refuse("--scone-session: the session says which volumes are written (fspf_key without fspf_tag); no --read-write, --create or --chunk-size")
            }
            let a = access
            guard volume == nil, mountpoint == nil, fspf == nil, subdir == nil, !scone, a.keyFile == nil, a.keyEnv == nil, a.keyFd == nil,
                  !a.keyStdin, a.keyUrl == nil, a.keyBroker == nil, a.tag == nil, a.tagEnv == nil, !noTagCheck else {
                throw refuse("--scone-session takes volumes, keys and tags from the session: no VOLUME, MOUNTPOINT, --scone, key or tag option")
            }
        } else {
            guard service == nil else { throw refuse("--service goes with --scone-session") }
            guard scone || ephemeralDir == nil else { throw refuse("--ephemeral-dir goes with --scone or --scone-session (ephemeral regions)") }
        }
        if scone {
            guard mountpoint == nil, subdir == nil else { throw refuse("--scone mounts each region at its own path: no MOUNTPOINT or --subdir") }
            guard fspf == nil || volume == nil else { throw refuse("--scone: name the metadata file once (--fspf F or VOLUME)") }
        } else if sconeSession == nil {
            guard fspf == nil else { throw refuse("--fspf goes with --scone; otherwise name the volume as the first argument") }
            guard volume != nil else { throw refuse("missing VOLUME (or --scone to use SCONE_FSPF)") }
        }
        if readWrite || create {
            guard !scone, subdir == nil else { throw refuse("--read-write and --create serve the whole volume: no --scone or --subdir") }
            guard !create || (tag == nil && tagEnv == nil && !noTagCheck) else {
                throw refuse("--create starts a new volume: it has no tag to check yet (--tag-out writes its tags)")
            }
            guard create || chunkSize == nil else { throw refuse("--chunk-size goes with --create (a volume keeps its chunk sizes)") }
        } else if sconeSession == nil, tagOut != nil || replaceTagOut || chunkSize != nil {
            throw refuse("--tag-out, --replace-tag-out and --chunk-size go with --read-write or --create")
        }
        guard tagOut != nil || !replaceTagOut else { throw refuse("--replace-tag-out goes with --tag-out") }
        guard logFile == nil || !foreground else { throw refuse("--log-file: --foreground logs to stderr") }
    }

    static func report(_ e: FSPFError) -> ExitCode { CommandOutput(program: "fspf-mount").failure(e) }

    /// The mount settings every form shares.
    func configure(_ config: inout MountConfiguration) throws {
        if let logFile { config.log = LogDestination(argument: logFile) }
        config.keyTimeout = keyTimeout
        config.foreground = foreground
        config.user = user
        config.threads = max(1, threads)
        config.readaheadKiB = max(0, readaheadKb)
        config.logLevel = verbose ? .trace : .info
        config.skipTagCheck = noTagCheck
        config.acceptVersion1 = acceptV1
        config.requireTEE = requireTee
        config.allowNonEmpty = nonempty
        if let ephemeralDir { config.ephemeralDirectory = ephemeralDir }
        for o in mountOptions.flatMap({ $0.split(separator: ",") }) {
            if o == "allow_other" { config.allowOther = true; continue }
            if o == "nonempty" { config.allowNonEmpty = true; continue }
            if o == "noexec" { config.noExec = true; continue }
            // libfuse mounts with these always; accepted so that fstab lines may say so.
            if o == "nosuid" || o == "nodev" { continue }
            if o.hasPrefix("uid="), let n = UInt32(o.dropFirst(4)) { config.uid = n; continue }
            if o.hasPrefix("gid="), let n = UInt32(o.dropFirst(4)) { config.gid = n; continue }
            throw FSPFError.usage("-o \(o): only allow_other, nonempty, noexec, nosuid, nodev, uid=N and gid=N are supported (--read-write for a writable mount)")
        }
    }

    /// --scone-session: key and tag come from the session, so no other key or tag option applies.
    func mountSession(_ file: String, logger: Logger) throws -> Int32 {
        let service = self.service!  // validate()
        let mounts = try SconeSession.mounts(file: file, service: service)
        guard !foreground || mounts.count == 1 else {
            throw FSPFError.usage("--foreground: the session has \(mounts.count) volumes for \(service), each served by a daemon of its own")
        }
        var configs: [MountConfiguration] = []
        if let tagOut, !mounts.contains(where: \.create) {
            throw FSPFError.usage("--tag-out \(tagOut): the session gives \(service) no output volume (a volume with fspf_key and no fspf_tag)")
        }
        for m in mounts {
            var c = MountConfiguration(volume: m.volume, mountpoint: m.mountpoint ?? m.volume, key: .file(file))
            c.scone = m.mountpoint == nil
            c.material = m.material
            // An output volume: its tags in --tag-out DIR, one file per volume (NAME.tag).
            if m.create {
                c.create = true
                c.readWrite = true
                c.tagOut = tagOut.map { $0 + "/" + (m.name ?? "volume") + ".tag" }
                c.replaceTagOut = replaceTagOut
            }
            // A volume's directory is its mount point (mount-over), as SCONE's runtime shows it.
            try configure(&c)
            configs.append(c)
        }
        return try MountDaemon.run(all: configs, logger: logger)
    }

    /// The key and tag options as the library (libfspf) takes them too.
    var access: AccessOptions {
        var a = AccessOptions()
        a.keyFile = keyFile; a.keyEnv = keyEnv; a.keyFd = keyFd; a.keyStdin = keyStdin; a.keyUrl = keyUrl
        a.allowRemoteKeyUrl = allowRemoteKeyUrl; a.keyUrlCa = keyUrlCa
        a.keyTimeout = keyTimeout; a.keyBroker = keyBroker; a.evidence = evidence; a.volumeName = volumeName
        a.brokerCa = brokerCa; a.brokerIdentity = brokerIdentity; a.attestationDir = attestationDir; a.collateral = collateral; a.maaAttester = maaAttester
        a.attesterKey = attesterKey; a.simulatedMrenclave = simulatedMrenclave; a.tag = tag; a.tagEnv = tagEnv
        a.noTagCheck = noTagCheck; a.acceptV1 = acceptV1
        return a
    }
}

extension AccessOptions.Evidence: ExpressibleByArgument {}
