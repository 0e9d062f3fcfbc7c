import ArgumentParser
import FSPFCore
import FSPFCommandLine
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
    do { try body() } catch let e as FSPFError { throw Console.failure(e) }
}

let Console = CommandOutput(program: "fspf")
