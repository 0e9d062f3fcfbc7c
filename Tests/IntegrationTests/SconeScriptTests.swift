import Foundation
import Testing
import FSPFTestSupport

/// Published SCONE build scripts (fixtures/scone, each as published with `scone fspf` replaced
/// by `fspf`) run unchanged, absolute paths included, in a private mount namespace with a fresh
/// root (fixtures/scone/sandbox.sh); the workload then finds the files where SCONE's runtime
/// shows them, through `fspf-mount --scone`.
/// Time limits are generous: a test's time counts from its start, and under `make test` its body
/// may wait minutes for a thread while other suites' long synchronous runs hold the runner's.
@Suite(.serialized) struct SconeScriptTests {
    static let scripts = Tool.packageRoot + "/fixtures/scone"

    /// Runs `script` in the sandbox with fspf, fspf-mount and the project's venv on PATH.
    func sandboxed(_ s: Sandbox, _ script: String) -> Tool.Result {
        let venv = Tool.packageRoot + "/.venv/bin"
        let body = """
            export PATH='\((Tool.binary as NSString).deletingLastPathComponent)':'\(venv)':$PATH HOME='\(s.path)'
            S='\(SconeScriptTests.scripts)'; OUT='\(s.path)'
            \(script)
            """
        // Quoting a script through two shells is error-prone: the sandbox gets it from a file.
        s.write("script.sh", body)
        return s.sh("'\(SconeScriptTests.scripts)/sandbox.sh' \"$(cat script.sh)\"")
    }

