import Dispatch
import Foundation
import Glibc
import Testing
import FSPFCore
import FSPFCrypto
import FSPFSystem
import FSPFTestSupport

/// Real mounts through /dev/fuse, as root, in CI too. Files opened here use O_CLOEXEC: a
/// descriptor on a mount inherited by another test's child process would keep the mount busy.
@Suite struct MountTests {
    /// A source tree with what a mount must render exactly: nested directories, modes, times,
    /// a symlink, an empty file and sizes around 4 KiB chunk boundaries.
    static func makeTree(_ s: Sandbox) -> [String: [UInt8]] {
        var rng = SystemRandomNumberGenerator()
        var files: [String: [UInt8]] = [:]
        for (i, size) in [0, 1, 4095, 4096, 4097, 3 * 4096, 200_000, 1_000_003].enumerated() {
            let name = i % 2 == 0 ? "data/part-\(i).bin" : "data/nested/deeper/part-\(i).bin"
            files[name] = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        files["job.py"] = Array("print('from the mount')\n".utf8)
        files["ünïcødé name.txt"] = Array("names are sealed\n".utf8)
        for (p, b) in files {
            s.write("in/" + p, "")
            _ = FileManager.default.createFile(atPath: s.path + "/in/" + p, contents: Data(b))
        }
        _ = s.sh("mkdir -p in/empty-dir && ln -s job.py in/link && chmod 0755 in/job.py && chmod 0600 'in/ünïcødé name.txt' "
                 + "&& touch -d '2021-03-04 05:06:07.123456789' in/data/part-0.bin")
        return files
    }

    /// Encrypts in/ (4 KiB chunks) with a new key; returns the tag.
    static func encrypt(_ s: Sandbox, _ input: String = "in", _ out: String = "vol") -> String {
        let r = s.sh("fspf keygen > key 2>/dev/null || true; fspf encrypt \(input) --out \(out) --key-file key --chunk-size 4K | awk '{print $9}'")
        #expect(r.status == 0, "\(r.err)")
        return r.out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts fspf-mount in the foreground on vol → mnt and waits until `file` shows there.
    static func startForeground(_ s: Sandbox, tag: String, _ extra: [String] = [], env: [String: String] = [:],
                                file: String = "job.py") -> pid_t {
        _ = s.sh("mkdir -p mnt")
        let pid = Tool.spawn([Tool.mountBinary, "vol", "mnt", "--key-file", "key", "--tag", tag, "--foreground"] + extra,
                             cwd: s.path, env: env, name: "-daemon")
        #expect(waitForMount(s.path + "/mnt", file: file))
        return pid
    }

    static func mount(_ s: Sandbox, _ args: String) -> Tool.Result {
        s.sh("mkdir -p mnt && '\(Tool.mountBinary)' \(args)")
    }

    @Test func mountServesTheTreeExactly() throws {
        let s = Sandbox()
        let files = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        let m = MountTests.mount(s, "vol mnt --key-file key --tag \(tag)")
        #expect(m.status == 0, "\(m.err)")
        // Parent exited 0 only once live: the mount answers at once.
        let src = s.path + "/in", mnt = s.path + "/mnt"
        func walk(_ root: String) -> [String] {
            (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).sorted()
        }
        #expect(walk(mnt) == walk(src))
        for rel in walk(src) {
            var a = stat(), b = stat()
            #expect(lstat(src + "/" + rel, &a) == 0 && lstat(mnt + "/" + rel, &b) == 0)
            #expect(a.st_mode & S_IFMT == b.st_mode & S_IFMT, "\(rel) type")
            if a.st_mode & S_IFMT != S_IFLNK {
                #expect(a.st_mode & 0o7777 == b.st_mode & 0o7777, "\(rel) mode")
                #expect(a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec, "\(rel) mtime")
            }
            if a.st_mode & S_IFMT == S_IFREG {
                #expect(a.st_size == b.st_size, "\(rel) size")
                #expect((try? FileSystem.readAll(mnt + "/" + rel)) == files[rel], "\(rel) content")
            }
        }
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: mnt + "/link") == "job.py")
        #expect(try FileManager.default.contentsOfDirectory(atPath: mnt + "/empty-dir").isEmpty)
        // A missing name is ENOENT; one longer than NAME_MAX (which FUSE passes up to 1,024 bytes)
        // is ENAMETOOLONG, as on any file system.
        for (length, expected) in [(255, ENOENT), (256, ENAMETOOLONG), (1000, ENAMETOOLONG)] {
            var st = stat()
            #expect(lstat(mnt + "/" + String(repeating: "n", count: length), &st) == -1 && errno == expected, "\(length)-byte name")
        }
        // Random offsets at and around chunk boundaries.
        let big = files["data/nested/deeper/part-7.bin"]!
        let fd = open(mnt + "/data/nested/deeper/part-7.bin", O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        var buffer = [UInt8](repeating: 0, count: 70_000)
        for _ in 0..<300 {
            let boundary = 4096 * Int.random(in: 0...(big.count / 4096))
            let off = max(0, min(big.count, boundary + Int.random(in: -3...3)))
            let len = [1, 2, 4095, 4096, 4097, 65_536, 70_000].randomElement()!
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, len, off_t(off)) }
            #expect(Array(buffer[0..<max(0, n)]) == Array(big[off..<min(big.count, off + len)]), "at \(off)+\(len)")
        }
        close(fd)
        #expect(s.sh("umount mnt").status == 0)
        #expect(Sandbox.mounts(below: mnt).isEmpty)
    }

    @Test func jobRunsFromTheMount() {
        let s = Sandbox()
        let r = s.sh("""
            fspf encrypt '\(Tool.packageRoot)/fixtures/job' --out vol --key-out key --reproducible > line &&
            mkdir mnt && '\(Tool.mountBinary)' vol mnt --key-file key --tag $(awk '{print $9}' line) &&
            python3 mnt/job.py mnt/data | grep -v seconds > through-mount &&
            python3 '\(Tool.packageRoot)/fixtures/job/job.py' '\(Tool.packageRoot)/fixtures/job/data' | grep -v seconds > plain &&
            cmp through-mount plain && head -1 through-mount; umount mnt
            """)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "rows: 3000\n")
    }

    /// A tampered chunk answers EIO for exactly its range; the rest of the file and other files keep working.
    @Test func tamperedChunkGivesEIOExactlyThere() {
        let s = Sandbox()
        s.write("in/other.txt", "still fine\n")
        _ = s.sh("head -c 1000000 /dev/urandom > in/big")
        _ = MountTests.encrypt(s)
        // bash for process substitution.
        let b = s.sh("bash -c \"$(cat <<'EOS'\n" + """
            mkdir mnt
            \(Sandbox.flipFunction)
            obj=$(for f in vol/.fspf-objects/*/*; do [ $(stat -c %s $f) -gt 100000 ] && echo $f; done)
            flip $obj $((64 + 100 * 4096 + 7))
            '\(Tool.mountBinary)' vol mnt --key-file key --no-tag-check 2>/dev/null || exit 99
            for c in 98 99 100 101 102 200; do
              if cmp -s <(dd if=mnt/big bs=4096 skip=$c count=1 status=none 2>/dev/null) <(dd if=in/big bs=4096 skip=$c count=1 status=none)
              then echo "$c ok"; else echo "$c EIO"; fi
            done
            dd if=mnt/big bs=4096 skip=100 count=1 2>&1 >/dev/null | grep -o 'Input/output error' | head -1
            cat mnt/other.txt; umount mnt
            """ + "\nEOS\n)\"")
        #expect(b.status == 0, "\(b.err)")
        #expect(b.out == "98 ok\n99 ok\n100 EIO\n101 ok\n102 ok\n200 ok\nInput/output error\nstill fine\n", "\(b.out)")
    }

    @Test func wrongKeyOrTagIsRefusedBeforeMounting() {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        let wrongKey = MountTests.mount(s, "vol mnt --key-file /dev/null --tag \(tag)")
        #expect(wrongKey.status == 64, "empty key file: \(wrongKey.err)")
        let k2 = s.sh("fspf keygen > key2 && '\(Tool.mountBinary)' vol mnt --key-file key2 --tag \(tag)")
        #expect(k2.status == 11 && k2.err.contains("wrong key"), "\(k2.err)")
        let badTag = MountTests.mount(s, "vol mnt --key-file key --tag 0123456789abcdef0123456789abcdef")
        #expect(badTag.status == 10 && badTag.err.contains("not the expected"), "\(badTag.err)")
        let noTag = MountTests.mount(s, "vol mnt --key-file key")
        #expect(noTag.status == 64 && noTag.err.contains("--no-tag-check"))
        let missing = MountTests.mount(s, "nothing mnt --key-file key --tag \(tag)")
        #expect(missing.status == 66)
        let argvKey = MountTests.mount(s, "vol mnt --key $(cat key) --tag \(tag)")
        #expect(argvKey.status == 64, "there is no option taking the key itself")
        #expect(Sandbox.mounts(below: s.path).isEmpty, "nothing was mounted")
    }

    @Test func everyModificationGetsEROFS() {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        #expect(MountTests.mount(s, "vol mnt --key-file key --tag \(tag)").status == 0)
        let attempts = ["touch mnt/new", "echo x >> mnt/job.py", "echo x > mnt/job.py", "mkdir mnt/d", "rm mnt/job.py",
                        "rmdir mnt/empty-dir", "mv mnt/job.py mnt/j2", "chmod 777 mnt/job.py", "truncate -s 0 mnt/job.py",
                        "ln -s x mnt/l2", "ln mnt/job.py mnt/h", "setfattr -n user.x -v 1 mnt/job.py 2>&1 | grep -q 'Read-only' && false",
                        "touch -d 2000-01-01 mnt/job.py"]
        for a in attempts {
            let r = s.sh(a)
            #expect(r.status != 0, "\(a) succeeded")
            #expect(r.err.contains("Read-only file system") || a.contains("setfattr"), "\(a): \(r.err)")
        }
        let fd = open(s.path + "/mnt/job.py", O_RDWR | O_CLOEXEC)
        #expect(fd == -1 && errno == EROFS)
        #expect(s.sh("grep \" $(pwd)/mnt \" /proc/mounts").out.contains(" ro,"))
        _ = s.sh("umount mnt")
    }

    /// 32 parallel readers at random offsets, every byte compared with the plaintext.
    @Test func parallelReaders() throws {
        let s = Sandbox()
        _ = s.sh("mkdir in && head -c 3000000 /dev/urandom > in/a && head -c 700001 /dev/urandom > in/b")
        let tag = MountTests.encrypt(s)
        #expect(MountTests.mount(s, "vol mnt --key-file key --tag \(tag)").status == 0)
        let plain = ["a": try Data(contentsOf: URL(fileURLWithPath: s.path + "/in/a")),
                     "b": try Data(contentsOf: URL(fileURLWithPath: s.path + "/in/b"))]
        let failures = Counter()
        let group = DispatchGroup()
        let root = s.path
        for t in 0..<32 {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let name = t % 2 == 0 ? "a" : "b"
                let data = plain[name]!
                let fd = open(root + "/mnt/" + name, O_RDONLY | O_CLOEXEC)
                defer { close(fd) }
                var buffer = [UInt8](repeating: 0, count: 200_000)
                for _ in 0..<150 {
                    let off = Int.random(in: 0..<data.count)
                    let len = Int.random(in: 1...200_000)
                    let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, len, off_t(off)) }
                    if n < 0 || Data(buffer[0..<n]) != data[off..<min(data.count, off + len)] { failures.add() }
                }
            }
            thread.start()
        }
        group.wait()
        #expect(failures.value == 0)
        _ = s.sh("umount mnt")
    }

    @Test func sigtermUnmountsCleanly() throws {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        let pid = MountTests.startForeground(s, tag: tag)
        #expect(FileManager.default.fileExists(atPath: s.path + "/mnt/job.py"))
        kill(pid, SIGTERM)
        let r = Tool.wait(pid, cwd: s.path, name: "-daemon")
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("unmounted"))
        #expect(Sandbox.mounts(below: s.path).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: s.path + "/mnt/job.py"))
    }

    /// The volume stored in the directory it is mounted on, as SCONE images expect.
    @Test func mountOverTheVolumeDirectory() {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s, "in", "encrypted-files")
        let r = s.sh("""
            '\(Tool.mountBinary)' encrypted-files --key-file key --tag \(tag) && cmp encrypted-files/job.py in/job.py &&
            ls encrypted-files | sort | tr '\\n' ' ' && umount encrypted-files && ls -A encrypted-files | sort | tr '\\n' ' '
            """)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "data empty-dir job.py link ünïcødé name.txt .fspf-objects volume.fspf ")
    }

    @Test func busyMountpointIsRefused() {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        #expect(MountTests.mount(s, "vol mnt --key-file key --tag \(tag)").status == 0)
        let again = MountTests.mount(s, "vol mnt --key-file key --tag \(tag)")
        #expect(again.status == 20 && again.err.contains("busy"), "\(again.err)")
        _ = s.sh("umount mnt")
    }

    /// A backgrounded daemon lets go of the caller's stdout and stderr once the mount is live
    /// (before, `x=$(fspf-mount …)` and `fspf-mount … | tee` waited for the unmount): it logs to
    /// --log-file, syslog (the default) or nowhere.
    @Test func backgroundDaemonReleasesTheCallersOutput() {
        let s = Sandbox()
        s.makeInput()
        let tag = MountTests.encrypt(s)
        let r = s.sh("""
            mkdir mnt
            released() {  # released LOG-OPTION...: the pipeline ends while the mount is live
              rm -f piped.done
              ('\(Tool.mountBinary)' vol mnt --key-file key --tag \(tag) "$@" 2>&1 | cat > piped.out; touch piped.done) &
              for i in $(seq 100); do test -e piped.done && break; sleep 0.1; done
              test -e piped.done && cmp mnt/job.py in/job.py && echo "released $*"
              umount mnt
            }
            released --log-file mount.log
            for i in $(seq 50); do grep -q 'unmounted' mount.log && break; sleep 0.1; done
            grep -c 'info: unmounted mountpoint=' mount.log
            released
            released --log-file none
            """)
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out == "released --log-file mount.log\n1\nreleased \nreleased --log-file none\n", "\(r.out)")
        #expect(Sandbox.mounts(below: s.path).isEmpty)
    }

    /// A mount point with entries of its own is refused unless asked for (they would be hidden
    /// silently), before any key is fetched; the volume's own directory is always allowed.
    @Test func nonEmptyMountPointsAreRefusedUnlessAsked() throws {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        _ = s.sh("mkdir -p mnt && echo mine > mnt/notes.txt")
        let refused = MountTests.mount(s, "vol mnt --key-file key --tag \(tag)")
        #expect(refused.status == 20 && refused.err.contains("mount point is not empty: its 1 entries would be hidden"), "\(refused.err)")
        #expect(Sandbox.mounts(below: s.path).isEmpty)
        for flag in ["--nonempty", "-o nonempty"] {
            let allowed = MountTests.mount(s, "vol mnt --key-file key --tag \(tag) \(flag)")
            #expect(allowed.status == 0, "\(flag): \(allowed.err)")
            #expect(FileManager.default.fileExists(atPath: s.path + "/mnt/job.py") && !FileManager.default.fileExists(atPath: s.path + "/mnt/notes.txt"))
            #expect(s.sh("umount mnt").status == 0)
        }
        // Over the volume's own directory (full of ciphertext): no flag needed.
        let over = MountTests.mount(s, "vol --key-file key --tag \(tag)")
        #expect(over.status == 0, "\(over.err)")
        #expect(FileManager.default.fileExists(atPath: s.path + "/vol/job.py"))
        #expect(s.sh("umount vol").status == 0)
    }

    /// The key from a local agent over HTTP, with the tag in the same JSON resource; over HTTPS
    /// with a pinned CA; never from another machine unless allowed, and then over HTTPS only.
    @Test func keyFromURL() throws {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        let key = s.sh("cat key").out.trimmingCharacters(in: .whitespacesAndNewlines)
        s.write("server.py", """
            import http.server, ssl, sys
            routes = {"/cdh/resource/default/fspf/volume": b'{"key": "\(key)", "tag": "\(tag)"}',
                      "/raw": b"\(key)\\n", "/garbage": b"not a key"}
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    body = routes.get(self.path)
                    if body is None:
                        self.send_error(404); return
                    self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *a): pass
            srv = http.server.HTTPServer(("127.0.0.1", 0), H)
            if sys.argv[1:2] == ["tls"]:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain("ks/tls/cert.pem", "ks/tls/key.pem")
                srv.socket = context.wrap_socket(srv.socket, server_side=True)
            open(sys.argv[2] if sys.argv[1:2] == ["tls"] else "port", "w").write(str(srv.server_address[1]))
            srv.serve_forever()
            """)
        let server = Tool.spawn(["/usr/bin/env", "python3", "server.py"], cwd: s.path, name: "-server")
        defer { kill(server, SIGTERM); _ = Tool.wait(server, cwd: s.path, name: "-server") }
        var port = ""
        for _ in 0..<100 where port.isEmpty {
            usleep(50_000)
            port = (try? String(contentsOfFile: s.path + "/port", encoding: .utf8)) ?? ""
        }
        let base = "http://127.0.0.1:\(port)"
        let ok = MountTests.mount(s, "vol mnt --key-url \(base)/cdh/resource/default/fspf/volume")
        #expect(ok.status == 0, "\(ok.err)")
        #expect(FileManager.default.fileExists(atPath: s.path + "/mnt/job.py"))
        _ = s.sh("umount mnt")
        let raw = MountTests.mount(s, "vol mnt --key-url \(base)/raw --tag \(tag)")
        #expect(raw.status == 0, "\(raw.err)")
        _ = s.sh("umount mnt")
        let wrongTag = MountTests.mount(s, "vol mnt --key-url \(base)/cdh/resource/default/fspf/volume --tag 0123456789abcdef0123456789abcdef")
        #expect(wrongTag.status == 10)
        for (path, reason) in [("/missing", "404"), ("/garbage", "not a volume key")] {
            let r = MountTests.mount(s, "vol mnt --key-url \(base)\(path) --tag \(tag)")
            #expect(r.status == 12 && r.err.contains(reason), "\(path): \(r.err)")
        }
        let down = MountTests.mount(s, "vol mnt --key-url http://127.0.0.1:1/x --tag \(tag) --key-timeout 2")
        #expect(down.status == 12 && down.err.contains("cannot connect"), "\(down.err)")
        // Another machine: refused before any connection (192.0.2.0/24 is documentation space),
        // unless allowed, and then only over https with a pinned CA.
        for (args, reason) in [("--key-url http://192.0.2.77:8006/key", "is not this machine"),
                               ("--key-url http://192.0.2.77:8006/key --allow-remote-key-url", "over https:// with its CA pinned"),
                               ("--key-url https://192.0.2.77:8006/key --allow-remote-key-url", "over https:// with its CA pinned"),
                               ("--key-url http://127.0.0.1:1/key --key-url-ca x.pem", "https:// URLs only"),
                               ("--key-file key --allow-remote-key-url", "need --key-url")] {
            let r = MountTests.mount(s, "vol mnt \(args) --tag \(tag)")
            #expect(r.status == 64 && r.err.contains(reason), "\(args): \(r.err)")
        }
        // HTTPS with the agent's certificate pinned (a key server store's self-signed one).
        #expect(s.sh("fspf keyserver init --store ks >/dev/null").status == 0)
        let tlsServer = Tool.spawn(["/usr/bin/env", "python3", "server.py", "tls", "tls-port"], cwd: s.path, name: "-tls")
        defer { kill(tlsServer, SIGTERM); _ = Tool.wait(tlsServer, cwd: s.path, name: "-tls") }
        var tlsPort = ""
        for _ in 0..<100 where tlsPort.isEmpty {
            usleep(50_000)
            tlsPort = (try? String(contentsOfFile: s.path + "/tls-port", encoding: .utf8)) ?? ""
        }
        let pinned = MountTests.mount(s, "vol mnt --key-url https://127.0.0.1:\(tlsPort)/raw --key-url-ca ks/tls/cert.pem --tag \(tag)")
        #expect(pinned.status == 0, "\(pinned.err)")
        _ = s.sh("umount mnt")
        let unpinned = MountTests.mount(s, "vol mnt --key-url https://127.0.0.1:\(tlsPort)/raw --tag \(tag) --key-timeout 2")
        #expect(unpinned.status == 12 && unpinned.err.contains("not trusted"), "\(unpinned.err)")
        #expect(Sandbox.mounts(below: s.path).isEmpty)
    }

    /// Sandbox.mounts, which every mount test relies on, sees a mount however long the mount
    /// table is: 60 tmpfs mounts with long paths take /proc/self/mountinfo past one read.
    @Test func mountsAreFoundPastTheFirstReadOfMountinfo() throws {
        let s = Sandbox()
        let r = s.sh("for i in $(seq 60); do d=m$(printf '%0100d' $i); mkdir $d && mount -t tmpfs none $d || exit 1; done")
        #expect(r.status == 0, "\(r.err)")
        #expect(((try? FileSystem.readAll("/proc/self/mountinfo"))?.count ?? 0) > 2 * 4096)
        let found = Sandbox.mounts(below: s.path)
        #expect(found.count == 60 && found.last?.hasSuffix(String(format: "%0100d", 60)) == true, "\(found.count) found")
    }

    /// The key is in neither the command line nor the environment of the running daemon.
    @Test func keyLeavesNoTraceInProc() throws {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        let key = s.sh("cat key").out.trimmingCharacters(in: .whitespacesAndNewlines)
        _ = s.sh("mkdir mnt")
        let pid = Tool.spawn([Tool.mountBinary, "vol", "mnt", "--key-env", "SCONE_FSPF_KEY", "--tag-env", "SCONE_FSPF_TAG", "--foreground"],
                             cwd: s.path, env: ["SCONE_FSPF_KEY": key, "SCONE_FSPF_TAG": tag], name: "-daemon")
        #expect(waitForMount(s.path + "/mnt"))
        let environ = Data((try? FileSystem.readAll("/proc/\(pid)/environ")) ?? [])
        let cmdline = Data((try? FileSystem.readAll("/proc/\(pid)/cmdline")) ?? [])
        #expect(!environ.isEmpty && !cmdline.isEmpty)
        #expect(environ.range(of: Data(key.utf8)) == nil && environ.range(of: Data("SCONE_FSPF_KEY".utf8)) == nil)
        #expect(cmdline.range(of: Data(key.utf8)) == nil)
        kill(pid, SIGTERM)
        let r = Tool.wait(pid, cwd: s.path, name: "-daemon")
        #expect(r.status == 0 && !r.err.contains(key))
    }
}

