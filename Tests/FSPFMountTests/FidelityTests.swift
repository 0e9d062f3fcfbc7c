import Foundation
import Glibc
import Testing
import FSPFCore
import FSPFCrypto
import FSPFSystem
import FSPFTestSupport

/// What a volume keeps of a tree besides content, seen through a real mount as programs see it:
/// the root's mode and owner, owners (and a mapping), hard links, extended attributes and ACLs,
/// holes.
@Suite struct FidelityTests {
    /// Mounts vol on mnt with `extra` options; the daemon runs in the background.
    func mount(_ s: Sandbox, tag: String, _ extra: String = "") {
        let m = MountTests.mount(s, "vol mnt --key-file key --tag \(tag) \(extra)")
        #expect(m.status == 0, "\(m.err)")
    }

    /// Runs `command` as uid and gid 185 (Spark's user in its images); the sandbox itself is
    /// opened to it (mkdtemp made it 0700).
    func asSpark(_ s: Sandbox, _ command: String) -> Tool.Result {
        chmod(s.path, 0o755)
        return s.sh("setpriv --reuid=185 --regid=185 --clear-groups sh -c \(shellQuoted(command))")
    }

    func shellQuoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    @Test func ownersAndTheRootAsStored() throws {
        let s = Sandbox()
        s.write("in/spark.conf", "spark.executor.memory 2g\n")
        s.write("in/root-only", "secret\n")
        s.write("in/data/part-0.csv", "1,2\n")
        #expect(s.sh("chmod 0755 in && chown 185:185 in/spark.conf in/data && chmod 0600 in/spark.conf in/root-only").status == 0)
        let tag = MountTests.encrypt(s)
        mount(s, tag: tag, "-o allow_other")
        defer { _ = s.sh("umount mnt") }
        var st = stat()
        #expect(stat(s.path + "/mnt/spark.conf", &st) == 0 && st.st_uid == 185 && st.st_gid == 185 && st.st_mode & 0o7777 == 0o600)
        #expect(stat(s.path + "/mnt/root-only", &st) == 0 && st.st_uid == 0 && st.st_mode & 0o7777 == 0o600)
        #expect(stat(s.path + "/mnt/data", &st) == 0 && st.st_uid == 185)
        // The kernel checks permissions against the stored owners: Spark reads its own 0600 file,
        // not root's.
        let own = asSpark(s, "cat mnt/spark.conf")
        #expect(own.status == 0 && own.out == "spark.executor.memory 2g\n", "\(own.err)")
        #expect(asSpark(s, "cat mnt/root-only").err.contains("Permission denied"))
        _ = s.sh("umount mnt")
        // -o uid=,gid= maps every entry to one owner.
        mount(s, tag: tag, "-o allow_other -o uid=185,gid=185")
        #expect(stat(s.path + "/mnt/root-only", &st) == 0 && st.st_uid == 185 && st.st_gid == 185)
        #expect(asSpark(s, "cat mnt/root-only").out == "secret\n")
    }

    @Test func aPrivateRootStaysPrivate() throws {
        let s = Sandbox()
        s.write("in/job.py", "print(1)\n")
        #expect(s.sh("chmod 0700 in && touch -d '2020-01-02 03:04:05' in").status == 0)
        let tag = MountTests.encrypt(s)
        mount(s, tag: tag, "-o allow_other")
        defer { _ = s.sh("umount mnt") }
        var st = stat()
        #expect(stat(s.path + "/mnt", &st) == 0 && st.st_mode & 0o7777 == 0o700 && st.st_uid == 0)
        #expect(st.st_mtim.tv_sec == 1_577_934_245)
        // Under allow_other, another user cannot list a 0700 root.
        #expect(asSpark(s, "ls mnt").err.contains("Permission denied"))
    }

    @Test func hardLinksAreStoredOnceAndShareAnInode() throws {
        let s = Sandbox()
        s.write("in/a/model.bin", String(repeating: "w", count: 100_000))
        s.write("in/c", "other\n")
        #expect(s.sh("ln in/a/model.bin in/b && ln in/a/model.bin in/a/again").status == 0)
        let tag = MountTests.encrypt(s)
        // Two objects: the three paths of model.bin share one.
        #expect(s.sh("find vol/.fspf-objects -type f | wc -l").out.trimmingCharacters(in: .whitespacesAndNewlines) == "2")
        mount(s, tag: tag)
        defer { _ = s.sh("umount mnt") }
        var a = stat(), b = stat(), again = stat(), c = stat()
        #expect(stat(s.path + "/mnt/a/model.bin", &a) == 0 && stat(s.path + "/mnt/b", &b) == 0)
        #expect(stat(s.path + "/mnt/a/again", &again) == 0 && stat(s.path + "/mnt/c", &c) == 0)
        #expect(a.st_ino == b.st_ino && a.st_ino == again.st_ino && a.st_ino != c.st_ino)
        #expect(a.st_nlink == 3 && c.st_nlink == 1)
        #expect(s.sh("cmp mnt/a/model.bin in/a/model.bin && cmp mnt/b in/b && cmp mnt/a/again in/a/again").status == 0)
        // decrypt gives the links back.
        #expect(s.sh("fspf decrypt vol --key-file key --tag \(tag) --out out && stat -c %h out/b").out == "3\n")
    }

