import Testing
import FSPFTestSupport

/// The storage attacker's links (issue 31, item 1): a symbolic link planted where a command that
/// writes expects its own directory or file — an object store, a fan-out directory, an output
/// file, a record, a temporary name — must make the command refuse or remove the link, never
/// follow it. Each test keeps a decoy tree outside the volume and checks that no byte, name or
/// mode in it changed. (The read-write mount's: PlantedLinkMountTests.)
@Suite struct PlantedLinkTests {
    /// A decoy tree, and a fingerprint of everything in it: names, types, modes, sizes, contents.
    static let decoy = #"""
        mkdir -p decoy/sub && echo keep > decoy/a && echo keep > decoy/sub/b && chmod 640 decoy/a
        fingerprint() { (cd decoy && find . -printf '%p %y %m %s\n' | sort && find . -type f -exec sha256sum {} + | sort); }
        fingerprint > decoy.before
        untouched() { fingerprint > decoy.after; diff decoy.before decoy.after || { echo "the decoy changed"; exit 1; }; }

        """#

    /// fspf encrypt and fspf upgrade (the same writer): the hidden store an earlier build left
    /// is replaced, and when it is a link the link goes, not what it points at.
    @Test func encryptAndUpgradeReplaceAStoreLinkWithoutFollowingIt() {
        let s = Sandbox()
        s.makeInput()
        let r = s.bash(PlantedLinkTests.decoy + #"""
            mkdir vol && ln -s "$PWD/decoy" vol/.fspf-objects
            fspf encrypt in --out vol --key-out k > line
            fspf verify vol --key-file k --tag "$(awk '{print $9}' line)" --quiet
            must [ -d vol/.fspf-objects ]
            never [ -L vol/.fspf-objects ]
            mkdir new && ln -s "$PWD/decoy" new/.fspf-objects
            fspf upgrade vol --out new --key-file k > line2
            fspf verify new --key-file k --tag "$(awk '{print $9}' line2)" --quiet
            untouched
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }

    /// Step builds: addf's output store, its fan-out directories and an output file of an
    /// authenticated region (a plain copy) planted as links; encrypt F with the store swapped for
    /// a link after addf. The old code deleted the decoy's files through the store link at
    /// `encrypt F` and overwrote a decoy file through the plain copy's link at addf.
    @Test func stepBuildsRefuseLinksInTheirOutputs() {
        let s = Sandbox()
        s.makeInput()
        let r = s.bash(PlantedLinkTests.decoy + #"""
            steps() { fspf create v.pb --replace > /dev/null && fspf addr v.pb / --not-protected --kernel / > /dev/null &&
                      fspf addr v.pb /enc -e --kernel out > /dev/null && fspf addr v.pb /docs -a --kernel plain > /dev/null; }
            expect_refusal() {  # status, and the line naming what was refused
              status=0; "$@" > /dev/null 2> err || status=$?
              [ "$status" = 65 ] || { echo "exit $status, expected 65: $*"; cat err; exit 1; }
              grep -q 'a symbolic link where fspf expects a directory of its own' err || grep -q 'a symbolic link where fspf expects a file of its own' err || { cat err; exit 1; }
            }
            # The store itself.
            steps; mkdir out && ln -s "$PWD/decoy" out/.fspf-objects
            expect_refusal fspf addf v.pb /enc in out
            untouched
            # Every fan-out directory.
            rm out/.fspf-objects && mkdir out/.fspf-objects
            for i in $(seq 0 255); do ln -s "$PWD/decoy" "out/.fspf-objects/$(printf %02x "$i")"; done
            steps; expect_refusal fspf addf v.pb /enc in out
            untouched
            # A plain copy's file (authenticated region, output apart from the input).
            rm -r out; mkdir -p plain && ln -s "$PWD/decoy/a" plain/readme.md
            steps; expect_refusal fspf addf v.pb /docs in/docs plain
            untouched
            # The store swapped for a link between addf and encrypt F: the seal's cleanup of the
            # store must not walk it.
            rm plain/readme.md; steps
            fspf addf v.pb /enc in out > /dev/null && fspf addf v.pb /docs in/docs plain > /dev/null
            mv out/.fspf-objects real-store && ln -s "$PWD/decoy" out/.fspf-objects
            expect_refusal fspf encrypt v.pb
            untouched
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }

    /// fspf decrypt: its temporary directory's name taken by a link, or by a directory holding
    /// one; the output tree is made through descriptors only.
    @Test func decryptRemovesLinksAtItsTemporaryName() {
        let s = Sandbox()
        s.makeInput()
        let r = s.bash(PlantedLinkTests.decoy + #"""
            fspf encrypt in --out vol --key-out k > line
            # `exec` keeps the shell's pid: the temporary name (.NAME.fspf-tmp-PID) is known before.
            sh -c 'ln -s "$PWD/decoy" ".plain.fspf-tmp-$$"; exec fspf decrypt vol --key-file k --out plain'
            diff -r in plain
            sh -c 'mkdir ".plain2.fspf-tmp-$$" && ln -s "$PWD/decoy" ".plain2.fspf-tmp-$$/docs"; exec fspf decrypt vol --key-file k --out plain2'
            diff -r in plain2
            untouched
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }

    /// The key server's store: `volumes/` swapped for a link is refused; a record planted as a
    /// link is refused when read (not followed, a FIFO not waited on) and replaced, not
    /// followed, by register --replace.
    @Test func keyServerStoreRefusesLinks() {
        let s = Sandbox()
        s.makeInput()
        let r = s.bash(PlantedLinkTests.decoy + #"""
            fspf keyserver init --store ks > /dev/null
            echo "{\"mrenclave\": [\"$(printf 'ab%.0s' $(seq 32))\"]}" > policy.json
            fspf encrypt in --out vol --register ks --policy policy.json --volume-name demo --key-out k > line
            tag=$(awk '{print $9}' line)
            mv ks/volumes/demo.json saved.json && ln -s "$PWD/decoy/a" ks/volumes/demo.json
            status=0; fspf keyserver list --store ks > /dev/null 2> err || status=$?
            [ "$status" = 65 ] && grep -q 'a symbolic link where fspf expects a file of its own' err || { echo "list: $status"; cat err; exit 1; }
            fspf keyserver register --store ks --volume-name demo --key-file k --tag "$tag" --policy policy.json --replace > /dev/null
            must [ -f ks/volumes/demo.json ]
            never [ -L ks/volumes/demo.json ]
            rm ks/volumes/demo.json && mkfifo ks/volumes/demo.json
            status=0; timeout 20 fspf keyserver list --store ks > /dev/null 2> err || status=$?
            [ "$status" = 65 ] && grep -q 'a special file where fspf expects a file of its own' err || { echo "FIFO: $status"; cat err; exit 1; }
            rm ks/volumes/demo.json
            mv ks/volumes ks/volumes.real && ln -s "$PWD/decoy" ks/volumes
            status=0; fspf keyserver register --store ks --volume-name other --key-file k --tag "$tag" --policy policy.json > /dev/null 2> err || status=$?
            [ "$status" = 65 ] && grep -q 'ks/volumes: a symbolic link' err || { echo "volumes: $status"; cat err; exit 1; }
            untouched
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }
}
