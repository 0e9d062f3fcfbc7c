import Foundation
import Glibc
import Testing
import FSPFCore
import FSPFSystem
import FSPFTestSupport

/// Read-write mounts through /dev/fuse: what programs write through the mount is what a seal
/// puts on disk, under the tag the daemon reports; a killed daemon leaves the last sealed version.
@Suite struct WritableMountTests {
    /// File-system work a program does, run once in a plain directory and once on the mount:
    /// the two trees must end up the same.
    static let workload = """
        set -e
        mkdir -p a/b/c
        echo hello > a/greeting
        seq 1 200000 > a/b/numbers
        python3 -c "import random, sys; random.seed(7); sys.stdout.buffer.write(random.randbytes(307200))" | dd of=a/b/c/random bs=1k 2>/dev/null
        printf 'in place' | dd of=a/b/c/random bs=1 seek=20000 conv=notrunc 2>/dev/null
        truncate -s 100000 a/b/c/random
        truncate -s 5000000 a/sparse
        printf end >> a/sparse
        ln -s b/numbers a/link
        echo old > a/replaced && echo new > a/new && mv a/new a/replaced
        seq 1 100000 > a/overwritten && echo shorter > a/overwritten
        mkdir a/empty-dir a/gone && rmdir a/gone
        echo temporary > a/t && exec 3< a/t && rm a/t && test "$(cat <&3)" = temporary && exec 3<&-
        chmod 0600 a/greeting && chmod 0751 a/b
        touch -d '2022-01-02 03:04:05.5' a/greeting a/sparse
        mv a/b/c a/moved
        python3 -c "import os; os.setxattr('a/greeting', 'user.origin', b'the job')"
        """

    static func start(_ s: Sandbox, _ args: String) -> Tool.Result {
        s.sh("mkdir -p mnt && '\(Tool.mountBinary)' \(args)")
    }

