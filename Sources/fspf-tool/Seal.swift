import ArgumentParser
import FSPFCore
import FSPFSystem
import Glibc

struct Seal: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seal a new version of a read-write mount now and print its tag.",
        discussion: """
        The daemon of 'fspf-mount --read-write' (or --create) writes the version atomically, as it does at unmount, logs \
        its tag and writes it to its --tag-out. If nothing changed since the last seal, the tag of the version on disk is \
        printed. Only root and the daemon's user may seal. What is written after the seal belongs to the next version.
        Examples:
          fspf seal /mnt/out            the new version's full tag (64 hex)
          fspf seal /mnt/out --short    SCONE's 32-hex form
        """)

    @Argument(help: "The mount point of a read-write fspf-mount.") var mountpoint: String
    @Flag(name: .long, help: "Print the short tag (32 hex digits) instead of the full one.") var short = false

    func run() throws {
        try reportingErrors {
            let tag: [UInt8]
            do {
                tag = try FileSystem.extendedAttribute(mountpoint, "user.fspf.seal", capacity: 128)
            } catch FSPFError.io(_, _, let code) {
                switch code {
                case ENODATA, ENOTSUP, ENOTDIR:
                    throw FSPFError.badInput(path: mountpoint, reason: "not the mount point of a read-write fspf-mount")
                case ENOENT:
                    throw FSPFError.noInput(path: mountpoint, reason: "no such directory")
                case EACCES, EPERM:
                    throw FSPFError.usage("\(mountpoint): only root and the mount daemon's user may seal")
                default:
                    throw FSPFError.io(path: mountpoint, operation: "seal (the daemon's log has the cause; the previous version stays)", errno: code)
                }
            }
            let full = String(decoding: tag, as: UTF8.self)
            Console.out(short ? String(full.prefix(32)) : full)
        }
    }
}
