import Foundation
import Glibc
import Testing
import FSPFCore
import FSPFCrypto
import FSPFSystem
import FSPFTestSupport

@Suite struct CLITests {
    /// The tests' guard against hangs: a script that never ends is killed with what it started.
    @Test func hungScriptIsKilledWithItsChildren() {
        let s = Sandbox()
        let started = Date()
        let pid = Tool.spawn(["/bin/sh", "-c", "sleep 300 & echo $! > child; wait"], cwd: s.path)
        let r = Tool.wait(pid, cwd: s.path, limit: 1)
        #expect(r.status == 124 && r.err.contains("killed after 1 s"), "\(r)")
        #expect(Date().timeIntervalSince(started) < 30)
        let child = pid_t(s.sh("cat child").out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        usleep(100_000)
        // Gone, or a zombie waiting for whoever inherited it.
        let state = (try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8))?.split(separator: ")").last?.split(separator: " ").first
        #expect(child > 0 && (state == nil || state == "Z"), "the script's child survived: \(state ?? "")")
    }

    @Test func defaultLineParsesWithSCONEsAwkFields() {
        let s = Sandbox()
        s.makeInput()
        let r = s.sh("fspf encrypt in --out vol > keytag.txt && awk '{print $9}' keytag.txt && awk '{print $11}' keytag.txt && awk '{print $6}' keytag.txt")
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].count == 32 && Hex.decode(lines[0]) != nil)
        #expect(lines[1].count == 64 && Hex.decode(lines[1]) != nil)
        #expect(lines[2] == "vol/volume.fspf")
        let line = (try? String(contentsOfFile: s.path + "/keytag.txt", encoding: .utf8)) ?? ""
        #expect(line == "Encrypted file system protection file vol/volume.fspf AES-GCM tag: \(lines[0]) key: \(lines[1])\n")
        let v = s.sh("K=\(lines[1]) fspf verify vol --key-env K --tag \(lines[0])")
        #expect(v.status == 0 && v.out.hasPrefix("OK vol/volume.fspf: 3 files"), "\(v.err)")
        #expect(s.sh("grep -q 'key: [0-9a-f]\\{64\\}' keytag.txt && grep -q 'tag: [0-9a-f]\\{32\\}' keytag.txt").status == 0)
    }

    /// On a terminal the progress line is cleared before the report is printed to the same
    /// terminal: it used to end up in front of it ("…ETA 0:00Encrypted file system protection file …").
    @Test func progressLineIsClearedBeforeTheReport() {
        let s = Sandbox()
        s.write("on-terminal.py", """
            import os, pty, sys
            pid, fd = pty.fork()
            if pid == 0:
                os.execvp(sys.argv[1], sys.argv[1:])
            out = b""
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            os.waitpid(pid, 0)
            sys.stdout.write(out.decode())
            """)
        // Large enough to take several 200 ms redraws on one thread.
        let r = s.sh("mkdir in && head -c 150000000 /dev/zero > in/big && python3 on-terminal.py fspf encrypt in --out vol --threads 1")
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("ETA"), "no progress was drawn: the test shows nothing")
        let report = r.out.range(of: "Encrypted file system protection file")
        #expect(report != nil && r.out[..<report!.lowerBound].hasSuffix("\r\u{1b}[2K"), "\(r.out.suffix(300).debugDescription)")
    }

    /// `encrypt --register` with an invalid policy used to write the volume and then fail the
    /// registration: the key was gone (exit 65) and the rerun refused the existing output (73).
    /// Everything about the registration is checked first now.
    @Test func registrationIsCheckedBeforeTheVolumeIsWritten() {
        let s = Sandbox()
        s.makeInput()
        let code = String(repeating: "ab", count: 32)
        let r = s.sh("""
            fspf keyserver init --store ks > /dev/null || exit 1
            echo '{"mrenclave": ["\(code)"], "allow_debg": true}' > bad.json
            echo '{"mrenclave": ["\(code)"]}' > good.json
            fspf encrypt in --out vol --register ks --policy bad.json; echo "bad policy: exit $? $(ls -d vol 2>/dev/null)"
            fspf encrypt in --out .vol --register ks --policy good.json; echo "bad name: exit $? $(ls -d .vol 2>/dev/null)"
            fspf encrypt in --out vol --register ks --policy good.json > /dev/null; echo "good: exit $?"
            fspf encrypt in --out vol2 --register ks --volume-name vol --policy good.json; echo "taken: exit $? $(ls -d vol2 2>/dev/null)"
            """)
        for line in ["bad policy: exit 65 \n", "bad name: exit 64 \n", "good: exit 0", "taken: exit 64 \n"] {
            #expect(r.out.contains(line), "\(line)\n\(r.out)\n\(r.err)")
        }
        #expect(r.err.contains("bad.json") && r.err.contains("allow_debg"), "\(r.err)")
    }

    /// A file where a directory belongs: the errors say what to do, in the user's words (they
    /// used to talk about "drafts").
    @Test func encryptingAFileExplainsItself() {
        let s = Sandbox()
        let r = s.sh("""
            echo hi > f.txt
            fspf encrypt f.txt --out vol; echo "with out: exit $?"
            fspf encrypt f.txt; echo "alone: exit $?"
            """)
        #expect(r.out.contains("with out: exit 64") && r.out.contains("alone: exit 65"), "\(r.out)")
        #expect(r.err.contains("f.txt is a file: fspf encrypt DIR --out VOLUME encrypts a directory"), "\(r.err)")
        #expect(r.err.contains("f.txt: not a metadata file in progress (made by 'fspf create' and not yet encrypted)"), "\(r.err)")
        #expect(!r.err.contains("draft"), "\(r.err)")
    }

    @Test func envJSONAndKeyOut() throws {
        let s = Sandbox()
        s.makeInput()
        let env = s.sh("fspf encrypt in --out v1 --format env --env-prefix DRIVER_MAIN_FSPF > env.sh && . ./env.sh && "
                       + "fspf verify v1 --key-env DRIVER_MAIN_FSPF_KEY --tag-env DRIVER_MAIN_FSPF_TAG --quiet && "
                       + "fspf verify v1 --key-env DRIVER_MAIN_FSPF_KEY --tag $DRIVER_MAIN_FSPF_FULL_TAG --quiet && cat env.sh")
        #expect(env.status == 0, "\(env.err)")
        #expect(env.out.range(of: #"^export DRIVER_MAIN_FSPF_KEY=[0-9a-f]{64}\nexport DRIVER_MAIN_FSPF_TAG=([0-9a-f]{32})\n"#
                                  + #"export DRIVER_MAIN_FSPF_FULL_TAG=\1[0-9a-f]{32}\n$"#, options: .regularExpression) != nil, "\(env.out)")

        let json = s.sh("fspf encrypt in --out v2 --format json")
        let obj = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
        #expect((obj?["tag"] as? String)?.count == 32 && (obj?["key"] as? String)?.count == 64)
        #expect((obj?["full_tag"] as? String)?.hasPrefix(obj?["tag"] as? String ?? "-") == true && (obj?["full_tag"] as? String)?.count == 64)
        #expect(obj?["format"] as? Int == 2)
        #expect(obj?["files"] as? Int == 3 && obj?["metadata"] as? String == "v2/volume.fspf")

        let keyOut = s.sh("fspf encrypt in --out v3 --key-out k.hex && stat -c %a k.hex")
        #expect(keyOut.status == 0)
        let lines = keyOut.out.split(separator: "\n")
        #expect(lines.count == 2 && !lines[0].contains("key:") && lines[1] == "600")
        #expect(s.sh("fspf verify v3 --key-file k.hex --quiet").status == 0)
        #expect(s.sh("fspf verify v3 --key-stdin --quiet < k.hex").status == 0)
        #expect(s.sh("fspf verify v3 --key-file k.hex --key-stdin").status == 64, "one key source at a time")
        // A given key is used as is.
        #expect(s.sh("fspf encrypt in --out v4 --key-file k.hex | awk '{print $11}' | diff - k.hex").status == 0)
    }

    /// SCONE's step semantics: addf protects and records what it sees when it runs (a file
    /// written into the source later, the key line included, stays out); an authenticated
    /// region gets nothing written beside its files; a rerun after `rm -rf DIR/*` leaves one
    /// object per file and verifies clean (its `create --replace` replaces the first run's v.pb).
    @Test func stepsRecordWhatAddfSawAndRerunsLeaveNothingStale() {
        let s = Sandbox()
        s.write("src/job.py", "print(1)\n")
        s.write("src/data/rows.csv", "1,2\n")
        s.write("sys/lib.so", "ELF\n")
        let build = """
            mkdir -p enc && rm -rf enc/* &&
            fspf create v.pb --replace > steps && fspf addr v.pb / --not-protected --kernel / >> steps &&
            fspf addr v.pb /enc -e --kernel enc >> steps && fspf addr v.pb /sys -a --kernel sys >> steps &&
            fspf addf v.pb /enc src enc >> steps && fspf addf v.pb /sys sys >> steps &&
            echo late > src/late.txt && fspf encrypt v.pb > src/keytag &&
            export K=$(awk '{print $11}' src/keytag) T=$(awk '{print $9}' src/keytag) &&
            fspf verify v.pb --key-env K --tag $T --quiet && rm src/late.txt
            """
        let r = s.sh(build + " && fspf ls -R v.pb --key-env K --tag $T && ls -A sys && " + build
                     + " && find enc -type f | wc -l && fspf cat v.pb enc/job.py --key-env K --tag $T")
        #expect(r.status == 0, "\(r.err)")
        let listing = "enc/\nenc/data/\nenc/data/rows.csv\nenc/job.py\nsys/\nsys/lib.so\n"
        // The rerun's addf sees src/keytag from the first run: 3 files, 3 objects, none stale.
        #expect(r.out == listing + "lib.so\n3\nprint(1)\n", "\(r.out)")
        #expect(s.sh("wc -l < steps").out == "6\n")
    }

    /// One writer per output: a second `fspf encrypt` into the output another is writing is
    /// refused (before, both exited 0 and left a volume neither key opened); an output that
    /// holds only what `rm -rf OUT/*` leaves is built again.
    @Test func oneWriterPerOutputAndRebuildsAfterCleaning() {
        let s = Sandbox()
        s.makeInput()
        let busy = s.sh("mkdir out && flock out sleep 3 & sleep 0.5; fspf encrypt in --out out; echo \"exit $?\"; wait")
        #expect(busy.out.hasSuffix("exit 73\n") && busy.err == "fspf: out: another fspf is writing this output now\n", "\(busy.out)\(busy.err)")
        let race = s.sh("""
            dd if=/dev/urandom of=in/big bs=1M count=48 status=none
            (fspf encrypt in --out raced --threads 1 > a.line; echo $? > a.status) &
            (fspf encrypt in --out raced --threads 1 > b.line; echo $? > b.status) &
            wait; cat a.status b.status | sort | tr '\n' ' '
            """)
        #expect(race.out == "0 73 ", "\(race.out)\(race.err)")
        #expect(s.sh("K=$(cat a.line b.line | awk '{print $11}') fspf verify raced --key-env K --tag $(cat a.line b.line | awk '{print $9}') --quiet").status == 0)
        let again = s.sh("rm -rf raced/* && fspf encrypt in --out raced --key-out k > line && fspf verify raced --key-file k --tag $(awk '{print $9}' line) --quiet")
        #expect(again.status == 0, "\(again.err)")
    }

    /// A full disk during a one-command build or an addf leaves nothing behind and names the
    /// user's paths: the output directory it created is gone, addf's objects are removed and the
    /// draft is as before.
    @Test func fullDiskLeavesNothingBehind() {
        let s = Sandbox()
        s.makeInput()
        let r = s.sh("""
            dd if=/dev/urandom of=in/big bs=1M count=4 status=none
            mkdir full && exec unshare -m sh -c '
              mount -t tmpfs -o size=1m fspf-full full
              fspf encrypt in --out full/vol --quiet 2> one.err; echo "encrypt $?"
              ls -A full | wc -l
              fspf create d.pb > /dev/null && fspf addr d.pb /data -e --kernel full/enc > /dev/null && cp d.pb d.before
              mkdir full/enc && fspf addf d.pb /data in 2> addf.err; echo "addf $?"
              find full/enc -type f | wc -l
              cmp d.pb d.before && echo draft-unchanged'
            """)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "encrypt 74\n0\naddf 74\n0\ndraft-unchanged\n", "\(r.out)")
        let one = s.sh("cat one.err").out
        #expect(one.hasPrefix("fspf: full/vol/") && one.contains("No space left on device") && !one.contains("fspf-tmp"), "\(one)")
        #expect(s.sh("cat addf.err").out.contains("No space left on device"))
    }

    /// addf of a directory named through a symbolic link (Debian's /lib -> usr/lib, as in
    /// iExec's protect-fs.sh) records locations without the link, which the reader follows
    /// nowhere: before, every file was "missing or unreadable".
    @Test func addfThroughASymlinkedDirectory() {
        let s = Sandbox()
        s.write("usr/lib/libc.so", "ELF\n")
        s.write("data/rows.csv", "1,2\n")
        let r = s.sh("""
            ln -s usr/lib lib && ln -s data linked &&
            fspf create f.pb > /dev/null && fspf addr f.pb / --not-protected --kernel / > /dev/null &&
            fspf addr f.pb /lib -a --kernel lib > /dev/null && fspf addf f.pb /lib lib > /dev/null &&
            fspf addr f.pb /enc -e --kernel linked > /dev/null && fspf addf f.pb /enc data linked > /dev/null &&
            fspf encrypt f.pb --key-out k > line && fspf verify f.pb --key-file k --tag $(awk '{print $9}' line) --quiet &&
            fspf cat f.pb lib/libc.so --key-file k && fspf cat f.pb enc/rows.csv --key-file k
            """)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "ELF\n1,2\n", "\(r.out)")
    }

    /// SCONE's flags and commands that fspf takes differently: --key-length 16/24/32 (or bits) is
    /// accepted (keys are always 256 bits), anything else refused; addfspf is refused with one
    /// line naming what to use instead; --ephemeral regions follow their rules.
    @Test func sconeFlagsAcceptedOrRefusedWithAnAlternative() {
        let s = Sandbox()
        #expect(s.sh("fspf create f.pb > /dev/null").status == 0)
        for length in ["16", "24", "32", "128", "256"] {
            #expect(s.sh("fspf addr f.pb /x -e --kernel x --key-length \(length)").status == 0, "--key-length \(length)")
        }
        let odd = s.sh("fspf addr f.pb /x -e --kernel x --key-length 20")
        #expect(odd.status == 64 && odd.err == "fspf: --key-length 20: 16, 24 or 32 bytes (128, 192 or 256 bits)\n", "\(odd.err)")
        // Ephemeral regions: anywhere but the root, without --kernel, holding no files or regions.
        #expect(s.sh("fspf addr f.pb /scratch -e --ephemeral").status == 0)
        #expect(s.sh("fspf show f.pb").out.contains("region /scratch encrypted ephemeral chunk 16384"), "\(s.sh("fspf show f.pb").out)")
        let rootEphemeral = s.sh("fspf addr f.pb / -e --ephemeral")
        #expect(rootEphemeral.status == 64 && rootEphemeral.err.contains("/ cannot be an ephemeral region"), "\(rootEphemeral.err)")
        let both = s.sh("fspf addr f.pb /t -e --ephemeral --kernel t")
        #expect(both.status == 64 && both.err.contains("--ephemeral or --kernel DIR, not both"), "\(both.err)")
        let inside = s.sh("fspf addr f.pb /scratch/in -e --kernel in")
        #expect(inside.status == 64 && inside.err.contains("lies in the ephemeral region /scratch"), "\(inside.err)")
        let nested = s.sh("fspf addfspf f.pb g.pb 00112233")
        #expect(nested.status == 64 && nested.err.split(separator: "\n").count == 1 && nested.err.contains("fspf-mount --scone --fspf G"),
                "\(nested.err)")
        #expect(s.sh("fspf addr f.pb /y --authenticated --encrypted --kernel y").status == 64)
    }

    /// Every command's help shows at least one example of itself.
    @Test func everyCommandsHelpHasAnExample() {
        let s = Sandbox()
        let commands = ["encrypt", "create", "addr", "addf", "show", "verify", "ls", "cat", "decrypt", "info", "upgrade", "keygen",
                        "quote", "quote show", "quote verify", "attester", "attester init",
                        "keyserver", "keyserver init", "keyserver register", "keyserver list", "keyserver serve"]
        for c in commands {
            let help = s.sh("fspf help \(c)").out
            let examples = help.split(separator: "\n").drop { !$0.contains("Example") }.prefix { !$0.hasPrefix("USAGE:") }
            #expect(examples.contains { $0.contains("fspf \(c) ") || $0.contains("fspf \(c.split(separator: " ").last!) ") },
                    "fspf help \(c): no example\n\(help)")
        }
        #expect(s.sh("'\(Tool.mountBinary)' --help").out.contains("Examples: fspf-mount "))
    }

    /// Step-built volumes: several sources and regions, shared directories merged, conflicts refused.
    @Test func stepCommandsWithSeveralSourcesAndRegions() {
        let s = Sandbox()
        s.write("code/job.py", "print(1)\n")
        s.write("data/rows.csv", "1,2\n")
        s.write("conf/app.conf", "x=1\n")
        let r = s.sh("""
            fspf create v.pb && fspf addr v.pb / --encrypted --kernel out --chunk-length 4096 &&
            fspf addr v.pb /app/conf --authenticated --kernel out &&
            fspf addf v.pb /app code out && fspf addf v.pb /app/data data out && fspf addf v.pb /app/conf conf out &&
            fspf show v.pb && fspf encrypt v.pb --key-out k > line && fspf ls -lR v.pb --key-file k &&
            fspf verify v.pb --key-file k --tag $(awk '{print $9}' line) --quiet && cat out/app.conf
            """)
        #expect(r.status == 0, "\(r.err)")
        let rows = r.out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.contains(["e", "0644", "9", "app/job.py"]) && rows.contains(["e", "0644", "4", "app/data/rows.csv"]))
        #expect(rows.contains(["a", "0644", "4", "app/conf/app.conf"]) && r.out.hasSuffix("x=1\n"))
        let conflict = s.sh("fspf create c.pb && fspf addf c.pb / code o && fspf addf c.pb /job.py data o && fspf encrypt c.pb")
        #expect(conflict.status == 65 && conflict.err.contains("two inputs map to the volume path 'job.py'"), "\(conflict.err)")
        #expect(s.sh("fspf addr v2.pb / --encrypted --kernel o").status == 66, "addr needs a draft from create")
        #expect(s.sh("fspf create e.pb && fspf addr e.pb / --encrypted --ephemeral").status == 64)
    }

    @Test func readCommands() {
        let s = Sandbox()
        s.makeInput()
        #expect(s.sh("fspf keygen > k && fspf encrypt in --out vol --key-file k --authenticated docs > /dev/null").status == 0)
        let ls = s.sh("fspf ls -lR vol --key-file k")
        let rows = ls.out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.contains(["e", "0644", "15", "job.py"]) && rows.contains(["a", "0644", "7", "docs/readme.md"]), "\(ls.out)")
        #expect(s.sh("fspf cat vol data/rows.csv --key-file k | cmp - in/data/rows.csv").status == 0)
        #expect(s.sh("fspf decrypt vol --key-file k --out out && diff -r in out").status == 0)
        let info = s.sh("fspf info vol")
        #expect(info.status == 0 && info.out.contains("tag:") && !info.out.contains("job.py"))
        let full = s.sh("fspf info vol --key-file k")
        #expect(full.out.contains("contents:       3 files, 2 directories"))
        #expect(s.sh("fspf show vol --tag").out.count == 33)
    }

    /// Distinct, documented exit codes, one line naming the path.
    @Test func exitCodesAndMessages() {
        let s = Sandbox()
        s.makeInput()
        #expect(s.sh("fspf keygen > k && fspf encrypt in --out vol --key-file k > /dev/null").status == 0)
        let missing = s.sh("fspf encrypt nowhere --out x")
        #expect(missing.status == 66 && missing.err.hasPrefix("fspf: nowhere") && missing.err.split(separator: "\n").count == 1)
        #expect(s.sh("fspf encrypt in").status == 64)
        #expect(s.sh("fspf encrypt in --out y --chunk-size 3000").status == 64)
        let exists = s.sh("fspf encrypt in --out vol")
        #expect(exists.status == 73 && exists.err.contains("vol"))
        let wrong = s.sh("fspf keygen > k2 && fspf ls vol --key-file k2")
        #expect(wrong.status == 11 && wrong.err.contains("wrong key"))
        let tag = s.sh("fspf ls vol --key-file k --tag 00000000000000000000000000000000")
        #expect(tag.status == 10)
        #expect(s.sh("mkfifo in/pipe && fspf encrypt in --out z").status == 65)
        #expect(!FileManager.default.fileExists(atPath: s.path + "/z"))
    }

    @Test func verifyListsEveryProblem() {
        let s = Sandbox()
        s.write("in/a", String(repeating: "a", count: 300_000))
        s.write("in/b", String(repeating: "b", count: 300_000))
        #expect(s.sh("fspf keygen > k && fspf encrypt in --out vol --key-file k --chunk-size 64K > /dev/null").status == 0)
        // Corrupt chunk 1 of every object, and add a stray file.
        let r = s.sh("""
            \(Sandbox.flipFunction)
            for f in vol/.fspf-objects/*/*; do flip $f 70000; done
            touch vol/stray; fspf verify vol --key-file k
            """)
        #expect(r.status == 10)
        let lines = r.err.split(separator: "\n")
        #expect(lines.filter { $0.contains("chunk 1 (bytes 65536-131071): data does not match the hash in its tag tree") }.count == 2, "\(r.err)")
        #expect(lines.contains { $0.contains("stray") && $0.contains("unexpected file") })
        #expect(s.sh("fspf cat vol a --key-file k > /dev/null").status == 10)
    }

    @Test func diskFullLeavesNothingThatOpens() throws {
        let s = Sandbox()
        s.write("in/big", String(repeating: "x", count: 6 << 20))
        let r = s.sh("mkdir small && mount -t tmpfs -o size=2m tmpfs small && fspf encrypt in --out small/vol; rc=$?; "
                     + "ls -A small; umount small; exit $rc")
        #expect(r.status == 74, "\(r.err)")
        #expect(r.err.contains("No space left on device"))
        #expect(r.out.isEmpty, "staging removed: \(r.out)")
    }

    @Test func interruptLeavesNothingThatOpens() throws {
        let s = Sandbox()
        #expect(s.sh("mkdir in && truncate -s 3G in/big").status == 0)
        let pid = Tool.spawn([Tool.binary, "encrypt", "in", "--out", "vol", "--threads", "1", "--dense"], cwd: s.path)
        usleep(400_000)
        kill(pid, SIGINT)
        let r = Tool.wait(pid, cwd: s.path)
        #expect(r.status == 130, "\(r.err)")
        #expect(r.err.contains("interrupted"))
        #expect(s.sh("ls -A").out.split(separator: "\n").sorted() == [".stderr", ".stdout", "in"])
    }

    /// An addf interrupted half-way removes the objects it wrote and leaves the draft as it was.
    @Test func interruptedAddfLeavesNothing() throws {
        let s = Sandbox()
        let setup = s.sh("""
            mkdir in out && dd if=/dev/zero of=in/big bs=1M count=2048 status=none && echo small > in/small &&
            fspf create d.pb > /dev/null && fspf addr d.pb /x -e --kernel out > /dev/null && cp d.pb d.before
            """)
        #expect(setup.status == 0, "\(setup.err)")
        let pid = Tool.spawn([Tool.binary, "addf", "d.pb", "/x", "in", "--threads", "1"], cwd: s.path)
        usleep(400_000)
        kill(pid, SIGINT)
        let r = Tool.wait(pid, cwd: s.path)
        #expect(r.status == 130, "\(r.err)")
        #expect(s.sh("find out -type f | wc -l; cmp d.pb d.before && echo unchanged").out == "0\nunchanged\n")
    }

    @Test func unreadableInputIsNamed() throws {
        let s = Sandbox()
        s.makeInput()
        let r = s.sh("chmod 777 . && chmod 000 in/job.py && setpriv --reuid=65534 --regid=65534 --clear-groups fspf encrypt in --out vol")
        #expect(r.status == 66, "\(r.err)")
        #expect(r.err.contains("in/job.py") && r.err.contains("permission denied"))
    }

    @Test func fileChangingWhileReadIsRefused() throws {
        let s = Sandbox()
        s.write("in/grow", String(repeating: "g", count: 64 << 20))
        let r = s.sh("(while true; do echo more >> in/grow; done) & fspf encrypt in --out vol; rc=$?; kill $!; exit $rc")
        #expect(r.status == 65, "\(r.err)")
        #expect(r.err.contains("in/grow") && r.err.contains("changed while being read"))
        #expect(!FileManager.default.fileExists(atPath: s.path + "/vol"))
    }

    /// Memory follows the work, not the file size. Peak RSS from GNU time, whose fork gives
    /// the child a fresh address space (a vfork'ed child would inherit the runner's peak).
    @Test func encryptMemoryIsBounded() throws {
        let s = Sandbox()
        #expect(s.sh("mkdir small large && truncate -s 16M small/f && truncate -s 1G large/f").status == 0)
        func peakKiB(_ dir: String, _ out: String) -> Int {
            let r = s.sh("/usr/bin/time -f %M -o rss fspf encrypt \(dir) --out \(out) --threads 2 > /dev/null && cat rss")
            #expect(r.status == 0, "\(r.err)")
            return Int(r.out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        let small = peakKiB("small", "v1"), large = peakKiB("large", "v2")
        #expect(small > 0 && large > 0)
        // Sanitizer builds (make test-asan) carry shadow memory: only the growth is bounded there.
        if ProcessInfo.processInfo.environment["FSPF_SANITIZED"] == nil {
            #expect(large < 64 * 1024, "peak RSS \(large) KiB")
        }
        #expect(large - small < 8 * 1024, "\(small) vs \(large) KiB")
    }
}
