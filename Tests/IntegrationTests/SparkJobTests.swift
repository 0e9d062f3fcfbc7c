import Foundation
import Testing
import FSPFTestSupport

/// The small confidential Spark job (examples/nyc-taxi) with Spark itself reading through two
/// real mounts — the job code from one volume as `local:///…/job.py`, the Parquet data from the
/// other — must give exactly the result of the same job on the plain files. Needs the project's
/// .venv with PySpark and Java 17, which `make test` installs (scripts/install-deps.sh --spark).
@Suite(.serialized) struct SparkJobTests {
    /// The shell prelude that puts the project's PySpark first on PATH.
    static var withSpark: String {
        get throws {
            let venv = Tool.packageRoot + "/.venv/bin"
            try #require(FileManager.default.isExecutableFile(atPath: venv + "/spark-submit"),
                         "no PySpark in \(venv): run scripts/install-deps.sh --spark (make test does)")
            return "set -e\nexport PATH='\(venv)':$PATH PYSPARK_PYTHON='\(venv)/python' SPARK_LOCAL_IP=127.0.0.1\n"
        }
    }

    @Test func sparkReadsThroughTheMountAndAgreesWithThePlainRun() throws {
        let s = Sandbox()
        let r = s.sh(try Self.withSpark + """
            mkdir code && cp '\(Tool.packageRoot)/examples/nyc-taxi/job.py' code/
            python '\(Tool.packageRoot)/examples/nyc-taxi/generate.py' data --rows 30000 >/dev/null
            fspf encrypt code --out code-vol --reproducible --key-out code.key --format json > code.json
            fspf encrypt data --out data-vol --key-out data.key --format json > data.json
            tag() { python -c 'import json, sys; print(json.load(open(sys.argv[1]))["tag"])' "$1"; }
            mkdir -p mnt/code mnt/data
            '\(Tool.mountBinary)' code-vol mnt/code --key-file code.key --tag "$(tag code.json)"
            '\(Tool.mountBinary)' data-vol mnt/data --key-file data.key --tag "$(tag data.json)"
            submit() { spark-submit --master 'local[2]' --conf spark.log.level=WARN --conf spark.ui.enabled=false "$@"; }
            submit "local://$PWD/mnt/code/job.py" "$PWD/mnt/data" --result mounted.json > mounted.out 2> mounted.err || { tail -5 mounted.err; exit 1; }
            umount mnt/code mnt/data
            submit code/job.py data --result plain.json > plain.out 2> plain.err || { tail -5 plain.err; exit 1; }
            cmp mounted.json plain.json
            head -1 mounted.out
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out.hasSuffix("rows: 30000\n"), "\(r.out)")
        let result = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.path + "/mounted.json"))) as? [String: Any]
        let groups = result?["groups"] as? [[String: Any]] ?? []
        // Passenger counts null and 0–6 by payment types 1–4: every group present, trips add up.
        #expect(groups.count == 32, "\(groups.count) groups")
        #expect(groups.reduce(0) { $0 + ($1["trips"] as? Int ?? 0) } == 30000)
        #expect(Sandbox.mounts(below: s.path).isEmpty)
    }

    /// The job writes its aggregates as Parquet through Spark's output committer (task files
    /// under _temporary, renamed into place) into a read-write mount; after `fspf seal
    /// --unmount` the volume verifies under the new tag and its decrypted Parquet holds exactly
    /// the rows of the same job writing to a plain directory.
    @Test func sparkWritesItsResultIntoAReadWriteMount() throws {
        let s = Sandbox()
        let r = s.sh(try Self.withSpark + """
            python '\(Tool.packageRoot)/examples/nyc-taxi/generate.py' data --rows 20000 >/dev/null
            fspf keygen > out.key
            mkdir mnt && '\(Tool.mountBinary)' results mnt --create --key-file out.key --tag-out results.tag
            submit() { spark-submit --master 'local[2]' --conf spark.log.level=WARN --conf spark.ui.enabled=false "$@"; }
            job='\(Tool.packageRoot)/examples/nyc-taxi/job.py'
            submit "$job" data --output "$PWD/mnt/aggregates" > mounted.out 2> mounted.err || { tail -5 mounted.err; exit 1; }
            test -f mnt/aggregates/_SUCCESS && ! test -e mnt/aggregates/_temporary
            TAG=$(fspf seal mnt --unmount)
            test "$TAG" = "$(head -1 results.tag)"
            fspf verify results --key-file out.key --tag "$TAG"
            fspf decrypt results --out decrypted --key-file out.key --tag "$TAG"
            submit "$job" data --output "$PWD/plain" > plain.out 2> plain.err || { tail -5 plain.err; exit 1; }
            python - <<'PY'
            import pyarrow.parquet as pq
            rows = lambda d: sorted(map(str, pq.read_table(d).to_pylist()))
            a, b = rows("decrypted/aggregates"), rows("plain")
            assert a == b and len(a) == 32, (len(a), len(b))
            print("parquet rows equal:", len(a))
            PY
            """)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out.contains("parquet rows equal: 32"), "\(r.out)")
        #expect(Sandbox.mounts(below: s.path).isEmpty)
    }
}
