// swift-tools-version:6.0
import PackageDescription

// No unsafe flags, so that other packages can depend on FSPFCore: warnings are errors through
// the Makefile (-Xswiftc -warnings-as-errors, which SwiftPM does not pass on to dependencies).
let package = Package(
    name: "fspf",
    products: [
        // The volume format for other Swift packages, with the key and descriptor types its API uses.
        .library(name: "FSPFCore", targets: ["FSPFCore", "FSPFCrypto", "FSPFSystem"]),
        // The C ABI of include/fspf.h, for reading volumes in-process (C, Python, the JVM). SwiftPM
        // names it libFSPFLibrary.so ("fspf" is the CLI's name) and links it against the shared Swift
        // runtime; `make release` links libfspf.so from the same objects with the runtime inside.
        .library(name: "FSPFLibrary", type: .dynamic, targets: ["libfspf"]),
        .executable(name: "fspf", targets: ["fspf-tool"]),
        .executable(name: "fspf-mount", targets: ["fspf-mount"]),
        .executable(name: "fspf-bench", targets: ["fspf-bench"]),
        .executable(name: "fspf-tamper", targets: ["fspf-tamper"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C shims: they only expose the system libraries to Swift.
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium",
                       providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3",
                       providers: [.apt(["libfuse3-dev"])]),
        // Linux calls the Glibc module leaves out (extended attributes).
        .systemLibrary(name: "CLinux"),
        // File descriptors, errno, paths, locks and the error type with its exit statuses.
        .target(name: "FSPFSystem", dependencies: ["CLinux"]),
        // Thin wrappers over libsodium and OpenSSL: randomness, guarded key memory, constant-time
        // comparison, SHA-256, HMAC, HKDF, AES-256-GCM, XChaCha20-Poly1305, sealed boxes, Ed25519,
        // hex. No volume format. (X.509, ECDSA and the TLS client are still in FSPFAttestation,
        // FSPFKeyBroker and FSPFProvisioning: the targets that list COpenSSL.)
        .target(name: "FSPFCrypto", dependencies: ["COpenSSL", "CSodium"]),
        // The volume format: keys, chunks, tag trees, metadata, writer, reader, verifier.
        .target(name: "FSPFCore", dependencies: ["FSPFSystem", "FSPFCrypto"]),
        // Evidence verification (SGX DCAP quotes, Azure Attestation tokens, simulated evidence)
        // and the release policy; pure functions of their inputs and a clock, no network.
        .target(name: "FSPFAttestation", dependencies: ["FSPFSystem", "FSPFCrypto", "COpenSSL"]),
        // How keys reach a process: files, environment, descriptors, a local agent's URL, the
        // key broker (evidence from the runtime, sealed reply); HTTP(S) on OpenSSL.
        .target(name: "FSPFProvisioning", dependencies: ["FSPFSystem", "FSPFCrypto", "FSPFAttestation", "COpenSSL"]),
        // The attested key broker: store (keys sealed under a master key), policies, audit log, and
        // its HTTPS server on SwiftNIO (event-driven connections, deadlines, per-peer quotas).
        .target(name: "FSPFKeyBroker", dependencies: ["CLinux", "FSPFSystem", "FSPFCrypto", "FSPFAttestation", "FSPFProvisioning", "COpenSSL",
                                                     .product(name: "NIOCore", package: "swift-nio"),
                                                     .product(name: "NIOPosix", package: "swift-nio"),
                                                     .product(name: "NIOHTTP1", package: "swift-nio"),
                                                     .product(name: "NIOTLS", package: "swift-nio"),
                                                     .product(name: "NIOEmbedded", package: "swift-nio"),
                                                     .product(name: "NIOSSL", package: "swift-nio-ssl")]),
        // include/fspf.h, so that libfspf's Swift side is checked against the very types C sees.
        .systemLibrary(name: "CFSPFABI"),
        // The C ABI over FSPFCore (libfspf.so): volumes, stat, listing, verified pread.
        .target(name: "libfspf", dependencies: ["CFSPFABI", "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning"]),
        .executableTarget(
            name: "fspf-tool",
            dependencies: [
                "FSPFCommandLine", "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning", "FSPFAttestation", "FSPFKeyBroker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // What both executables share: exit statuses and their meanings (the one table behind
        // help texts and docs/USAGE.md), the mapping from errors to them, the one-line report.
        .target(name: "FSPFCommandLine", dependencies: ["FSPFSystem", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // The FUSE front end: callbacks, daemon life cycle, hardening.
        .target(name: "FSPFMount",
                dependencies: ["FSPFCommandLine", "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning", "CFuse3", "CLinux", .product(name: "Logging", package: "swift-log"),
                               .product(name: "Yams", package: "Yams")]),
        .executableTarget(
            name: "fspf-mount",
            dependencies: [
                "FSPFCommandLine", "FSPFMount", "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Library-level measurements behind the chunk-size default (`make bench`).
        .executableTarget(name: "fspf-bench", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "COpenSSL", "CSodium"]),
        // The tamper matrix with its counts (`make test-security`).
        .executableTarget(name: "fspf-tamper", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto"]),
        // libFuzzer targets for the parsers (`make fuzz`).
        .executableTarget(name: "fspf-fuzz", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning", "FSPFAttestation", "FSPFKeyBroker",
                                                        "libfspf", "CFSPFABI"]),
        // One test target per module: known answers of the primitives, the system-call layer
        // against a hostile directory, the format.
        .testTarget(name: "FSPFCryptoTests", dependencies: ["FSPFCrypto"]),
        .testTarget(name: "FSPFSystemTests", dependencies: ["FSPFSystem"]),
        .testTarget(name: "FSPFCommandLineTests", dependencies: ["FSPFCommandLine"]),
        .testTarget(name: "FSPFCoreTests", dependencies: ["FSPFCommandLine", "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning", "FSPFTestSupport"]),
        // Runs the built executables as scripts do; shared by the tests of both tools.
        .target(name: "FSPFTestSupport", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto"], path: "Tests/FSPFTestSupport"),
        .testTarget(name: "fspfToolTests", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFTestSupport"]),
        .testTarget(name: "FSPFAttestationTests", dependencies: ["FSPFAttestation", "FSPFSystem", "FSPFCrypto"]),
        .testTarget(name: "FSPFKeyBrokerTests", dependencies: ["FSPFCommandLine", "FSPFKeyBroker", "FSPFAttestation", "FSPFProvisioning", "FSPFSystem", "FSPFCrypto",
                                                            "FSPFTestSupport",
                                                            .product(name: "NIOCore", package: "swift-nio"),
                                                            .product(name: "NIOPosix", package: "swift-nio"),
                                                            .product(name: "NIOSSL", package: "swift-nio-ssl")]),
        .testTarget(name: "FSPFProvisioningTests", dependencies: ["FSPFSystem", "FSPFCrypto", "FSPFProvisioning"]),
        .testTarget(name: "libfspfTests", dependencies: ["libfspf", "CFSPFABI", "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFTestSupport"],
                    exclude: ["c"]),
        // Tests that need the JDK and the project's .venv (PySpark, pytest, the deployment linters):
        // the Spark job, SCONE's scripts, deploy/, the Python package and fspf:// in Spark. The other
        // test targets need neither (`swift test --skip IntegrationTests`).
        .testTarget(name: "IntegrationTests", dependencies: ["FSPFMount", "FSPFSystem", "FSPFTestSupport"]),
        // make install, make deb (in a debootstrap chroot), the wheel, a package depending on FSPFCore.
        .testTarget(name: "PackagingTests", dependencies: ["FSPFCore", "FSPFTestSupport"]),
        .testTarget(name: "FSPFMountTests", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFMount", "FSPFProvisioning", "FSPFAttestation", "FSPFTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
