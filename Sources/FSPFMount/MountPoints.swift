import FSPFSystem
import Glibc
import Logging

extension MountDaemon {
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
