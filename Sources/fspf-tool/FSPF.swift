import ArgumentParser
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Glibc

@main
struct FSPF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fspf",
        abstract: "Protected volumes: encrypt and authenticate directory trees for confidential workloads.",
        discussion: ExitStatus.help() + " Every error is one line on stderr naming the path and the cause.",
        version: FSPFVersion.describe("fspf"),
        subcommands: [Encrypt.self, Create.self, AddRegion.self, AddFiles.self, AddFSPF.self, Show.self,
                      Verify.self, List.self, Cat.self, Decrypt.self, Info.self, Upgrade.self, Seal.self, Keygen.self,
                      Quote.self, AttesterCommand.self, KeyServer.self])
}

/// Runs a command body, turning an FSPFError into one line on stderr and its exit code.
func reportingErrors(_ body: () throws -> Void) throws {
    Signals.install()
    do {
        try body()
    } catch let e as FSPFError {
        Console.error(e.description)
        throw ExitCode(e.exitStatus)
    }
}

enum Console {
    static func error(_ message: String) {
        let line = "fspf: " + message + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    static func out(_ text: String) {
        print(text)
    }
}

enum Signals {
    /// First SIGINT/SIGTERM asks long work to stop and clean up; a second one kills.
    static func install() {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGINT, SIGTERM] {
            sigaddset(&set, sig)
            signal(sig) { s in
                Interrupt.request()
                signal(s, SIG_DFL)
            }
        }
        // A parent may have started us with these blocked; Ctrl-C must still work.
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
