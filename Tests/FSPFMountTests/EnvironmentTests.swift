import Foundation
import Glibc
import Testing
import FSPFMount
import FSPFSystem
import FSPFTestSupport

/// Where plaintext goes: fspf-mount says which confidential-computing environment it sees and,
/// with --require-tee, refuses to serve plaintext to a kernel outside one.
@Suite struct EnvironmentTests {
    /// Each documented guest interface, in a fake root.
    @Test func detectionFromTheDocumentedDeviceNames() throws {
        let s = Sandbox()
        func detect(_ setup: String) -> TEEEnvironment {
            _ = s.sh("rm -rf root && mkdir -p root && cd root && \(setup)")
            return TEEEnvironment.detect(root: s.path + "/root", cocoAddress: nil)
        }
        #expect(detect("true") == TEEEnvironment())
        #expect(!detect("true").kernelInsideTEE)
        #expect(detect("mkdir dev && touch dev/sev-guest").confidentialVM == ["AMD SEV-SNP guest (/dev/sev-guest)"])
        #expect(detect("mkdir dev && touch dev/tdx_guest").confidentialVM == ["Intel TDX guest (/dev/tdx_guest)"])
        #expect(detect("mkdir dev && touch dev/tdx-guest").confidentialVM == ["Intel TDX guest (/dev/tdx-guest)"])
        #expect(detect("mkdir proc && printf 'processor\\t: 0\\nflags\\t\\t: fpu tdx_guest x2apic\\n' > proc/cpuinfo").kernelInsideTEE)
        #expect(!detect("mkdir proc && printf 'flags\\t\\t: fpu tdx_guestx\\n' > proc/cpuinfo").kernelInsideTEE)
        #expect(detect("mkdir -p sys/kernel/config/tsm/report").kernelInsideTEE)
        #expect(detect("mkdir -p run/confidential-containers").confidentialVM == ["confidential containers guest (/run/confidential-containers)"])
        // An SGX enclave: the key is safe there, the kernel is not inside the TEE.
        let sgx = detect("mkdir -p dev/attestation && echo dcap > dev/attestation/attestation_type && touch dev/sev-guest")
        #expect(sgx.enclave == "SGX enclave, Gramine (/dev/attestation, dcap)" && !sgx.kernelInsideTEE)
        #expect(detect("mkdir -p dev/attestation && echo none > dev/attestation/attestation_type").enclave == nil)
    }

    /// The confidential data hub's API server, found by connecting to it.
    @Test func confidentialContainersDataHubIsFound() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        // Closed once: a second close would close whatever another test opened under the same
        // number in between (it once took RoundTripTests' descriptor and undid its corruption).
        var listening = true
        defer { if listening { close(fd) } }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        #expect(withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0 } })
        let port = UInt16(bigEndian: addr.sin_port)
        let s = Sandbox()
        #expect(TEEEnvironment.detect(root: s.path, cocoAddress: ("127.0.0.1", port)).confidentialVM
                == ["confidential containers data hub (127.0.0.1:\(port))"])
        close(fd)
        listening = false
        #expect(TEEEnvironment.detect(root: s.path, cocoAddress: ("127.0.0.1", port)).confidentialVM.isEmpty)
    }

    /// This machine, as the daemon sees it: refused with --require-tee unless it is a TEE; a
    /// plain mount says what it found.
    @Test func requireTEERefusesOutsideATEE() throws {
        let s = Sandbox()
        s.makeInput()
        let tag = MountTests.encrypt(s)
        let here = TEEEnvironment.detect()
        let r = MountTests.mount(s, "vol mnt --key-file key --tag \(tag) --require-tee")
        if here.kernelInsideTEE {
            #expect(r.status == 0 && r.err.contains("confidential-computing environment:"), "\(r.err)")
        } else {
            #expect(r.status == 20 && r.err.contains("--require-tee: the kernel that would receive the plaintext is not inside a TEE"), "\(r.err)")
            #expect(Sandbox.mounts(below: s.path).isEmpty)
            let plain = MountTests.mount(s, "vol mnt --key-file key --tag \(tag)")
            #expect(plain.status == 0 && plain.err.contains("no confidential-computing environment found"), "\(plain.err)")
        }
        _ = s.sh("umount mnt")
    }
}
