import Foundation
import Testing
import FSPFCore
import FSPFTestSupport

/// What `make install`, `make deb` and `make wheel` produce, checked as a user meets it: installed
/// into a staging directory and removed again; the .deb installed with apt into a clean Debian
/// chroot that has no Swift, where the tools, the mount (also through `mount -t fuse.fspf` and
/// /etc/fstab) and the wheel run; another Swift package built against FSPFCore. The artefacts come
/// from `make test` (release, man, deb, wheel) before `swift test` runs: building them here would
/// wait on the build directory `swift test` holds.
@Suite(.serialized) struct PackagingTests {
    static let root = Tool.packageRoot
    static let release = root + "/.build/release"
    static let expectedVersion = "fspf \(FSPFVersion.number) (volume formats: reads 1, 2; writes 2)"

    static func artefact(_ directory: String, suffix: String) throws -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let found = try #require(names.filter { $0.hasSuffix(suffix) }.sorted().last,
                                 "nothing ending in \(suffix) in \(directory): run make release man deb wheel (make test does)")
        return directory + "/" + found
    }

    /// make install into a DESTDIR: every piece where the layout says, binaries that need nothing
    /// from the toolchain, man pages that render, completions bash can use, a C program built
    /// through the pkg-config file, the mount helper mounting; make uninstall leaves nothing.
    @Test func installIntoADestdirAndUninstall() throws {
        _ = try PackagingTests.artefact(PackagingTests.root + "/.build/man", suffix: ".1")
        let s = Sandbox()
        let r = s.bash(#"""
            root='\#(PackagingTests.root)'
            export DESTDIR=$PWD/dest PREFIX=/usr/local
            mkdir dest
            "$root/scripts/install.sh" install
            d=dest/usr/local
            for f in $d/bin/fspf $d/bin/fspf-mount $d/lib/libfspf.so $d/include/fspf.h $d/lib/pkgconfig/fspf.pc \
                     $d/share/man/man1/fspf.1 $d/share/man/man1/fspf.encrypt.1 $d/share/man/man1/fspf-mount.1 \
                     $d/share/bash-completion/completions/fspf $d/share/zsh/site-functions/_fspf-mount \
                     $d/share/fish/vendor_completions.d/fspf.fish dest/sbin/mount.fuse.fspf \
                     $d/lib/systemd/system/fspf-mount@.service $d/share/doc/fspf/LICENSE $d/share/doc/fspf/FORMAT.md; do
              [ -s "$f" ] || { echo "missing: $f"; exit 1; }
            done
            echo "files: $(find dest -type f | wc -l)"

            # Only Debian runtime packages behind the binaries: no Swift runtime, no toolchain path.
            for b in $d/bin/fspf $d/bin/fspf-mount $d/lib/libfspf.so; do
              ! ldd "$b" | grep -E 'not found|swift' || { echo "$b needs the toolchain"; exit 1; }
              # SwiftPM's executables look beside themselves ($ORIGIN); nothing else.
              ! readelf -d "$b" | grep -E 'RPATH|RUNPATH' | grep -v 'path: \[\$ORIGIN\]' || { echo "$b has a run path"; exit 1; }
              for lib in $(ldd "$b" | awk '/=> \// {print $3}'); do
                # dpkg knows each file under one of its names (merged /usr: /lib or /usr/lib).
                real=$(readlink -f "$lib") pkg=""
                for name in "$lib" "$real" "${lib#/usr}" "${real#/usr}" "/usr$lib"; do
                  pkg=$(dpkg -S "$name" 2>/dev/null | head -1 | cut -d: -f1) || true
                  [ -z "$pkg" ] || break
                done
                echo "${pkg:-unpackaged:$lib}"
              done
            done | sort -u > packages
            echo "packages: $(tr '\n' ' ' < packages)"
            ! grep -vxE 'libc6|libfuse3-3|libssl3|libsodium23|libstdc\+\+6|libgcc-s1' packages
            readelf -d $d/lib/libfspf.so > dynamic
            grep -q 'Library soname: \[libfspf.so\]' dynamic
            $d/bin/fspf --version > version; $d/bin/fspf-mount --version >> version

            # Man pages: render and say what the commands take.
            mandoc -T utf8 $d/share/man/man1/fspf.encrypt.1 | col -b > encrypt.txt
            grep -q -- '--key-out' encrypt.txt
            mandoc -T utf8 $d/share/man/man1/fspf-mount.1 | col -b > mount.txt
            grep -q -- '--read-write' mount.txt
            # bash completes subcommands and options from the installed script.
            bash -c "source $d/share/bash-completion/completions/fspf
              COMP_WORDS=(fspf enc); COMP_CWORD=1; COMP_LINE='fspf enc'; COMP_POINT=8
              _fspf; printf '%s\n' \"\${COMPREPLY[@]}\"" > completed
            grep -qx encrypt completed

            # A C program built through pkg-config against the installed header and library reads
            # the reference volume.
            flags=$(PKG_CONFIG_PATH=$d/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$DESTDIR pkg-config --cflags --libs fspf)
            clang -std=c11 -D_GNU_SOURCE -Wall -Werror '\#(PackagingTests.root)/Tests/libfspfTests/c/fspf_check.c' $flags -lpthread -o check
            LD_LIBRARY_PATH=$d/lib ./check '\#(ReferenceVolume.path)/volume-v2' '\#(ReferenceVolume.path)/key.hex' \
              \#(ReferenceVolume.tag) '\#(ReferenceVolume.path)/input'

            # The mount helper as mount(8) runs it, with fstab-style options.
            cp -a '\#(ReferenceVolume.path)/volume-v2' vol
            echo '\#(ReferenceVolume.tag)' > tag
            mkdir mnt
            FSPF_MOUNT=$PWD/$d/bin/fspf-mount dest/sbin/mount.fuse.fspf vol mnt \
              -o rw,nofail,_netdev,key-file='\#(ReferenceVolume.path)/key.hex',tag-file=$PWD/tag,log-file=none,nosuid,nodev
            diff -r '\#(ReferenceVolume.path)/input' mnt
            grep " $PWD/mnt " /proc/mounts > mounted
            grep -q 'fuse.fspf ro,nosuid,nodev' mounted
            umount mnt
            ! FSPF_MOUNT=$PWD/$d/bin/fspf-mount dest/sbin/mount.fuse.fspf vol mnt -o key-file=x,frobnicate 2> unknown
            grep -q "unknown option 'frobnicate'" unknown

            # The systemd unit is valid for systemd (its ExecStart pointed at the staged binary).
            mkdir units
            sed "s|/usr/local/bin|$PWD/$d/bin|" $d/lib/systemd/system/fspf-mount@.service > 'units/fspf-mount@.service'
            ln -s 'fspf-mount@.service' 'units/fspf-mount@data.service'
            SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no 'units/fspf-mount@data.service'

            "$root/scripts/install.sh" uninstall
            left=$(find dest -mindepth 1)
            [ -z "$left" ] || { echo "left after uninstall:"; echo "$left"; exit 1; }
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        let versions = (try? String(contentsOfFile: s.path + "/version", encoding: .utf8)) ?? ""
        #expect(versions == PackagingTests.expectedVersion + "\n"
                + PackagingTests.expectedVersion.replacingOccurrences(of: "fspf ", with: "fspf-mount ") + "\n")
    }

    /// make deb, installed with apt into a clean Debian chroot (debootstrap, minbase: no Swift, no
    /// compiler): the tools run, a volume is made and verified, mounted (directly, with
    /// `mount -t fuse.fspf` and from /etc/fstab) and read; the wheel installs into a venv there
    /// and reads the volume in-process.
    @Test func debInstallsWithAptAndWorksInACleanChroot() throws {
        let deb = try PackagingTests.artefact(PackagingTests.root + "/.build/deb", suffix: ".deb")
        let wheel = try PackagingTests.artefact(PackagingTests.root + "/.build/wheel", suffix: ".whl")
        let s = Sandbox()
        let r = s.bash(#"""
            root='\#(PackagingTests.root)'
            c=$PWD/chroot
            '\#(PackagingTests.root)/scripts/debian-chroot.sh' "$c"
            cleanup() { for m in srv/m2 srv/m1 srv/m0 proc dev/fuse; do umount -l "$c/$m" 2>/dev/null || true; done; }
            trap cleanup EXIT
            mount -t proc proc "$c/proc"
            touch "$c/dev/fuse" && mount --bind /dev/fuse "$c/dev/fuse"
            cp '\#(deb)' '\#(wheel)' "$c/tmp/"
            cp -a '\#(ReferenceVolume.path)' "$c/tmp/reference"
            inside() { chroot "$c" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
            ! inside sh -c 'command -v swift || ls /usr/lib/*/libswiftCore.so /usr/lib/swift' 2>/dev/null
            inside apt-get install -y -q /tmp/$(basename '\#(deb)') > apt.log 2>&1 || { tail -20 apt.log; exit 1; }
            inside fspf --version
            inside fspf-mount --version
            inside sh -ec '
              cd /tmp
              mkdir -p in/data && head -c 300000 /dev/urandom > in/data/blob && echo "print(1)" > in/job.py
              fspf encrypt in --out vol --key-out vol.key --format json > vol.json
              tag=$(sed -n "s/.*\"full_tag\" *: *\"\([0-9a-f]*\)\".*/\1/p" vol.json)
              fspf verify vol --key-file vol.key --tag "$tag"
              echo "$tag" > vol.tag
              mkdir /srv/m0 /srv/m1 /srv/m2
              fspf-mount vol /srv/m0 --key-file vol.key --tag "$tag" --log-file none
              cmp /srv/m0/data/blob in/data/blob
              umount /srv/m0
              mount -t fuse.fspf /tmp/vol /srv/m1 -o key-file=/tmp/vol.key,tag-file=/tmp/vol.tag,log-file=none
              cmp /srv/m1/job.py in/job.py
              grep -q "^fspf /srv/m1 fuse.fspf ro" /proc/mounts
              umount /srv/m1
              echo "/tmp/vol /srv/m2 fuse.fspf key-file=/tmp/vol.key,tag-file=/tmp/vol.tag,log-file=none,nofail 0 0" >> /etc/fstab
              mount /srv/m2
              cmp /srv/m2/data/blob in/data/blob
              umount /srv/m2
              echo "deb: tools, mount, mount -t fuse.fspf and fstab ok"'
            inside apt-get install -y -q python3-venv > apt-python.log 2>&1 || { tail -20 apt-python.log; exit 1; }
            inside sh -ec '
              python3 -m venv /opt/venv
              /opt/venv/bin/pip install -q --no-index /tmp/$(basename '\#(wheel)')
              cd / && /opt/venv/bin/python -c "
            \#(ReferenceVolume.pythonReadsEveryFile(under: "/tmp/reference"))
            print(\"wheel: fspf\", fspf.__version__, \"read the reference volume\")
            "'
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out.contains(PackagingTests.expectedVersion), "\(r.out)")
        #expect(r.out.contains("deb: tools, mount, mount -t fuse.fspf and fstab ok"), "\(r.out)")
        #expect(r.out.contains("wheel: fspf \(FSPFVersion.number) read the reference volume"), "\(r.out)")
    }

    /// Another package depends on FSPFCore — by path, as the issue's user would start, and by
    /// version from a git repository (SwiftPM refuses unsafe flags only there) — and reads the
    /// reference volume through the public API.
    @Test func anotherPackageDependsOnFSPFCore() throws {
        let s = Sandbox()
        s.write("consumer/Sources/consumer/main.swift", #"""
            import FSPFCore
            import FSPFCrypto
            import Foundation

            // consumer VOLUME KEYFILE TAG: prints the size of hello.txt, read and verified.
            let args = CommandLine.arguments
            var key = Hex.decode(try String(contentsOfFile: args[2], encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!
            let reader = try VolumeReader(path: args[1], keys: VolumeKeys(key: SecureBytes(consuming: &key)), expectedTag: Hex.decode(args[3]))
            print("read", try reader.read("hello.txt").count, "bytes")
            """#)
        let r = s.bash(#"""
            root='\#(PackagingTests.root)'
            manifest() {  # DEPENDENCY IDENTITY (SwiftPM names a dependency after its path's last component)
              cat > consumer/Package.swift <<EOF
            // swift-tools-version:6.0
            import PackageDescription
            let package = Package(name: "consumer",
                dependencies: [$1],
                targets: [.executableTarget(name: "consumer", dependencies: [.product(name: "FSPFCore", package: "$2")])])
            EOF
            }
            run() { (cd consumer && swift build --scratch-path ../build -q && ../build/debug/consumer '\#(ReferenceVolume.path)/volume-v2' '\#(ReferenceVolume.path)/key.hex' '\#(ReferenceVolume.tag)'); }
            manifest ".package(path: \"$root\")" "$(basename "$root")"
            run
            # The same through a versioned dependency: a clone of this tree's last commit, tagged.
            git clone -q "$root" fspf && git -C fspf tag '\#(FSPFVersion.number)'
            rm -rf build consumer/Package.resolved
            manifest ".package(url: \"file://$PWD/fspf\", exact: \"\#(FSPFVersion.number)\")" fspf
            run
            """#)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out.components(separatedBy: "read ").count == 3, "\(r.out)")
    }
}