    @Test func extendedAttributesAndACLs() throws {
        let s = Sandbox()
        s.write("in/tool", "#!/bin/sh\n")
        s.write("in/shared.txt", "for uid 185\n")
        s.write("in/d/x", "x\n")
        let capability: [UInt8] = [0, 0, 0, 2, 0, 0x20, 0, 0] + [UInt8](repeating: 0, count: 12)  // cap_net_bind_service
        // POSIX ACL (version 2): owner rw, user 185 r, group none, mask r, other none.
        var acl: [UInt8] = [2, 0, 0, 0]
        for (tag, perm, id) in [(UInt16(0x01), UInt16(6), UInt32.max), (0x02, 4, 185), (0x04, 0, UInt32.max), (0x10, 4, UInt32.max), (0x20, 0, UInt32.max)] {
            withUnsafeBytes(of: tag.littleEndian) { acl += $0 }
            withUnsafeBytes(of: perm.littleEndian) { acl += $0 }
            withUnsafeBytes(of: id.littleEndian) { acl += $0 }
        }
        #expect(s.sh("chmod 0640 in/shared.txt").status == 0)
        try FileSystem.setExtendedAttribute(s.path + "/in/tool", name: Array("security.capability".utf8), value: capability)
        try FileSystem.setExtendedAttribute(s.path + "/in/tool", name: Array("user.origin".utf8), value: Array("nyc".utf8))
        try FileSystem.setExtendedAttribute(s.path + "/in/d", name: Array("user.dir".utf8), value: [])
        try FileSystem.setExtendedAttribute(s.path + "/in/shared.txt", name: Array("system.posix_acl_access".utf8), value: acl)
        let tag = MountTests.encrypt(s)
        mount(s, tag: tag, "-o allow_other")
        defer { _ = s.sh("umount mnt") }
        let tool = try FileSystem.extendedAttributes(s.path + "/mnt/tool")
        #expect(tool.map { String(decoding: $0.name, as: UTF8.self) } == ["security.capability", "user.origin"])
        #expect(tool.first?.value == capability && tool.last?.value == Array("nyc".utf8))
        #expect(try FileSystem.extendedAttributes(s.path + "/mnt/d").map(\.name) == [Array("user.dir".utf8)])
        #expect(try FileSystem.extendedAttributes(s.path + "/mnt/d/x").isEmpty)
        // The kernel enforces the stored ACL: user 185 may read although "other" may not.
        let r = asSpark(s, "cat mnt/shared.txt")
        #expect(r.status == 0 && r.out == "for uid 185\n", "\(r.err)")
        // --no-xattrs drops them.
        _ = s.sh("umount mnt")
        #expect(s.sh("fspf encrypt in --out vol2 --key-file key --no-xattrs > /dev/null && fspf-mount vol2 mnt --key-file key --no-tag-check 2>/dev/null").status == 0)
        #expect(try FileSystem.extendedAttributes(s.path + "/mnt/tool").isEmpty)
    }

    @Test func holesStayHolesUnlessDense() throws {
        let s = Sandbox()
        // 64 MiB with data at 0 and at 40 MiB: every chunk but those two is a hole.
        let cs = off_t(ChunkSize.default)
        #expect(s.sh("mkdir in && truncate -s 64M in/sparse && printf head | dd of=in/sparse conv=notrunc status=none "
                     + "&& printf body | dd of=in/sparse bs=1M seek=40 conv=notrunc status=none").status == 0)
        let r = s.sh("fspf keygen > key && fspf encrypt in --out vol --key-file key | awk '{print $9}'")
        let tag = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        let sparse = s.sh("du -k vol/.fspf-objects | tail -1 | cut -f1").out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect((Int(sparse) ?? .max) < 1024, "\(sparse) KiB on disk, not 64 MiB")
        mount(s, tag: tag)
        let fd = open(s.path + "/mnt/sparse", O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        #expect(lseek(fd, 0, 4 /* SEEK_HOLE */) == cs)
        #expect(lseek(fd, cs, 3 /* SEEK_DATA */) == 40 << 20)
        #expect(lseek(fd, (40 << 20) + 10, 4) == (40 << 20) + cs)
        #expect(lseek(fd, (40 << 20) + cs, 3) == -1 && errno == ENXIO)
        close(fd)
        defer { _ = s.sh("umount mnt") }
        var st = stat()
        #expect(stat(s.path + "/mnt/sparse", &st) == 0 && st.st_size == 64 << 20 && st.st_blocks * 512 == 2 * cs)
        #expect(s.sh("cmp mnt/sparse in/sparse").status == 0)
        _ = s.sh("umount mnt")
        // --dense stores them encrypted like data: nothing shows where they are.
        #expect(s.sh("rm -r vol && fspf encrypt in --out vol --key-file key --dense > /dev/null").status == 0)
        let dense = s.sh("du -k vol/.fspf-objects | tail -1 | cut -f1").out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect((Int(dense) ?? 0) >= 64 << 10, "\(dense) KiB")
    }
}
