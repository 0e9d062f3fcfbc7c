// swift-tools-version:6.0
import PackageDescription

// Our own targets build with warnings as errors; dependencies keep their own settings.
let strict: [SwiftSetting] = [.unsafeFlags(["-warnings-as-errors"])]

let package = Package(
    name: "fspf",
    products: [
        .library(name: "FSPFCore", targets: ["FSPFCore"]),
        // The C ABI of include/fspf.h, for reading volumes in-process (C, Python, the JVM). SwiftPM
        // names it libFSPFLibrary.so ("fspf" is the CLI's name); `make lib` installs it as libfspf.so,
        // the name it carries as its SONAME.
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
        .target(name: "FSPFSystem", dependencies: ["CLinux"], swiftSettings: strict),
        // Thin wrappers over libsodium and OpenSSL: randomness, guarded key memory, constant-time
        // comparison, SHA-256, HMAC, HKDF, AES-256-GCM, hex. No volume format.
        .target(name: "FSPFCrypto", dependencies: ["COpenSSL", "CSodium"], swiftSettings: strict),
        // The volume format: keys, chunks, tag trees, metadata, writer, reader, verifier.
        .target(name: "FSPFCore", dependencies: ["FSPFSystem", "FSPFCrypto", "COpenSSL", "CSodium"], swiftSettings: strict),
        // Evidence verification (SGX DCAP quotes, Azure Attestation tokens, simulated evidence)
        // and the release policy; pure functions of their inputs and a clock, no network.
        .target(name: "FSPFAttestation", dependencies: ["FSPFSystem", "FSPFCrypto", "COpenSSL", "CSodium"], swiftSettings: strict),
        // How keys reach a process: files, environment, descriptors, a local agent's URL, the
        // key broker (evidence from the runtime, sealed reply); HTTP(S) on OpenSSL.
        .target(name: "FSPFProvisioning", dependencies: ["FSPFSystem", "FSPFCrypto", "FSPFAttestation", "COpenSSL", "CSodium"],
                swiftSettings: strict),
        // The attested key broker: store (keys sealed under a master key), policies, audit log, and
        // its HTTPS server on SwiftNIO (event-driven connections, deadlines, per-peer quotas).
        .target(name: "FSPFKeyBroker", dependencies: ["CLinux", "FSPFSystem", "FSPFCrypto", "FSPFAttestation", "FSPFProvisioning", "COpenSSL", "CSodium",
                                                     .product(name: "NIOCore", package: "swift-nio"),
                                                     .product(name: "NIOPosix", package: "swift-nio"),
                                                     .product(name: "NIOHTTP1", package: "swift-nio"),
                                                     .product(name: "NIOTLS", package: "swift-nio"),
                                                     .product(name: "NIOEmbedded", package: "swift-nio"),
                                                     .product(name: "NIOSSL", package: "swift-nio-ssl")],
                swiftSettings: strict),
        // include/fspf.h, so that libfspf's Swift side is checked against the very types C sees.
        .systemLibrary(name: "CFSPFABI"),
        // The C ABI over FSPFCore (libfspf.so): volumes, stat, listing, verified pread.
        .target(name: "libfspf", dependencies: ["CFSPFABI", "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning"],
                swiftSettings: strict, linkerSettings: [.unsafeFlags(["-Xlinker", "-soname=libfspf.so"])]),
        .executableTarget(
            name: "fspf-tool",
            dependencies: [
                "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning", "FSPFAttestation", "FSPFKeyBroker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        // The FUSE front end: callbacks, daemon life cycle, hardening.
        .target(name: "FSPFMount",
                dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning", "CFuse3", "CLinux", .product(name: "Logging", package: "swift-log"),
                               .product(name: "Yams", package: "Yams")],
                swiftSettings: strict),
        .executableTarget(
            name: "fspf-mount",
            dependencies: [
                "FSPFMount", "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // Library-level measurements behind the chunk-size default (`make bench`).
        .executableTarget(name: "fspf-bench", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "COpenSSL", "CSodium"], swiftSettings: strict),
        // The tamper matrix with its counts (`make test-security`).
        .executableTarget(name: "fspf-tamper", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto"], swiftSettings: strict),
        // libFuzzer targets for the parsers (`make fuzz`).
        .executableTarget(name: "fspf-fuzz", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning", "FSPFAttestation", "FSPFKeyBroker",
                                                        "libfspf", "CFSPFABI"],
                          swiftSettings: strict),
        .testTarget(name: "FSPFCoreTests", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFProvisioning"], swiftSettings: strict),
        // Runs the built executables as scripts do; shared by the tests of both tools.
        .target(name: "FSPFTestSupport", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto"], path: "Tests/FSPFTestSupport", swiftSettings: strict),
        .testTarget(name: "fspfToolTests", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFTestSupport"], swiftSettings: strict),
        .testTarget(name: "FSPFAttestationTests", dependencies: ["FSPFAttestation", "FSPFSystem", "FSPFCrypto"], swiftSettings: strict),
        .testTarget(name: "FSPFKeyBrokerTests", dependencies: ["FSPFKeyBroker", "FSPFAttestation", "FSPFProvisioning", "FSPFSystem", "FSPFCrypto",
                                                            "FSPFTestSupport",
                                                            .product(name: "NIOCore", package: "swift-nio"),
                                                            .product(name: "NIOPosix", package: "swift-nio"),
                                                            .product(name: "NIOSSL", package: "swift-nio-ssl")],
                    swiftSettings: strict),
        .testTarget(name: "FSPFProvisioningTests", dependencies: ["FSPFSystem", "FSPFCrypto", "FSPFProvisioning"], swiftSettings: strict),
        .testTarget(name: "libfspfTests", dependencies: ["libfspf", "CFSPFABI", "FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFTestSupport"],
                    exclude: ["c"],
                    swiftSettings: strict),
        .testTarget(name: "FSPFMountTests", dependencies: ["FSPFCore", "FSPFSystem", "FSPFCrypto", "FSPFMount", "FSPFProvisioning", "FSPFAttestation", "FSPFTestSupport"],
                    swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
