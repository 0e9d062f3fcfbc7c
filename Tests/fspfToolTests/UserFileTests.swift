import Testing
import FSPFTestSupport

/// Files the tools make for their user — keys, drafts, the simulated attester's key — are new
/// files (issue 31, item 6): `keygen --out` and `encrypt --key-out` used to replace another
/// volume's key without a word, and a link there by a plain file. An existing file or link is
/// exit 73 and stays as it was; the replace flag replaces it (a link is replaced, never followed).
@Suite struct UserFileTests {
    static let checks = #"""
        echo other-volume-key > precious && ln -s precious link
        keep() { must [ "$(cat precious)" = other-volume-key ]; must [ -L link ]; }
        refused() {  # runs the command: exit 73, the line, nothing replaced
          status=0; "$@" > /dev/null 2> err || status=$?
          must [ "$status" = 73 ]
          must grep -q "already exists; not replaced" err
          keep
        }

        """#

    @Test func keysAndDraftsAreNewFilesUnlessReplaced() {
        let s = Sandbox()
        s.makeInput()
        let r = s.bash(UserFileTests.checks + #"""
            for target in precious link; do
              refused fspf keygen --out $target
              must grep -q -- "--replace replaces it" err
              refused fspf encrypt in --out vol-$target --key-out $target
              must grep -q -- "--replace-key-out replaces it" err
              refused fspf create $target
              refused fspf attester init --out $target
            done
            # A refused --key-out refuses encrypt before the volume is written: the volume used to
            # be written first, its key then going to no output at all.
            never [ -e vol-precious/volume.fspf ]
            # Asked to replace: the link goes, its target stays.
            fspf keygen --out link --replace
            never [ -L link ]
            must [ "$(wc -c < link)" = 65 ]
            must [ "$(cat precious)" = other-volume-key ]
            fspf encrypt in --out vol --key-out precious --replace-key-out > /dev/null
            must [ "$(wc -c < precious)" = 65 ]
            must [ "$(stat -c %a precious)" = 600 ]
            fspf create precious --replace > /dev/null
            must grep -q '"format":"fspf-draft-2"' precious
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
    }
}
