import Testing
import FSPFTestSupport

/// packaging/mount.fuse.fspf, the helper mount(8) runs for `-t fuse.fspf` and fstab lines, run
/// from the source tree against the debug fspf-mount (PackagingTests runs the installed one).
@Suite struct MountHelperTests {
    static let helper = Tool.packageRoot + "/packaging/mount.fuse.fspf"

    /// The source and mount point are paths whatever they are called: a source named
    /// `--no-tag-check` (fstab's first field, a mount caller's argument) used to become that flag,
    /// and the volume mounted under a wrong tag without a check.
    @Test func sourceAndMountPointNamedLikeFlagsStayPaths() {
        let s = Sandbox()
        let r = s.bash(#"""
            cp -a '\#(ReferenceVolume.path)/volume-v2' ./--no-tag-check
            mkdir ./--read-write
            wrong=$(printf '%064d' 0)
            status=0
            FSPF_MOUNT='\#(Tool.mountBinary)' '\#(MountHelperTests.helper)' --no-tag-check --read-write \
              -o key-file='\#(ReferenceVolume.path)/key.hex',tag=$wrong,log-file=none 2> refused || status=$?
            echo "wrong tag: $status $(cat refused)"
            must [ "$status" = 10 ]
            must grep -q 'is not the expected' refused
            never grep -q " $PWD/--read-write " /proc/mounts
            FSPF_MOUNT='\#(Tool.mountBinary)' '\#(MountHelperTests.helper)' --no-tag-check --read-write \
              -o key-file='\#(ReferenceVolume.path)/key.hex',tag='\#(ReferenceVolume.tag)',log-file=none
            grep " $PWD/--read-write " /proc/mounts | grep -q 'fuse.fspf ro,'
            diff -r '\#(ReferenceVolume.path)/input' ./--read-write
            umount ./--read-write
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }
}
