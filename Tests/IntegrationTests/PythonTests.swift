import Foundation
import Testing
import FSPFTestSupport

/// The Python package (python/fspf) under pytest: the Volume API, fsspec with pyarrow and pandas,
/// key sources including the key server, examples/nyc-taxi/notebook.py against the plain run.
/// Uses the project's .venv (scripts/install-deps.sh --spark, which `make test` runs).
@Suite struct PythonTests {
    @Test func pytestPasses() throws {
        let python = Tool.packageRoot + "/.venv/bin/python"
        try #require(FileManager.default.isExecutableFile(atPath: python),
                     "no .venv: run scripts/install-deps.sh --spark (make test does)")
        var env = ["FSPF_BIN": Tool.binary, "FSPF_LIBRARY": CLibrary.path]
        // In `make test-asan` the library is instrumented: the interpreter needs the runtime first.
        if !CLibrary.sanitizerFlag.isEmpty { env["LD_PRELOAD"] = try CLibrary.asanRuntime() }
        let r = Tool.sh("'\(python)' -m pytest -q -p no:cacheprovider tests", cwd: Tool.packageRoot + "/python", env: env)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out.contains(" passed"), "\(r.out)")
    }
}
