import Testing
import FSPFTestSupport

/// The storage attacker's links against a read-write mount (issue 31, item 1): planted before
/// the mount (its start-up cleanup used to walk a store that was a link and delete every file
/// below the target, as root) and while the daemon runs (a fan-out directory swapped for a link
/// before a seal removes an object). A decoy tree outside the volume must never change.
@Suite struct PlantedLinkMountTests {
    static let setup = #"""
        mkdir -p decoy/sub && echo keep > decoy/a && echo keep > decoy/sub/b
        fingerprint() { (cd decoy && find . -printf '%p %y %m %s\n' | sort && find . -type f -exec sha256sum {} + | sort); }
        untouched() { fingerprint > decoy.after; diff decoy.before decoy.after || { echo "the decoy changed"; exit 1; }; }
        mkdir -p in mnt && echo secret > in/victim && seq 1 10000 > in/other
        fspf keygen > key
        tag=$(fspf encrypt in --out vol --key-file key | awk '{print $9}')

        """#

    /// The store replaced by a link: refused before anything is read, written or removed.
    @Test func aStoreThatIsALinkIsRefused() {
        let s = Sandbox()
        let r = s.bash(PlantedLinkMountTests.setup + #"""
            fingerprint > decoy.before
            mv vol/.fspf-objects objects && ln -s "$PWD/decoy" vol/.fspf-objects
            status=0; '\#(Tool.mountBinary)' vol mnt --read-write --key-file key --tag "$tag" --log-file none 2> err || status=$?
            echo "exit $status: $(cat err)"
            must [ "$status" = 65 ]
            must grep -q 'vol/.fspf-objects: a symbolic link where fspf expects a directory of its own' err
            never grep -q " $PWD/mnt " /proc/mounts
            untouched
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }

    /// Links below the store and at the metadata's temporary names, what a crashed mount or an
    /// attacker left: the start-up cleanup removes them as links, and the mount works.
    @Test func linksBelowTheStoreAreRemovedNotFollowed() {
        let s = Sandbox()
        let r = s.bash(PlantedLinkMountTests.setup + #"""
            # Names the cleanup removes: an unsealed store, a stray fan-out directory and object, a
            # metadata file a seal was writing; each a link to the decoy or a file in it.
            ln -s "$PWD/decoy" vol/.fspf-objects/written
            ln -s "$PWD/decoy/sub" vol/.fspf-objects/zz
            fanout=$(ls vol/.fspf-objects | grep -v -e written -e zz | head -1)
            ln -s "$PWD/decoy/a" "vol/.fspf-objects/$fanout/0123456789abcdef0123456789abcd"
            ln -s "$PWD/decoy/a" vol/volume.fspf.tmp-0123abcd
            fingerprint > decoy.before
            '\#(Tool.mountBinary)' vol mnt --read-write --key-file key --tag "$tag" --log-file none
            never [ -L vol/.fspf-objects/written ]
            never [ -L vol/.fspf-objects/zz ]
            never [ -L vol/volume.fspf.tmp-0123abcd ]
            never [ -L "vol/.fspf-objects/$fanout/0123456789abcdef0123456789abcd" ]
            echo more > mnt/new && cat mnt/victim > /dev/null
            new=$(fspf seal mnt --unmount)
            must [ "$(fspf cat vol new --key-file key --tag "$new")" = more ]
            untouched
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }

    /// While the daemon runs: a sealed object's fan-out directory swapped for a link to a decoy
    /// directory holding a file of the object's name, then the file deleted through the mount
    /// and a seal (which removes the objects the new version no longer names); and every fan-out
    /// directory of `written/` planted as a link before a write.
    @Test func linksPlantedWhileMountedAreNotFollowed() {
        let s = Sandbox()
        let r = s.bash(PlantedLinkMountTests.setup + #"""
            '\#(Tool.mountBinary)' vol mnt --read-write --key-file key --tag "$tag" --log-file none
            trap 'umount -l mnt 2>/dev/null || true' EXIT
            for o in $(cd vol/.fspf-objects && echo */*); do
              d=${o%/*}; mkdir -p "decoy/fan-$d" && cp "vol/.fspf-objects/$o" "decoy/fan-$d/${o#*/}"
              mv "vol/.fspf-objects/$d" "moved-$d" && ln -s "$PWD/decoy/fan-$d" "vol/.fspf-objects/$d"
            done
            fingerprint > decoy.before
            rm mnt/victim mnt/other
            fspf seal mnt > /dev/null
            untouched
            mkdir -p vol/.fspf-objects/written
            for i in $(seq 0 255); do ln -s "$PWD/decoy" "vol/.fspf-objects/written/$(printf %02x "$i")"; done
            never sh -c 'echo data > mnt/written-file && sync mnt/written-file' 2> write.err
            fspf seal mnt --unmount > /dev/null || true
            untouched
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }
}
