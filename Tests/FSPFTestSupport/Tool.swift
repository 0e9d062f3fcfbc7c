import Foundation
import Glibc
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Synchronization

/// The built `fspf` binary, run as build scripts run it.
public struct Tool {
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static let binary: String = ProcessInfo.processInfo.environment["FSPF_BIN"] ?? packageRoot + "/.build/debug/fspf"
    public static let mountBinary: String = Paths.parent(binary) + "/fspf-mount"

    public struct Result {
        public var status: Int32
        public var out: String
        public var err: String
    }

    /// Runs `script` with /bin/sh in `cwd`, `fspf` first on PATH; returns status and output.
    public static func sh(_ script: String, cwd: String, env: [String: String] = [:], limit: Double = hangLimit) -> Result {
        let pid = spawn(["/bin/sh", "-c", script], cwd: cwd, env: env)
        return wait(pid, cwd: cwd, limit: limit)
    }

    /// Starts `argv` in `cwd`; its output goes to `.stdout<name>` / `.stderr<name>` there, so
    /// several processes of one test keep theirs apart.
    public static func spawn(_ argv: [String], cwd: String, env: [String: String] = [:], name: String = "") -> pid_t {
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = Paths.parent(binary) + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        for (k, v) in env { environment[k] = v }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, cwd + "/.stdout" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, cwd + "/.stderr" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // `cd` then exec, so the pid is the program's own.
        let argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd] + argv
        let cargs = argv.map { strdup($0) } + [nil]
        let cenv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cargs + cenv).forEach { free($0) } }
        // Test-runner threads block signals; the child must start with a clean mask.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        // Its own process group, so that `wait` can end a hung script with everything it started.
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargs, cenv)
        precondition(rc == 0, "posix_spawn failed: \(rc)")
        return pid
    }

    /// How long `wait` lets a process run before it kills its process group: a guard against
    /// hangs, far above any test's need. (Not Swift Testing's `.timeLimit`: its clock also runs
    /// while a test waits for one of the two cooperative threads that long tests hold, so quick
    /// tests failed it after minutes in the queue.)
    public static let hangLimit: Double = 15 * 60

    /// Waits for `pid`; after `limit` seconds its process group is killed and the result is
    /// status 124 with the reason appended to `err`.
    public static func wait(_ pid: pid_t, cwd: String, name: String = "", limit: Double = hangLimit) -> Result {
        final class Flag: Sendable { let raised = Mutex(false) }
        let timedOut = Flag()
        let watchdog = DispatchWorkItem {
            timedOut.raised.withLock { $0 = true }
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: watchdog)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        watchdog.cancel()
        var code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        func text(_ name: String) -> String { (try? String(contentsOfFile: cwd + "/" + name, encoding: .utf8)) ?? "" }
        var err = text(".stderr" + name)
        if timedOut.raised.withLock({ $0 }) {
            code = 124
            err += "\n[test] killed after \(Int(limit)) s: hung\n"
        }
        return Result(status: code, out: text(".stdout" + name), err: err)
    }
}

public final class Sandbox {
    public let path: String
    public init() {
        var template = Array("/tmp/fspf-cli-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
    deinit {
        // A failed test may leave mounts behind: detach them before removing anything.
        for m in Sandbox.mounts(below: path).reversed() { umount2(m, Int32(MNT_DETACH)) }
        FileSystem.removeTree(path)
    }

    /// Mount points at or below `dir`, from /proc/self/mountinfo. Read to its end by
    /// FileSystem.readAll: Foundation's String(contentsOfFile:) stops after the first read of a
    /// /proc file (about 4 KiB), and newer mounts come last (podman's overlays push them past it).
    public static func mounts(below dir: String) -> [String] {
        let text = String(decoding: (try? FileSystem.readAll("/proc/self/mountinfo")) ?? [], as: UTF8.self)
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count > 4 else { return nil }
            let p = String(f[4]).replacingOccurrences(of: "\\040", with: " ")
            return p == dir || p.hasPrefix(dir + "/") ? p : nil
        }
    }

    public func write(_ rel: String, _ text: String) {
        let p = path + "/" + rel
        try? FileSystem.makeDirectories(Paths.parent(p))
        _ = FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
    }

    public func sh(_ script: String, env: [String: String] = [:], limit: Double = Tool.hangLimit) -> Tool.Result {
        Tool.sh(script, cwd: path, env: env, limit: limit)
    }

    /// Runs a bash script here with errexit, nounset and pipefail; a failing command prints its line.
    /// errexit ignores a failure inside `a && b` (but the last) and any `! command`, so checks
    /// are written `must COMMAND…` and `never COMMAND…`, which end the script when they fail.
    public func bash(_ script: String, env: [String: String] = [:], limit: Double = Tool.hangLimit) -> Tool.Result {
        write("test.sh", "set -euo pipefail\ntrap 'echo \"failed at line $LINENO: $BASH_COMMAND\"' ERR\n" + Sandbox.checks + script)
        return sh("bash test.sh", env: env, limit: limit)
    }

    static let checks = #"""
        must() { "$@" || { echo "failed: $*"; exit 1; }; }
        never() { if "$@"; then echo "should have failed: $*"; exit 1; fi; }

        """#

    /// Shell function `flip FILE OFFSET`: changes the byte at OFFSET (XOR 1). Overwriting with a
    /// fixed byte would leave the file unchanged whenever that byte was already there (1 in 256).
    public static let flipFunction = #"flip() { b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '); printf "\\$(printf %03o $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }"#

    /// A small input tree.
    public func makeInput(_ dir: String = "in") {
        write("\(dir)/job.py", "print('hello')\n")
        write("\(dir)/data/rows.csv", String(repeating: "1,2,3\n", count: 20_000))
        write("\(dir)/docs/readme.md", "public\n")
    }
}