    /// SCONE's PySpark demo script run twice (it cleans with `rm -rf encrypted-files/*`), then
    /// Spark runs the job as `local:///fspf/encrypted-files/job.py` through fspf-mount --scone.
    @Test func sparkDemoScriptRunsTwiceAndSparkFindsTheJobAtSconesPath() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Tool.packageRoot + "/.venv/bin/spark-submit"),
                     "no PySpark in .venv: run scripts/install-deps.sh --spark (make test does)")
        let s = Sandbox()
        let r = sandboxed(s, """
            mkdir -p /fspf/input/code
            cp '\(Tool.packageRoot)/examples/nyc-taxi/job.py' /fspf/input/code/
            python '\(Tool.packageRoot)/examples/nyc-taxi/generate.py' /fspf/data --rows 3000 > /dev/null
            cd /fspf
            bash $S/fspf.sh > $OUT/first.out    # the image build
            first=$(awk '{print $9}' /fspf/keytag.txt)
            . $S/fspf.sh > $OUT/second.out      # again by hand, sourced for its exports
            test "$first" != "$SCONE_FSPF_TAG"
            echo objects $(find /fspf/encrypted-files/.fspf-objects -type f | wc -l)
            fspf verify /fspf/encrypted-files --key-env SCONE_FSPF_KEY --tag "$SCONE_FSPF_TAG" --quiet
            fspf-mount --scone 2> $OUT/mount.err
            ls -A /fspf/encrypted-files
            cmp /fspf/encrypted-files/job.py /fspf/input/code/job.py
            spark-submit --master 'local[2]' --conf spark.log.level=WARN --conf spark.ui.enabled=false \\
                local:///fspf/encrypted-files/job.py /fspf/data --result $OUT/result.json > $OUT/spark.out 2> $OUT/spark.err \\
                || { tail -5 $OUT/spark.err; exit 1; }
            umount /fspf/encrypted-files
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        // One object: the first run's was removed when the second sealed; the metadata file is
        // hidden under the mount, which shows the region's content only.
        #expect(r.out == "objects 1\njob.py\n", "\(r.out)")
        let result = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.path + "/result.json"))) as? [String: Any]
        let groups = result?["groups"] as? [[String: Any]] ?? []
        #expect(groups.reduce(0) { $0 + ($1["trips"] as? Int ?? 0) } == 3000)
        // Each step prints SCONE's line.
        let steps = s.sh("cat second.out").out.split(separator: "\n").map { $0.replacing(/[0-9a-f]{32}$/, with: "T") }
        #expect(steps == ["Created empty file system protection file in encrypted-files/volume.fspf. AES-GCM tag: T",
                          "Added region / to file system protection file encrypted-files/volume.fspf new AES-GCM tag: T",
                          "Added region /fspf/encrypted-files/ to file system protection file encrypted-files/volume.fspf new AES-GCM tag: T",
                          "Added files to file system protection file encrypted-files/volume.fspf new AES-GCM tag: T"], "\(steps)")
    }

    /// SCONE's File Shield walkthrough: the metadata inside the encrypted /data, the key line
    /// written into the source after addf. /data shows exactly what addf saw, at /data, its
    /// metadata file hidden; a plain mount of the metadata serves /data's content.
    @Test func fileShieldWalkthroughMetadataInsideTheRegion() {
        let s = Sandbox()
        let r = sandboxed(s, """
            mkdir -p /data /data-original && echo 'Hello World' > /data-original/hello.txt
            printf 'f = open("/data/hello.txt")\\nprint(f.read())\\n' > /data-original/world.py
            cp -a /data-original $OUT/original
            bash $S/fileshield-walkthrough.sh > $OUT/build.out
            export SCONE_FSPF_KEY=$(awk '{print $11}' /data-original/keytag) SCONE_FSPF_TAG=$(awk '{print $9}' /data-original/keytag)
            export SCONE_FSPF=/data/fspf.pb
            fspf ls -R /data --key-env SCONE_FSPF_KEY --tag "$SCONE_FSPF_TAG"
            fspf-mount --scone 2> $OUT/mount.err
            diff -r /data $OUT/original && python3 /data/world.py
            umount /data
            mkdir /view && fspf-mount /data/fspf.pb /view --key-env SCONE_FSPF_KEY --tag-env SCONE_FSPF_TAG 2>> $OUT/mount.err
            diff -r /view $OUT/original && echo plain-mount-same
            umount /view
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out == "data/\ndata/hello.txt\ndata/world.py\nHello World\n\nplain-mount-same\n", "\(r.out)")
    }

    /// A published SCONE image's RUN step: /app authenticated in place, the metadata in /fspf
    /// beside it. Nothing is written into /app; /app is served at /app over itself.
    @Test func appImageMetadataBesideTheRegion() {
        let s = Sandbox()
        let r = sandboxed(s, """
            mkdir -p /app/lib && echo 'print("Hello World")' > /app/hello.py && echo 'x = 1' > /app/lib/util.py
            cp -a /app $OUT/app-original
            bash $S/app-image.sh > $OUT/build.out
            ls -A /app | tr '\\n' ' '; echo
            tail -1 $OUT/build.out > /fspf/keytag   # encrypt's line, after the steps' lines
            export SCONE_FSPF=/fspf/fs.fspf SCONE_FSPF_KEY=$(awk '{print $11}' /fspf/keytag) SCONE_FSPF_TAG=$(awk '{print $9}' /fspf/keytag)
            fspf-mount --scone 2> $OUT/mount.err
            grep ' fuse' /proc/self/mounts | cut -d' ' -f2
            diff -r /app $OUT/app-original && python3 /app/hello.py
            umount /app
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out == "hello.py lib \n/app\nHello World\n", "\(r.out)")
    }

    /// SCONE's File Shield documentation example: metadata in its own directory, the key line
    /// written into the source directory after addf. `fspf verify` takes the directory.
    @Test func fileShieldExampleKeytagIntoTheSourceStaysOut() {
        let s = Sandbox()
        let r = sandboxed(s, """
            mkdir -p /fspf/fspf-file /fspf/encrypted-files /fspf/native-files
            echo 'Hello World' > /fspf/native-files/hello.txt
            bash $S/file-shield.sh > $OUT/build.out
            K=$(awk '{print $11}' /fspf/native-files/keytag); T=$(awk '{print $9}' /fspf/native-files/keytag)
            test -s /fspf/native-files/keytag
            K=$K fspf verify /fspf/fspf-file --key-env K --tag $T --quiet
            K=$K fspf ls /fspf/fspf-file /fspf/encrypted-files --key-env K --tag $T
            SCONE_FSPF=/fspf/fspf-file/fs.fspf SCONE_FSPF_KEY=$K SCONE_FSPF_TAG=$T fspf-mount --scone 2> $OUT/mount.err
            cat /fspf/encrypted-files/hello.txt
            umount /fspf/encrypted-files
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out == "fspf/encrypted-files/hello.txt\nHello World\n", "\(r.out)")
    }

    /// The File Shield example that authenticates system trees in place (/opt/scone/lib,
    /// /root/miniconda, read-only here as in an image): nothing is written into them, one
    /// fspf-mount --scone serves all three regions at their paths, and a changed file there is
    /// refused on read. Unmounting the first region ends the daemon and its other mounts.
    @Test func authenticatedReadOnlySystemTreesServedInPlace() {
        let s = Sandbox()
        let r = sandboxed(s, """
            mkdir -p /fspf/fspf-file /fspf/encrypted-files /fspf/native-files /opt/scone/lib /root/miniconda/bin /root/miniconda/lib
            echo 'Hello World' > /fspf/native-files/hello.txt
            cp /usr/lib/x86_64-linux-gnu/libc.so.6 /opt/scone/lib/
            cp '\(Tool.packageRoot)/examples/nyc-taxi/job.py' /root/miniconda/lib/site.py
            ln -s ../lib/site.py /root/miniconda/bin/python3
            for d in /opt/scone/lib /root/miniconda; do mount --bind $d $d; mount -o remount,bind,ro $d; done
            bash $S/file-shield-authenticated.sh > $OUT/build.out
            ls -A /opt/scone/lib /root/miniconda | tr '\n' ' '; echo
            export SCONE_FSPF=/fspf/fspf-file/fs.fspf SCONE_FSPF_KEY=$(awk '{print $11}' /fspf/native-files/keytag) SCONE_FSPF_TAG=$(awk '{print $9}' /fspf/native-files/keytag)
            fspf-mount --scone 2> $OUT/mount.err
            grep ' fuse' /proc/self/mounts | cut -d' ' -f2 | tr '\n' ' '; echo
            cmp /opt/scone/lib/libc.so.6 /usr/lib/x86_64-linux-gnu/libc.so.6 && readlink /root/miniconda/bin/python3 && cat /fspf/encrypted-files/hello.txt
            umount /fspf/encrypted-files
            for i in $(seq 50); do grep -q ' fuse' /proc/self/mounts || break; sleep 0.1; done
            grep -c ' fuse' /proc/self/mounts || true
            mount -o remount,bind,rw /root/miniconda && echo '# changed' >> /root/miniconda/lib/site.py
            fspf-mount --scone 2>> $OUT/mount.err
            cat /root/miniconda/lib/site.py > /dev/null 2> $OUT/read.err || echo refused
            umount /fspf/encrypted-files
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out == "/opt/scone/lib: libc.so.6  /root/miniconda: bin lib \n/fspf/encrypted-files /opt/scone/lib /root/miniconda \n"
                + "../lib/site.py\nHello World\n0\nrefused\n", "\(r.out)")
    }

    /// A rendered SCONE session as configuration: `--scone-session S --service N` mounts the
    /// service's fspf_path (regions at their paths) and its image's volume at its path, with the
    /// keys and tags the session gives; if any of them is refused, nothing stays mounted.
    @Test func sconeSessionMountsWhatTheRuntimeWouldShowTheService() {
        let s = Sandbox()
        let r = sandboxed(s, """
            mkdir -p /fspf/input/code /data && echo 'print(1)' > /fspf/input/code/job.py && echo '1,2' > /data/rows.csv
            cd /fspf && . $S/fspf.sh > /dev/null
            fspf encrypt /data --out /fspf/encrypted-data --format env --env-prefix DATA > /fspf/data.env
            . /fspf/data.env
            session() {
                cat <<YAML
            name: spark
            version: "0.3"
            services:
              - name: driver
                image_name: spark_image
                command: python3 /fspf/encrypted-files/job.py
                fspf_path: /fspf/encrypted-files/volume.fspf
                fspf_key: $SCONE_FSPF_KEY
                fspf_tag: $SCONE_FSPF_TAG
            images:
              - name: spark_image
                volumes:
                  - name: data
                    path: /fspf/encrypted-data
            volumes:
              - name: data
                fspf_key: $DATA_KEY
                fspf_tag: $1
            YAML
            }
            session $DATA_TAG > /fspf/session.yaml
            fspf-mount --scone-session /fspf/session.yaml --service driver 2> $OUT/mount.err
            cat /fspf/encrypted-files/job.py /fspf/encrypted-data/rows.csv
            umount /fspf/encrypted-files /fspf/encrypted-data
            session 00000000000000000000000000000000 > /fspf/stale.yaml
            fspf-mount --scone-session /fspf/stale.yaml --service driver 2> $OUT/stale.err || echo "refused $?"
            grep -c ' fuse' /proc/self/mounts || true
            fspf-mount --scone-session /fspf/session.yaml --service executor 2> $OUT/none.err || echo "refused $?"
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out == "print(1)\n1,2\nrefused 10\n0\nrefused 65\n", "\(r.out)")
        #expect(s.sh("cat none.err").out == "fspf-mount: /fspf/session.yaml: no service 'executor' (services: driver)\n")
    }

    /// deploy/scone/build.sh renders runtime-session.yaml; with the volumes where the session
    /// says they are, `--scone-session … --service spark-driver` mounts both over themselves.
    @Test func deployRuntimeSessionMountsBothVolumes() {
        let s = Sandbox()
        let r = sandboxed(s, """
            mkdir -p /build/input/code && cp '\(Tool.packageRoot)/examples/nyc-taxi/job.py' /build/input/code/
            python '\(Tool.packageRoot)/examples/nyc-taxi/generate.py' /build/input/data --rows 500 > /dev/null
            FSPF_MOUNT_MRENCLAVE=$(printf '%064d' 0) '\(Tool.packageRoot)/deploy/scone/build.sh' /build/input /build/out > /dev/null
            test "$(stat -c %a /build/out/runtime-session.yaml)" = 600
            mkdir /fspf && mv /build/out/encrypted-files /fspf/code && mv /build/out/encrypted-data /fspf/data
            fspf-mount --scone-session /build/out/runtime-session.yaml --service spark-driver 2> $OUT/mount.err
            cmp /fspf/code/job.py /build/input/code/job.py && diff -r /fspf/data /build/input/data && echo served
            umount /fspf/code /fspf/data
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out == "served\n", "\(r.out)")
    }

    /// SCONE's writable places: an ephemeral region (`addr --ephemeral`) appears empty and
    /// writable at its path in every run, its ciphertext in a directory of its own that goes with
    /// the mount; a session volume with a key and no tag is an output volume, created over its
    /// own path, written, sealed, and read in the next run under the tag it left.
    @Test func ephemeralRegionsAndSessionOutputVolumes() {
        let s = Sandbox()
        let r = sandboxed(s, """
            mount -t tmpfs tmpfs /var/tmp
            mkdir -p /fspf/input/code && echo 'print(1)' > /fspf/input/code/job.py
            cd /fspf
            fspf create fs.fspf > /dev/null
            fspf addr fs.fspf / --not-protected --kernel / > /dev/null
            fspf addr fs.fspf /fspf/code --encrypted --kernel /fspf/code > /dev/null
            fspf addr fs.fspf /scratch --encrypted --ephemeral > /dev/null
            fspf addf fs.fspf /fspf/code /fspf/input/code /fspf/code > /dev/null
            fspf addf fs.fspf /scratch /fspf/input/code 2> $OUT/addf.err || echo "addf refused $?"
            fspf encrypt fs.fspf > keytag
            export SCONE_FSPF=/fspf/fs.fspf SCONE_FSPF_KEY=$(awk '{print $11}' keytag) SCONE_FSPF_TAG=$(awk '{print $9}' keytag)
            fspf-mount --scone 2> $OUT/mount.err
            grep ' fuse' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1 | tr '\n' ' '; echo
            echo written > /scratch/out.txt && cat /scratch/out.txt /fspf/code/job.py
            ls /var/tmp | wc -l
            grep -rl written /var/tmp || echo "no plaintext on disk"
            umount /fspf/code
            for i in $(seq 50); do grep -q ' fuse' /proc/self/mounts || [ -n "$(ls /var/tmp)" ] || break; sleep 0.1; done
            echo "after: $(ls -A /scratch | wc -l) $(ls /var/tmp | wc -l)"
            fspf-mount --scone 2>> $OUT/mount.err
            echo "next run: $(ls -A /scratch | wc -l)"
            umount /fspf/code

            export KEY=$(fspf keygen)
            session() {
                cat <<YAML
            name: job
            version: "0.3"
            services:
              - name: driver
                image_name: job_image
                fspf_path: /fspf/fs.fspf
                fspf_key: $SCONE_FSPF_KEY
                fspf_tag: $SCONE_FSPF_TAG
            images:
              - name: job_image
                volumes:
                  - name: results
                    path: /fspf/results
            volumes:
              - name: results
                fspf_key: $KEY
            ${1:-}
            YAML
            }
            session > first.yaml
            mkdir tags
            for i in $(seq 50); do grep -q ' fuse' /proc/self/mounts || break; sleep 0.1; done
            fspf-mount --scone-session first.yaml --service driver --tag-out /fspf/tags 2>> $OUT/mount.err
            echo 42 > /fspf/results/answer && ls -A /fspf/results
            test "$(fspf seal /fspf/results)" = "$(cat tags/results.tag)" && echo "tag file follows"
            echo 43 > /fspf/results/answer
            TAG=$(fspf seal /fspf/results --unmount)
            umount /fspf/code
            test "$TAG" = "$(cat tags/results.tag)" && fspf verify /fspf/results --key-env KEY --tag "$TAG" > /dev/null && echo verified
            session "    fspf_tag: $TAG" > second.yaml
            for i in $(seq 50); do grep -q ' fuse' /proc/self/mounts || break; sleep 0.1; done
            fspf-mount --scone-session second.yaml --service driver 2>> $OUT/mount.err
            cat /fspf/results/answer
            echo 44 > /fspf/results/answer 2> /dev/null || echo "read-only next run"
            umount /fspf/code /fspf/results
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out == "addf refused 64\n/fspf/code ro /scratch rw \nwritten\nprint(1)\n1\nno plaintext on disk\nafter: 0 0\nnext run: 0\n"
                + "answer\ntag file follows\nverified\n43\nread-only next run\n", "\(r.out)")
        #expect(s.sh("cat addf.err").out.contains("lies in the ephemeral region /scratch"), "\(s.sh("cat addf.err").out)")
    }
}
