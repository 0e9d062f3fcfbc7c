import Foundation
import Testing
import FSPFTestSupport

/// Published SCONE build scripts (fixtures/scone, each as published with `scone fspf` replaced
/// by `fspf`) run unchanged, absolute paths included, in a private mount namespace with a fresh
/// root (fixtures/scone/sandbox.sh); the workload then finds the files where SCONE's runtime
/// shows them, through `fspf-mount --scone`.
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
    @Test(.timeLimit(.minutes(5))) func sparkDemoScriptRunsTwiceAndSparkFindsTheJobAtSconesPath() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Tool.packageRoot + "/.venv/bin/spark-submit"),
                     "no PySpark in .venv: run scripts/install-deps.sh --spark (make test does)")
        let s = Sandbox()
        let r = sandboxed(s, """
            mkdir -p /fspf/input/code
            cp '\(Tool.packageRoot)/examples/nyc-taxi/job.py' /fspf/input/code/
            python '\(Tool.packageRoot)/examples/nyc-taxi/generate.py' /fspf/data --rows 3000 > /dev/null
            bash $S/fspf.sh > $OUT/first.out
            first=$(awk '{print $9}' /fspf/keytag.txt)
            bash $S/fspf.sh > $OUT/second.out
            . /fspf/env.sh
            test "$first" != "$DRIVER_MAIN_FSPF_TAG"
            echo objects $(find /fspf/encrypted-files/.fspf-objects -type f | wc -l)
            fspf verify /fspf/encrypted-files --key-env DRIVER_MAIN_FSPF_KEY --tag "$DRIVER_MAIN_FSPF_TAG" --quiet
            SCONE_FSPF=$DRIVER_MAIN_FSPF SCONE_FSPF_KEY=$DRIVER_MAIN_FSPF_KEY SCONE_FSPF_TAG=$DRIVER_MAIN_FSPF_TAG fspf-mount --scone 2> $OUT/mount.err
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

    /// SCONE's hello-world image: /fspf.pb beside the encrypted /app, the key line written into
    /// /app after addf. /app shows exactly what addf saw, at /app; a plain mount of /fspf.pb
    /// serves the region's content at its mount point.
    @Test(.timeLimit(.minutes(2))) func helloWorldLayoutMetadataBesideTheRegion() {
        let s = Sandbox()
        let r = sandboxed(s, """
            mkdir -p /app/lib && echo 'print("Hello World")' > /app/hello.py && echo 'x = 1' > /app/lib/util.py
            cp -a /app $OUT/app-original
            bash $S/hello-world.sh > $OUT/build.out
            export SCONE_FSPF=/fspf.pb SCONE_FSPF_KEY=$(awk '{print $11}' /app/keytag) SCONE_FSPF_TAG=$(awk '{print $9}' /app/keytag)
            fspf ls -R /fspf.pb --key-env SCONE_FSPF_KEY --tag "$SCONE_FSPF_TAG"
            ls -A /app | sort | tr '\\n' ' '; echo
            fspf-mount --scone 2> $OUT/mount.err
            diff -r /app $OUT/app-original && echo same
            umount /app
            mkdir /view && fspf-mount /fspf.pb /view --key-env SCONE_FSPF_KEY --tag-env SCONE_FSPF_TAG 2>> $OUT/mount.err
            diff -r /view $OUT/app-original && echo plain-mount-same
            umount /view
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out == "app/\napp/hello.py\napp/lib/\napp/lib/util.py\n.fspf-objects hello.py keytag lib \nsame\nplain-mount-same\n", "\(r.out)")
    }

    /// SCONE's File Shield documentation example: metadata in its own directory, the key line
    /// written into the source directory after addf. `fspf verify` takes the directory.
    @Test(.timeLimit(.minutes(2))) func fileShieldExampleKeytagIntoTheSourceStaysOut() {
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
}
