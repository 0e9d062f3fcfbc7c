import ArgumentParser
import FSPFAttestation
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import FSPFKeyBroker
import FSPFProvisioning
import Foundation
import Glibc

/// `fspf keyserver …`: the attested key broker (store, registration, HTTPS service).
struct KeyServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyserver",
        abstract: "Release volume keys to workloads whose attestation evidence satisfies the volume's policy.",
        discussion: """
        See docs/ATTESTATION.md for the protocol and the policy format.
        Examples:
          fspf keyserver init --store /srv/fspf-keys --name keys.example.com
          fspf encrypt input/data --out encrypted-data --register /srv/fspf-keys --policy policy.json
          fspf keyserver serve --store /srv/fspf-keys --listen 0.0.0.0:8443
        """,
        subcommands: [KeyServerInit.self, KeyServerRegister.self, KeyServerList.self, KeyServerServe.self])
}

struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "The key server's store directory.") var store: String
    @Option(name: .long, help: "Master key file (default STORE/master.key); keep it on a separate secret mount in production.")
    var masterKeyFile: String?

    func open() throws -> BrokerStore { try BrokerStore(root: store, masterKeyFile: masterKeyFile) }
}

struct KeyServerInit: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create a store: master key, signing identity, TLS key and self-signed certificate.",
                                                    discussion: "Example: fspf keyserver init --store /srv/fspf-keys --name keys.example.com")
    @OptionGroup var store: StoreOptions
    @Option(name: .long, help: "Host name or IP address clients use (repeat; default localhost and 127.0.0.1).")
    var name: [String] = []

    func run() throws {
        try reportingErrors {
            try BrokerStore.initialize(at: store.store, names: name.isEmpty ? ["localhost", "127.0.0.1"] : name,
                                       masterKeyFile: store.masterKeyFile)
            let identity = try store.open().identity
            Console.out("store \(store.store) created; clients trust \(store.store)/tls/cert.pem (--broker-ca) and pin the identity "
                        + "\(Base64.encode(identity)) (--broker-identity; also in \(store.store)/identity.pub)")
        }
    }
}

/// Registration shared by `fspf keyserver register` and `fspf encrypt --register`.
struct RegistrationOptions: ParsableArguments {
    @Option(name: .long, help: "Register the key and tag with the key server store at this path.") var register: String?
    @Option(name: .long, help: "Name of the volume at the key server (default: the output directory's name).") var volumeName: String?
    @Option(name: .long, help: "Release policy (JSON) for the registration.") var policy: String?
    @Option(name: .long, help: "Writers policy (JSON, same fields): workloads satisfying both may report versions they seal (read-write mounts).")
    var writersPolicy: String?
    @Flag(name: .long, help: "Replace an existing registration of the same name.") var replace = false
    @Option(name: .long, help: "Master key file of the store (default STORE/master.key).") var masterKeyFile: String?

    /// A registration checked before anything is written: store, name and policy.
    struct Prepared {
        let store: BrokerStore
        let name: String
        let policy: ReleasePolicy
        let writers: ReleasePolicy?
        let replace: Bool

        func perform(key: SecureBytes, tag: [UInt8]) throws -> String {
            try store.register(volume: name, key: key, tag: tag, policy: policy, writers: writers, replace: replace)
            return name
        }
    }

    /// Everything that can be wrong with the registration, found before a volume is written
    /// (a volume whose registration then fails would have lost its key). Nil without --register.
    func prepare(defaultName: String?) throws -> Prepared? {
        guard let register else {
            guard volumeName == nil, policy == nil, writersPolicy == nil, !replace else {
                throw FSPFError.usage("--volume-name, --policy, --writers-policy and --replace need --register STORE")
            }
            return nil
        }
        guard let policy else { throw FSPFError.usage("--register needs --policy FILE") }
        guard let name = volumeName ?? defaultName else { throw FSPFError.usage("--register needs --volume-name") }
        guard BrokerProtocol.isValidVolumeName(name) else {
            throw FSPFError.usage("\(name): volume names are 1–64 of A-Z a-z 0-9 . _ - (not starting with a dot); choose one with --volume-name")
        }
        func read(_ path: String) throws -> ReleasePolicy {
            do { return try ReleasePolicy(json: try FileSystem.readAll(path, limit: 1 << 20)) } catch let e as AttestationError {
                throw FSPFError.badInput(path: path, reason: e.description)
            }
        }
        let p = try read(policy)
        let writers = try writersPolicy.map(read)
        let store = try BrokerStore(root: register, masterKeyFile: masterKeyFile)
        guard replace || store.names().contains(name) == false else {
            throw FSPFError.usage("\(name): already registered in \(register) (use --replace to change its key, tag or policy)")
        }
        return Prepared(store: store, name: name, policy: p, writers: writers, replace: replace)
    }
}