extension MountTests {
    /// Other users see nothing unless -o allow_other; --user drops root once mounted.
    @Test func allowOtherAndUnprivilegedDaemon() throws {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"
        #expect(s.sh("chmod 755 . && mkdir mnt").status == 0)
        #expect(MountTests.mount(s, "vol mnt --key-file key --tag \(tag)").status == 0)
        let denied = s.sh("\(nobody) cat mnt/job.py")
        #expect(denied.status != 0 && denied.err.contains("Permission denied"), "\(denied.err)")
        _ = s.sh("umount mnt")
        let pid = Tool.spawn([Tool.mountBinary, "vol", "mnt", "--key-file", "key", "--tag", tag, "-o", "allow_other",
                              "--user", "nobody", "--foreground"], cwd: s.path, name: "-daemon")
        #expect(waitForMount(s.path + "/mnt"))
        let allowed = s.sh("\(nobody) cat mnt/job.py && grep '^Uid:' /proc/\(pid)/status")
        #expect(allowed.status == 0, "\(allowed.err)")
        #expect(allowed.out.hasPrefix("print('from the mount')\nUid:\t65534\t65534\t65534\t65534"), "\(allowed.out)")
        #expect(s.sh("cmp mnt/data/nested/deeper/part-7.bin in/data/nested/deeper/part-7.bin").status == 0, "the unprivileged daemon still reads the volume")
        kill(pid, SIGTERM)
        #expect(Tool.wait(pid, cwd: s.path, name: "-daemon").status == 0)
    }

