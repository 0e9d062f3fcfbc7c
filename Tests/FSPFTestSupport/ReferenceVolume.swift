/// fixtures/reference: a format-2 volume (volume-v2), its key (key.hex) and the plaintext it was
/// made from (input), with the known tag that pins it. The suites that read it from outside the
/// test process (C programs, a chroot, a container) share these.
public enum ReferenceVolume {
    public static let path = Tool.packageRoot + "/fixtures/reference"
    public static let tag = "aeeeb7d3835293ccae928fa8aefedce13401545411b06fbe4e0a5f73b47e3ad7"

    /// Python that opens the reference volume, found at `dir`, through the fspf package and
    /// compares every regular file of its input with what the volume serves, counting them in
    /// `n`. Its double quotes are escaped, for a `python3 -c "…"` inside single-quoted `sh -c`.
    public static func pythonReadsEveryFile(under dir: String) -> String {
        #"""
        import fspf, pathlib
        with fspf.Volume(\"\#(dir)/volume-v2\", key_file=\"\#(dir)/key.hex\", tag=\"\#(tag)\") as v:
            n = 0
            for p in pathlib.Path(\"\#(dir)/input\").rglob(\"*\"):
                if p.is_file() and not p.is_symlink():
                    assert v.read_bytes(str(p.relative_to(\"\#(dir)/input\"))) == p.read_bytes(), p
                    n += 1
        """#
    }
}
