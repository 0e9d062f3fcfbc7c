import Foundation
import Testing
import FSPFTestSupport

/// The small confidential Spark job (examples/nyc-taxi) with Spark itself reading through two
/// real mounts — the job code from one volume as `local:///…/job.py`, the Parquet data from the
/// other — must give exactly the result of the same job on the plain files. Needs the project's
/// .venv with PySpark and Java 17, which `make test` installs (scripts/install-deps.sh --spark).
@Suite(.serialized) struct SparkJobTests {
    @Test func sparkReadsThroughTheMountAndAgreesWithThePlainRun() throws {
        let venv = Tool.packageRoot + "/.venv/bin"
        try #require(FileManager.default.isExecutableFile(atPath: venv + "/spark-submit"),
                     "no PySpark in \(venv): run scripts/install-deps.sh --spark (make test does)")
        let s = Sandbox()
        let r = s.sh("""
            set -e
            export PATH='\(venv)':$PATH PYSPARK_PYTHON='\(venv)/python' SPARK_LOCAL_IP=127.0.0.1
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
}
