import Foundation
import Glibc
import Testing
import FSPFCore
import FSPFSystem
import FSPFTestSupport

/// Programs nobody here wrote, writing through a read-write mount: each must succeed as on a
/// local file system, and what it wrote must verify under the sealed tag and still satisfy the
/// program when read back from a read-only mount. What they cannot do is in docs/FORMAT.md §10
/// ("What programs meet"), with the errno each gets.
@Suite struct ThirdPartyWriteTests {
    /// A new volume mounted read-write at `mnt`; the body's shell commands run in the sandbox.
    /// Afterwards: sealed with `fspf seal --unmount`, verified under that tag, and `after` runs
    /// against a read-only mount of the sealed version.
    func withWritableMount(_ label: String, _ body: (Sandbox) throws -> Void, after: ((Sandbox) -> Void)? = nil) throws {
        let s = Sandbox()
        _ = s.sh("fspf keygen > key")
        let m = s.sh("mkdir mnt && '\(Tool.mountBinary)' vol mnt --create --key-file key --log-file daemon.log")
        try #require(m.status == 0, "\(m.err)")
        defer { _ = s.sh("umount mnt 2>/dev/null; umount -l mnt 2>/dev/null") }
        try body(s)
        let sealed = s.sh("fspf seal mnt --unmount")
        // On EBUSY, what holds the mount: fuser -m finds its users in every mount namespace.
        let holders = sealed.status == 74 ? s.sh(#"fuser -vm mnt 2>&1 | grep -v "^Cannot stat""#).out : ""
        try #require(sealed.status == 0, "\(label): \(sealed.err) \(s.sh("cat daemon.log").out)\n\(holders)")
        let tag = sealed.out.trimmingCharacters(in: .whitespacesAndNewlines)
        let verify = s.sh("fspf verify vol --key-file key --tag \(tag) --quiet")
        #expect(verify.status == 0, "\(label): \(verify.out)\(verify.err)")
        if let after {
            let ro = s.sh("'\(Tool.mountBinary)' vol mnt --key-file key --tag \(tag)")
            try #require(ro.status == 0, "\(ro.err)")
            after(s)
        }
    }

    @Test func fioWritesVerify() throws {
        try withWritableMount("fio") { s in
            // Sequential, random 4 KiB and random 128 KiB writes, overlapping rewrites, each
            // verified by fio (crc32c headers in every block) after writing and again later.
            for job in ["--rw=write --bs=1M", "--rw=randwrite --bs=4k", "--rw=randwrite --bs=128k", "--rw=randrw --bs=16k --rwmixread=30"] {
                let r = s.sh("fio --name=j --directory=mnt --size=48m \(job) --ioengine=psync --verify=crc32c --do_verify=1 "
                             + "--verify_fatal=1 --overwrite=1 --loops=2 --output-format=terse")
                #expect(r.status == 0, "fio \(job): \(r.out)\(r.err)")
            }
            // The last job again, reading only: every block it wrote still carries its checksum.
            let later = s.sh("fio --name=j --directory=mnt --size=48m --rw=randrw --bs=16k --rwmixread=30 --ioengine=psync --verify=crc32c --verify_only "
                             + "--verify_fatal=1 --output-format=terse")
            #expect(later.status == 0, "fio verify_only: \(later.out)\(later.err)")
        }
    }

    @Test func sqliteWithItsRollbackJournal() throws {
        let script = (1...300).map { "insert into t values(\($0), randomblob(\($0 * 37 % 4000)), 'row \($0)');" }.joined(separator: "\n")
        try withWritableMount("sqlite", { s in
            s.write("insert.sql", "pragma journal_mode=delete;\ncreate table t(a integer primary key, b blob, c text);\nbegin;\n\(script)\ncommit;\n"
                    + "begin; update t set c = 'changed' where a % 3 = 0; delete from t where a % 7 = 0; commit;\n"
                    + "begin; delete from t; rollback;\ncreate index tc on t(c); vacuum;\n")
            let r = s.sh("sqlite3 mnt/db.sqlite < insert.sql && sqlite3 mnt/db.sqlite 'pragma integrity_check; select count(*) from t;'")
            #expect(r.status == 0 && r.out == "delete\nok\n258\n", "\(r.out)\(r.err)")
        }, after: { s in
            let r = s.sh("sqlite3 -readonly mnt/db.sqlite 'pragma integrity_check; select count(*), sum(c = \"changed\") from t;'")
            #expect(r.out == "ok\n258|86\n", "\(r.out)\(r.err)")
        })
    }

    @Test func gitInitCommitAndFsck() throws {
        try withWritableMount("git", { s in
            let r = s.sh("""
                set -e
                git init -q mnt/repo && cd mnt/repo
                git config user.email ci@example.org && git config user.name CI
                for i in $(seq 1 30); do seq 1 $((i * 100)) > file-$i; done
                git add . && git commit -qm first
                for i in $(seq 1 30 | awk 'NR % 3 == 0'); do echo change >> file-$i; done
                git mv file-1 renamed && git rm -q file-2 && git commit -qam second
                git gc -q && git fsck --full --strict 2>&1 && git log --oneline | wc -l
                """)
            #expect(r.status == 0 && r.out.hasSuffix("2\n"), "\(r.out)\(r.err)")
        }, after: { s in
            let r = s.sh("cd mnt/repo && git fsck --full --strict 2>&1 && git status --porcelain | wc -l && git show HEAD:renamed | wc -l")
            #expect(r.status == 0 && r.out.hasSuffix("0\n100\n"), "\(r.out)\(r.err)")
        })
    }

    @Test func tarExtractsALargeTreeExactly() throws {
        try withWritableMount("tar", { s in
            // Debian's Python 3.11 library with its test suite (116 MB, some 3,800 files,
            // nested directories, symlinks, modes) and this repository's tracked files.
            let r = s.sh("tar -C /usr/lib -cf tree.tar python3.11 "
                         + "&& (cd '\(Tool.packageRoot)' && git ls-files -z | tar -rf \"$OLDPWD/tree.tar\" --null -T -) "
                         + "&& mkdir plain && tar -C plain -xf tree.tar && tar -C mnt -xpf tree.tar && diff -r --no-dereference plain mnt "
                         + "&& test \"$(find mnt | wc -l)\" = \"$(find plain | wc -l)\" && find plain | wc -l")
            #expect(r.status == 0 && (Int(r.out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 2000, "\(r.out)\(r.err)")
        }, after: { s in
            #expect(s.sh("diff -r --no-dereference plain mnt").status == 0)
        })
    }

    @Test func dbench() throws {
        try withWritableMount("dbench") { s in
            let r = s.sh("mkdir mnt/db && dbench -D mnt/db -t 10 2 2>&1")
            #expect(r.status == 0 && r.out.contains("Throughput") && !r.out.contains("ERROR"), "\(r.out.suffix(2000))")
        }
    }

    @Test func stressNGFileSystemStressors() throws {
        // stress-ng's file-system stressors that apply to an encrypted volume (link, fiemap,
        // verity, binderfs, bind-mount need what the mount refuses or the kernel lacks), all at
        // once for 10 s: they also race each other through one daemon.
        let stressors = ["access", "chdir", "chmod", "chown", "copy-file", "dentry", "dir", "dirdeep", "dirmany", "dup", "fcntl", "flock",
                         "fpunch", "fsize", "fstat", "getdent", "hdd", "io", "iomix", "lease", "lockf", "mknod", "open", "rename",
                         "symlink", "sync-file", "touch", "utime", "xattr"]
        try withWritableMount("stress-ng") { s in
            // In a mount namespace of its own, with private copies of every mount: the io
            // stressor opens every mount point it finds (to syncfs each) and holds them for the
            // whole run, which made other tests' unmounts fail with EBUSY when it ran beside them.
            // `other` stands for those tests' mounts: it must unmount while stress-ng runs.
            let r = s.sh("mkdir mnt/stress other && mount -t tmpfs fspf-other other "
                         + "&& { unshare -m --propagation private stress-ng \(stressors.map { "--\($0) 1" }.joined(separator: " ")) --timeout 10 "
                         + "--temp-path mnt/stress --metrics-brief > stress.out 2>&1; echo $? > stress.status; } & "
                         + "sleep 4; umount other; echo \"other: umount $?\"; wait; cat stress.out; exit $(cat stress.status)")
            #expect(r.status == 0 && r.out.contains("successful run completed"), "\(r.out.suffix(3000))")
            #expect(r.out.hasPrefix("other: umount 0\n"), "\(r.out.prefix(200))\(r.err)")
        }
    }

    @Test func cpythonsOwnFileAndOSTests() throws {
        // Debian's CPython test suite with its temporary files on the mount. Pep383Tests names
        // files with bytes that are not UTF-8, which a volume refuses (EILSEQ, FORMAT.md §10).
        try withWritableMount("cpython") { s in
            let r = s.sh("mkdir mnt/tmp && cd mnt/tmp && TMPDIR=$PWD /usr/bin/python3 -m test test_os test_shutil test_tempfile test_fileio "
                         + "test_io --ignore '*Pep383Tests*' -j2 2>&1")
            #expect(r.status == 0 && r.out.contains("Tests result: SUCCESS"), "\(r.out.suffix(4000))")
        }
    }
}
