import ArgumentParser
import FSPFSystem
import Glibc

/// What an executable writes for its user: every error one line on stderr, prefixed with the
/// program's name, and the exit status that goes with it.
public struct CommandOutput: Sendable {
    public let program: String
    public init(program: String) { self.program = program }

    public func error(_ message: String) {
        let line = program + ": " + message + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    public func out(_ text: String) { print(text) }

    /// Reports `e` and gives the exit status to leave with.
    public func failure(_ e: FSPFError) -> ExitCode {
        error(e.description)
        return ExitCode(e.exitStatus)
    }
}

/// SIGINT and SIGTERM for long work: the first asks it to stop and clean up (`Interrupt`), a
/// second one kills.
public enum Signals {
    public static func install() {
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