struct KeyServerRegister: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Register an existing volume's key and tag with a policy.",
        discussion: """
        New volumes: fspf encrypt DIR --out VOL --register STORE --policy P registers straight away.
        An output volume (fspf-mount --read-write): add --writers-policy W; a workload that satisfies P and W may
        report each version it seals, and the next release pins it.
        Example: fspf keyserver register --store /srv/fspf-keys --volume-name data --key-file data.key --tag "$TAG" --policy policy.json
        """)

    @Option(name: .long, help: "The key server's store directory.") var store: String
    @Option(name: .long, help: "Name clients ask for.") var volumeName: String
    @Option(name: .long, help: "Release policy (JSON).") var policy: String
    @Option(name: .long, help: "Writers policy (JSON): who may report versions they sealed (default: nobody).") var writersPolicy: String?
    @Flag(name: .long, help: "Replace an existing registration.") var replace = false
    @Option(name: .long, help: "Master key file (default STORE/master.key).") var masterKeyFile: String?
    @OptionGroup var key: KeyOptions
    @OptionGroup var tag: TagValueOptions

    func run() throws {
        try reportingErrors {
            guard let t = try tag.expected() else { throw FSPFError.usage("register needs the volume's tag: --tag or --tag-env") }
            let options = try RegistrationOptions.parse(["--register", store, "--volume-name", volumeName, "--policy", policy]
                + (replace ? ["--replace"] : []) + (masterKeyFile.map { ["--master-key-file", $0] } ?? [])
                + (writersPolicy.map { ["--writers-policy", $0] } ?? []))
            _ = try options.prepare(defaultName: nil)?.perform(key: try key.required().key, tag: t)
            Console.out("registered \(volumeName) (tag \(Hex.encode(t)))")
        }
    }
}

struct KeyServerList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List registered volumes with their tag and policy.",
                                                    discussion: "Example: fspf keyserver list --store /srv/fspf-keys")
    @OptionGroup var store: StoreOptions

    func run() throws {
        try reportingErrors {
            let s = try store.open()
            for name in s.names() {
                guard let v = try s.volume(name) else { continue }
                Console.out("\(name)  version \(v.version)  tag \(Hex.encode(v.tag))")
                Console.out(String(decoding: v.policyText, as: UTF8.self).split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
                if let w = v.writersText {
                    Console.out("  writers:")
                    Console.out(String(decoding: w, as: UTF8.self).split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
                }
            }
        }
    }
}

struct KeyServerServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve key releases over HTTPS until stopped.",
        discussion: """
        Prints 'listening on https://HOST:PORT' once ready. Audit log: STORE/audit.log.
        Example: fspf keyserver serve --store /srv/fspf-keys --listen 0.0.0.0:8443
        """)

    @OptionGroup var store: StoreOptions
    @Option(name: .long, help: "Address and port to listen on (port 0 picks a free one).") var listen = "127.0.0.1:8443"
    @Option(name: .long, help: "Collateral JSON for SGX quotes: used instead of any collateral a client sends.") var collateral: String?
    @Option(name: .long, help: "Hours a writer grant stays usable for reporting sealed versions.") var writerGrantHours: Int64 = 168

    func run() throws {
        try reportingErrors {
            var config = KeyBrokerServer.Configuration()
            guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else {
                throw FSPFError.usage("--listen \(listen): expected HOST:PORT")
            }
            config.host = String(listen[..<colon]).trimmingCharacters(in: ["[", "]"])
            config.port = port
            guard (1...87_600).contains(writerGrantHours) else { throw FSPFError.usage("--writer-grant-hours: 1 to 87600") }
            config.writerGrantLifetime = writerGrantHours * 3600
            if let collateral {
                config.collateral = try FileSystem.readAll(collateral, limit: 1 << 20)
                do { _ = try Collateral(json: config.collateral!) } catch { throw FSPFError.badInput(path: collateral, reason: "\(error)") }
            }
            let server = try KeyBrokerServer(store: try store.open(), configuration: config)
            let bound = try server.bind()
            let host = config.host.contains(":") ? "[\(config.host)]" : config.host
            Console.out("listening on https://\(host):\(bound)")
            fflush(nil)
            // SIGINT/SIGTERM only raise a flag (see Signals); this turns it into an orderly stop.
            Thread.detachNewThread {
                while !Interrupt.requested { usleep(50_000) }
                server.stop()
            }
            server.serve()
        }
    }
}