    /// Readiness for service managers: READY=1 on NOTIFY_SOCKET once the mount serves.
    @Test func notifiesServiceManager() {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        s.write("listen.py", """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind(sys.argv[1]); open("listening", "w").close()
            s.settimeout(20)
            print(s.recv(4096).decode())
            """)
        let listener = Tool.spawn(["/usr/bin/env", "python3", "listen.py", s.path + "/notify"], cwd: s.path, name: "-listener")
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: s.path + "/listening") { usleep(20_000) }
        _ = s.sh("mkdir mnt")
        let daemon = Tool.spawn([Tool.mountBinary, "vol", "mnt", "--key-file", "key", "--tag", tag, "--foreground"],
                                cwd: s.path, env: ["NOTIFY_SOCKET": s.path + "/notify"], name: "-daemon")
        let heard = Tool.wait(listener, cwd: s.path, name: "-listener")
        #expect(heard.out.hasPrefix("READY=1\nMAINPID=\(daemon)"), "\(heard.out) \(heard.err)")
        #expect(FileManager.default.fileExists(atPath: s.path + "/mnt/job.py"), "ready means mounted")
        kill(daemon, SIGTERM)
        _ = Tool.wait(daemon, cwd: s.path, name: "-daemon")
    }

    @Test func missingDevFuseIsReported() {
        let s = Sandbox()
        _ = MountTests.makeTree(s)
        let tag = MountTests.encrypt(s)
        // A private mount namespace whose /dev lacks fuse; /dev/shm is put back, since the
        // build (and so the binary) may live there.
        let r = s.sh("mkdir mnt shm && unshare -m sh -c \"mount --rbind /dev/shm shm && mount -t tmpfs none /dev && mkdir /dev/shm && mount --move shm /dev/shm && '\(Tool.mountBinary)' vol mnt --key-file key --tag \(tag)\"")
        #expect(r.status == 21 && r.err.contains("/dev/fuse"), "\(r.err)")
    }
}

func waitForMount(_ path: String, file: String = "job.py", seconds: Double = 10) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if !Sandbox.mounts(below: path).isEmpty, FileManager.default.fileExists(atPath: path + "/" + file) { return true }
        usleep(20_000)
    }
    return false
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
