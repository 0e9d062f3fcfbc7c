import FSPFSystem
import Glibc

extension MountDaemon {
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
}