    /// `TAG=$(fspf seal MNT --unmount)` is the tag the daemon sealed (issue 31, item 2). It used
    /// to be read back from volume.fspf once the daemon had exited, and a storage attacker who put
    /// an older version's metadata back in that window had it printed as "the tag to pin" (then
    /// served under it, and the newer version's objects deleted by the next read-write mount).
    /// Here the old metadata is put back again and again while the command runs: the tag printed
    /// is the new version's, which --tag-out also names, and the old version on disk is refused
    /// under it.
    @Test func sealUnmountPrintsTheTagTheDaemonSealedNotTheFileOnDisk() {
        let s = Sandbox()
        let r = s.bash("""
            fspf keygen > key && mkdir mnt
            '\(Tool.mountBinary)' vol mnt --create --key-file key --tag-out tag --log-file none
            echo A > mnt/f && a=$(fspf seal mnt) && cp vol/volume.fspf version-a
            echo B > mnt/f
            (while [ ! -e stop ] && [ $SECONDS -lt 60 ]; do cp version-a vol/.swap 2>/dev/null && mv vol/.swap vol/volume.fspf 2>/dev/null; done) &
            trap 'touch stop; umount -l mnt 2>/dev/null || true' EXIT
            printed=$(fspf seal mnt --unmount)
            touch stop; wait
            echo "A $a, printed $printed, tag-out $(head -1 tag)"
            must [ "$printed" != "$a" ]
            must [ "$printed" = "$(head -1 tag)" ]
            never grep -q " $PWD/mnt " /proc/mounts
            # The disk holds A (the attacker's rollback): under the printed tag it is refused.
            status=0; fspf cat vol f --key-file key --tag "$printed" 2> err || status=$?
            must [ "$status" = 10 ]
            must grep -q 'is not the expected' err
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }

    /// After `fspf seal --unmount` has sealed, the mount refuses changes until it is gone, so the
    /// tag printed is the last version even while a program keeps writing; a mount that cannot
    /// be unmounted (a file held open) is left in place, writable again, and the command says so.
    @Test func sealUnmountIsTheLastVersionOrLeavesTheMountWritable() {
        let s = Sandbox()
        let r = s.bash("""
            fspf keygen > key && mkdir mnt
            '\(Tool.mountBinary)' vol mnt --create --key-file key --log-file none
            # Busy: a file held open. Not unmounted, writable again.
            exec 3> mnt/held
            status=0; fspf seal mnt --unmount > out 2> err || status=$?
            echo "busy: $status $(cat err)"
            must [ "$status" = 74 ]
            must grep -q 'not unmounted: the mount stays, writable again' err
            never [ -s out ]
            must grep -q " $PWD/mnt " /proc/mounts
            echo still > mnt/writable && exec 3>&-
            # A writer going on while it seals and unmounts: the version printed is the one on disk.
            trap 'umount -l mnt 2>/dev/null || true' EXIT
            (i=0; while [ $SECONDS -lt 60 ] && echo $i > mnt/counter 2>/dev/null; do i=$((i+1)); done) &
            sleep 0.3
            printed=$(fspf seal mnt --unmount)
            wait
            must [ "$printed" = "$(fspf info vol | awk '/^full tag:/ {print $3}')" ]
            must [ "$(fspf cat vol writable --key-file key --tag "$printed")" = still ]
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }

    /// --tag-out is a new file unless --replace-tag-out (issue 31, item 6): an existing file, or a
    /// link, is refused (exit 73) before the key is fetched or anything mounted, and left as it was.
    @Test func tagOutIsANewFileUnlessReplaced() {
        let s = Sandbox()
        let r = s.bash("""
            fspf keygen > key && mkdir mnt && echo other > precious && ln -s precious link
            for target in precious link; do
              status=0; '\(Tool.mountBinary)' vol mnt --create --key-file key --tag-out $target --log-file none 2> err || status=$?
              must [ "$status" = 73 ]
              must grep -q -- "$target: already exists; not replaced (--replace-tag-out replaces it)" err
              never grep -q " $PWD/mnt " /proc/mounts
              never [ -e vol ]
            done
            must [ "$(cat precious)" = other ]
            '\(Tool.mountBinary)' vol mnt --create --key-file key --tag-out link --replace-tag-out --log-file none
            tag=$(fspf seal mnt --unmount)
            never [ -L link ]
            must [ "$(head -1 link)" = "$tag" ]
            must [ "$(cat precious)" = other ]
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }

    @Test func programsWriteThroughTheMountAndSealsPinTheResult() throws {
        let s = Sandbox()
        _ = s.sh("fspf keygen > key")
        let create = Self.start(s, "vol mnt --create --key-file key --tag-out tag")
        try #require(create.status == 0, "\(create.err)")
        defer { _ = s.sh("umount mnt 2>/dev/null; umount -l mnt 2>/dev/null") }
        let empty = s.sh("cat tag").out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(empty.count == 64)

        let plain = s.sh("mkdir plain && cd plain && \(Self.workload)")
        try #require(plain.status == 0, "\(plain.err)")
        let mounted = s.sh("cd mnt && \(Self.workload)")
        #expect(mounted.status == 0, "\(mounted.err)")
        // What the kernel shows now, and the refusals.
        #expect(s.sh("diff -r plain mnt && test \"$(stat -c %a mnt/a/b)\" = 751").status == 0)
        let link = s.sh("ln mnt/a/greeting mnt/a/hard")
        #expect(link.status != 0 && link.err.contains("Operation not permitted"), "\(link.err)")
        let fifo = s.sh("mkfifo mnt/a/fifo")
        #expect(fifo.status != 0 && fifo.err.contains("Operation not permitted"), "\(fifo.err)")

        let sealed = s.sh("fspf seal mnt")
        #expect(sealed.status == 0, "\(sealed.err)")
        let first = sealed.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(first.count == 64 && first != empty)
        #expect(s.sh("head -1 tag").out.trimmingCharacters(in: .whitespacesAndNewlines) == first)
        #expect(s.sh("fspf seal mnt").out.trimmingCharacters(in: .whitespacesAndNewlines) == first, "nothing changed: same version")

        // A holder that stays (a working directory inside) keeps the mount busy: --unmount says so
        // and the mount stays; one that goes within two seconds is waited for.
        let held = s.sh("sh -c 'cd mnt/a && exec sleep 6' & h=$!; sleep 0.5; fspf seal mnt --unmount; echo \"exit $?\"; kill $h; wait $h")
        #expect(held.out.hasSuffix("exit 74\n") && held.err.contains("Device or resource busy"), "\(held.out)\(held.err)")
        #expect(!Sandbox.mounts(below: s.path + "/mnt").isEmpty)
        // After the seal: more changes; `fspf seal --unmount` returns once the daemon is done.
        let unmounted = s.sh("echo after >> mnt/a/greeting && echo after >> plain/a/greeting "
                             + "&& (sh -c 'cd mnt/a && exec sleep 1' &) && sleep 0.3 && fspf seal mnt --unmount")
        #expect(unmounted.status == 0, "\(unmounted.err)")
        let final = unmounted.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(final.count == 64 && final != first)
        #expect(s.sh("head -1 tag").out.trimmingCharacters(in: .whitespacesAndNewlines) == final)

        let verify = s.sh("fspf verify vol --key-file key --tag \(final)")
        #expect(verify.status == 0, "\(verify.out)\(verify.err)")
        let decrypt = s.sh("fspf decrypt vol --out out --key-file key --tag \(final) && diff -r plain out "
                           + "&& test \"$(stat -c '%a' out/a/greeting)\" = 600 && test \"$(TZ=UTC stat -c %y out/a/sparse)\" = '2022-01-02 03:04:05.500000000 +0000' "
                           + "&& test \"$(readlink out/a/link)\" = b/numbers && test \"$(stat -c %s out/a/sparse)\" = 5000003")
        #expect(decrypt.status == 0, "\(decrypt.out)\(decrypt.err)")
        let xattr = s.sh("python3 -c \"import os; print(os.getxattr('out/a/greeting', 'user.origin').decode())\"")
        #expect(xattr.out == "the job\n", "\(xattr.err)")
        // The earlier version is refused now: the pin moved.
        let stale = Self.start(s, "vol mnt --read-write --key-file key --tag \(first)")
        #expect(stale.status == 10, "\(stale.err)")

        // A read-write mount of the sealed version: a change in the middle of a sealed file.
        let again = Self.start(s, "vol mnt --read-write --key-file key --tag \(final) --tag-out tag --replace-tag-out")
        try #require(again.status == 0, "\(again.err)")
        let edit = "printf CHANGED | dd of=a/b/numbers bs=1 seek=70000 conv=notrunc 2>/dev/null && rm -r a/moved"
        // A plain umount: the daemon seals after it, so wait for the daemon before reading the tag.
        #expect(s.sh("(cd mnt && \(edit)) && (cd plain && \(edit)) && diff -r plain mnt && umount mnt").status == 0)
        #expect(s.sh("for i in $(seq 100); do pgrep -f '[f]spf-mount vol mnt --read-write --key-file key --tag \(final)' >/dev/null || exit 0; sleep 0.1; done; exit 1").status == 0)
        let third = s.sh("cat tag").out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(third != final)
        let check = s.sh("fspf verify vol --key-file key --tag \(third) && fspf decrypt vol --out out2 --key-file key --tag \(third) && diff -r plain out2")
        #expect(check.status == 0, "\(check.out)\(check.err)")
        // A read-only mount serves the written volume like any other.
        let ro = Self.start(s, "vol mnt --key-file key --tag \(third)")
        #expect(ro.status == 0 && s.sh("diff -r plain mnt; r=$?; umount mnt; exit $r").status == 0, "\(ro.err)")
    }

    /// The container entry point as an output volume's sidecar (docs/DEPLOY.md): FSPF_ACCESS=create
    /// with Spark's uid owning the root, the job's user writes, pod shutdown (SIGTERM) seals, and
    /// FSPF_TAG_OUT holds the tag that verifies; then FSPF_ACCESS=read-write goes on from it.
    @Test func sidecarServesAnOutputVolume() throws {
        let s = Sandbox()
        let r = s.sh("""
            set -eu
            export PATH='\(Tool.packageRoot)/deploy/container':$PATH
            chmod 755 . && fspf keygen > key && mkdir status   # uid 185 must reach the mount point
            export FSPF_VOLUME=$PWD/results FSPF_MOUNTPOINT=$PWD/mnt FSPF_KEY_FILE=$PWD/key FSPF_TAG_OUT=$PWD/status/results.tag
            start() { fspf-sidecar run > "sidecar-$1.log" 2>&1 & pid=$!
              for _ in $(seq 100); do fspf-sidecar probe 2>/dev/null && return 0; sleep 0.1; done; cat "sidecar-$1.log"; exit 1; }
            FSPF_ACCESS=create FSPF_OWNER=185:185 start 1
            test "$(stat -c %u:%g mnt)" = 185:185
            setpriv --reuid 185 --regid 185 --clear-groups sh -c 'mkdir mnt/aggregates && seq 1 500 > mnt/aggregates/part-0'
            test "$(stat -c %u mnt/aggregates/part-0)" = 185
            kill -TERM "$pid"; wait "$pid"
            first=$(head -1 status/results.tag)
            fspf verify results --key-file key --tag "$first" > /dev/null
            FSPF_ACCESS=read-write FSPF_TAG="$first" start 2
            setpriv --reuid 185 --regid 185 --clear-groups sh -c 'seq 501 900 > mnt/aggregates/part-1'
            kill -TERM "$pid"; wait "$pid"
            second=$(head -1 status/results.tag)
            test "$second" != "$first"
            fspf cat results aggregates/part-1 --key-file key --tag "$second" | tail -1
            """)
        #expect(r.status == 0 && r.out.hasSuffix("900\n"), "\(r.out)\(r.err)")
    }

    /// A full disk: the write that does not fit fails with ENOSPC, a seal that does not fit
    /// fails (ENOSPC, exit 74) and leaves the previous version and --tag-out as they were, and
    /// once space is freed the next seal works. The volume's store is an 8 MiB tmpfs.
    @Test func aFullDiskIsReportedAndTheLastVersionStays() throws {
        let s = Sandbox()
        let r = s.sh("""
            set -u
            fspf keygen > key && mkdir store mnt && mount -t tmpfs -o size=8m tmpfs store || exit 1
            trap 'umount mnt 2>/dev/null; umount -l mnt 2>/dev/null; umount store' EXIT
            '\(Tool.mountBinary)' store/vol mnt --create --key-file key --tag-out tag --log-file daemon.log || exit 1
            seq 1 1000 > mnt/small && first=$(fspf seal mnt) || exit 1
            if dd if=/dev/zero of=mnt/big bs=1M count=20 2> dd.err; then echo "dd: no error"; exit 1; fi
            grep -q 'No space left on device' dd.err || { cat dd.err; exit 1; }
            # Whether this seal fits or not, the version on disk is the one --tag-out names.
            fspf seal mnt > /dev/null 2>&1
            fspf verify store/vol --key-file key --tag "$(head -1 tag)" > /dev/null || { echo "version on disk broken"; exit 1; }
            # No room at all (a file beside the volume takes the rest): the seal fails, nothing moves.
            before=$(head -1 tag)
            dd if=/dev/zero of=store/filler bs=64k 2>/dev/null; mkdir mnt/new-dir
            fspf seal mnt 2> seal.err && { echo "seal: no error"; exit 1; }
            grep -q 'No space left on device' seal.err || { cat seal.err; exit 1; }
            test "$(head -1 tag)" = "$before" || { echo "tag-out moved"; exit 1; }
            fspf verify store/vol --key-file key --tag "$before" > /dev/null || { echo "previous version broken"; exit 1; }
            rm store/filler mnt/big && final=$(fspf seal mnt --unmount) || { cat seal.err daemon.log; exit 1; }
            fspf verify store/vol --key-file key --tag "$final" && fspf ls store/vol --key-file key --tag "$final"
            """)
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.contains("OK ") && r.out.contains("small") && r.out.contains("new-dir") && !r.out.contains("big"), "\(r.out)")
    }

    /// SIGKILL at random moments of a write workload; at every other point `fspf seal` runs
    /// in a loop beside it, so that kills also land inside seals. After each: the version on
    /// disk verifies under its own tag with nothing unsealed in it; if it is the version sealed
    /// before the workload started, its content is exactly what was sealed. FSPF_CRASH_POINTS
    /// sets the number of points (`make test-security` runs 200).
    @Test func aKilledDaemonLeavesTheLastSealedVersion() throws {
        let points = Int(ProcessInfo.processInfo.environment["FSPF_CRASH_POINTS"] ?? "") ?? 4
        let s = Sandbox()
        _ = s.sh("fspf keygen > key")
        var exact = 0, laterVersions = 0
        for point in 0..<points {
            // In the foreground, so that exactly this daemon is killed.
            let onDisk = s.sh("fspf info vol 2>/dev/null | awk '/^full tag:/ {print $3}'").out.trimmingCharacters(in: .whitespacesAndNewlines)
            let tagArgs = point == 0 ? ["--create"] : ["--read-write", "--tag", onDisk]
            _ = s.sh("mkdir -p mnt")
            let daemon = Tool.spawn([Tool.mountBinary, "vol", "mnt", "--key-file", "key", "--tag-out", "tag", "--replace-tag-out", "--foreground"] + tagArgs,
                                    cwd: s.path, name: "-daemon")
            var live = false
            for _ in 0..<200 where !live {
                usleep(50_000)
                live = !Sandbox.mounts(below: s.path + "/mnt").isEmpty
            }
            if !live { kill(daemon, SIGKILL) }   // a foreground daemon would hold the wait below until its hang limit
            try #require(live, "\(Tool.wait(daemon, cwd: s.path, name: "-daemon").err)")
            // A sealed state, then writing on until the daemon is killed at a random moment.
            #expect(s.sh("cd mnt && mkdir -p d && seq 1 \(5_000 * (point % 10 + 1)) > d/sealed-\(point % 10) && cd .. && fspf seal mnt >/dev/null").status == 0)
            let sealed = s.sh("head -1 tag").out.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(s.sh("rm -rf expected && mkdir expected && cp -a mnt/. expected/").status == 0)
            let writer = Tool.spawn(["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); seq 1 5000 > mnt/d/w$i 2>/dev/null || exit 0; "
                                     + "echo x >> mnt/d/sealed-\(point % 10) 2>/dev/null || exit 0; rm -f mnt/d/sealed-0 2>/dev/null; done"],
                                    cwd: s.path, name: "-writer")
            let sealer = point % 2 == 1
                ? Tool.spawn(["/bin/sh", "-c", "while fspf seal mnt >/dev/null 2>&1; do :; done"], cwd: s.path, name: "-sealer") : nil
            usleep(UInt32.random(in: 50_000...700_000))
            kill(daemon, SIGKILL)
            _ = Tool.wait(daemon, cwd: s.path, name: "-daemon")
            _ = Tool.wait(writer, cwd: s.path, name: "-writer")
            if let sealer { _ = Tool.wait(sealer, cwd: s.path, name: "-sealer") }
            _ = s.sh("umount -l mnt")
            let now = s.sh("fspf info vol | awk '/^full tag:/ {print $3}'").out.trimmingCharacters(in: .whitespacesAndNewlines)
            let verify = s.sh("fspf verify vol --key-file key --tag \(now)")
            #expect(verify.status == 0, "point \(point): \(verify.out)\(verify.err)")
            if now == sealed {
                exact += 1
                let content = s.sh("rm -rf out && fspf decrypt vol --out out --key-file key --tag \(sealed) && diff -r expected out")
                #expect(content.status == 0, "point \(point): \(content.out)\(content.err)")
            } else {
                // Only a seal running beside the workload can have made a later version.
                #expect(sealer != nil, "point \(point): the version on disk is not the one sealed")
                laterVersions += 1
            }
        }
        print("crash points: \(points), the sealed version exact: \(exact), a later seal completed: \(laterVersions)")
        // The next read-write mount removes what the killed ones left.
        let m = Self.start(s, "vol mnt --read-write --key-file key --tag $(fspf info vol | awk '/^full tag:/ {print $3}')")
        #expect(m.status == 0, "\(m.err)")
        let final = s.sh("fspf seal mnt --unmount").out.trimmingCharacters(in: .whitespacesAndNewlines)
        let clean = s.sh("fspf verify vol --key-file key --tag \(final)")
        #expect(clean.status == 0 && !clean.err.contains("unsealed"), "\(clean.out)\(clean.err)")
    }
}
